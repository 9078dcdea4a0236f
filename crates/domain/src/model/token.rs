use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Role, User};

/// The claims of a Portcullis access token.
///
/// Every field is required: a token missing one does not decode. `sv` is the
/// user's session version when the token was issued (see [`User::session_version`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub email: String,
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    pub iss: String,
    pub sv: i64,
}

impl Claims {
    #[must_use]
    pub fn for_user(user: &User, jti: Uuid, issuer: &str, now: OffsetDateTime, ttl_secs: i64) -> Self {
        let iat = now.unix_timestamp();
        Self {
            sub: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            role: user.role,
            exp: iat.saturating_add(ttl_secs),
            iat,
            jti,
            iss: issuer.to_owned(),
            sv: user.session_version,
        }
    }

    /// When the token stops being valid, as a time (saturating on absurd values).
    #[must_use]
    pub fn expires_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.exp).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// An encoded JWT. `Debug` hides it so it never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

/// A freshly issued token and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub access_token: AccessToken,
    pub expires_in: i64,
    pub claims: Claims,
}
