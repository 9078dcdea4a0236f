//! Second factors: TOTP set-up, confirmation and removal, recovery codes,
//! and the second step of a sign-in.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, post, web};
use portcullis_domain::Password;
use qrcode::QrCode;
use qrcode::render::svg;

use super::no_store;
use crate::body::Json;
use crate::dto::{
    MessageResponse, MfaCodeRequest, MfaDisableRequest, MfaVerifyRequest, RecoveryCodesResponse,
    TokenResponse, TotpSetupResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;

/// Start a TOTP set-up: a new secret, as text, as an `otpauth://` URI and as
/// a QR code. Nothing changes for sign-ins until a code confirms it; a
/// second set-up replaces an unconfirmed one.
#[utoipa::path(
    tag = "mfa",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The secret, shown this once", body = TotpSetupResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
        (status = 409, description = "`mfa_already_enabled`", body = ErrorBody),
    )
)]
#[post("/v1/auth/mfa/totp/setup")]
pub(crate) async fn totp_setup(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    super::require_jwt(&caller)?;
    let setup = state.services.mfa.setup(&caller.0).await?;
    let qr_svg = QrCode::new(setup.otpauth_uri.as_bytes())
        .map_err(|_| ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR))?
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    let body = TotpSetupResponse { secret: setup.secret, otpauth_uri: setup.otpauth_uri, qr_svg };
    Ok(no_store(StatusCode::OK, &body))
}

/// Turn two-factor sign-in on with a first code from the app. The recovery
/// codes come back this once; every other session of the account ends.
#[utoipa::path(
    tag = "mfa",
    security(("bearer_jwt" = [])),
    request_body = MfaCodeRequest,
    responses(
        (status = 200, description = "On; keep the recovery codes somewhere safe", body = RecoveryCodesResponse),
        (status = 400, description = "`invalid_mfa_code` (wrong, used, or no set-up)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
        (status = 409, description = "`mfa_already_enabled`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
#[post("/v1/auth/mfa/totp/confirm")]
pub(crate) async fn totp_confirm(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<MfaCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    super::require_jwt(&caller)?;
    let codes = state.services.mfa.confirm(&caller.0, &body.code).await?;
    Ok(no_store(StatusCode::OK, &RecoveryCodesResponse { recovery_codes: codes }))
}

/// Turn two-factor sign-in off: a current code (or a recovery code), and
/// the password for an account that has one. Every other session ends.
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "mfa",
    security(("bearer_jwt" = [])),
    request_body = MfaDisableRequest,
    responses(
        (status = 200, description = "Off", body = MessageResponse),
        (status = 400, description = "`invalid_mfa_code`, `invalid_current_password`", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
#[delete("/v1/auth/mfa/totp")]
pub(crate) async fn totp_disable(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<MfaDisableRequest>,
) -> Result<HttpResponse, ApiError> {
    super::require_jwt(&caller)?;
    let body = body.into_inner();
    state.services.mfa.disable(&caller.0, body.password.map(Password::new), &body.code).await?;
    Ok(HttpResponse::Ok().json(MessageResponse { message: "Two-factor sign-in is off" }))
}

/// A fresh set of recovery codes for a current code; the old set stops working.
#[utoipa::path(
    tag = "mfa",
    security(("bearer_jwt" = [])),
    request_body = MfaCodeRequest,
    responses(
        (status = 200, description = "The new codes, shown this once", body = RecoveryCodesResponse),
        (status = 400, description = "`invalid_mfa_code` (wrong, used, or MFA off)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
#[post("/v1/auth/mfa/recovery-codes")]
pub(crate) async fn replace_recovery_codes(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<MfaCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    super::require_jwt(&caller)?;
    let codes = state.services.mfa.regenerate_recovery_codes(&caller.0, &body.code).await?;
    Ok(no_store(StatusCode::OK, &RecoveryCodesResponse { recovery_codes: codes }))
}

/// The second step of a sign-in: the `mfa_token` of the first step and a
/// current code (or an unused recovery code) start the session.
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "mfa",
    request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "`invalid_mfa_code` (it counts: 5 kill the token, and each is a failed login of the account); `invalid_mfa_token` (unknown, used, expired or killed)", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
#[post("/v1/auth/mfa/verify")]
pub(crate) async fn mfa_verify(
    state: web::Data<AppState>,
    body: Json<MfaVerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = state.services.mfa.verify(&body.mfa_token, &body.code).await?;
    Ok(no_store(StatusCode::OK, &TokenResponse::from(token)))
}
