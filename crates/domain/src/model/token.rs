use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{RefreshTokenSecret, Role, Session, SessionId, User};

/// The claims of a Portcullis access token.
///
/// Every field but `sid` and `auth_time` is required: a token missing one does
/// not decode. `sv` is the user's session version when the token was issued
/// (see [`User::session_version`]). `sid` and `auth_time` are absent from the
/// tokens of versions before sessions, which stay valid until they expire.
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
    /// The session the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// When the user last proved who they are (seconds since the epoch);
    /// refreshes keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Whom the token is for (`AUTH_JWT_AUDIENCE`). Absent only from tokens
    /// of versions before signing keys, which carry no `kid` either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// The `aud` claim: one audience is written as a string, several as a list
/// (RFC 7519, 4.1.3); both forms are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(Vec<String>);

impl Audience {
    /// `None` when `names` is empty.
    #[must_use]
    pub fn new(names: Vec<String>) -> Option<Self> {
        (!names.is_empty()).then_some(Self(names))
    }

    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether any of these audiences is one of `accepted`.
    #[must_use]
    pub fn accepts_any(&self, accepted: &[String]) -> bool {
        self.0.iter().any(|name| accepted.contains(name))
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        Ok(Self(match Form::deserialize(deserializer)? {
            Form::One(one) => vec![one],
            Form::Many(many) => many,
        }))
    }
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
            sid: None,
            auth_time: None,
            aud: None,
        }
    }

    /// The same claims for `audience`.
    #[must_use]
    pub fn for_audience(mut self, audience: Option<Audience>) -> Self {
        self.aud = audience;
        self
    }

    /// The same claims inside `session`: its id as `sid`, its `auth_time`,
    /// and an `exp` no later than the session can end without a refresh.
    #[must_use]
    pub fn in_session(mut self, session: &Session, idle: Duration) -> Self {
        self.sid = Some(session.id.as_uuid());
        self.auth_time = Some(session.auth_time.unix_timestamp());
        self.exp = self.exp.min(session.ends_at(idle).unix_timestamp());
        self
    }

    /// The session the token belongs to, if it names one.
    #[must_use]
    pub fn session(&self) -> Option<SessionId> {
        self.sid.map(SessionId::from_uuid)
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

/// A freshly issued token and how long it lives, with its session's
/// refresh token when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub access_token: AccessToken,
    pub expires_in: i64,
    pub claims: Claims,
    pub refresh: Option<IssuedRefresh>,
}

/// A session's new refresh token, and the seconds until the session's absolute end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRefresh {
    pub token: RefreshTokenSecret,
    pub expires_in: i64,
}
