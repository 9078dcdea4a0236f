//! HS256 access tokens behind the `TokenCodec` port.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use portcullis_domain::ports::TokenCodec;
use portcullis_domain::{AccessToken, AuthError, Claims, DomainError};

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
pub struct JwtCodec {
    header: Header,
    encoding: EncodingKey,
    /// The signing key's, then the previous key's when rotating.
    decoding: Vec<DecodingKey>,
    validation: Validation,
}

impl fmt::Debug for JwtCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtCodec").field("algorithm", &self.header.alg).finish_non_exhaustive()
    }
}

impl JwtCodec {
    #[must_use]
    pub fn new(secret: &JwtSecret, issuer: &str) -> Self {
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
        Self {
            header: Header::new(Algorithm::HS256),
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
        self.decoding
            .iter()
            .find_map(|key| decode::<Claims>(token, key, &self.validation).ok())
            .map(|data| data.claims)
            .ok_or(DomainError::Unauthenticated(AuthError::InvalidToken))
    }
}
