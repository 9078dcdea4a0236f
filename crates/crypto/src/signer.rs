//! HMAC-SHA256 (RFC 2104) under a key derived from the server secret.

use portcullis_domain::ports::Signer;
use sha2::{Digest, Sha256};

use crate::jwt::JwtSecret;

/// Signs short messages (OAuth `state`). Its key is derived from the JWT
/// secret and a purpose label, so a signature made here can never pass for a
/// token signature or the other way round.
#[derive(Clone)]
pub struct HmacSigner {
    key: [u8; 64],
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
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        Self { key: block }
    }
}

impl Signer for HmacSigner {
    fn sign(&self, message: &[u8]) -> [u8; 32] {
        let inner_pad: Vec<u8> = self.key.iter().map(|b| b ^ 0x36).collect();
        let outer_pad: Vec<u8> = self.key.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::new().chain_update(&inner_pad).chain_update(message).finalize();
        Sha256::new().chain_update(&outer_pad).chain_update(inner).finalize().into()
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
