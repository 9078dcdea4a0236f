//! HMAC-SHA256 (RFC 2104) under a key derived from the server secret.

use hmac::{Hmac, KeyInit, Mac};
use portcullis_domain::ports::Signer;
use sha2::{Digest, Sha256};

use crate::jwt::JwtSecret;

/// Signs short messages (OAuth `state`). Its key is derived from the JWT
/// secret and a purpose label, so a signature made here can never pass for a
/// token signature or the other way round.
#[derive(Clone)]
pub struct HmacSigner {
    /// Keyed once; each signature clones it.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for HmacSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSigner([REDACTED])")
    }
}

impl HmacSigner {
    #[must_use]
    pub fn derive(secret: &JwtSecret, purpose: &str) -> Self {
        let derived: [u8; 32] = Sha256::new()
            .chain_update(purpose.as_bytes())
            .chain_update([0])
            .chain_update(secret.bytes())
            .finalize()
            .into();
        Self::with_key(&derived)
    }

    fn with_key(key: &[u8]) -> Self {
        // HMAC takes a key of any length (a long one is hashed first): this cannot fail.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self { mac }
    }
}

impl Signer for HmacSigner {
    fn sign(&self, message: &[u8]) -> [u8; 32] {
        self.mac.clone().chain_update(message).finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn matches_rfc_4231_test_case_2() {
        let signer = HmacSigner::with_key(b"Jefe");
        assert_eq!(
            hex(&signer.sign(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn matches_rfc_4231_test_case_6_with_a_long_key() {
        let signer = HmacSigner::with_key(&[0xaa; 131]);
        assert_eq!(
            hex(&signer.sign(b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn purposes_give_different_keys() {
        let secret = JwtSecret::new(vec![1u8; 32]).unwrap();
        let a = HmacSigner::derive(&secret, "oauth-state");
        let b = HmacSigner::derive(&secret, "other");
        assert_ne!(a.sign(b"m"), b.sign(b"m"));
    }
}
