use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use super::api_key::{base62, crc32};
use super::{Email, KeyDigest, RequestContext, UserId};

const PREFIX: &str = "prt_";
const SECRET_DIGITS: usize = 43;
const CHECKSUM_DIGITS: usize = 6;

/// `prefix` + 43 base62 digits of `random` + a 6-digit CRC-32 of both: a
/// secret that a typo or a truncation fails before any lookup.
pub(super) fn checked_secret(prefix: &str, random: [u8; 32]) -> String {
    let mut token = format!("{prefix}{}", base62(&random, SECRET_DIGITS));
    let checksum = base62(&crc32(token.as_bytes()).to_be_bytes(), CHECKSUM_DIGITS);
    token.push_str(&checksum);
    token
}

/// Whether `raw` is a [`checked_secret`] with this prefix.
pub(super) fn is_checked_secret(prefix: &str, raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix(prefix) else { return false };
    if rest.len() != SECRET_DIGITS + CHECKSUM_DIGITS || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (body, checksum) = raw.split_at(raw.len() - CHECKSUM_DIGITS);
    base62(&crc32(body.as_bytes()).to_be_bytes(), CHECKSUM_DIGITS) == checksum
}

/// A password-reset token as it travels in the emailed link: `prt_` + 43
/// base62 digits of 256 random bits + a 6-digit CRC-32. Only its digest is
/// stored; the checksum lets a mangled link be refused without a lookup.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetTokenSecret(String);

/// The text is not a reset token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed reset token")]
pub struct MalformedResetToken;

impl ResetTokenSecret {
    #[must_use]
    pub fn from_random(random: [u8; 32]) -> Self {
        Self(checked_secret(PREFIX, random))
    }

    /// # Errors
    /// [`MalformedResetToken`] for a wrong prefix, length, alphabet or checksum.
    pub fn parse(raw: &str) -> Result<Self, MalformedResetToken> {
        if is_checked_secret(PREFIX, raw) { Ok(Self(raw.to_owned())) } else { Err(MalformedResetToken) }
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ResetTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetTokenSecret([REDACTED])")
    }
}

/// A stored reset token (its digest only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    pub id: Uuid,
    pub user_id: UserId,
    pub digest: KeyDigest,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// A forgot-password request as it arrived, waiting for the worker that
/// looks the email up, issues the token and queues the email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    pub id: Uuid,
    pub email: Email,
    pub requested_at: OffsetDateTime,
    /// Who asked, for the audit event the worker writes.
    pub context: RequestContext,
}

/// At most `max` reset emails per account since `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetBudget {
    pub max: u32,
    pub since: OffsetDateTime,
}

/// An email to send.
#[derive(Clone, PartialEq, Eq)]
pub struct MailMessage {
    pub to: Email,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl fmt::Debug for MailMessage {
    /// The body may hold a reset link: never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailMessage")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Where a queued email stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Sent,
    /// Given up after too many failures, or refused for good by the server.
    Failed,
}

impl DeliveryStatus {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "pending" => Ok(Self::Pending),
            "sent" => Ok(Self::Sent),
            "failed" => Ok(Self::Failed),
            _ => Err(()),
        }
    }
}

/// An email in the durable outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub message: MailMessage,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// Not before this time (also the lease of a worker that claimed it).
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_mangled_ones_are_refused() {
        let token = ResetTokenSecret::from_random([11; 32]);
        assert!(token.expose().starts_with("prt_"));
        assert_eq!(ResetTokenSecret::parse(token.expose()).unwrap(), token);
        let text = token.expose();
        for bad in
            ["", "prt_", "abc", &text[..text.len() - 1], &text.replace("prt_", "prx_"), &format!("{text} ")]
        {
            assert!(ResetTokenSecret::parse(bad).is_err(), "{bad:?}");
        }
        let mut flipped = text.as_bytes().to_vec();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        assert!(ResetTokenSecret::parse(&String::from_utf8(flipped).unwrap()).is_err());
        assert!(!format!("{token:?}").contains("prt_"));
    }
}
