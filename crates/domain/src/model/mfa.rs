use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use super::reset::{checked_secret, is_checked_secret};
use super::{KeyDigest, SignInMethod, UserId};

/// TOTP (RFC 6238) as the contract fixes it: SHA-1, 6 digits, 30-second steps.
pub const TOTP_DIGITS: u32 = 6;
pub const TOTP_STEP_SECS: i64 = 30;
/// Steps either side of now that are accepted (clock skew).
pub const TOTP_SKEW_STEPS: i64 = 1;
/// Bytes of a TOTP secret: 160 bits, as RFC 4226 recommends.
pub const TOTP_SECRET_BYTES: usize = 20;
/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;

/// The time step of `at` (Unix time / 30).
#[must_use]
pub fn totp_step(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(TOTP_STEP_SECS)
}

/// A code as typed: exactly six ASCII digits (spaces are allowed and dropped,
/// as authenticator apps show `123 456`).
///
/// `None` for anything else.
#[must_use]
pub fn parse_totp_code(raw: &str) -> Option<u32> {
    let digits: String = raw.chars().filter(|c| *c != ' ').collect();
    if digits.len() != TOTP_DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// RFC 4648 base32 without padding: how authenticator apps take a secret.
#[must_use]
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A user's TOTP secret in clear: only ever in memory, shown once at set-up.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(pub [u8; TOTP_SECRET_BYTES]);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// A user's TOTP factor as stored: the secret sealed under the service's
/// key, whether it was confirmed (MFA is on), and the last time step whose
/// code was accepted (a code is accepted once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    pub user_id: UserId,
    pub sealed_secret: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub confirmed_at: Option<OffsetDateTime>,
    pub last_step: Option<i64>,
}

/// A recovery code as stored: a digest of the user and the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCode {
    pub id: Uuid,
    pub user_id: UserId,
    pub digest: KeyDigest,
    pub created_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

const MFA_PREFIX: &str = "mfa_";

/// The token of a sign-in that waits for its second factor: `mfa_` + 43
/// base62 digits of 256 random bits + a 6-digit CRC-32. Only its digest is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaTokenSecret(String);

impl MfaTokenSecret {
    #[must_use]
    pub fn from_random(random: [u8; 32]) -> Self {
        Self(checked_secret(MFA_PREFIX, random))
    }

    /// `None` for a wrong prefix, length, alphabet or checksum.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        is_checked_secret(MFA_PREFIX, raw).then(|| Self(raw.to_owned()))
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MfaTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaTokenSecret([REDACTED])")
    }
}

/// A sign-in that passed its first factor and waits for the second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub id: Uuid,
    pub user_id: UserId,
    pub digest: KeyDigest,
    /// How the first factor was passed; the session will say so.
    pub method: SignInMethod,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Wrong codes so far.
    pub failures: i32,
    pub used_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn codes_are_six_digits_and_nothing_else() {
        assert_eq!(parse_totp_code("287082"), Some(287_082));
        assert_eq!(parse_totp_code("007 081"), Some(7081));
        for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", "-12345", "+12345", &"1".repeat(10_000)]
        {
            assert!(parse_totp_code(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn steps_are_thirty_seconds() {
        let at = OffsetDateTime::from_unix_timestamp(59).unwrap();
        assert_eq!(totp_step(at), 1);
        assert_eq!(totp_step(OffsetDateTime::from_unix_timestamp(1_111_111_109).unwrap()), 37_037_036);
    }
}
