//! The use cases. Each service holds the ports it needs and enforces every rule
//! of the contract; none knows about HTTP or SQL.

mod accounts;
mod admin;
mod api_keys;
mod audit;
mod cache;
mod limits;
mod oauth;
mod passwords;
mod projects;
mod sessions;
mod tokens;

use std::sync::Arc;

pub use accounts::{AccountService, AdminOutcome, Registration};
pub use admin::{AdminService, UserChanges};
pub use api_keys::{ApiKeyService, ListedKey, NewKeyRequest};
pub use audit::{AuditService, MAX_AUDIT_PAGE};
pub use limits::{IpFamily, LimitService, RateLimits};
pub use oauth::{Authorization, OAuthLogin, OAuthService};
pub use passwords::{DeliveryReport, PasswordService, RESETS_PER_HOUR};
pub use projects::ProjectService;
pub use sessions::SessionService;

use crate::model::PasswordPolicy;
use crate::ports::{
    ApiKeyRepository, AuditLog, Clock, Mailer, OAuthIdentityRepository, OAuthProvider, Outbox,
    PasswordBlocklist, PasswordHasher, PasswordResetRepository, ProjectRepository, RateLimiter,
    RequestContextSource, RevokedTokenRepository, SecretGenerator, Signer, TokenCodec, UserRepository,
};

/// The adapters a [`Services`] runs on.
#[derive(Clone)]
pub struct Ports {
    pub users: Arc<dyn UserRepository>,
    pub revoked_tokens: Arc<dyn RevokedTokenRepository>,
    pub api_keys: Arc<dyn ApiKeyRepository>,
    pub projects: Arc<dyn ProjectRepository>,
    pub resets: Arc<dyn PasswordResetRepository>,
    pub outbox: Arc<dyn Outbox>,
    pub mailer: Arc<dyn Mailer>,
    pub identities: Arc<dyn OAuthIdentityRepository>,
    /// The configured social login providers (none is fine).
    pub oauth_providers: Vec<Arc<dyn OAuthProvider>>,
    pub signer: Arc<dyn Signer>,
    pub rate_limiter: Arc<dyn RateLimiter>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub blocklist: Arc<dyn PasswordBlocklist>,
    pub tokens: Arc<dyn TokenCodec>,
    pub clock: Arc<dyn Clock>,
    pub secrets: Arc<dyn SecretGenerator>,
    pub audit: Arc<dyn AuditLog>,
    /// The request in flight, for the audit log ([`crate::ports::NoRequestContext`] when there is none).
    pub context: Arc<dyn RequestContextSource>,
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
    /// Lifetime of an API key created without `expires_in_days`.
    pub api_key_default_days: i64,
    /// The page of the client app that takes a reset token; the emailed link
    /// is this with `?token=...` appended.
    pub password_reset_url: String,
    /// Refuse OAuth callbacks without a `state`.
    pub oauth_require_state: bool,
    pub rate_limits: RateLimits,
    /// How long a token's session, a key with its owner, or a caller's
    /// project list, once read, is trusted without the store (milliseconds;
    /// 0: never). Writes through these ports apply at once whatever the
    /// value; writes by another instance sharing the database within it.
    pub auth_cache_ttl_ms: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "portcullis".to_owned(),
            token_ttl_secs: 28_800,
            leeway_secs: 5,
            password_policy: PasswordPolicy::default(),
            api_key_default_days: 90,
            password_reset_url: "http://localhost:3000/reset-password".to_owned(),
            oauth_require_state: false,
            rate_limits: RateLimits::default(),
            auth_cache_ttl_ms: 0,
        }
    }
}

/// Every service, built over one set of ports.
#[derive(Debug, Clone)]
pub struct Services {
    pub accounts: AccountService,
    pub sessions: SessionService,
    pub api_keys: ApiKeyService,
    pub projects: ProjectService,
    pub admin: AdminService,
    pub passwords: PasswordService,
    pub oauth: OAuthService,
    pub limits: LimitService,
    pub audit: AuditService,
}

impl Services {
    #[must_use]
    pub fn new(ports: Ports, settings: AuthSettings) -> Self {
        let ports = Arc::new(cache::wrap(ports, settings.auth_cache_ttl_ms));
        let limits = LimitService::new(
            Arc::clone(&ports.rate_limiter),
            Arc::clone(&ports.clock),
            Arc::clone(&ports.context),
            Arc::new(settings.rate_limits.clone()),
        );
        let settings = Arc::new(settings);
        Self {
            limits: limits.clone(),
            accounts: AccountService::new(Arc::clone(&ports), Arc::clone(&settings), limits.clone()),
            sessions: SessionService::new(Arc::clone(&ports), Arc::clone(&settings), limits),
            api_keys: ApiKeyService::new(Arc::clone(&ports), Arc::clone(&settings)),
            passwords: PasswordService::new(Arc::clone(&ports), Arc::clone(&settings)),
            oauth: OAuthService::new(Arc::clone(&ports), settings),
            projects: ProjectService::new(Arc::clone(&ports)),
            audit: AuditService::new(Arc::clone(&ports)),
            admin: AdminService::new(ports),
        }
    }
}

/// Whether `password` matches `hash`, and whether the hash should be made
/// again from the normalised password: it matched only in the form the user
/// typed, as hashes made before passwords were NFKC-normalised do.
///
/// # Errors
/// `Unavailable` (hashing pool full or gone).
pub(super) async fn verify_password(
    ports: &Ports,
    password: &crate::model::Password,
    hash: &crate::model::PasswordHash,
) -> Result<(bool, bool), crate::error::DomainError> {
    if ports.hasher.verify(password.clone(), hash.clone()).await? {
        return Ok((true, ports.hasher.needs_rehash(hash)));
    }
    match password.as_typed() {
        Some(typed) => Ok((ports.hasher.verify(typed, hash.clone()).await?, true)),
        None => Ok((false, false)),
    }
}

/// What [`verify_password`] costs, for a login that has no hash to check
/// against: the same number of argon2 runs, so timing tells nothing.
///
/// # Errors
/// `Unavailable` (hashing pool full or gone).
pub(super) async fn verify_nothing(
    ports: &Ports,
    password: &crate::model::Password,
) -> Result<(), crate::error::DomainError> {
    ports.hasher.verify_dummy(password.clone()).await?;
    if let Some(typed) = password.as_typed() {
        ports.hasher.verify_dummy(typed).await?;
    }
    Ok(())
}

/// Checks a new password against the policy and the common-password list,
/// reporting every failed rule at once under `field`.
pub(super) fn check_new_password(
    ports: &Ports,
    settings: &AuthSettings,
    candidate: &str,
    email: Option<&crate::model::Email>,
    field: &str,
) -> Result<crate::model::Password, crate::error::DomainError> {
    let policy = &settings.password_policy;
    let mut failed = policy.check(candidate, email).err().unwrap_or_default();
    if policy.reject_common && ports.blocklist.is_common(candidate) {
        failed.push(crate::model::PasswordRule::TooCommon);
    }
    if failed.is_empty() {
        Ok(crate::model::Password::new(candidate))
    } else {
        Err(crate::error::DomainError::validation(crate::error::DomainError::weak_password(
            field, &failed, policy,
        )))
    }
}
