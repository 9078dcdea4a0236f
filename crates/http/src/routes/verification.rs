//! Email verification: following the emailed link, and asking for a new one.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use portcullis_domain::Resend;

use super::no_store;
use crate::body::Json;
use crate::dto::{MessageResponse, UserResponse, VerifiedEmailResponse, VerifyEmailRequest};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;

/// Verify the account's email address with the token from the emailed link.
/// The link works once; every older link of the account stops working too.
#[utoipa::path(
    tag = "accounts",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "Verified", body = VerifiedEmailResponse),
        (status = 400, description = "`invalid_verification_token`: unknown, used, expired or malformed; `malformed_body`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `token` missing or not a string", body = ErrorBody),
    )
)]
#[post("/v1/auth/verify-email")]
pub(crate) async fn verify(
    state: web::Data<AppState>,
    body: Json<VerifyEmailRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = state.services.verification.verify(&body.token).await?;
    let body = VerifiedEmailResponse { message: "Email address verified", user: UserResponse::from(&user) };
    Ok(no_store(StatusCode::OK, &body))
}

/// Email a new verification link to the caller's address; the older links
/// stop working. At most 3 emails an hour per account: a request beyond
/// them is accepted and sends nothing.
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("forgot_password"))),
    tag = "accounts",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The address is verified already; nothing is sent", body = MessageResponse),
        (status = 202, description = "A new link is on its way", body = MessageResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
    )
)]
#[post("/v1/auth/resend-verification")]
pub(crate) async fn resend(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    super::require_jwt(&caller)?;
    Ok(match state.services.verification.resend(&caller.0).await? {
        Resend::AlreadyVerified => {
            no_store(StatusCode::OK, &MessageResponse { message: "Email address is already verified" })
        }
        Resend::Accepted => no_store(
            StatusCode::ACCEPTED,
            &MessageResponse { message: "A new verification link has been sent" },
        ),
    })
}
