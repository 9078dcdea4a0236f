use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use super::reset::{checked_secret, is_checked_secret};
use super::{KeyDigest, UserId};

const PREFIX: &str = "pev_";

/// An email-verification token as it travels in the emailed link: `pev_` +
/// 43 base62 digits of 256 random bits + a 6-digit CRC-32. Only its digest
/// is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationTokenSecret(String);

/// The text is not a verification token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed verification token")]
pub struct MalformedVerificationToken;

impl VerificationTokenSecret {
    #[must_use]
    pub fn from_random(random: [u8; 32]) -> Self {
        Self(checked_secret(PREFIX, random))
    }

    /// # Errors
    /// [`MalformedVerificationToken`] for a wrong prefix, length, alphabet or checksum.
    pub fn parse(raw: &str) -> Result<Self, MalformedVerificationToken> {
        if is_checked_secret(PREFIX, raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(MalformedVerificationToken)
        }
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationTokenSecret([REDACTED])")
    }
}

/// A stored email-verification link (its token's digest only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailVerification {
    pub id: Uuid,
    pub user_id: UserId,
    pub digest: KeyDigest,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_other_kinds_are_refused() {
        let token = VerificationTokenSecret::from_random([7; 32]);
        assert!(token.expose().starts_with("pev_"));
        assert_eq!(VerificationTokenSecret::parse(token.expose()).unwrap(), token);
        let reset = crate::model::ResetTokenSecret::from_random([7; 32]);
        assert!(VerificationTokenSecret::parse(reset.expose()).is_err());
        let text = token.expose();
        for bad in ["", "pev_", &text[..text.len() - 1], &format!("{text}0"), &"9".repeat(10_000)] {
            assert!(VerificationTokenSecret::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!format!("{token:?}").contains("pev_"));
    }
}
