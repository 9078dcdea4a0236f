use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use portcullis_domain::{AuthMethod, DomainError, Forbidden, Password};

use super::no_store;
use crate::body::Json;
use crate::dto::{
    AuditEventsPage, ChangePasswordRequest, ChangePasswordResponse, LoginRequest, MessageResponse,
    OwnEventsParams, RegisterRequest, RegisterResponse, TokenResponse, UserResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Authenticated, BearerJwt};
use crate::state::AppState;

/// Create an account and sign in.
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("register"))),
    tag = "accounts",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = RegisterResponse),
        (status = 400, description = "Body is not JSON", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_email`, `weak_password` (every failed rule listed), `invalid_field`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
#[post("/v1/auth/register")]
pub(crate) async fn register(
    state: web::Data<AppState>,
    body: Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let (user, token) = state.services.accounts.register(body.into_inner().into()).await?;
    let body = RegisterResponse { user: UserResponse::from(&user), token: token.into() };
    Ok(no_store(StatusCode::CREATED, &body))
}

/// Sign in with email and password (JSON).
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "sessions",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Body is not JSON", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown email and wrong password alike", body = ErrorBody),
        (status = 403, description = "`account_disabled` (right password of a disabled account)", body = ErrorBody),
        (status = 422, description = "`invalid_field`: a field is missing or not a string", body = ErrorBody),
    )
)]
#[post("/v1/auth/login-json")]
pub(crate) async fn login_json(
    state: web::Data<AppState>,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    login(&state, body.into_inner()).await
}

/// Sign in with email and password (form, OAuth2 password-grant style).
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "sessions",
    request_body(content = LoginRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
#[post("/v1/auth/login")]
pub(crate) async fn login_form(
    state: web::Data<AppState>,
    body: web::Form<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    login(&state, body.into_inner()).await
}

pub(crate) async fn login(state: &AppState, body: LoginRequest) -> Result<HttpResponse, ApiError> {
    let token = state.services.sessions.login(&body.username, Password::new(body.password)).await?;
    Ok(no_store(StatusCode::OK, &TokenResponse::from(token)))
}

/// The caller's profile.
#[utoipa::path(
    tag = "accounts",
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        (status = 401, description = "`not_authenticated`, `invalid_token`, `token_expired`, `token_revoked`, `account_disabled`, `invalid_api_key`", body = ErrorBody),
    )
)]
#[get("/v1/auth/me")]
pub(crate) async fn me(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let mut body = UserResponse::from(&caller.0.user);
    body.providers = state.services.accounts.providers_of(&caller.0).await?;
    Ok(no_store(StatusCode::OK, &body))
}

/// The caller's own recent security events (logins, password changes, keys...), newest first.
#[utoipa::path(
    tag = "accounts",
    security(("bearer_jwt" = []), ("api_key" = [])),
    params(OwnEventsParams),
    responses(
        (status = 200, description = "A page of events; `next_before` gives the next", body = AuditEventsPage),
        (status = 401, description = "`not_authenticated`, `invalid_token`, `token_expired`, `token_revoked`, `account_disabled`, `invalid_api_key`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: limit or before", body = ErrorBody),
    )
)]
#[get("/v1/auth/me/events")]
pub(crate) async fn my_events(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<OwnEventsParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    let events = state.services.audit.mine(&caller.0, limit, query.before).await?;
    Ok(no_store(StatusCode::OK, &AuditEventsPage::new(events, limit)))
}

/// Exchange a valid token for a new one; the presented token is revoked.
#[utoipa::path(
    tag = "sessions",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "A new token; the old one no longer works", body = TokenResponse),
        (status = 401, description = "`not_authenticated`, `invalid_token`, `token_expired`, `token_revoked`, `account_disabled`", body = ErrorBody),
    )
)]
#[post("/v1/auth/refresh")]
pub(crate) async fn refresh(state: web::Data<AppState>, token: BearerJwt) -> Result<HttpResponse, ApiError> {
    let token = state.services.sessions.refresh(&token.0).await?;
    Ok(no_store(StatusCode::OK, &TokenResponse::from(token)))
}

/// Revoke the presented token.
#[utoipa::path(
    tag = "sessions",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The token is revoked until it expires", body = MessageResponse),
        (status = 401, description = "`not_authenticated`, `invalid_token`, `token_expired`, `token_revoked`", body = ErrorBody),
    )
)]
#[post("/v1/auth/logout")]
pub(crate) async fn logout(state: web::Data<AppState>, token: BearerJwt) -> Result<HttpResponse, ApiError> {
    state.services.sessions.logout(&token.0).await?;
    Ok(HttpResponse::Ok().json(MessageResponse { message: "Successfully logged out" }))
}

/// Change the caller's password; every earlier token stops working.
#[utoipa::path(
    tag = "accounts",
    security(("bearer_jwt" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; the returned token is the one that works now", body = ChangePasswordResponse),
        (status = 400, description = "`invalid_current_password`, `malformed_body`", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
        (status = 422, description = "`weak_password`", body = ErrorBody),
    )
)]
#[post("/v1/auth/change-password")]
pub(crate) async fn change_password(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    if caller.0.method != AuthMethod::Jwt {
        return Err(DomainError::Forbidden(Forbidden::JwtRequired).into());
    }
    let body = body.into_inner();
    let (current, new) = (Password::new(body.current_password), Password::new(body.new_password));
    let token = state.services.accounts.change_password(&caller.0, current, new).await?;
    let body = ChangePasswordResponse { message: "Password changed successfully", token: token.into() };
    Ok(no_store(StatusCode::OK, &body))
}
