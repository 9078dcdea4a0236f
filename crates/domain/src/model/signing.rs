//! Signing keys: the asymmetric keys access tokens are signed with, kept in
//! the store so that every instance signs and verifies with the same set.
//!
//! A key's state is not stored: it follows from the times. Keys are ordered by
//! `activates_at`; the last one whose `activates_at` has passed is `current`
//! and signs; the ones still to come are `next` (published, not signing); the
//! earlier ones are `retired` from the moment their successor became current,
//! and stay published until the last token they signed has expired. So no
//! instance has to write a state change, and every instance agrees on the
//! current key at the same instant (up to clock skew).

use std::fmt;

use time::{Duration, OffsetDateTime};

/// How access tokens are signed: `AUTH_JWT_ALGORITHM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// HMAC-SHA256 with the shared `AUTH_JWT_SECRET`: nothing to publish.
    Hs256,
    /// ECDSA over P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlgorithm {
    /// The JOSE name: `HS256`, `ES256`, `EdDSA`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Whether its keys are key pairs whose public half is published.
    #[must_use]
    pub const fn is_asymmetric(self) -> bool {
        !matches!(self, Self::Hs256)
    }

    /// The JOSE name back, exactly as [`as_str`](Self::as_str) writes it.
    ///
    /// # Errors
    /// When `raw` names no algorithm Portcullis signs with.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "HS256" => Ok(Self::Hs256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(format!("unknown signing algorithm {other:?} (HS256, ES256 or EdDSA)")),
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored signing key pair. The private half is sealed (encrypted and
/// authenticated) by the token codec under the key-encryption key; the store
/// and the domain never see it in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The `kid` of the tokens it signs: its public key's RFC 7638 thumbprint.
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    /// 1 for the first key, one more for each later one. Unique: of two
    /// instances adding a key at the same instant, one fails to insert.
    pub generation: i64,
    /// The public key as a JWK (JSON text), as the JWKS publishes it.
    pub public_jwk: String,
    /// The private key, encrypted under the key-encryption key.
    pub sealed_private: Vec<u8>,
    pub created_at: OffsetDateTime,
    /// When it becomes current (and starts signing).
    pub activates_at: OffsetDateTime,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("generation", &self.generation)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

/// What a freshly generated key pair gives the store: its id, its public JWK
/// and its sealed private half.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    pub kid: String,
    pub public_jwk: String,
    pub sealed_private: Vec<u8>,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing.
    Current,
    /// No longer signing; published until its last token expired.
    Retired,
}

impl KeyState {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retired => "retired",
        }
    }
}

/// A key with its state at some instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub key: SigningKey,
    pub state: KeyState,
    /// When a later key became current (retired keys only).
    pub retired_at: Option<OffsetDateTime>,
    /// Until when it is published: `None` while it is next or current.
    pub published_until: Option<OffsetDateTime>,
}

impl KeyStatus {
    /// Whether it belongs in the JWKS at `now`.
    #[must_use]
    pub fn is_published(&self, now: OffsetDateTime) -> bool {
        self.published_until.is_none_or(|until| now < until)
    }

    /// Whether it may be asked to sign at some point from `now` on.
    #[must_use]
    pub fn may_sign(&self) -> bool {
        self.state != KeyState::Retired
    }
}

/// Every key's state at `now`, oldest first. A retired key stays published
/// for `token_lifetime` after its retirement: every token it signed has
/// expired by then.
#[must_use]
pub fn key_states(keys: &[SigningKey], now: OffsetDateTime, token_lifetime: Duration) -> Vec<KeyStatus> {
    let mut ordered: Vec<&SigningKey> = keys.iter().collect();
    ordered.sort_by_key(|key| (key.activates_at, key.generation));
    let current = ordered.iter().rposition(|key| key.activates_at <= now);
    ordered
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let (state, retired_at) = match current {
                Some(c) if i == c => (KeyState::Current, None),
                Some(c) if i < c => (KeyState::Retired, Some(ordered[i + 1].activates_at)),
                _ => (KeyState::Next, None),
            };
            KeyStatus {
                key: (*key).clone(),
                state,
                retired_at,
                published_until: retired_at.map(|at| at + token_lifetime),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn key(generation: i64, activates_at: OffsetDateTime) -> SigningKey {
        SigningKey {
            kid: format!("k{generation}"),
            algorithm: SigningAlgorithm::Es256,
            generation,
            public_jwk: "{}".to_owned(),
            sealed_private: vec![1, 2, 3],
            created_at: activates_at - Duration::minutes(10),
            activates_at,
        }
    }

    #[test]
    fn states_follow_from_the_times() {
        let t0 = datetime!(2026-01-01 00:00 UTC);
        let keys = vec![key(2, t0 + Duration::days(90)), key(1, t0), key(3, t0 + Duration::days(180))];
        let ttl = Duration::hours(8);
        let at = |now| -> Vec<(String, KeyState, bool)> {
            key_states(&keys, now, ttl)
                .into_iter()
                .map(|s| (s.key.kid.clone(), s.state, s.is_published(now)))
                .collect()
        };
        use KeyState::*;
        assert_eq!(
            at(t0 - Duration::seconds(1)),
            vec![("k1".into(), Next, true), ("k2".into(), Next, true), ("k3".into(), Next, true)]
        );
        assert_eq!(
            at(t0 + Duration::days(90) + Duration::hours(1)),
            vec![("k1".into(), Retired, true), ("k2".into(), Current, true), ("k3".into(), Next, true)]
        );
        assert_eq!(
            at(t0 + Duration::days(90) + ttl),
            vec![("k1".into(), Retired, false), ("k2".into(), Current, true), ("k3".into(), Next, true)],
            "a retired key leaves the JWKS once its last token expired"
        );
        let last = key_states(&keys, t0 + Duration::days(200), ttl);
        assert_eq!(last[1].retired_at, Some(t0 + Duration::days(180)));
        assert_eq!(last[2].state, Current);
        assert!(last.iter().filter(|s| s.may_sign()).count() == 1);
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in [SigningAlgorithm::Hs256, SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            assert_eq!(SigningAlgorithm::parse(alg.as_str()), Ok(alg));
        }
        assert!(SigningAlgorithm::parse("none").is_err());
        assert!(SigningAlgorithm::parse("es256").is_err());
    }
}
