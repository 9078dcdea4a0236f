//! The key-encryption key (`AUTH_KEY_ENCRYPTION_KEY`): seals the signing
//! keys' private halves before they reach the database.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::jwt::JwtSecret;

/// The fewest bytes of key material accepted.
pub const MIN_KEK_LEN: usize = 32;

/// The first byte of every sealed value: the format (AES-256-GCM, 96-bit
/// random nonce, the kid as associated data). Another format would get another byte.
const FORMAT: u8 = 1;

/// An AES-256-GCM key derived from the configured key material. `Debug`
/// never shows it.
#[derive(Clone)]
pub struct KeyEncryptionKey {
    /// The configured material, for deriving other purpose-bound keys.
    material: Vec<u8>,
    /// SHA-256 of a label and the material: the AES key.
    aes: [u8; 32],
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey([REDACTED])")
    }
}

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealError;

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot be decrypted with this key-encryption key")
    }
}

impl KeyEncryptionKey {
    /// The key from its text: base64 (standard or URL-safe, padded or not)
    /// of 32 or more bytes, or else 32 or more raw bytes.
    ///
    /// # Errors
    /// A message when it holds fewer than [`MIN_KEK_LEN`] bytes either way.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .filter(|bytes| bytes.len() >= MIN_KEK_LEN);
        let material = match decoded {
            Some(bytes) => bytes,
            None if text.len() >= MIN_KEK_LEN => text.as_bytes().to_vec(),
            None => {
                return Err(format!(
                    "must be at least {MIN_KEK_LEN} bytes (raw, or base64 of {MIN_KEK_LEN}+ bytes), got {}",
                    text.len()
                ));
            }
        };
        let aes = Sha256::new()
            .chain_update(b"portcullis key-encryption v1")
            .chain_update([0])
            .chain_update(&material)
            .finalize()
            .into();
        Ok(Self { material, aes })
    }

    /// A 32-byte secret for `purpose`, derived from this key and never equal
    /// to it or to another purpose's (used to sign OAuth states when no
    /// `AUTH_JWT_SECRET` is set).
    #[must_use]
    pub fn derived_secret(&self, purpose: &str) -> JwtSecret {
        let derived: [u8; 32] = Sha256::new()
            .chain_update(purpose.as_bytes())
            .chain_update([0])
            .chain_update(&self.material)
            .finalize()
            .into();
        JwtSecret::from_derived(derived)
    }

    fn cipher(&self) -> LessSafeKey {
        // A 32-byte key is what AES-256 takes: this cannot fail.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.aes).unwrap_or_else(|_| unreachable!()))
    }

    /// Encrypts and authenticates `plain`, bound to `label` (the key's kid):
    /// a sealed value moved to another row does not open.
    ///
    /// # Errors
    /// When the system's random generator fails.
    pub fn seal(&self, label: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| "no randomness for a nonce".to_owned())?;
        let mut body = plain.to_vec();
        self.cipher()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(label.as_bytes()),
                &mut body,
            )
            .map_err(|_| "cannot encrypt".to_owned())?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + body.len());
        sealed.push(FORMAT);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// The plain bytes of a value [`seal`](Self::seal)ed with `label`.
    ///
    /// # Errors
    /// [`SealError`] for another key, another label, a changed byte or
    /// another format.
    pub fn open(&self, label: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&format, rest) = sealed.split_first().ok_or(SealError)?;
        if format != FORMAT || rest.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut body = body.to_vec();
        let plain = self
            .cipher()
            .open_in_place(nonce, Aad::from(label.as_bytes()), &mut body)
            .map_err(|_| SealError)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(text: &str) -> KeyEncryptionKey {
        KeyEncryptionKey::parse(text).expect("a valid key")
    }

    #[test]
    fn base64_and_raw_forms_are_accepted_and_short_ones_refused() {
        let raw = "0123456789abcdef0123456789abcdef";
        let b64 = STANDARD.encode([7u8; 32]);
        assert_eq!(kek(&b64).material, vec![7u8; 32]);
        assert_eq!(kek(&URL_SAFE_NO_PAD.encode([7u8; 40])).material, vec![7u8; 40]);
        assert_eq!(kek(raw).material, raw.as_bytes());
        assert!(KeyEncryptionKey::parse("too-short").is_err());
        assert!(
            KeyEncryptionKey::parse(&STANDARD.encode([1u8; 16])).is_err(),
            "base64 of 16 bytes is 24 chars"
        );
        assert!(!format!("{:?}", kek(raw)).contains("0123"), "Debug hides it");
    }

    #[test]
    fn sealed_values_open_with_their_key_and_label_only() {
        let key = kek("0123456789abcdef0123456789abcdef");
        let sealed = key.seal("kid-1", b"private key bytes").expect("seal");
        assert!(!sealed.windows(7).any(|w| w == b"private"), "no plain bytes in the sealed value");
        assert_eq!(key.open("kid-1", &sealed).as_deref(), Ok(&b"private key bytes"[..]));
        assert_eq!(key.open("kid-2", &sealed), Err(SealError), "bound to its label");
        assert_eq!(kek("another-key-another-key-another-key!").open("kid-1", &sealed), Err(SealError));
        for i in 0..sealed.len() {
            let mut changed = sealed.clone();
            changed[i] ^= 1;
            assert_eq!(key.open("kid-1", &changed), Err(SealError), "byte {i} changed");
        }
        assert_eq!(key.open("kid-1", &sealed[..10]), Err(SealError));
        assert_eq!(key.open("kid-1", &[]), Err(SealError));
        assert_ne!(
            key.seal("kid-1", b"x").expect("seal"),
            key.seal("kid-1", b"x").expect("seal"),
            "random nonces"
        );
    }

    #[test]
    fn derived_secrets_depend_on_the_purpose() {
        let key = kek("0123456789abcdef0123456789abcdef");
        assert_ne!(key.derived_secret("a").bytes(), key.derived_secret("b").bytes());
        assert_ne!(key.derived_secret("a").bytes(), &key.aes[..]);
    }
}
