//! Values that cannot be invalid once constructed.

/// `new` (a time-ordered UUIDv7), `from_uuid`, `as_uuid` and `Default` for
/// an id that wraps a UUID.
macro_rules! uuid_id {
    ($name:ident) => {
        impl $name {
            #[must_use]
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            #[must_use]
            pub const fn from_uuid(uuid: uuid::Uuid) -> Self {
                Self(uuid)
            }

            #[must_use]
            pub const fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

mod address;
mod api_key;
mod audit;
mod email;
mod mfa;
mod oauth;
mod password;
mod principal;
mod project;
mod rate;
mod reset;
mod session;
mod signing;
mod token;
mod user;
mod verification;

pub use address::push_ip;
pub use api_key::{
    ApiKey, ApiKeyId, ApiKeySecret, InvalidApiKeyId, KeyDigest, KeySighting, KeyUsage, MalformedApiKey,
    ResourceName, ResourceNameError,
};
pub use audit::{AuditEvent, AuditKind, AuditQuery, MAX_USER_AGENT_CHARS, RequestContext};
pub use email::{Email, EmailError};
pub use mfa::{
    MfaChallenge, MfaTokenSecret, RECOVERY_CODES, RecoveryCode, TOTP_DIGITS, TOTP_SECRET_BYTES,
    TOTP_SKEW_STEPS, TOTP_STEP_SECS, TotpFactor, TotpSecret, base32, parse_totp_code, totp_step,
};
pub use oauth::{OAuthIdentity, ProviderName, ProviderProfile, RedirectUri};
pub use password::{Password, PasswordHash, PasswordPolicy, PasswordRule, PasswordRules};
pub use principal::{AuthMethod, Environment, Principal, SessionLookup};
pub use project::Project;
pub use rate::{Quota, RateDecision, address_key, push_address_key};
pub use reset::{
    DeliveryStatus, MailMessage, MalformedResetToken, OutboxMessage, PasswordReset, ResetBudget,
    ResetRequest, ResetTokenSecret,
};
pub use session::{
    MalformedRefreshToken, RefreshLookup, RefreshRecord, RefreshTokenSecret, Session, SessionId, SignInMethod,
};
pub use signing::{GeneratedKey, KeyState, KeyStatus, SigningAlgorithm, SigningKey, key_states};
pub use token::{AccessToken, Audience, Claims, IssuedRefresh, IssuedToken};
pub use user::{FullName, FullNameError, NewUser, Provider, Role, UnknownRole, User, UserId, UsersFrom};
pub use verification::{EmailVerification, MalformedVerificationToken, VerificationTokenSecret};

/// `bytes` as a big-endian number in exactly `digits` base62 digits: for
/// random values and signatures that travel in URLs.
#[must_use]
pub fn base62_text(bytes: &[u8], digits: usize) -> String {
    api_key::base62(bytes, digits)
}
