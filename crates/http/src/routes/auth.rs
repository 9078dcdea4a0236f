use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, get, post, web};
use portcullis_domain::Password;

use super::no_store;
use crate::body::Json;
use crate::dto::{
    AuditEventsPage, ChangePasswordRequest, ChangePasswordResponse, LoginRequest, MessageResponse,
    OwnEventsParams, RefreshRequest, RegisterRequest, RegisterResponse, SignInResponse, TokenResponse,
    UserResponse,
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
        (status = 201, description = "Registered and signed in; with `AUTH_REQUIRE_VERIFIED_EMAIL` the user alone, without token fields. A verification link is emailed either way.", body = RegisterResponse),
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
    let body = RegisterResponse { user: UserResponse::from(&user), token: token.map(Into::into) };
    Ok(no_store(StatusCode::CREATED, &body))
}

/// Sign in with email and password (JSON).
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "sessions",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; or, for an account with a second factor, `mfa_required` and an `mfa_token` for `POST /v1/auth/mfa/verify`", body = SignInResponse),
        (status = 400, description = "Body is not JSON", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown email and wrong password alike", body = ErrorBody),
        (status = 403, description = "`account_disabled` (right password of a disabled account); `email_not_verified` (right password, address not verified while `AUTH_REQUIRE_VERIFIED_EMAIL` is on)", body = ErrorBody),
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
        (status = 200, description = "Signed in, or `mfa_required`", body = SignInResponse),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`account_disabled`, `email_not_verified`", body = ErrorBody),
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
    let signed_in = state.services.sessions.login(&body.username, Password::new(body.password)).await?;
    Ok(no_store(StatusCode::OK, &SignInResponse::from(signed_in)))
}

/// The caller's profile.
#[utoipa::path(
    tag = "accounts",
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        (status = 401, description = "`not_authenticated`, `invalid_token`, `token_expired`, `token_revoked`, `session_ended`, `account_disabled`, `invalid_api_key`", body = ErrorBody),
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
        (status = 401, description = "`not_authenticated`, `invalid_token`, `token_expired`, `token_revoked`, `session_ended`, `account_disabled`, `invalid_api_key`", body = ErrorBody),
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

/// Renew a session. With a body `{"refresh_token"}` (no `Authorization`):
/// the refresh token is spent and a new access token and refresh token of
/// the same session come back (rotation; a spent token presented again after
/// the grace period ends the session). Without a body, the seed's form:
/// `Authorization: Bearer <access token>`, which is revoked, and the answer
/// carries the session's new refresh token too.
#[utoipa::path(
    tag = "sessions",
    security((), ("bearer_jwt" = [])),
    request_body(content = Option<RefreshRequest>, description = "The refresh token; or no body and a bearer access token", content_type = "application/json"),
    responses(
        (status = 200, description = "New tokens of the same session; the presented one no longer works", body = TokenResponse),
        (status = 400, description = "`malformed_body`", body = ErrorBody),
        (status = 401, description = "`invalid_refresh_token`, `refresh_token_reused`, `not_authenticated`, `invalid_token`, `token_expired`, `token_revoked`, `session_ended`, `account_disabled`", body = ErrorBody),
        (status = 403, description = "`email_not_verified`: the account's address is not verified while `AUTH_REQUIRE_VERIFIED_EMAIL` is on", body = ErrorBody),
        (status = 422, description = "`invalid_field`: a refresh token and an access token both sent", body = ErrorBody),
    )
)]
#[post("/v1/auth/refresh")]
pub(crate) async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let token = if body.trim_ascii().is_empty() {
        let token = BearerJwt::from_request(&req, &mut Payload::None).await?;
        state.services.sessions.refresh(&token.0).await?
    } else {
        if req.headers().contains_key(header::AUTHORIZATION) {
            return Err(ApiError::invalid_field(
                "refresh_token",
                "send the refresh token or an access token, not both",
            ));
        }
        let request: RefreshRequest = crate::body::parse_json_request(&req, &body)?;
        state.services.sessions.refresh_with(&request.refresh_token).await?
    };
    Ok(no_store(StatusCode::OK, &TokenResponse::from(token)))
}

/// End the token's session: the token, its session's other access tokens
/// and its refresh token stop working.
#[utoipa::path(
    tag = "sessions",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The session has ended", body = MessageResponse),
        (status = 401, description = "`not_authenticated`, `invalid_token`, `token_expired`, `token_revoked`, `session_ended`", body = ErrorBody),
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
    super::require_jwt(&caller)?;
    let body = body.into_inner();
    let (current, new) = (Password::new(body.current_password), Password::new(body.new_password));
    let token = state.services.accounts.change_password(&caller.0, current, new).await?;
    let body = ChangePasswordResponse { message: "Password changed successfully", token: token.into() };
    Ok(no_store(StatusCode::OK, &body))
}
