//! The cryptography behind `jsonwebtoken`, from RustCrypto's `hmac` and `sha2`.
//!
//! `jsonwebtoken` 11 needs a crypto backend. Its `rust_crypto` feature brings
//! every algorithm it knows, RSA included, and with it the `rsa` crate, which
//! carries RUSTSEC-2023-0071 (the Marvin timing attack, no fixed release).
//! Portcullis signs with HMAC only, so this provider implements the HS family
//! and refuses every other algorithm with an error (never a panic): a token
//! whose header names RS256 is simply not verified. `deny.toml` bans `rsa`.

use std::sync::Once;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// One HMAC algorithm with its key, able to sign and to verify.
struct HmacKey {
    algorithm: Algorithm,
    key: Vec<u8>,
}

impl HmacKey {
    fn new(algorithm: Algorithm, key: &[u8]) -> Result<Self> {
        if !matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        Ok(Self { algorithm, key: key.to_vec() })
    }

    fn mac(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        fn run<M: Mac + KeyInit>(
            key: &[u8],
            message: &[u8],
        ) -> std::result::Result<Vec<u8>, signature::Error> {
            let mut mac = <M as KeyInit>::new_from_slice(key).map_err(signature::Error::from_source)?;
            mac.update(message);
            Ok(mac.finalize().into_bytes().to_vec())
        }
        match self.algorithm {
            Algorithm::HS256 => run::<Hmac<Sha256>>(&self.key, message),
            Algorithm::HS384 => run::<Hmac<Sha384>>(&self.key, message),
            _ => run::<Hmac<Sha512>>(&self.key, message),
        }
    }
}

impl signature::Signer<Vec<u8>> for HmacKey {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        self.mac(message)
    }
}

impl signature::Verifier<Vec<u8>> for HmacKey {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let expected = self.mac(message)?;
        // Constant time: the comparison must not tell how much of a forgery was right.
        let same = expected.len() == signature.len()
            && expected.iter().zip(signature).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same { Ok(()) } else { Err(signature::Error::new()) }
    }
}

impl JwtSigner for HmacKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl JwtVerifier for HmacKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if key.family() != jsonwebtoken::AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(HmacKey::new(*algorithm, key.as_bytes())?))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if key.family() != jsonwebtoken::AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(HmacKey::new(*algorithm, key.try_get_as_bytes()?)?))
}

fn digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    Ok(match hash {
        ThumbprintHash::SHA256 => Sha256::digest(data).to_vec(),
        ThumbprintHash::SHA384 => Sha384::digest(data).to_vec(),
        ThumbprintHash::SHA512 => Sha512::digest(data).to_vec(),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

/// The HMAC-only provider.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidAlgorithm.into()),
        ed_pub_components_from_private_key: |_, _: &EllipticCurve| Err(ErrorKind::InvalidAlgorithm.into()),
        compute_digest: digest,
    },
};

/// Makes [`PROVIDER`] the process's `jsonwebtoken` backend. Idempotent; called
/// before any token is made or read. Another provider installed first by an
/// embedding application stays in place.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = PROVIDER.install_default();
    });
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
    use serde_json::{Value, json};

    use super::install;

    #[test]
    fn hmac_tokens_round_trip_and_other_algorithms_are_refused_without_a_panic() {
        install();
        let key = b"a-key-of-thirty-two-bytes-or-more!!";
        for algorithm in
            [jsonwebtoken::Algorithm::HS256, jsonwebtoken::Algorithm::HS384, jsonwebtoken::Algorithm::HS512]
        {
            let token = encode(&Header::new(algorithm), &json!({"sub": "x"}), &EncodingKey::from_secret(key))
                .expect("signed");
            let mut validation = Validation::new(algorithm);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            let claims =
                decode::<Value>(&token, &DecodingKey::from_secret(key), &validation).expect("verified");
            assert_eq!(claims.claims["sub"], "x");
            let wrong = decode::<Value>(
                &token,
                &DecodingKey::from_secret(b"another-key-of-thirty-two-bytes!!"),
                &validation,
            );
            assert!(wrong.is_err(), "a wrong key fails");
        }
        let rsa = encode(
            &Header::new(jsonwebtoken::Algorithm::RS256),
            &json!({"sub": "x"}),
            &EncodingKey::from_secret(key),
        );
        assert!(rsa.is_err(), "RSA is not available, and says so");
    }
}
