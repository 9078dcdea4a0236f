use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuditEvent, Environment, UserId};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 256 bits need 43 base62 digits (62^43 > 2^256).
const SECRET_DIGITS: usize = 43;
/// A CRC-32 needs 6 base62 digits (62^6 > 2^32).
const CHECKSUM_DIGITS: usize = 6;

/// An API key's public id, shown as `key_<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(Uuid);

uuid_id!(ApiKeyId);

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key_{}", self.0)
    }
}

/// The text is not `key_<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an API key id")]
pub struct InvalidApiKeyId;

impl FromStr for ApiKeyId {
    type Err = InvalidApiKeyId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uuid = s.strip_prefix("key_").ok_or(InvalidApiKeyId)?;
        Uuid::try_parse(uuid).map(Self).map_err(|_| InvalidApiKeyId)
    }
}

/// A complete API key as its owner holds it:
/// `sk_<env>_` + 43 base62 digits of a 256-bit secret + a 6-digit CRC-32 of
/// everything before it. The checksum lets a mistyped or made-up key be
/// refused without a database round trip, and lets secret scanners tell our
/// keys from random strings. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

/// Why a presented string is not one of our API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed API key")]
pub struct MalformedApiKey;

impl ApiKeySecret {
    /// Formats 256 random bits as a key of `environment`.
    #[must_use]
    pub fn from_random(environment: Environment, random: [u8; 32]) -> Self {
        let mut key = String::with_capacity(8 + SECRET_DIGITS + CHECKSUM_DIGITS);
        key.push_str(environment.key_prefix());
        key.push_str(&base62(&random, SECRET_DIGITS));
        let checksum = crc32(key.as_bytes()).to_be_bytes();
        key.push_str(&base62(&checksum, CHECKSUM_DIGITS));
        Self(key)
    }

    /// Checks the shape and the checksum of a presented key.
    ///
    /// # Errors
    /// [`MalformedApiKey`] for a wrong prefix, length, alphabet or checksum.
    pub fn parse(raw: &str) -> Result<Self, MalformedApiKey> {
        let environment = Environment::of_key(raw).ok_or(MalformedApiKey)?;
        let rest = &raw[environment.key_prefix().len()..];
        if rest.len() != SECRET_DIGITS + CHECKSUM_DIGITS || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(MalformedApiKey);
        }
        let (body, checksum) = raw.split_at(raw.len() - CHECKSUM_DIGITS);
        if base62(&crc32(body.as_bytes()).to_be_bytes(), CHECKSUM_DIGITS) != checksum {
            return Err(MalformedApiKey);
        }
        Ok(Self(raw.to_owned()))
    }

    #[must_use]
    pub fn environment(&self) -> Environment {
        Environment::of_key(&self.0).unwrap_or(Environment::Live)
    }

    /// The key itself, for the one response that shows it and for digesting.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret([REDACTED])")
    }
}

/// The SHA-256 digest of a whole key: all that is stored, and what lookups use.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// A stored API key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: ResourceName,
    pub environment: Environment,
    pub digest: KeyDigest,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub usage_count: i64,
}

impl ApiKey {
    /// Neither revoked nor expired at `now`.
    #[must_use]
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Uses of one key since the last flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUsage {
    pub id: ApiKeyId,
    pub count: i64,
    pub last_used_at: OffsetDateTime,
}

/// A key used from an address this instance had not seen it used from: the
/// store decides whether the pair is new and, if so, keeps `event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySighting {
    pub id: ApiKeyId,
    pub ip: String,
    /// Its `api_key_new_ip` event; `event.at` is when the pair was first seen.
    pub event: AuditEvent,
}

/// A name given by a user (API keys, projects): trimmed, 1 to 100 characters,
/// no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceName(String);

/// Why a string is not a [`ResourceName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResourceNameError {
    #[error("name must not be empty")]
    Empty,
    #[error("name must be at most 100 characters")]
    TooLong,
    #[error("name must not contain control characters")]
    ControlCharacter,
}

impl ResourceName {
    pub const MAX_LEN: usize = 100;

    /// # Errors
    /// [`ResourceNameError`] for an empty, overlong or control-character name.
    pub fn parse(raw: &str) -> Result<Self, ResourceNameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ResourceNameError::Empty);
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(ResourceNameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(ResourceNameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `bytes` as a big-endian number, in exactly `digits` base62 digits.
/// (Enough digits for the input are the caller's promise.)
pub(super) fn base62(bytes: &[u8], digits: usize) -> String {
    let mut number = bytes.to_vec();
    let mut out = vec![b'0'; digits];
    for slot in out.iter_mut().rev() {
        let mut remainder: u32 = 0;
        for byte in &mut number {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(value / 62).unwrap_or(u8::MAX);
            remainder = value % 62;
        }
        *slot = BASE62[remainder as usize];
    }
    String::from_utf8(out).unwrap_or_default()
}

/// CRC-32 (IEEE 802.3), the checksum GitHub-style tokens use.
pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn base62_is_fixed_width_and_exact() {
        assert_eq!(base62(&[0, 0, 0, 61], 6), "00000z");
        assert_eq!(base62(&[0, 0, 0, 62], 6), "000010");
        assert_eq!(base62(&[0xff; 32], 43).len(), 43);
    }

    #[test]
    fn generated_keys_parse_and_carry_their_environment() {
        for (environment, prefix) in [(Environment::Live, "sk_live_"), (Environment::Test, "sk_test_")] {
            let key = ApiKeySecret::from_random(environment, [7u8; 32]);
            assert!(key.expose().starts_with(prefix));
            assert_eq!(key.expose().len(), prefix.len() + 49);
            let parsed = ApiKeySecret::parse(key.expose()).unwrap();
            assert_eq!(parsed.environment(), environment);
        }
    }

    #[test]
    fn a_single_changed_character_breaks_the_checksum() {
        let key = ApiKeySecret::from_random(Environment::Live, [42u8; 32]);
        let text = key.expose();
        for position in 8..text.len() {
            let mut bytes = text.as_bytes().to_vec();
            bytes[position] = if bytes[position] == b'a' { b'b' } else { b'a' };
            let mistyped = String::from_utf8(bytes).unwrap();
            assert!(ApiKeySecret::parse(&mistyped).is_err(), "changed at {position}");
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        let key = ApiKeySecret::from_random(Environment::Test, [1u8; 32]);
        let text = key.expose();
        for bad in [
            "",
            "sk_live_",
            "sk_prod_abc",
            "pk_live_abc",
            &text[..text.len() - 1],
            &format!("{text}0"),
            &text.replace("sk_test_", "sk_live_"),
            &format!("{}-{}", &text[..20], &text[21..]),
        ] {
            assert!(ApiKeySecret::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_ids_round_trip_and_reject_garbage() {
        let id = ApiKeyId::new();
        assert_eq!(id.to_string().parse::<ApiKeyId>().unwrap(), id);
        for bad in [
            "",
            "key_",
            "key_123",
            "550e8400-e29b-41d4-a716-446655440000",
            "KEY_550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert!(bad.parse::<ApiKeyId>().is_err(), "{bad}");
        }
        assert!(!format!("{:?}", ApiKeySecret::from_random(Environment::Live, [3; 32])).contains("sk_"));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            ResourceName::parse("  Production Server Key ").unwrap().as_str(),
            "Production Server Key"
        );
        assert_eq!(ResourceName::parse("  "), Err(ResourceNameError::Empty));
        assert_eq!(ResourceName::parse(&"x".repeat(101)), Err(ResourceNameError::TooLong));
        assert_eq!(ResourceName::parse("a\nb"), Err(ResourceNameError::ControlCharacter));
        assert!(ResourceName::parse(&"é".repeat(100)).is_ok());
    }
}
