//! Endpoints for trying the service out; not mounted when `AUTH_ENV=production`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use portcullis_domain::{Password, Registration, Role};

use super::no_store;
use crate::body::Json;
use crate::dto::{AuthStatusResponse, LoginRequest, SignInResponse, TestUserRequest, UserResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::authenticate;
use crate::state::AppState;

/// Whether the request's credentials (if any) are valid, and whose they are.
#[utoipa::path(
    tag = "test",
    security((), ("bearer_jwt" = []), ("api_key" = [])),
    responses((status = 200, description = "Never fails for bad credentials: reports them", body = AuthStatusResponse))
)]
#[get("/v1/test-auth/auth-status")]
pub(crate) async fn auth_status(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let status = match authenticate(&state, req.headers()).await {
        Ok(Some(principal)) => AuthStatusResponse {
            authenticated: true,
            method: Some(principal.method),
            user: Some(UserResponse::from(&principal.user)),
            reason: None,
        },
        Ok(None) => AuthStatusResponse { authenticated: false, method: None, user: None, reason: None },
        Err(e) if e.code() == "service_unavailable" => return Err(e),
        Err(e) => {
            AuthStatusResponse { authenticated: false, method: None, user: None, reason: Some(e.code()) }
        }
    };
    Ok(no_store(StatusCode::OK, &status))
}

/// Create a user without signing in (same rules as registration).
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("register"))),
    tag = "test",
    request_body = TestUserRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_email`, `weak_password`", body = ErrorBody),
    )
)]
#[post("/v1/test-auth/create-test-user")]
pub(crate) async fn create_test_user(
    state: web::Data<AppState>,
    body: Json<TestUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let registration =
        Registration { email: body.email, password: Password::new(body.password), full_name: None };
    let user = state.services.accounts.create_user(registration, Role::User).await?;
    Ok(HttpResponse::Created().json(UserResponse::from(&user)))
}

/// Sign in with `{"email", "password"}` (same rules as login).
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "test",
    request_body = TestUserRequest,
    responses(
        (status = 200, description = "Signed in, or `mfa_required`", body = SignInResponse),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`account_disabled` (right password, disabled account); `email_not_verified` (right password, address not verified while `AUTH_REQUIRE_VERIFIED_EMAIL` is on)", body = ErrorBody),
    )
)]
#[post("/v1/test-auth/test-login")]
pub(crate) async fn test_login(
    state: web::Data<AppState>,
    body: Json<TestUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    super::auth::login(&state, LoginRequest { username: body.email, password: body.password }).await
}
