use std::sync::Arc;

use crate::error::DomainError;
use crate::model::{Claims, IssuedToken, User};
use crate::ports::{Clock, SecretGenerator, TokenCodec};

use super::{AuthSettings, Ports, opaque_debug};

/// Issues access tokens, and reads them back.
#[derive(Clone)]
pub(super) struct Tokens {
    codec: Arc<dyn TokenCodec>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    issuer: Arc<str>,
    ttl_secs: i64,
}

opaque_debug!(Tokens);

impl Tokens {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            codec: Arc::clone(&ports.adapters.tokens),
            secrets: Arc::clone(&ports.adapters.secrets),
            clock: Arc::clone(&ports.adapters.clock),
            issuer: settings.issuer.as_str().into(),
            ttl_secs: settings.token_ttl_secs,
        }
    }

    /// An access token for `user` under their current session version.
    ///
    /// # Errors
    /// `Unavailable` when the token cannot be signed.
    pub(super) fn issue(&self, user: &User) -> Result<IssuedToken, DomainError> {
        let claims =
            Claims::for_user(user, self.secrets.token_id(), &self.issuer, self.clock.now(), self.ttl_secs);
        let access_token = self.codec.encode(&claims)?;
        Ok(IssuedToken { access_token, expires_in: self.ttl_secs, claims })
    }

    /// The claims of a token whose signature, algorithm and issuer are right.
    ///
    /// # Errors
    /// `Unauthenticated` with the reason.
    pub(super) fn decode(&self, token: &str) -> Result<Claims, DomainError> {
        self.codec.decode(token)
    }
}
