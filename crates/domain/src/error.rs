//! The domain's errors. Each carries the stable `code` of the HTTP contract, so
//! the HTTP layer only has to choose a status.

use crate::model::{EmailError, FullNameError, PasswordPolicy, PasswordRule};

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

/// Why the caller is not authenticated (HTTP 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials were presented.
    NotAuthenticated,
    /// Wrong email or password, or an unknown email: deliberately one case.
    InvalidCredentials,
    InvalidToken,
    TokenExpired,
    TokenRevoked,
    /// The token's session was ended (logout, deletion, sign-out everywhere,
    /// password change or reset, a reused refresh token).
    SessionEnded,
    /// A refresh token that is unknown, malformed, or of a session that ended or expired.
    InvalidRefreshToken,
    /// A refresh token that was already exchanged.
    RefreshTokenReused,
    /// Valid credentials of a disabled or deleted user.
    AccountDisabled,
    InvalidApiKey,
    ApiKeyRevoked,
    ApiKeyExpired,
    /// A wrong, reused or malformed second-factor code at sign-in.
    InvalidMfaCode,
    /// An `mfa_token` that is unknown, used, expired or spent by wrong codes.
    InvalidMfaToken,
}

impl AuthError {
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::NotAuthenticated => "not_authenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::SessionEnded => "session_ended",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::AccountDisabled => "account_disabled",
            Self::InvalidApiKey => "invalid_api_key",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::ApiKeyExpired => "api_key_expired",
            Self::InvalidMfaCode => "invalid_mfa_code",
            Self::InvalidMfaToken => "invalid_mfa_token",
        }
    }

    #[must_use]
    pub const fn detail(self) -> &'static str {
        match self {
            Self::NotAuthenticated => "Not authenticated",
            Self::InvalidCredentials => "Incorrect email or password",
            Self::InvalidToken => "Invalid token",
            Self::TokenExpired => "Token has expired",
            Self::TokenRevoked => "Token has been revoked",
            Self::SessionEnded => "The session has ended",
            Self::InvalidRefreshToken => "Invalid refresh token",
            Self::RefreshTokenReused => "Refresh token was already used",
            Self::AccountDisabled => "Account is disabled",
            Self::InvalidApiKey => "Invalid API key",
            Self::ApiKeyRevoked => "API key has been revoked",
            Self::ApiKeyExpired => "API key has expired",
            Self::InvalidMfaCode => "The code is wrong or was used already",
            Self::InvalidMfaToken => "The sign-in expired or was used; sign in again",
        }
    }

    /// Whether the caller presented a bearer credential (RFC 6750 then asks for
    /// `error="invalid_token"` in `WWW-Authenticate`).
    #[must_use]
    pub const fn credential_was_presented(self) -> bool {
        !matches!(
            self,
            Self::NotAuthenticated | Self::InvalidCredentials | Self::InvalidMfaCode | Self::InvalidMfaToken
        )
    }
}

/// Why an authenticated caller may not do this (HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    InsufficientPermissions,
    JwtRequired,
    /// The right password of a disabled account, at login.
    AccountDisabled,
    /// The right password of an account whose address is not verified yet,
    /// while verification is required (also its refresh).
    EmailNotVerified,
}

impl Forbidden {
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::InsufficientPermissions => "insufficient_permissions",
            Self::JwtRequired => "jwt_required",
            Self::AccountDisabled => "account_disabled",
            Self::EmailNotVerified => "email_not_verified",
        }
    }

    #[must_use]
    pub const fn detail(self) -> &'static str {
        match self {
            Self::InsufficientPermissions => "Insufficient permissions",
            Self::JwtRequired => "This endpoint requires a JWT; API keys are not accepted",
            Self::AccountDisabled => "Account is disabled",
            Self::EmailNotVerified => "Verify your email address first: follow the link we emailed you",
        }
    }
}

/// Every way a use case can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A well-formed request whose values break a rule (HTTP 422).
    #[error("validation failed: {code}")]
    Validation { code: &'static str, errors: Vec<FieldError> },
    /// The email belongs to another account (HTTP 409).
    #[error("email already registered")]
    EmailTaken,
    #[error("{}", .0.detail())]
    Unauthenticated(AuthError),
    #[error("{}", .0.detail())]
    Forbidden(Forbidden),
    /// Too many attempts (HTTP 429).
    #[error("rate limited")]
    RateLimited(crate::model::RateDecision),
    /// An OAuth `state` that is not ours, expired, or for another redirect URI (HTTP 400).
    #[error("invalid OAuth state")]
    InvalidOAuthState,
    /// The provider refused the authorization code (HTTP 400).
    #[error("the provider refused the authorization code")]
    OAuthExchangeFailed,
    /// The provider's email is missing or not verified by it (HTTP 409).
    #[error("the provider did not vouch for the account's email")]
    OAuthEmailUnverified,
    /// The provider failed or answered garbage (HTTP 502). For the log only.
    #[error("provider error: {0}")]
    ProviderError(String),
    /// A reset token that is malformed, unknown, used or expired (HTTP 400).
    #[error("invalid or expired reset token")]
    InvalidResetToken,
    /// A wrong, reused or malformed code at a second-factor setting (HTTP 400).
    #[error("invalid MFA code")]
    InvalidMfaCode,
    /// The caller's second factor is on already (HTTP 409).
    #[error("MFA already enabled")]
    MfaAlreadyEnabled,
    /// An email-verification token that is malformed, unknown, used or expired (HTTP 400).
    #[error("invalid or expired verification token")]
    InvalidVerificationToken,
    /// The current password given to change it was wrong (HTTP 400).
    #[error("current password is incorrect")]
    InvalidCurrentPassword,
    #[error("not found")]
    NotFound,
    /// Storage or another dependency cannot answer now (HTTP 503). The string is
    /// for the log, never for the client.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl DomainError {
    /// The stable machine-readable code of the contract.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { code, .. } => code,
            Self::EmailTaken => "email_taken",
            Self::Unauthenticated(e) => e.code(),
            Self::Forbidden(e) => e.code(),
            Self::InvalidCurrentPassword => "invalid_current_password",
            Self::InvalidResetToken => "invalid_reset_token",
            Self::InvalidVerificationToken => "invalid_verification_token",
            Self::InvalidMfaCode => "invalid_mfa_code",
            Self::MfaAlreadyEnabled => "mfa_already_enabled",
            Self::RateLimited(_) => "rate_limited",
            Self::InvalidOAuthState => "invalid_oauth_state",
            Self::OAuthExchangeFailed => "oauth_exchange_failed",
            Self::OAuthEmailUnverified => "oauth_email_unverified",
            Self::ProviderError(_) => "provider_error",
            Self::NotFound => "not_found",
            Self::Unavailable(_) => "service_unavailable",
        }
    }

    #[must_use]
    pub fn invalid_email(error: EmailError) -> FieldError {
        FieldError { field: "email".to_owned(), code: "invalid_email", message: error.to_string() }
    }

    #[must_use]
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError {
            field: field.to_owned(),
            code: "invalid_field",
            message: message.into(),
        }])
    }

    #[must_use]
    pub fn invalid_full_name(error: FullNameError) -> FieldError {
        FieldError { field: "full_name".to_owned(), code: "invalid_field", message: error.to_string() }
    }

    #[must_use]
    pub fn weak_password(field: &str, rules: &[PasswordRule], policy: &PasswordPolicy) -> Vec<FieldError> {
        rules
            .iter()
            .map(|rule| FieldError {
                field: field.to_owned(),
                code: rule.code(),
                message: rule.message(policy),
            })
            .collect()
    }

    /// A 422 from a list of field errors; its code is the first error's kind
    /// (`invalid_email`, `weak_password` or `invalid_field`).
    #[must_use]
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let code = match errors.first() {
            Some(e) if e.code == "invalid_email" => "invalid_email",
            Some(e) if e.code.starts_with("password_") => "weak_password",
            _ => "invalid_field",
        };
        Self::Validation { code, errors }
    }
}

/// What a storage port can report. Adapters map their driver's errors onto it;
/// nothing database-specific crosses the port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (e.g. the email exists).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    /// The store cannot be reached or answered with an error it cannot explain.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for DomainError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict("email") => Self::EmailTaken,
            StoreError::Conflict(what) => Self::Unavailable(format!("unexpected conflict on {what}")),
            StoreError::NotFound => Self::NotFound,
            StoreError::Unavailable(why) => Self::Unavailable(why),
        }
    }
}
