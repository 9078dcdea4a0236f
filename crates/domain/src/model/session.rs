//! Sessions: one per sign-in, with an absolute and an idle end, an owner who
//! can list and end them, and the refresh tokens that renew them.

use std::fmt;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::reset::{checked_secret, is_checked_secret};
use super::{KeyDigest, ProviderName, User, UserId};

const PREFIX: &str = "rt_";

/// A session's id: the `sid` claim of its access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Uuid);

uuid_id!(SessionId);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a session's user signed in: `password` (the logins, the test
/// endpoints' login, registration) or a provider's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignInMethod(String);

impl SignInMethod {
    #[must_use]
    pub fn password() -> Self {
        Self("password".to_owned())
    }

    #[must_use]
    pub fn provider(name: &ProviderName) -> Self {
        Self(name.as_str().to_owned())
    }

    /// A stored method: `password` or a provider's name.
    ///
    /// # Errors
    /// When the text is none of them.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw {
            "password" => Ok(Self::password()),
            other => ProviderName::parse(other).map(|name| Self::provider(&name)),
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One sign-in's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    /// The last refresh (or the sign-in): the idle end counts from here.
    pub last_used_at: OffsetDateTime,
    /// The absolute end: no refresh extends the session past it.
    pub expires_at: OffsetDateTime,
    /// When the user last proved who they are (the `auth_time` claim);
    /// refreshes leave it alone.
    pub auth_time: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub method: SignInMethod,
    /// A second factor completed the sign-in.
    pub mfa: bool,
    /// When it was ended (logout, deletion, password change, reuse...).
    pub ended_at: Option<OffsetDateTime>,
}

impl Session {
    /// When it ends if nothing renews it: its idle end, or its absolute end if sooner.
    #[must_use]
    pub fn ends_at(&self, idle: Duration) -> OffsetDateTime {
        (self.last_used_at + idle).min(self.expires_at)
    }

    /// Not ended, and neither end reached at `now`.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime, idle: Duration) -> bool {
        self.ended_at.is_none() && now < self.ends_at(idle)
    }
}

/// A refresh token as its client holds it: `rt_` + 43 base62 digits of 256
/// random bits + a 6-digit CRC-32. Only its digest is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenSecret(String);

/// The text is not a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed refresh token")]
pub struct MalformedRefreshToken;

impl RefreshTokenSecret {
    #[must_use]
    pub fn from_random(random: [u8; 32]) -> Self {
        Self(checked_secret(PREFIX, random))
    }

    /// # Errors
    /// [`MalformedRefreshToken`] for a wrong prefix, length, alphabet or checksum.
    pub fn parse(raw: &str) -> Result<Self, MalformedRefreshToken> {
        if is_checked_secret(PREFIX, raw) { Ok(Self(raw.to_owned())) } else { Err(MalformedRefreshToken) }
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenSecret([REDACTED])")
    }
}

/// A stored refresh token: its digest, its session, and when it was spent
/// (exchanged for the next one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub digest: KeyDigest,
    pub session_id: SessionId,
    pub issued_at: OffsetDateTime,
    pub spent_at: Option<OffsetDateTime>,
}

/// A refresh token found by its digest, with its session and the session's
/// user, read in one round trip (an exchange needs all three).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshLookup {
    pub token: RefreshRecord,
    pub session: Session,
    pub user: User,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: OffsetDateTime) -> Session {
        Session {
            id: SessionId::new(),
            user_id: UserId::new(),
            created_at: now,
            last_used_at: now,
            expires_at: now + Duration::days(30),
            auth_time: now,
            ip: None,
            user_agent: None,
            method: SignInMethod::password(),
            mfa: false,
            ended_at: None,
        }
    }

    #[test]
    fn a_session_ends_at_its_idle_end_or_its_absolute_end_whichever_comes_first() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut s = session(now);
        let idle = Duration::days(7);
        assert_eq!(s.ends_at(idle), now + idle);
        assert!(s.is_live(now + Duration::days(6), idle));
        assert!(!s.is_live(now + idle, idle), "idle for the whole idle lifetime");
        s.last_used_at = now + Duration::days(28);
        assert_eq!(s.ends_at(idle), s.expires_at, "no refresh extends it past its absolute end");
        assert!(!s.is_live(s.expires_at, idle));
        s.ended_at = Some(now);
        assert!(!s.is_live(now, idle), "ended");
    }

    #[test]
    fn refresh_tokens_are_checked_before_any_lookup() {
        let token = RefreshTokenSecret::from_random([7; 32]);
        assert!(token.expose().starts_with("rt_"));
        assert_eq!(token.expose().len(), 3 + 43 + 6);
        assert_eq!(RefreshTokenSecret::parse(token.expose()), Ok(token.clone()));
        let mut typo = token.expose().to_owned();
        typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
        assert!(RefreshTokenSecret::parse(&typo).is_err());
        assert!(RefreshTokenSecret::parse(&token.expose()[..20]).is_err());
        assert!(RefreshTokenSecret::parse(&token.expose().replacen("rt_", "prt_", 1)).is_err());
        assert!(!format!("{token:?}").contains(&token.expose()[3..]));
    }

    #[test]
    fn methods_are_password_test_or_a_provider() {
        for raw in ["password", "test", "github", "acme_sso"] {
            assert_eq!(SignInMethod::parse(raw).map(|m| m.as_str().to_owned()), Ok(raw.to_owned()));
        }
        assert!(SignInMethod::parse("Not A Method").is_err());
    }
}
