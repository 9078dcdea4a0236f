//! Access tokens behind the `TokenCodec` port: HS256 with the shared secret,
//! or ES256 / EdDSA with the stored signing keys.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use portcullis_domain::ports::TokenCodec;
use portcullis_domain::{
    AccessToken, AuthError, Claims, DomainError, GeneratedKey, KeyStatus, SigningAlgorithm,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::kek::KeyEncryptionKey;
use crate::keypair::{self, PrivateKey, PublicKey};

/// The shortest HS256 key we accept: as many bytes as the hash output (RFC 7518, 3.2).
pub const MIN_SECRET_LEN: usize = 32;

/// An HS256 key. `Debug` never shows it.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// # Errors
    /// A message when the key is shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(format!("must be at least {MIN_SECRET_LEN} bytes, got {}", bytes.len()));
        }
        Ok(Self(bytes))
    }

    pub(crate) fn from_derived(bytes: [u8; 32]) -> Self {
        Self(bytes.to_vec())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `kid` of the tokens signed with it: a digest that names the key
    /// without revealing anything of it.
    #[must_use]
    pub fn kid(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"portcullis hs256 kid")
            .chain_update([0])
            .chain_update(&self.0)
            .finalize();
        format!("hs256-{}", URL_SAFE_NO_PAD.encode(&digest[..12]))
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret([REDACTED])")
    }
}

/// What checks a token's signature.
enum Verifier {
    Hmac(Hmac<Sha256>),
    Public(PublicKey),
}

impl Verifier {
    fn algorithm(&self) -> SigningAlgorithm {
        match self {
            Self::Hmac(_) => SigningAlgorithm::Hs256,
            Self::Public(key) => key.algorithm,
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            // `verify_slice` compares in constant time.
            Self::Hmac(mac) => mac.clone().chain_update(message).verify_slice(signature).is_ok(),
            Self::Public(key) => key.verify(message, signature),
        }
    }
}

/// One key a token may name.
struct VerifyingKey {
    kid: String,
    verifier: Verifier,
    /// The base64url header segment of the tokens this codec signs with it.
    header: String,
}

impl VerifyingKey {
    fn new(kid: String, verifier: Verifier) -> Self {
        let header = header_segment(verifier.algorithm(), Some(&kid));
        Self { kid, verifier, header }
    }
}

/// The base64url of `{"alg":...,"kid":...,"typ":"JWT"}`, or of the header
/// tokens had before keys had ids (`{"typ":"JWT","alg":"HS256"}`).
fn header_segment(algorithm: SigningAlgorithm, kid: Option<&str>) -> String {
    let json = match kid {
        Some(kid) => serde_json::json!({"alg": algorithm.as_str(), "kid": kid, "typ": "JWT"}).to_string(),
        None => format!(r#"{{"typ":"JWT","alg":"{}"}}"#, algorithm.as_str()),
    };
    URL_SAFE_NO_PAD.encode(json)
}

/// A key that signs, from when.
struct SigningKey {
    header: String,
    /// Unix seconds from which it is the current key.
    from: i64,
    private: PrivateKey,
}

/// The stored keys, as installed last.
#[derive(Default)]
struct Ring {
    verifying: Vec<Arc<VerifyingKey>>,
    /// By `activates_at`, oldest first.
    signing: Vec<SigningKey>,
}

/// The claims of recently verified ES256/EdDSA tokens, by the whole token, so
/// that a token used again costs a hash and a comparison instead of a curve
/// operation. Direct-mapped and bounded: a collision evicts.
struct Verified {
    slots: Box<[Mutex<Slot>]>,
    hasher: RandomState,
}

/// A verified token and its claims, or nothing.
type Slot = Option<(Box<str>, Claims)>;

impl Verified {
    const SLOTS: usize = 4096;

    fn new() -> Self {
        Self { slots: (0..Self::SLOTS).map(|_| Mutex::new(None)).collect(), hasher: RandomState::new() }
    }

    fn slot(&self, token: &str) -> &Mutex<Slot> {
        let hash = self.hasher.hash_one(token);
        // The remainder is below SLOTS, so it fits a usize.
        #[allow(clippy::cast_possible_truncation)]
        &self.slots[(hash % Self::SLOTS as u64) as usize]
    }

    fn get(&self, token: &str) -> Option<Claims> {
        let slot = self.slot(token).lock().ok()?;
        slot.as_ref().filter(|(kept, _)| &**kept == token).map(|(_, claims)| claims.clone())
    }

    fn put(&self, token: &str, claims: &Claims) {
        if let Ok(mut slot) = self.slot(token).lock() {
            *slot = Some((token.into(), claims.clone()));
        }
    }

    fn clear(&self) {
        for slot in &self.slots {
            if let Ok(mut slot) = slot.lock() {
                *slot = None;
            }
        }
    }
}

/// Signs and verifies access tokens.
///
/// - HS256 (`AUTH_JWT_ALGORITHM=HS256`): signs with the secret; also accepts
///   the previous secret during a rotation ([`also_accepting`](Self::also_accepting)).
/// - ES256 / EdDSA: signs with the stored key current at the claims' `iat`;
///   verifies with every installed key. Secrets added with `also_accepting`
///   still verify, so switching from HS256 signs nobody out.
///
/// Every token it signs names its key in `kid`; a token's key is looked up by
/// that `kid`, and the header's `alg` must be that key's algorithm (so an
/// HS256 token "signed" with a public key, or `alg: none`, never verifies). A
/// token without `kid` is one from before keys had ids: only the HS256
/// secrets are tried for it, and it need not carry `aud`. Every other token
/// must carry one of the accepted audiences. `iss` must be the issuer.
pub struct JwtCodec {
    algorithm: SigningAlgorithm,
    issuer: String,
    audiences: Vec<String>,
    /// AUTH_JWT_SECRET first (signs under HS256), then the previous one.
    secrets: Vec<Arc<VerifyingKey>>,
    kek: Option<KeyEncryptionKey>,
    ring: RwLock<Arc<Ring>>,
    verified: Verified,
}

impl fmt::Debug for JwtCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtCodec").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl JwtCodec {
    /// HS256 with `secret`, for the audience `portcullis`.
    #[must_use]
    pub fn new(secret: &JwtSecret, issuer: &str) -> Self {
        Self::with_algorithm(SigningAlgorithm::Hs256, issuer).also_accepting(secret)
    }

    /// Signing with `algorithm`; for ES256 and EdDSA the keys come through
    /// [`TokenCodec::install_keys`] and are unsealed with
    /// [`with_key_encryption`](Self::with_key_encryption)'s key; for HS256
    /// the first secret [`also_accepting`](Self::also_accepting) is given signs.
    #[must_use]
    pub fn with_algorithm(algorithm: SigningAlgorithm, issuer: &str) -> Self {
        crate::provider::install();
        Self {
            algorithm,
            issuer: issuer.to_owned(),
            audiences: vec!["portcullis".to_owned()],
            secrets: Vec::new(),
            kek: None,
            ring: RwLock::new(Arc::new(Ring::default())),
            verified: Verified::new(),
        }
    }

    /// The audiences written into every token (`aud`) and accepted from one.
    #[must_use]
    pub fn for_audiences(mut self, audiences: Vec<String>) -> Self {
        if !audiences.is_empty() {
            self.audiences = audiences;
        }
        self
    }

    /// The key that seals and unseals the stored private keys.
    #[must_use]
    pub fn with_key_encryption(mut self, kek: KeyEncryptionKey) -> Self {
        self.kek = Some(kek);
        self
    }

    /// Also accepts tokens signed with the HS256 `secret`; under HS256 the
    /// first one given signs, the later ones only verify (a rotation).
    #[must_use]
    pub fn also_accepting(mut self, secret: &JwtSecret) -> Self {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret.0).unwrap_or_else(|_| unreachable!());
        self.secrets.push(Arc::new(VerifyingKey::new(secret.kid(), Verifier::Hmac(mac))));
        self
    }

    fn ring(&self) -> Arc<Ring> {
        self.ring.read().map_or_else(|poisoned| Arc::clone(&poisoned.into_inner()), |ring| Arc::clone(&ring))
    }

    /// The key for a token whose header segment is `header`.
    fn key_for(&self, ring: &Ring, header: &str) -> Option<(Arc<VerifyingKey>, bool)> {
        let mine = self.secrets.iter().chain(&ring.verifying).find(|key| key.header == header);
        if let Some(key) = mine {
            return Some((Arc::clone(key), true));
        }
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            kid: Option<String>,
            crit: Option<serde_json::Value>,
        }
        let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        // We understand no extension: RFC 7515, 4.1.11.
        if header.crit.is_some() {
            return None;
        }
        match header.kid {
            Some(kid) => {
                let key = self.secrets.iter().chain(&ring.verifying).find(|key| key.kid == kid)?;
                (key.verifier.algorithm().as_str() == header.alg).then(|| (Arc::clone(key), true))
            }
            // Before keys had ids: HS256 secrets only; the caller tries each.
            None if header.alg == "HS256" => Some((Arc::clone(self.secrets.first()?), false)),
            None => None,
        }
    }

    fn check_claims(&self, claims: &Claims, needs_audience: bool) -> bool {
        claims.iss == self.issuer
            && match &claims.aud {
                Some(aud) => aud.accepts_any(&self.audiences),
                None => !needs_audience,
            }
    }

    fn verify(&self, token: &str) -> Option<Claims> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let ring = self.ring();
        let (key, has_kid) = self.key_for(&ring, header)?;
        let asymmetric = key.verifier.algorithm().is_asymmetric();
        if asymmetric && let Some(claims) = self.verified.get(token) {
            return Some(claims);
        }
        let signed_ok = if has_kid {
            key.verifier.verify(signed.as_bytes(), &signature)
        } else {
            self.secrets.iter().any(|secret| secret.verifier.verify(signed.as_bytes(), &signature))
        };
        if !signed_ok {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        if !self.check_claims(&claims, has_kid) {
            return None;
        }
        if asymmetric {
            self.verified.put(token, &claims);
        }
        Some(claims)
    }

    fn sign(
        &self,
        header: &str,
        claims: &Claims,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
    ) -> Result<AccessToken, DomainError> {
        let payload = serde_json::to_vec(claims)
            .map_err(|e| DomainError::Unavailable(format!("cannot sign token: {e}")))?;
        let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 100);
        token.push_str(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = sign(token.as_bytes())
            .map_err(|e| DomainError::Unavailable(format!("cannot sign token: {e}")))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(AccessToken::new(token))
    }
}

impl TokenCodec for JwtCodec {
    fn encode(&self, claims: &Claims) -> Result<AccessToken, DomainError> {
        if self.algorithm == SigningAlgorithm::Hs256 {
            let key =
                self.secrets.first().ok_or_else(|| DomainError::Unavailable("no HS256 secret".to_owned()))?;
            let Verifier::Hmac(mac) = &key.verifier else { unreachable!("secrets are HMAC keys") };
            return self.sign(&key.header, claims, |message| {
                Ok(mac.clone().chain_update(message).finalize().into_bytes().to_vec())
            });
        }
        let ring = self.ring();
        let key = ring
            .signing
            .iter()
            .rev()
            .find(|key| key.from <= claims.iat)
            .or_else(|| ring.signing.first())
            .ok_or_else(|| DomainError::Unavailable("no signing key is installed".to_owned()))?;
        self.sign(&key.header, claims, |message| key.private.sign(message))
    }

    fn decode(&self, token: &str) -> Result<Claims, DomainError> {
        self.verify(token).ok_or(DomainError::Unauthenticated(AuthError::InvalidToken))
    }

    fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    fn generate_key(&self, algorithm: SigningAlgorithm) -> Result<GeneratedKey, DomainError> {
        let kek = self.kek.as_ref().ok_or_else(|| {
            DomainError::Unavailable("AUTH_KEY_ENCRYPTION_KEY is needed to make signing keys".to_owned())
        })?;
        keypair::generate(algorithm, kek).map_err(DomainError::Unavailable)
    }

    fn install_keys(&self, keys: &[KeyStatus]) -> Result<(), DomainError> {
        let mut ring = Ring::default();
        for status in keys {
            let key = &status.key;
            let public = PublicKey::from_jwk(&key.public_jwk, &key.kid, key.algorithm)
                .map_err(DomainError::Unavailable)?;
            ring.verifying.push(Arc::new(VerifyingKey::new(key.kid.clone(), Verifier::Public(public))));
            // Under HS256 the stored keys only verify (tokens from before a switch).
            if status.may_sign() && self.algorithm.is_asymmetric() {
                let kek = self.kek.as_ref().ok_or_else(|| {
                    DomainError::Unavailable(
                        "AUTH_KEY_ENCRYPTION_KEY is needed to sign with the stored keys".to_owned(),
                    )
                })?;
                let pkcs8 = kek.open(&key.kid, &key.sealed_private).map_err(|_| {
                    DomainError::Unavailable(format!(
                        "signing key {} cannot be decrypted: AUTH_KEY_ENCRYPTION_KEY is not the key it was stored under",
                        key.kid
                    ))
                })?;
                let private =
                    PrivateKey::from_pkcs8(key.algorithm, &pkcs8).map_err(DomainError::Unavailable)?;
                ring.signing.push(SigningKey {
                    header: header_segment(key.algorithm, Some(&key.kid)),
                    from: key.activates_at.unix_timestamp(),
                    private,
                });
            }
        }
        ring.signing.sort_by_key(|key| key.from);
        let mut current = self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let kids = |ring: &Ring| ring.verifying.iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
        let dropped = kids(&current).iter().any(|kid| !kids(&ring).contains(kid));
        *current = Arc::new(ring);
        drop(current);
        if dropped {
            // A key left: what it verified must not be answered from memory.
            self.verified.clear();
        }
        Ok(())
    }
}

/// The headers of keys this codec knows, for tests.
#[cfg(test)]
impl JwtCodec {
    fn kids(&self) -> std::collections::HashMap<String, SigningAlgorithm> {
        self.secrets
            .iter()
            .chain(&self.ring().verifying)
            .map(|k| (k.kid.clone(), k.verifier.algorithm()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use portcullis_domain::ports::TokenCodec;
    use portcullis_domain::{Audience, Claims, KeyState, KeyStatus, Role, SigningAlgorithm, SigningKey};
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;

    const KEY: &[u8] = b"direct-path-direct-path-direct-path-key!";
    const OLD_KEY: &[u8] = b"previous-previous-previous-previous-key!!";
    const KEK: &str = "0123456789abcdef0123456789abcdef";

    fn claims() -> Claims {
        Claims {
            sub: Uuid::new_v4(),
            email: "direct@example.com".to_owned(),
            role: Role::User,
            exp: 4_102_444_800,
            iat: 1_700_000_000,
            jti: Uuid::new_v4(),
            iss: "portcullis".to_owned(),
            sv: 3,
            sid: Some(Uuid::new_v4()),
            auth_time: Some(1_700_000_000),
            aud: Audience::new(vec!["portcullis".to_owned()]),
        }
    }

    fn stored(
        codec: &JwtCodec,
        algorithm: SigningAlgorithm,
        activates_at: i64,
        generation: i64,
    ) -> KeyStatus {
        let generated = codec.generate_key(algorithm).expect("generate");
        let at = OffsetDateTime::from_unix_timestamp(activates_at).expect("time");
        KeyStatus {
            key: SigningKey {
                kid: generated.kid,
                algorithm,
                generation,
                public_jwk: generated.public_jwk,
                sealed_private: generated.sealed_private,
                created_at: at,
                activates_at: at,
            },
            state: KeyState::Current,
            retired_at: None,
            published_until: None,
        }
    }

    fn es256() -> (JwtCodec, KeyStatus) {
        let codec = JwtCodec::with_algorithm(SigningAlgorithm::Es256, "portcullis")
            .with_key_encryption(KeyEncryptionKey::parse(KEK).expect("kek"));
        let key = stored(&codec, SigningAlgorithm::Es256, 1_600_000_000, 1);
        codec.install_keys(std::slice::from_ref(&key)).expect("install");
        (codec, key)
    }

    #[test]
    fn hs256_tokens_name_their_key_and_round_trip() {
        let codec = JwtCodec::new(&JwtSecret::new(KEY).expect("key"), "portcullis")
            .also_accepting(&JwtSecret::new(OLD_KEY).expect("key"));
        let claims = claims();
        let token = codec.encode(&claims).expect("encode");
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD.decode(token.as_str().split('.').next().expect("header")).expect("b64"),
        )
        .expect("json");
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], JwtSecret::new(KEY).expect("key").kid());
        assert_eq!(codec.decode(token.as_str()), Ok(claims.clone()));
        let old = JwtCodec::new(&JwtSecret::new(OLD_KEY).expect("key"), "portcullis")
            .encode(&claims)
            .expect("encode");
        assert_eq!(codec.decode(old.as_str()), Ok(claims), "the previous key verifies");
        assert_eq!(codec.kids().len(), 2);
    }

    #[test]
    fn es256_tokens_verify_with_the_installed_key_and_are_remembered() {
        let (codec, key) = es256();
        let claims = claims();
        let token = codec.encode(&claims).expect("encode");
        assert_eq!(codec.decode(token.as_str()), Ok(claims.clone()));
        assert_eq!(codec.verified.get(token.as_str()), Some(claims.clone()), "the verdict is kept");
        assert_eq!(codec.decode(token.as_str()), Ok(claims.clone()), "and used");
        // Another codec with the key's public half only (an HS256 instance) verifies it too.
        let verifier = JwtCodec::new(&JwtSecret::new(KEY).expect("key"), "portcullis");
        verifier.install_keys(&[key]).expect("install without a KEK: nothing to unseal");
        assert_eq!(verifier.decode(token.as_str()), Ok(claims));
        // Removing the key forgets what it verified.
        codec.install_keys(&[]).expect("install");
        assert!(codec.decode(token.as_str()).is_err());
    }

    #[test]
    fn the_key_current_at_iat_signs() {
        let codec = JwtCodec::with_algorithm(SigningAlgorithm::EdDsa, "portcullis")
            .with_key_encryption(KeyEncryptionKey::parse(KEK).expect("kek"));
        let first = stored(&codec, SigningAlgorithm::EdDsa, 1_000, 1);
        let second = stored(&codec, SigningAlgorithm::EdDsa, 2_000, 2);
        codec.install_keys(&[second.clone(), first.clone()]).expect("install");
        let kid_of = |iat| {
            let token = codec.encode(&Claims { iat, ..claims() }).expect("encode");
            let header = URL_SAFE_NO_PAD.decode(token.as_str().split('.').next().expect("h")).expect("b64");
            serde_json::from_slice::<serde_json::Value>(&header).expect("json")["kid"]
                .as_str()
                .expect("kid")
                .to_owned()
        };
        assert_eq!(kid_of(1_500), first.key.kid);
        assert_eq!(kid_of(2_000), second.key.kid);
        assert_eq!(kid_of(500), first.key.kid, "before every key: the oldest");
    }

    #[test]
    fn a_key_under_another_kek_is_refused_and_nothing_replaced() {
        let (codec, key) = es256();
        let token = codec.encode(&claims()).expect("encode");
        let other = JwtCodec::with_algorithm(SigningAlgorithm::Es256, "portcullis").with_key_encryption(
            KeyEncryptionKey::parse("another-kek-another-kek-another-kek").expect("kek"),
        );
        let error = other.install_keys(std::slice::from_ref(&key)).expect_err("refused");
        assert!(error.to_string().contains("AUTH_KEY_ENCRYPTION_KEY"), "{error}");
        assert!(other.kids().is_empty(), "nothing was installed");
        assert!(other.decode(token.as_str()).is_err());
    }

    #[test]
    fn audience_and_issuer_are_checked() {
        let (codec, _) = es256();
        let codec = codec.for_audiences(vec!["api".to_owned(), "portcullis".to_owned()]);
        let many = Claims { aud: Audience::new(vec!["other".to_owned(), "api".to_owned()]), ..claims() };
        assert!(
            codec.decode(codec.encode(&many).expect("encode").as_str()).is_ok(),
            "one accepted audience is enough"
        );
        for wrong in [
            Claims { aud: None, ..claims() },
            Claims { aud: Audience::new(vec!["other".to_owned()]), ..claims() },
            Claims { iss: "someone-else".to_owned(), ..claims() },
        ] {
            assert!(codec.decode(codec.encode(&wrong).expect("encode").as_str()).is_err(), "{wrong:?}");
        }
    }

    /// Every one-character change anywhere in a token, and every truncation, is refused.
    #[test]
    fn every_mutation_is_refused() {
        let (es, _) = es256();
        let hs = JwtCodec::new(&JwtSecret::new(KEY).expect("key"), "portcullis");
        for codec in [es, hs] {
            let claims = claims();
            let token = codec.encode(&claims).expect("encode").as_str().to_owned();
            let mut variants: Vec<String> = (0..token.len()).map(|end| token[..end].to_owned()).collect();
            for (i, c) in token.char_indices() {
                for replacement in ['A', 'B', '_', '-', '.', '='] {
                    if c == replacement {
                        continue;
                    }
                    let mut changed = token.clone();
                    changed.replace_range(i..=i, &replacement.to_string());
                    variants.push(changed);
                }
            }
            variants.push(format!("{token}.extra"));
            variants.push(format!("{token}="));
            assert_eq!(codec.decode(&token), Ok(claims));
            for variant in &variants {
                // base64url's last character may carry unused bits: a change
                // there can decode to the same bytes, and then it is the same token.
                if let Ok(same) = codec.decode(variant) {
                    let parts =
                        |t: &str| t.split('.').map(|p| URL_SAFE_NO_PAD.decode(p).ok()).collect::<Vec<_>>();
                    assert_eq!(parts(variant), parts(&token), "{variant} decoded to {same:?}");
                }
            }
        }
    }
}
