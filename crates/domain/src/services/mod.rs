//! The use cases. Each service holds the ports it needs and enforces every rule
//! of the contract; none knows about HTTP or SQL.

mod accounts;
mod sessions;
mod tokens;

use std::sync::Arc;

pub use accounts::{AccountService, AdminOutcome, Registration};
pub use sessions::SessionService;

use crate::model::PasswordPolicy;
use crate::ports::{
    Clock, PasswordHasher, RevokedTokenRepository, SecretGenerator, TokenCodec, UserRepository,
};

/// The adapters a [`Services`] runs on.
#[derive(Clone)]
pub struct Ports {
    pub users: Arc<dyn UserRepository>,
    pub revoked_tokens: Arc<dyn RevokedTokenRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: Arc<dyn TokenCodec>,
    pub clock: Arc<dyn Clock>,
    pub secrets: Arc<dyn SecretGenerator>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

/// The knobs of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The `iss` claim of every token we issue and accept.
    pub issuer: String,
    /// Access-token lifetime in seconds.
    pub token_ttl_secs: i64,
    /// Clock skew tolerated when judging `exp` and `iat`; at most 5 s.
    pub leeway_secs: i64,
    pub password_policy: PasswordPolicy,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "portcullis".to_owned(),
            token_ttl_secs: 28_800,
            leeway_secs: 5,
            password_policy: PasswordPolicy::default(),
        }
    }
}

/// Every service, built over one set of ports.
#[derive(Debug, Clone)]
pub struct Services {
    pub accounts: AccountService,
    pub sessions: SessionService,
}

impl Services {
    #[must_use]
    pub fn new(ports: Ports, settings: AuthSettings) -> Self {
        let ports = Arc::new(ports);
        let settings = Arc::new(settings);
        Self {
            accounts: AccountService::new(Arc::clone(&ports), Arc::clone(&settings)),
            sessions: SessionService::new(ports, settings),
        }
    }
}
