//! The use cases. Each service holds the ports it needs and enforces every rule
//! of the contract; none knows about HTTP or SQL.

mod accounts;
mod admin;
mod api_keys;
mod audit;
mod credentials;
mod keys;
mod limits;
mod mfa;
mod oauth;
mod passwords;
mod projects;
mod sessions;
mod tokens;
mod verification;

use std::sync::Arc;

pub use accounts::{AccountService, AdminOutcome, Registration};
pub use admin::{AdminService, UserChanges, UsersPage};
pub use api_keys::{ApiKeyService, ListedKey, NewKeyRequest};
pub use audit::{AuditService, MAX_AUDIT_PAGE};
pub use keys::{Rotation, SigningKeyService};
pub use limits::{IpFamily, LimitService, RateLimits};
pub use mfa::{MFA_MAX_FAILURES, MFA_TOKEN_TTL_SECS, MfaService, SignIn, TotpSetup};
pub use oauth::{Authorization, OAuthLogin, OAuthService};
pub use passwords::{DeliveryReport, PasswordService, RESETS_PER_HOUR};
pub use projects::ProjectService;
pub use sessions::{SessionService, SessionView};
pub use verification::{Resend, VERIFICATIONS_PER_HOUR, VerificationService};

use crate::model::PasswordPolicy;
use crate::ports::{
    ApiKeyRepository, AuditLog, AuditObserver, ChangeFeed, Clock, HotReads, Mailer, MfaRepository,
    OAuthIdentityRepository, OAuthProvider, OneTimeCodes, Outbox, PasswordBlocklist, PasswordHasher,
    PasswordResetRepository, ProjectRepository, RateLimiter, RequestContextSource, RevokedTokenRepository,
    SecretGenerator, SessionRepository, Signer, SigningKeyRepository, Store, TokenCodec, UserRepository,
    VerificationRepository,
};

/// The adapters a [`Services`] runs on: the storage ports of one
/// [`Store`], and [`Adapters`] for the rest. Built by [`Ports::from_store`];
/// tests swap single fields with struct update syntax.
#[derive(Clone)]
pub struct Ports {
    pub users: Arc<dyn UserRepository>,
    pub reads: Arc<dyn HotReads>,
    pub revoked_tokens: Arc<dyn RevokedTokenRepository>,
    pub api_keys: Arc<dyn ApiKeyRepository>,
    pub projects: Arc<dyn ProjectRepository>,
    pub resets: Arc<dyn PasswordResetRepository>,
    pub verifications: Arc<dyn VerificationRepository>,
    pub outbox: Arc<dyn Outbox>,
    pub identities: Arc<dyn OAuthIdentityRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub signing_keys: Arc<dyn SigningKeyRepository>,
    pub mfa: Arc<dyn MfaRepository>,
    pub audit: Arc<dyn AuditLog>,
    pub adapters: Adapters,
}

/// Every adapter that is not storage.
#[derive(Clone)]
pub struct Adapters {
    pub mailer: Arc<dyn Mailer>,
    /// The configured social login providers (none is fine).
    pub oauth_providers: Vec<Arc<dyn OAuthProvider>>,
    pub signer: Arc<dyn Signer>,
    pub rate_limiter: Arc<dyn RateLimiter>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub blocklist: Arc<dyn PasswordBlocklist>,
    pub tokens: Arc<dyn TokenCodec>,
    /// TOTP codes, and the sealing of TOTP secrets at rest.
    pub one_time_codes: Arc<dyn OneTimeCodes>,
    pub clock: Arc<dyn Clock>,
    pub secrets: Arc<dyn SecretGenerator>,
    /// The request in flight, for the audit log ([`crate::ports::NoRequestContext`] when there is none).
    pub context: Arc<dyn RequestContextSource>,
    /// Where services say what their writes changed ([`crate::ports::NoCopies`]
    /// when nothing keeps copies of reads).
    pub changes: Arc<dyn ChangeFeed>,
    /// Told of each audit event once stored ([`crate::ports::NoObserver`]
    /// when nothing counts or forwards them).
    pub observer: Arc<dyn AuditObserver>,
}

impl Ports {
    /// The storage ports from `store`, the others from `adapters`: the one
    /// place where ports are put together.
    #[must_use]
    pub fn from_store(store: Arc<dyn Store>, adapters: Adapters) -> Self {
        Self {
            users: store.clone(),
            reads: store.clone(),
            revoked_tokens: store.clone(),
            api_keys: store.clone(),
            projects: store.clone(),
            resets: store.clone(),
            verifications: store.clone(),
            outbox: store.clone(),
            identities: store.clone(),
            sessions: store.clone(),
            signing_keys: store.clone(),
            mfa: store.clone(),
            audit: store,
            adapters,
        }
    }
}

/// A service from the ports it calls: `from_ports!(ports => Self { storage
/// ports; adapters; other: fields })` takes each named port from [`Ports`]
/// or its [`Adapters`], and nothing else.
macro_rules! from_ports {
    ($ports:expr => $ty:ident { $($port:ident),* ; $($adapter:ident),* ; $($field:ident : $value:expr),* $(,)? }) => {
        $ty {
            $($port: ::std::sync::Arc::clone(&$ports.$port),)*
            $($adapter: ::std::sync::Arc::clone(&$ports.adapters.$adapter),)*
            $($field: $value,)*
        }
    };
}
pub(crate) use from_ports;

/// `Debug` for a value made of ports, which are not `Debug` themselves.
macro_rules! opaque_debug {
    ($($name:ident),+ $(,)?) => {$(
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )+};
}
pub(crate) use opaque_debug;

opaque_debug!(Ports, Adapters);

/// The knobs of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The `iss` claim of every token we issue and accept.
    pub issuer: String,
    /// The `aud` claim of every token we issue; a token we accept must name
    /// one of them.
    pub audience: Vec<String>,
    /// How long a new signing key is published before it signs, in seconds.
    pub key_publish_secs: i64,
    /// Days between automatic key rotations; 0: never.
    pub key_rotation_days: i64,
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
    /// The page that takes an email-verification token; the emailed link is
    /// this with `?token=...` appended.
    pub email_verify_url: String,
    /// Password accounts must verify their address before they can sign in
    /// (registration then issues no token).
    pub require_verified_email: bool,
    /// Refuse OAuth callbacks without a `state`.
    pub oauth_require_state: bool,
    pub rate_limits: RateLimits,
    /// A session's absolute lifetime in seconds: no refresh extends it.
    pub session_max_age_secs: i64,
    /// How long a session may go without a refresh, in seconds.
    pub session_idle_secs: i64,
    /// How long after a refresh token was spent its reuse is taken for a race
    /// (refused, the session left alone) rather than a theft (the session ended).
    pub refresh_reuse_grace_secs: i64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "portcullis".to_owned(),
            audience: vec!["portcullis".to_owned()],
            key_publish_secs: 600,
            key_rotation_days: 90,
            token_ttl_secs: 28_800,
            leeway_secs: 5,
            password_policy: PasswordPolicy::default(),
            api_key_default_days: 90,
            password_reset_url: "http://localhost:3000/reset-password".to_owned(),
            email_verify_url: "http://127.0.0.1:8000/verify-email".to_owned(),
            require_verified_email: false,
            oauth_require_state: false,
            rate_limits: RateLimits::default(),
            session_max_age_secs: 2_592_000,
            session_idle_secs: 604_800,
            refresh_reuse_grace_secs: 10,
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
    pub verification: VerificationService,
    pub oauth: OAuthService,
    pub limits: LimitService,
    pub mfa: MfaService,
    pub audit: AuditService,
    pub signing_keys: SigningKeyService,
}

impl Services {
    /// Every service over `ports`; each keeps only the ports it calls.
    #[must_use]
    pub fn new(ports: Ports, settings: AuthSettings) -> Self {
        let limits = LimitService::new(
            Arc::clone(&ports.adapters.rate_limiter),
            Arc::clone(&ports.adapters.clock),
            Arc::clone(&ports.adapters.context),
            Arc::new(settings.rate_limits.clone()),
        );
        let verification = VerificationService::new(&ports, &settings);
        let mfa = MfaService::new(&ports, &settings, limits.clone());
        Self {
            accounts: AccountService::new(&ports, &settings, limits.clone(), verification.clone()),
            sessions: SessionService::new(&ports, &settings, limits.clone(), mfa.clone()),
            api_keys: ApiKeyService::new(&ports, &settings),
            passwords: PasswordService::new(&ports, &settings),
            verification,
            oauth: OAuthService::new(&ports, &settings, mfa.clone()),
            mfa,
            projects: ProjectService::new(&ports),
            audit: AuditService::new(Arc::clone(&ports.audit), Arc::clone(&ports.adapters.clock)),
            admin: AdminService::new(&ports),
            signing_keys: SigningKeyService::new(&ports, &settings),
            limits,
        }
    }
}
