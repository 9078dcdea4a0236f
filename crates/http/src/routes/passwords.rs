use actix_web::{HttpResponse, get, post, web};
use portcullis_domain::Password;

use crate::body::Json;
use crate::dto::{ForgotPasswordRequest, MessageResponse, PasswordPolicyResponse, ResetPasswordRequest};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Ask for a reset link by email. The answer is the same whether or not the
/// email is registered, and no email is sent while the request waits.
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("forgot_password"))),
    tag = "accounts",
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "Accepted, whether or not the email is registered", body = MessageResponse),
        (status = 422, description = "`invalid_email`, `invalid_field`", body = ErrorBody),
    )
)]
#[post("/v1/auth/forgot-password")]
pub(crate) async fn forgot(
    state: web::Data<AppState>,
    body: Json<ForgotPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    state.services.passwords.forgot(&body.email).await?;
    Ok(HttpResponse::Accepted()
        .json(MessageResponse { message: "If that email is registered, a reset link has been sent" }))
}

/// Set a new password with the token from the emailed link. Every token
/// issued before stops working.
#[utoipa::path(
    tag = "accounts",
    request_body = ResetPasswordRequest,
    responses(
        (status = 200, description = "Password changed; sign in with it", body = MessageResponse),
        (status = 400, description = "`invalid_reset_token`: unknown, used, expired or malformed", body = ErrorBody),
        (status = 422, description = "`weak_password` (the token stays usable), `invalid_field`", body = ErrorBody),
    )
)]
#[post("/v1/auth/reset-password")]
pub(crate) async fn reset(
    state: web::Data<AppState>,
    body: Json<ResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    state.services.passwords.reset(&body.token, Password::new(body.new_password)).await?;
    Ok(HttpResponse::Ok().json(MessageResponse { message: "Password has been reset" }))
}

/// The rules a new password must meet, so a UI can show them before submitting.
#[utoipa::path(tag = "accounts", responses((status = 200, description = "The policy in force", body = PasswordPolicyResponse)))]
#[get("/v1/auth/password-policy")]
pub(crate) async fn policy(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(PasswordPolicyResponse::from(state.services.accounts.password_policy()))
}
