//! TOTP (RFC 6238) codes, and the sealing of TOTP secrets at rest.
//!
//! A code is HMAC-SHA-1 (RFC 4226: the algorithm authenticator apps use)
//! of the big-endian time step, dynamically truncated to six digits.
//! Secrets are stored AES-256-GCM sealed under a key derived from the
//! service's own secret (the key-encryption key when there is one, else the
//! HS256 secret), with the user's id as associated data, so a sealed secret
//! copied to another user's row does not open.

use portcullis_domain::ports::OneTimeCodes;
use portcullis_domain::{DomainError, TOTP_SECRET_BYTES, TotpSecret, UserId};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::JwtSecret;

/// The first byte of a sealed secret: the format (AES-256-GCM, random nonce).
const FORMAT: u8 = 1;

/// Codes and sealing with the service's keys: the first seals, every one opens.
pub struct TotpCodes {
    keys: Vec<[u8; 32]>,
    random: SystemRandom,
}

impl std::fmt::Debug for TotpCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpCodes").field("keys", &self.keys.len()).finish_non_exhaustive()
    }
}

impl TotpCodes {
    /// Sealing keys derived from `secrets`, in order: the first seals new
    /// secrets, each opens (so a rotated HS256 secret listed second still
    /// opens what the old one sealed).
    ///
    /// # Panics
    /// Never in practice: `secrets` must not be empty (the server always has
    /// a signing secret or a key-encryption key), which is asserted.
    #[must_use]
    pub fn new(secrets: &[JwtSecret]) -> Self {
        assert!(!secrets.is_empty(), "a TOTP sealing key needs a secret");
        let keys = secrets
            .iter()
            .map(|secret| {
                Sha256::new()
                    .chain_update(b"portcullis totp secret")
                    .chain_update([0])
                    .chain_update(secret.bytes())
                    .finalize()
                    .into()
            })
            .collect();
        Self { keys, random: SystemRandom::new() }
    }

    fn cipher(key: &[u8; 32]) -> LessSafeKey {
        // A 32-byte key is what AES-256 takes: this cannot fail.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!()))
    }
}

impl OneTimeCodes for TotpCodes {
    fn totp(&self, secret: &TotpSecret, step: i64) -> u32 {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret.0);
        let mac = hmac::sign(&key, &step.to_be_bytes());
        let mac = mac.as_ref();
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([mac[offset], mac[offset + 1], mac[offset + 2], mac[offset + 3]])
            & 0x7fff_ffff;
        binary % 1_000_000
    }

    fn seal(&self, user: UserId, secret: &TotpSecret) -> Result<Vec<u8>, DomainError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| DomainError::Unavailable("no randomness".to_owned()))?;
        let mut sealed = secret.0.to_vec();
        Self::cipher(&self.keys[0])
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(user.as_uuid().as_bytes()),
                &mut sealed,
            )
            .map_err(|_| DomainError::Unavailable("cannot seal a TOTP secret".to_owned()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, user: UserId, sealed: &[u8]) -> Result<TotpSecret, DomainError> {
        let unreadable = || DomainError::Unavailable("a TOTP secret opens with no configured key".to_owned());
        let (&format, rest) = sealed.split_first().ok_or_else(unreadable)?;
        if format != FORMAT || rest.len() < NONCE_LEN {
            return Err(unreadable());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        for key in &self.keys {
            let mut buffer = body.to_vec();
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unreadable())?;
            if let Ok(plain) =
                Self::cipher(key).open_in_place(nonce, Aad::from(user.as_uuid().as_bytes()), &mut buffer)
            {
                let bytes: [u8; TOTP_SECRET_BYTES] = plain.try_into().map_err(|_| unreadable())?;
                return Ok(TotpSecret(bytes));
            }
        }
        Err(unreadable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes() -> TotpCodes {
        TotpCodes::new(&[JwtSecret::new(vec![7u8; 32]).unwrap()])
    }

    #[test]
    fn codes_match_rfc_6238_appendix_b() {
        // The SHA-1 vectors of RFC 6238 (8 digits there; the last 6 here).
        let secret = TotpSecret(*b"12345678901234567890");
        for (time, code) in [
            (59, 287_082),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
            (20_000_000_000_i64, 353_130),
        ] {
            assert_eq!(codes().totp(&secret, time / 30), code, "t = {time}");
        }
    }

    #[test]
    fn a_sealed_secret_opens_for_its_user_and_key_only() {
        let codes = codes();
        let (ada, bob) = (UserId::new(), UserId::new());
        let secret = TotpSecret([42; TOTP_SECRET_BYTES]);
        let sealed = codes.seal(ada, &secret).unwrap();
        assert!(!sealed.windows(4).any(|w| w == [42; 4]), "no clear bytes");
        assert_eq!(codes.open(ada, &sealed).unwrap(), secret);
        assert!(codes.open(bob, &sealed).is_err(), "bound to its user");
        let other = TotpCodes::new(&[JwtSecret::new(vec![8u8; 32]).unwrap()]);
        assert!(other.open(ada, &sealed).is_err(), "bound to the key");
        let rotated =
            TotpCodes::new(&[JwtSecret::new(vec![8u8; 32]).unwrap(), JwtSecret::new(vec![7u8; 32]).unwrap()]);
        assert_eq!(rotated.open(ada, &sealed).unwrap(), secret, "an earlier key still opens");
        assert!(codes.open(ada, &sealed[..5]).is_err());
    }
}
