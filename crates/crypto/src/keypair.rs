//! ES256 and Ed25519 key pairs with `ring`: generation, the public JWK
//! (RFC 7517/7518/8037) with its RFC 7638 thumbprint as `kid`, and signing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_domain::{GeneratedKey, SigningAlgorithm};
use ring::rand::SystemRandom;
use ring::signature::{
    self as ring_signature, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::kek::KeyEncryptionKey;

/// A private key able to sign, from its PKCS#8 document.
pub(crate) enum PrivateKey {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl PrivateKey {
    pub(crate) fn from_pkcs8(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self, String> {
        match algorithm {
            SigningAlgorithm::Es256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
                    .map(Self::Es256)
                    .map_err(|e| format!("not a P-256 private key: {e}"))
            }
            SigningAlgorithm::EdDsa => Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                .map(Self::Ed25519)
                .map_err(|e| format!("not an Ed25519 private key: {e}")),
            SigningAlgorithm::Hs256 => Err("HS256 has no key pair".to_owned()),
        }
    }

    pub(crate) fn public_key(&self) -> &[u8] {
        match self {
            Self::Es256(pair) => pair.public_key().as_ref(),
            Self::Ed25519(pair) => pair.public_key().as_ref(),
        }
    }

    /// The JWS signature of `message` (for ES256 the fixed 64-byte `r || s`).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Self::Es256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// A public key that checks signatures of one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    pub(crate) algorithm: SigningAlgorithm,
    /// Uncompressed SEC1 point (`04 || x || y`) for P-256, the 32 bytes for Ed25519.
    bytes: Vec<u8>,
}

impl PublicKey {
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn ring_signature::VerificationAlgorithm = match self.algorithm {
            SigningAlgorithm::Es256 => &ring_signature::ECDSA_P256_SHA256_FIXED,
            SigningAlgorithm::EdDsa => &ring_signature::ED25519,
            SigningAlgorithm::Hs256 => return false,
        };
        ring_signature::UnparsedPublicKey::new(algorithm, &self.bytes).verify(message, signature).is_ok()
    }

    /// The key a public JWK of ours describes, checked against `kid` and `algorithm`.
    pub(crate) fn from_jwk(jwk: &str, kid: &str, algorithm: SigningAlgorithm) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Jwk {
            kty: String,
            crv: String,
            x: String,
            y: Option<String>,
            kid: String,
            alg: String,
        }
        let jwk: Jwk = serde_json::from_str(jwk).map_err(|e| format!("key {kid}: not a JWK: {e}"))?;
        if jwk.kid != kid || jwk.alg != algorithm.as_str() {
            return Err(format!("key {kid}: its JWK names kid {} and alg {}", jwk.kid, jwk.alg));
        }
        let decode =
            |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| format!("key {kid}: bad base64url"));
        let bytes = match (algorithm, jwk.kty.as_str(), jwk.crv.as_str(), jwk.y.as_deref()) {
            (SigningAlgorithm::Es256, "EC", "P-256", Some(y)) => {
                let (x, y) = (decode(&jwk.x)?, decode(y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(format!("key {kid}: P-256 coordinates are 32 bytes"));
                }
                [&[4u8][..], &x, &y].concat()
            }
            (SigningAlgorithm::EdDsa, "OKP", "Ed25519", None) => {
                let x = decode(&jwk.x)?;
                if x.len() != 32 {
                    return Err(format!("key {kid}: an Ed25519 key is 32 bytes"));
                }
                x
            }
            _ => return Err(format!("key {kid}: its JWK is not an {algorithm} key")),
        };
        Ok(Self { algorithm, bytes })
    }
}

/// The JWK members that define a public key, in the lexicographic order
/// RFC 7638 hashes them in; `None` for HS256.
fn thumbprint_members(algorithm: SigningAlgorithm, public: &[u8]) -> Option<String> {
    match algorithm {
        SigningAlgorithm::Es256 => {
            let (x, y) = public.get(1..33).zip(public.get(33..65))?;
            Some(format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(x),
                URL_SAFE_NO_PAD.encode(y)
            ))
        }
        SigningAlgorithm::EdDsa => {
            Some(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(public)))
        }
        SigningAlgorithm::Hs256 => None,
    }
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public key: its `kid`.
pub(crate) fn thumbprint(algorithm: SigningAlgorithm, public: &[u8]) -> Option<String> {
    thumbprint_members(algorithm, public).map(|m| URL_SAFE_NO_PAD.encode(Sha256::digest(m.as_bytes())))
}

/// The public JWK as the JWKS publishes it.
pub(crate) fn public_jwk(algorithm: SigningAlgorithm, public: &[u8], kid: &str) -> Option<String> {
    let members = thumbprint_members(algorithm, public)?;
    let members = members.strip_suffix('}')?;
    Some(format!(r#"{members},"kid":"{kid}","alg":"{}","use":"sig"}}"#, algorithm.as_str()))
}

/// A new key pair of `algorithm`, its private half sealed under `kek`.
pub(crate) fn generate(algorithm: SigningAlgorithm, kek: &KeyEncryptionKey) -> Result<GeneratedKey, String> {
    let rng = SystemRandom::new();
    let pkcs8 = match algorithm {
        SigningAlgorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a P-256 key".to_owned())?,
        SigningAlgorithm::EdDsa => {
            Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "cannot generate an Ed25519 key".to_owned())?
        }
        SigningAlgorithm::Hs256 => return Err("HS256 keys are AUTH_JWT_SECRET, not generated".to_owned()),
    };
    let private = PrivateKey::from_pkcs8(algorithm, pkcs8.as_ref())?;
    let public = private.public_key();
    let kid = thumbprint(algorithm, public).ok_or("no thumbprint")?;
    let public_jwk = public_jwk(algorithm, public, &kid).ok_or("no JWK")?;
    let sealed_private = kek.seal(&kid, pkcs8.as_ref())?;
    Ok(GeneratedKey { kid, public_jwk, sealed_private })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7638_example_thumbprint() {
        // RFC 7638, 3.1 is RSA; RFC 8037, A.3 gives an Ed25519 one.
        let x = URL_SAFE_NO_PAD.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").expect("b64");
        assert_eq!(
            thumbprint(SigningAlgorithm::EdDsa, &x).as_deref(),
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        );
    }

    #[test]
    fn generated_keys_sign_what_their_jwk_verifies() {
        let kek = KeyEncryptionKey::parse("0123456789abcdef0123456789abcdef").expect("kek");
        for algorithm in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            let key = generate(algorithm, &kek).expect("generate");
            let public = PublicKey::from_jwk(&key.public_jwk, &key.kid, algorithm).expect("parse");
            let pkcs8 = kek.open(&key.kid, &key.sealed_private).expect("opens");
            let private = PrivateKey::from_pkcs8(algorithm, &pkcs8).expect("private key");
            let signature = private.sign(b"message").expect("sign");
            assert!(public.verify(b"message", &signature));
            assert!(!public.verify(b"messagf", &signature));
            assert!(PublicKey::from_jwk(&key.public_jwk, "other", algorithm).is_err(), "kid must match");
            let other = if algorithm == SigningAlgorithm::Es256 {
                SigningAlgorithm::EdDsa
            } else {
                SigningAlgorithm::Es256
            };
            assert!(PublicKey::from_jwk(&key.public_jwk, &key.kid, other).is_err(), "alg must match");
        }
    }
}
