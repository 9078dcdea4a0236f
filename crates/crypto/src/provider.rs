//! The cryptography behind `jsonwebtoken`: RustCrypto's `hmac` and `sha2`
//! for the HS family, `ring` (already rustls's backend) for the rest.
//!
//! `jsonwebtoken` 11 needs a crypto backend. Its `rust_crypto` feature brings
//! every algorithm it knows, RSA included, and with it the `rsa` crate, which
//! carries RUSTSEC-2023-0071 (the Marvin timing attack, no fixed release).
//! This provider signs with HMAC, ECDSA (ES256, ES384) and Ed25519, and
//! verifies those and RSA (RS256/384/512, PS256/384/512: an OpenID Connect
//! provider's `id_token`, Google's included) with `ring`, whose RSA
//! verification is public-key only and not what the advisory is about. Every
//! other algorithm, and RSA signing, is refused with an error, never a panic.
//! `deny.toml` bans `rsa`.

use std::sync::Once;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as ring_signature, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
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

/// A public key and the `ring` algorithm that checks signatures with it.
struct PublicKeyVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl PublicKeyVerifier {
    fn new(algorithm: Algorithm, key: &DecodingKey) -> Result<Self> {
        let family = match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => AlgorithmFamily::Rsa,
            Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
            Algorithm::EdDSA => AlgorithmFamily::Ed,
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
        if key.family() != family {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        Ok(Self { algorithm, key: key.clone() })
    }

    fn rsa_parameters(&self) -> &'static ring_signature::RsaParameters {
        match self.algorithm {
            Algorithm::RS384 => &ring_signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &ring_signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &ring_signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &ring_signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &ring_signature::RSA_PSS_2048_8192_SHA512,
            _ => &ring_signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }
}

impl signature::Verifier<Vec<u8>> for PublicKeyVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let checked = match (self.key.kind(), self.algorithm) {
            (DecodingKeyKind::RsaModulusExponent { n, e }, _) => {
                ring_signature::RsaPublicKeyComponents { n, e }.verify(
                    self.rsa_parameters(),
                    message,
                    signature,
                )
            }
            (DecodingKeyKind::SecretOrDer(der), Algorithm::ES256 | Algorithm::ES384) => {
                let curve = if self.algorithm == Algorithm::ES256 {
                    &ring_signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &ring_signature::ECDSA_P384_SHA384_FIXED
                };
                ring_signature::UnparsedPublicKey::new(curve, der).verify(message, signature)
            }
            (DecodingKeyKind::SecretOrDer(raw), Algorithm::EdDSA) => {
                ring_signature::UnparsedPublicKey::new(&ring_signature::ED25519, raw)
                    .verify(message, signature)
            }
            (DecodingKeyKind::SecretOrDer(der), _) => {
                ring_signature::UnparsedPublicKey::new(self.rsa_parameters(), der).verify(message, signature)
            }
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for PublicKeyVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// An ECDSA or Ed25519 private key (PKCS #8), able to sign.
enum PrivateKey {
    Ecdsa(Algorithm, EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl PrivateKey {
    fn new(algorithm: Algorithm, key: &EncodingKey) -> Result<Self> {
        match (algorithm, key.family()) {
            (Algorithm::ES256 | Algorithm::ES384, AlgorithmFamily::Ec) => {
                let curve = if algorithm == Algorithm::ES256 {
                    &ring_signature::ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ring_signature::ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pair = EcdsaKeyPair::from_pkcs8(curve, key.as_bytes(), &SystemRandom::new())
                    .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
                Ok(Self::Ecdsa(algorithm, pair))
            }
            (Algorithm::EdDSA, AlgorithmFamily::Ed) => {
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.as_bytes())
                    .map(Self::Ed25519)
                    .map_err(|_| ErrorKind::InvalidKeyFormat.into())
            }
            (Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA, _) => {
                Err(ErrorKind::InvalidKeyFormat.into())
            }
            _ => Err(ErrorKind::InvalidAlgorithm.into()),
        }
    }
}

impl signature::Signer<Vec<u8>> for PrivateKey {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        match self {
            Self::Ecdsa(_, pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for PrivateKey {
    fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ecdsa(algorithm, _) => *algorithm,
            Self::Ed25519(_) => Algorithm::EdDSA,
        }
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if key.family() == AlgorithmFamily::Hmac {
        return Ok(Box::new(HmacKey::new(*algorithm, key.as_bytes())?));
    }
    Ok(Box::new(PrivateKey::new(*algorithm, key)?))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if key.family() == AlgorithmFamily::Hmac {
        return Ok(Box::new(HmacKey::new(*algorithm, key.try_get_as_bytes()?)?));
    }
    Ok(Box::new(PublicKeyVerifier::new(*algorithm, key)?))
}

fn digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    Ok(match hash {
        ThumbprintHash::SHA256 => Sha256::digest(data).to_vec(),
        ThumbprintHash::SHA384 => Sha384::digest(data).to_vec(),
        ThumbprintHash::SHA512 => Sha512::digest(data).to_vec(),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

/// The JWK coordinates (`x`, `y`) of an ECDSA private key's public half.
fn ec_public_components(key: &[u8], algorithm: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (curve, signing, width) = match algorithm {
        Algorithm::ES256 => (EllipticCurve::P256, &ring_signature::ECDSA_P256_SHA256_FIXED_SIGNING, 32),
        Algorithm::ES384 => (EllipticCurve::P384, &ring_signature::ECDSA_P384_SHA384_FIXED_SIGNING, 48),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let pair = EcdsaKeyPair::from_pkcs8(signing, key, &SystemRandom::new())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    // The uncompressed point: 0x04, then x, then y.
    let point = pair.public_key().as_ref();
    match (point.get(1..=width), point.get(width + 1..)) {
        (Some(x), Some(y)) if y.len() == width => Ok((curve, x.to_vec(), y.to_vec())),
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

/// The provider.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        ec_pub_components_from_private_key: ec_public_components,
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

    /// A P-256 or Ed25519 key pair made by `ring`, as jsonwebtoken keys.
    fn ring_pair(algorithm: jsonwebtoken::Algorithm) -> (EncodingKey, DecodingKey) {
        use base64::Engine as _;
        use ring::signature::KeyPair as _;
        let rng = ring::rand::SystemRandom::new();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if algorithm == jsonwebtoken::Algorithm::EdDSA {
            let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("generated");
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parsed");
            let public = DecodingKey::from_ed_components(&b64(pair.public_key().as_ref())).expect("key");
            return (EncodingKey::from_ed_der(pkcs8.as_ref()), public);
        }
        let signing = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(signing, &rng).expect("generated");
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).expect("parsed");
        let point = pair.public_key().as_ref();
        let public = DecodingKey::from_ec_components(&b64(&point[1..33]), &b64(&point[33..])).expect("key");
        (EncodingKey::from_ec_der(pkcs8.as_ref()), public)
    }

    fn validation(algorithm: jsonwebtoken::Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation
    }

    #[test]
    fn ecdsa_and_ed25519_tokens_round_trip_and_a_wrong_key_fails() {
        install();
        for algorithm in [jsonwebtoken::Algorithm::ES256, jsonwebtoken::Algorithm::EdDSA] {
            let (private, public) = ring_pair(algorithm);
            let (_, other) = ring_pair(algorithm);
            let token = encode(&Header::new(algorithm), &json!({"sub": "x"}), &private).expect("signed");
            let claims = decode::<Value>(&token, &public, &validation(algorithm)).expect("verified");
            assert_eq!(claims.claims["sub"], "x");
            assert!(
                decode::<Value>(&token, &other, &validation(algorithm)).is_err(),
                "{algorithm:?}: wrong key"
            );
        }
    }

    #[test]
    fn a_public_key_is_never_used_as_an_hmac_secret() {
        install();
        let (_, public) = ring_pair(jsonwebtoken::Algorithm::ES256);
        let forged = encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"sub": "x"}),
            &EncodingKey::from_secret(public.try_get_as_bytes().expect("raw point")),
        )
        .expect("signed");
        let mut validation = validation(jsonwebtoken::Algorithm::ES256);
        validation.algorithms = vec![jsonwebtoken::Algorithm::HS256];
        assert!(decode::<Value>(&forged, &public, &validation).is_err(), "algorithm confusion is refused");
    }

    #[test]
    fn rsa_signatures_from_the_key_components_of_a_jwk_verify() {
        install();
        use base64::Engine as _;
        // An RSA key made by the machine's openssl (ring cannot generate
        // one); PKCS #1, as ring's key pair reads it.
        let dir = std::env::temp_dir().join(format!("portcullis-rsa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let der = dir.join("key.der");
        let made = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&der)
            .args(["2048"])
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(made.success(), "openssl made a key");
        let pem = std::fs::read_to_string(&der).expect("key read");
        std::fs::remove_dir_all(&dir).ok();
        let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
        let pkcs1 = base64::engine::general_purpose::STANDARD.decode(body).expect("PEM body");
        let pair = ring::rsa::KeyPair::from_der(&pkcs1).expect("an RSA key");
        let components = ring::signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
        let public = DecodingKey::from_rsa_raw_components(&components.n, &components.e);
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        for (algorithm, padding, name) in [
            (
                jsonwebtoken::Algorithm::RS256,
                &ring::signature::RSA_PKCS1_SHA256 as &dyn ring::signature::RsaEncoding,
                "RS256",
            ),
            (jsonwebtoken::Algorithm::PS256, &ring::signature::RSA_PSS_SHA256, "PS256"),
        ] {
            let signed = format!(
                "{}.{}",
                b64(format!(r#"{{"alg":"{name}","typ":"JWT"}}"#).as_bytes()),
                b64(br#"{"sub":"x"}"#)
            );
            let mut signature = vec![0; pair.public().modulus_len()];
            pair.sign(padding, &ring::rand::SystemRandom::new(), signed.as_bytes(), &mut signature)
                .expect("signed");
            let token = format!("{signed}.{}", b64(&signature));
            let claims = decode::<Value>(&token, &public, &validation(algorithm)).expect("verified");
            assert_eq!(claims.claims["sub"], "x");
            let tampered = format!(
                "{}.{}",
                b64(format!(r#"{{"alg":"{name}","typ":"JWT"}}"#).as_bytes()),
                b64(br#"{"sub":"y"}"#)
            );
            let tampered = format!("{tampered}.{}", b64(&signature));
            assert!(decode::<Value>(&tampered, &public, &validation(algorithm)).is_err(), "{name}: tampered");
        }
        let rsa_signing = encode(
            &Header::new(jsonwebtoken::Algorithm::RS256),
            &json!({}),
            &EncodingKey::from_rsa_der(&pkcs1),
        );
        assert!(rsa_signing.is_err(), "RSA signing is not offered");
    }

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
        assert!(rsa.is_err(), "an HMAC secret does not sign RS256, and says so");
    }
}
