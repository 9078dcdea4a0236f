//! HS256 access tokens behind the `TokenCodec` port.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use portcullis_domain::ports::TokenCodec;
use portcullis_domain::{AccessToken, AuthError, Claims, DomainError};
use sha2::Sha256;

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
}

impl JwtSecret {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret([REDACTED])")
    }
}

/// HS256 with the algorithm pinned: a token whose header names any other
/// algorithm (`none`, RS256 with our key as a "public key"...) is refused.
/// Tokens are signed with one key; they may be verified with a second one
/// too, during a key rotation ([`JwtCodec::also_accepting`]).
///
/// Every authenticated request decodes a token, so tokens that carry the exact
/// header this codec writes take a direct path: one HMAC-SHA256 from a keyed
/// state prepared once, compared in constant time, then one parse of the
/// claims. `jsonwebtoken` alone parses the header, keys a new HMAC and parses
/// the claims twice, about three times the work. Any other header goes the
/// `jsonwebtoken` way, which enforces the same rules.
pub struct JwtCodec {
    header: Header,
    encoding: EncodingKey,
    /// The signing key's, then the previous key's when rotating.
    decoding: Vec<DecodingKey>,
    validation: Validation,
    /// `None` only if it could not be prepared; every token then goes the
    /// `jsonwebtoken` way.
    direct: Option<Direct>,
}

/// What the direct path needs, prepared once.
struct Direct {
    /// The base64url header segment of every token [`JwtCodec::encode`] makes.
    header: String,
    /// HMAC-SHA256 keyed with each of the codec's keys.
    macs: Vec<Hmac<Sha256>>,
    issuer: String,
}

impl Direct {
    fn new(header: &Header, secret: &JwtSecret, issuer: &str) -> Option<Self> {
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).ok()?);
        Some(Self { header, macs: vec![keyed(secret)?], issuer: issuer.to_owned() })
    }

    /// `None` when `token` does not start with this codec's own header;
    /// otherwise the verdict, the same `jsonwebtoken` would give.
    fn decode(&self, token: &str) -> Option<Result<Claims, DomainError>> {
        let rest = token.strip_prefix(self.header.as_str())?.strip_prefix('.')?;
        Some(self.verify(token, rest).ok_or(DomainError::Unauthenticated(AuthError::InvalidToken)))
    }

    /// `rest` is `token` after its header segment and dot: `payload.signature`.
    fn verify(&self, token: &str, rest: &str) -> Option<Claims> {
        let (payload, signature) = rest.split_once('.')?;
        // A third dot lands in the signature segment, which then fails to decode.
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let signed = token.get(..self.header.len() + 1 + payload.len())?;
        // `verify_slice` compares in constant time.
        self.macs.iter().find(|mac| (*mac).clone().chain_update(signed).verify_slice(&signature).is_ok())?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.iss == self.issuer).then_some(claims)
    }
}

/// HMAC-SHA256 keyed once; each verification clones it. (HMAC takes keys of
/// any length, so this does not fail.)
fn keyed(secret: &JwtSecret) -> Option<Hmac<Sha256>> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(&secret.0).ok()
}

impl fmt::Debug for JwtCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtCodec").field("algorithm", &self.header.alg).finish_non_exhaustive()
    }
}

impl JwtCodec {
    #[must_use]
    pub fn new(secret: &JwtSecret, issuer: &str) -> Self {
        crate::provider::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.set_issuer(&[issuer]);
        // Expiry is judged by the domain against its Clock (with at most 5 s of
        // leeway); here `exp` must only be present and an integer, which the
        // typed `Claims` enforce.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let header = Header::new(Algorithm::HS256);
        Self {
            direct: Direct::new(&header, secret, issuer),
            header,
            encoding: EncodingKey::from_secret(&secret.0),
            decoding: vec![DecodingKey::from_secret(&secret.0)],
            validation,
        }
    }

    /// Also accepts tokens signed with `previous` (never signs with it), so
    /// that tokens issued before a key rotation keep working until they expire.
    #[must_use]
    pub fn also_accepting(mut self, previous: &JwtSecret) -> Self {
        self.decoding.push(DecodingKey::from_secret(&previous.0));
        self.direct = self.direct.take().and_then(|mut direct| {
            direct.macs.push(keyed(previous)?);
            Some(direct)
        });
        self
    }
}

impl TokenCodec for JwtCodec {
    fn encode(&self, claims: &Claims) -> Result<AccessToken, DomainError> {
        encode(&self.header, claims, &self.encoding)
            .map(AccessToken::new)
            .map_err(|e| DomainError::Unavailable(format!("cannot sign token: {e}")))
    }

    fn decode(&self, token: &str) -> Result<Claims, DomainError> {
        if let Some(verdict) = self.direct.as_ref().and_then(|direct| direct.decode(token)) {
            return verdict;
        }
        self.decoding
            .iter()
            .find_map(|key| decode::<Claims>(token, key, &self.validation).ok())
            .map(|data| data.claims)
            .ok_or(DomainError::Unauthenticated(AuthError::InvalidToken))
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use portcullis_domain::ports::TokenCodec;
    use portcullis_domain::{Claims, Role};
    use uuid::Uuid;

    use super::{JwtCodec, JwtSecret};

    const KEY: &[u8] = b"direct-path-direct-path-direct-path-key!";
    const OLD_KEY: &[u8] = b"previous-previous-previous-previous-key!!";

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
        }
    }

    fn codec() -> JwtCodec {
        JwtCodec::new(&JwtSecret::new(KEY).expect("key"), "portcullis")
            .also_accepting(&JwtSecret::new(OLD_KEY).expect("key"))
    }

    /// What `jsonwebtoken` alone says of `token`, with the codec's rules.
    fn reference(codec: &JwtCodec, token: &str) -> Option<Claims> {
        codec
            .decoding
            .iter()
            .find_map(|key| jsonwebtoken::decode::<Claims>(token, key, &codec.validation).ok())
            .map(|d| d.claims)
    }

    #[test]
    fn tokens_this_codec_signs_take_the_direct_path() {
        let codec = codec();
        let claims = claims();
        let token = codec.encode(&claims).expect("encode");
        let direct = codec.direct.as_ref().expect("prepared");
        assert_eq!(direct.decode(token.as_str()), Some(Ok(claims.clone())));
        let old = JwtCodec::new(&JwtSecret::new(OLD_KEY).expect("key"), "portcullis")
            .encode(&claims)
            .expect("encode");
        assert_eq!(direct.decode(old.as_str()), Some(Ok(claims)), "the previous key too");
    }

    #[test]
    fn another_header_is_left_to_jsonwebtoken() {
        let codec = codec();
        let claims = claims();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".to_owned());
        let token = encode(&header, &claims, &EncodingKey::from_secret(KEY)).expect("encode");
        assert_eq!(codec.direct.as_ref().expect("prepared").decode(&token), None);
        assert_eq!(codec.decode(&token), Ok(claims));
    }

    /// Every one-character change anywhere in a token, and every truncation,
    /// gets the verdict `jsonwebtoken` gives it.
    #[test]
    fn the_direct_path_agrees_with_jsonwebtoken_on_every_mutation() {
        let codec = codec();
        let claims = claims();
        let token = codec.encode(&claims).expect("encode").as_str().to_owned();
        let mut variants: Vec<String> = (0..=token.len()).map(|end| token[..end].to_owned()).collect();
        for (i, _) in token.char_indices() {
            for replacement in ['A', 'B', '_', '-', '.', '='] {
                let mut changed = token.clone();
                changed.replace_range(i..=i, &replacement.to_string());
                variants.push(changed);
            }
        }
        variants.push(format!("{token}.extra"));
        variants.push(format!("{token}="));
        assert_eq!(reference(&codec, &token), Some(claims));
        for variant in &variants {
            assert_eq!(codec.decode(variant).ok(), reference(&codec, variant), "{variant}");
        }
    }
}
