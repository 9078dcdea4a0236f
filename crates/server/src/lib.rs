//! The Portcullis server: configuration, wiring, start-up and shutdown.
//!
//! This is the one crate that knows every concrete adapter: it reads the
//! configuration, opens the store the `DATABASE_URL` names (applying its
//! migrations), builds the domain services over the adapters and serves the
//! HTTP API. The `portcullis` binary is a thin `main` over [`run`]; tests use
//! [`App`] to run the same wiring on port 0 with a clock of their own.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod config;
mod error;
mod secret;
mod telemetry;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use actix_web::dev::Server;
use portcullis_crypto::{Argon2Hasher, HashingConfig, HmacSigner, JwtCodec, OsSecrets};
use portcullis_domain::ports::{
    ApiKeyRepository, AuditLog, Clock, OAuthIdentityRepository, Outbox, PasswordResetRepository,
    ProjectRepository, RevokedTokenRepository, StoreHealth, SystemClock, UserRepository,
};
use portcullis_domain::{AdminOutcome, AuthSettings, Password, PasswordPolicy, Ports, Services};
use portcullis_http::{AppState, HttpRequestContext, HttpSettings, MeteredAuditLog, Metrics};
use portcullis_ratelimit::FallbackRateLimiter;
use portcullis_store_postgres::PostgresStore;
use portcullis_store_sqlite::SqliteStore;

pub use config::{Cli, Command, Config, DatabaseUrl, Environment, LogFormat};
pub use error::StartError;
pub use telemetry::init_tracing;

/// How often expired revocations are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How often the outbox is checked for emails that are due.
const DELIVER_EVERY: Duration = Duration::from_secs(1);
/// How often counted API-key uses are written (and once more at shutdown).
const FLUSH_USAGE_EVERY: Duration = Duration::from_secs(5);
/// How often the in-process limiter forgets keys whose budget is whole again.
const SWEEP_LIMITS_EVERY: Duration = Duration::from_secs(5);
/// How often audit events past their retention are deleted.
const PRUNE_AUDIT_EVERY: Duration = Duration::from_secs(3600);

/// The storage adapters, as ports.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserRepository>,
    pub revoked_tokens: Arc<dyn RevokedTokenRepository>,
    pub api_keys: Arc<dyn ApiKeyRepository>,
    pub projects: Arc<dyn ProjectRepository>,
    pub resets: Arc<dyn PasswordResetRepository>,
    pub outbox: Arc<dyn Outbox>,
    pub identities: Arc<dyn OAuthIdentityRepository>,
    pub audit: Arc<dyn AuditLog>,
    pub health: Arc<dyn StoreHealth>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    /// Every port from one store that implements them all.
    fn all<S>(store: Arc<S>) -> Self
    where
        S: UserRepository
            + RevokedTokenRepository
            + ApiKeyRepository
            + ProjectRepository
            + PasswordResetRepository
            + Outbox
            + OAuthIdentityRepository
            + AuditLog
            + StoreHealth
            + 'static,
    {
        Self {
            users: store.clone(),
            revoked_tokens: store.clone(),
            api_keys: store.clone(),
            projects: store.clone(),
            resets: store.clone(),
            outbox: store.clone(),
            identities: store.clone(),
            audit: store.clone(),
            health: store,
        }
    }

    /// Opens the database `DATABASE_URL` names and applies pending migrations.
    ///
    /// # Errors
    /// [`StartError::Database`] when it cannot be opened or migrated.
    pub async fn open(config: &Config) -> Result<Self, StartError> {
        let max = usize::from(config.db_max_connections);
        let database = |e: portcullis_domain::StoreError| StartError::Database(e.to_string());
        match &config.database_url {
            DatabaseUrl::Sqlite(path) => {
                let store = Arc::new(SqliteStore::open(path, max).map_err(database)?);
                let applied = store.migrate().await.map_err(database)?;
                tracing::info!(path = %path.display(), applied, "SQLite database ready");
                Ok(Self::all(store))
            }
            DatabaseUrl::Postgres(url) => {
                let store = Arc::new(PostgresStore::connect(url, max).map_err(database)?);
                let applied = store.migrate().await.map_err(database)?;
                tracing::info!(applied, "PostgreSQL database ready");
                Ok(Self::all(store))
            }
        }
    }
}

/// A wired application: the services over their adapters.
#[derive(Clone)]
pub struct App {
    pub services: Services,
    pub stores: Stores,
    pub metrics: Arc<Metrics>,
    http: HttpSettings,
    workers: usize,
    metrics_bind: Option<std::net::SocketAddr>,
    audit_retention_days: u32,
    limiter: Arc<FallbackRateLimiter>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("http", &self.http).finish_non_exhaustive()
    }
}

impl App {
    /// Wires everything for `config`, with `clock` as the time source.
    ///
    /// # Errors
    /// A [`StartError`] naming what is wrong.
    pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        install_crypto_provider();
        let secret = secret::resolve(config)?;
        let previous_secret = secret::previous(config)?;
        let stores = Stores::open(config).await?;
        let settings = AuthSettings {
            token_ttl_secs: config.token_ttl_secs,
            api_key_default_days: config.api_key_default_days,
            password_reset_url: config.password_reset_url.clone(),
            oauth_require_state: config.oauth_require_state(),
            rate_limits: config.rate_limits.clone(),
            auth_cache_ttl_ms: config.cache_ttl_ms,
            password_policy: match config.password_rules {
                config::PasswordRulesArg::Composition => PasswordPolicy::default(),
                config::PasswordRulesArg::Nist => PasswordPolicy::nist(),
            },
            ..AuthSettings::default()
        };
        let defaults = HashingConfig::default();
        let threads = if config.hash_threads == 0 { defaults.threads } else { config.hash_threads };
        let queue = if config.hash_queue == 0 { threads * 64 } else { config.hash_queue };
        let metrics = Arc::new(Metrics::default());
        let observer: portcullis_crypto::WaitObserver = {
            let metrics = Arc::downgrade(&metrics);
            Arc::new(move |waited| {
                if let Some(metrics) = metrics.upgrade() {
                    metrics.observe_hash_wait(waited);
                }
            })
        };
        let hasher = Arc::new(
            Argon2Hasher::new(&HashingConfig { threads, queue, ..defaults })
                .map_err(StartError::Io)?
                .observe_waits(observer),
        );
        let queue_depth = Arc::downgrade(&hasher);
        metrics.watch_hash_queue(Arc::new(move || queue_depth.upgrade().map_or(0, |h| h.queued())));
        let limiter = rate_limiter(config).await;
        let ports = Ports {
            users: Arc::clone(&stores.users),
            revoked_tokens: Arc::clone(&stores.revoked_tokens),
            api_keys: Arc::clone(&stores.api_keys),
            projects: Arc::clone(&stores.projects),
            resets: Arc::clone(&stores.resets),
            outbox: Arc::clone(&stores.outbox),
            mailer: mailer(config)?,
            identities: Arc::clone(&stores.identities),
            oauth_providers: oauth_providers(config)?,
            signer: Arc::new(HmacSigner::derive(&secret, "portcullis oauth state")),
            rate_limiter: Arc::clone(&limiter) as Arc<dyn portcullis_domain::ports::RateLimiter>,
            hasher,
            blocklist: Arc::new(portcullis_crypto::CommonPasswords),
            tokens: Arc::new(match &previous_secret {
                Some(previous) => JwtCodec::new(&secret, &settings.issuer).also_accepting(previous),
                None => JwtCodec::new(&secret, &settings.issuer),
            }),
            clock: Arc::clone(&clock),
            secrets: Arc::new(OsSecrets),
            audit: Arc::new(MeteredAuditLog::new(Arc::clone(&stores.audit), Arc::clone(&metrics))),
            context: Arc::new(HttpRequestContext),
        };
        let http = HttpSettings {
            test_endpoints: config.environment != Environment::Production,
            trusted_proxies: config.trusted_proxies.clone(),
            cors_origins: config.cors_origins.0.clone(),
            metrics_on_main: config.metrics_bind.is_none(),
            hsts: config.public_url().starts_with("https://"),
            ..HttpSettings::default()
        };
        Ok(Self {
            services: Services::new(ports, settings),
            stores,
            metrics,
            http,
            workers: config.workers,
            metrics_bind: config.metrics_bind,
            audit_retention_days: config.audit_retention_days,
            limiter,
            clock,
        })
    }

    /// Serves on `listener` until the returned server is stopped (or gets
    /// SIGINT/SIGTERM: it then finishes in-flight requests for up to 30 s).
    /// Also starts the background work: the purge of expired revocations and
    /// the periodic flush of API-key usage counts. Call [`flush`](Self::flush)
    /// once the server has stopped so that no count is lost.
    ///
    /// # Errors
    /// [`StartError::Io`] when the listener cannot be used.
    pub fn serve(self, listener: TcpListener) -> Result<Server, StartError> {
        let state = AppState {
            services: self.services.clone(),
            health: Arc::clone(&self.stores.health),
            settings: self.http.clone(),
            metrics: Arc::clone(&self.metrics),
        };
        if let Some(address) = self.metrics_bind {
            let metrics_state = state.clone();
            let server = HttpServer::new(move || portcullis_http::metrics_app(metrics_state.clone()))
                .workers(1)
                .shutdown_timeout(1)
                .bind(address)
                .map_err(|e| {
                    StartError::config("AUTH_METRICS_BIND", format!("cannot listen on {address}: {e}"))
                })?
                .run();
            tokio::spawn(server);
            tracing::info!(address = %format!("http://{address}/metrics"), "metrics are served");
        }
        let workers = if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            self.workers
        };
        let server = HttpServer::new(move || portcullis_http::configure(state.clone()))
            .workers(workers)
            .shutdown_timeout(30)
            // Everything a client controls is bounded: time to send the head of
            // a request, time to close, idle keep-alive, connections per worker.
            .client_request_timeout(Duration::from_secs(5))
            .client_disconnect_timeout(Duration::from_secs(1))
            .keep_alive(Duration::from_secs(5))
            .max_connections(10_000)
            .listen(listener)
            .map_err(|e| StartError::Io(format!("cannot listen: {e}")))?
            .run();
        let api_keys = self.services.api_keys.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(FLUSH_USAGE_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = api_keys.flush_usage().await {
                    tracing::warn!(error = %e, "could not write API-key usage; kept for the next flush");
                }
            }
        });
        let passwords = self.services.passwords.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(DELIVER_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match passwords.deliver_due().await {
                    Ok(report) => {
                        if report.resets_issued > 0 || report.requests_dropped > 0 {
                            tracing::info!(
                                issued = report.resets_issued,
                                without_email = report.requests_dropped,
                                "password-reset requests answered"
                            );
                        }
                        for why in report.request_errors {
                            tracing::warn!(error = %why, "a password-reset request waits for a retry");
                        }
                        if report.sent > 0 || report.retried > 0 {
                            tracing::info!(sent = report.sent, retrying = report.retried, "outbox delivery");
                        }
                        for (id, why) in report.gave_up {
                            tracing::error!(message = %id, error = %why, "email given up after repeated failures");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "outbox unavailable; will retry"),
                }
            }
        });
        let (audit, retention) = (self.services.audit.clone(), self.audit_retention_days);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PRUNE_AUDIT_EVERY);
            loop {
                every.tick().await;
                match audit.prune(retention).await {
                    Ok(0) => {}
                    Ok(pruned) => {
                        tracing::info!(pruned, retention_days = retention, "pruned old audit events")
                    }
                    Err(e) => tracing::warn!(error = %e, "could not prune the audit log"),
                }
            }
        });
        let (limiter, clock) = (self.limiter, self.clock);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_LIMITS_EVERY);
            loop {
                every.tick().await;
                limiter.sweep(clock.now());
            }
        });
        let (sessions, oauth) = (self.services.sessions, self.services.oauth);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PURGE_EVERY);
            loop {
                every.tick().await;
                match sessions.purge_expired_revocations().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged expired token revocations"),
                    Err(e) => tracing::warn!(error = %e, "could not purge expired token revocations"),
                }
                match oauth.purge_spent_states().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged expired OAuth states"),
                    Err(e) => tracing::warn!(error = %e, "could not purge expired OAuth states"),
                }
            }
        });
        Ok(server)
    }
}

/// rustls's process-wide crypto provider (ring), needed before any TLS client
/// (SMTP, OAuth providers) is built. Idempotent.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The providers whose client id and secret are both set.
fn oauth_providers(
    config: &Config,
) -> Result<Vec<Arc<dyn portcullis_domain::ports::OAuthProvider>>, StartError> {
    use portcullis_oauth::{GithubProvider, LinkedinProvider, ProviderConfig};

    let timeout = Duration::from_secs(config.oauth_timeout_secs);
    let credentials = |id: &Option<String>, secret: &Option<String>, name: &'static str| match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok(Some((id.clone(), secret.clone())))
        }
        (None, None) => Ok(None),
        _ => Err(StartError::config(name, "set both the client id and the client secret, or neither")),
    };
    let mut providers: Vec<Arc<dyn portcullis_domain::ports::OAuthProvider>> = Vec::new();
    if let Some((client_id, client_secret)) =
        credentials(&config.github_client_id, &config.github_client_secret, "AUTH_GITHUB_CLIENT_SECRET")?
    {
        let github = GithubProvider::new(ProviderConfig {
            client_id,
            client_secret,
            authorize_url: config.github_authorize_url.clone(),
            token_url: config.github_token_url.clone(),
            api_url: config.github_api_url.clone(),
            timeout,
        })
        .map_err(StartError::Io)?;
        providers.push(Arc::new(github));
    }
    if let Some((client_id, client_secret)) = credentials(
        &config.linkedin_client_id,
        &config.linkedin_client_secret,
        "AUTH_LINKEDIN_CLIENT_SECRET",
    )? {
        let linkedin = LinkedinProvider::new(ProviderConfig {
            client_id,
            client_secret,
            authorize_url: config.linkedin_authorize_url.clone(),
            token_url: config.linkedin_token_url.clone(),
            api_url: config.linkedin_userinfo_url.clone(),
            timeout,
        })
        .map_err(StartError::Io)?;
        providers.push(Arc::new(linkedin));
    }
    Ok(providers)
}

/// Redis-backed limits (falling back to in-process ones) when `AUTH_REDIS_URL`
/// is set, else in-process ones.
async fn rate_limiter(config: &Config) -> Arc<FallbackRateLimiter> {
    match &config.redis_url {
        Some(url) => {
            let prefix = format!("{}rl:", config.redis_prefix);
            Arc::new(FallbackRateLimiter::connect(url, &prefix).await)
        }
        None => Arc::new(FallbackRateLimiter::local_only()),
    }
}

/// SMTP when `AUTH_SMTP_URL` is set, else the log (with bodies outside production only).
fn mailer(config: &Config) -> Result<Arc<dyn portcullis_domain::ports::Mailer>, StartError> {
    match &config.smtp_url {
        Some(url) => {
            let smtp = portcullis_mail::SmtpMailer::new(url, &config.mail_from)
                .map_err(|why| StartError::config("AUTH_SMTP_URL", why))?;
            Ok(Arc::new(smtp))
        }
        None => {
            let production = config.environment == Environment::Production;
            if production {
                tracing::warn!("AUTH_SMTP_URL is unset: password-reset emails cannot be delivered");
            }
            Ok(Arc::new(portcullis_mail::LogMailer::new(!production)))
        }
    }
}

/// Writes what is still buffered (API-key usage) after the server stopped.
pub async fn flush(services: &portcullis_domain::Services) {
    match services.api_keys.flush_usage().await {
        Ok(keys) => tracing::info!(keys, "API-key usage written"),
        Err(e) => tracing::error!(error = %e, "API-key usage could not be written at shutdown"),
    }
}

/// Runs a command of the CLI to completion.
///
/// # Errors
/// A [`StartError`] for the operator.
pub async fn run(cli: Cli) -> Result<(), StartError> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = App::build(&config, Arc::new(SystemClock)).await?;
            let services = app.services.clone();
            let listener = TcpListener::bind(config.bind).map_err(|e| {
                StartError::config("AUTH_BIND", format!("cannot listen on {}: {e}", config.bind))
            })?;
            tracing::info!(address = %format!("http://{}", config.bind), environment = ?config.environment, "Portcullis is serving");
            app.serve(listener)?.await.map_err(|e| StartError::Io(e.to_string()))?;
            flush(&services).await;
            tracing::info!("Portcullis stopped");
            Ok(())
        }
        Command::Migrate => {
            Stores::open(&config).await?;
            Ok(())
        }
        Command::CreateAdmin { email, password } => create_admin(&config, &email, password).await,
    }
}

async fn create_admin(config: &Config, email: &str, password: Option<String>) -> Result<(), StartError> {
    let app = App::build(config, Arc::new(SystemClock)).await?;
    let password = match password {
        Some(p) => Some(p),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            let exists = portcullis_domain::Email::parse(email)
                .ok()
                .map(|e| async move { app.stores.users.find_by_email(&e).await });
            let exists = match exists {
                Some(lookup) => lookup.await.map_err(|e| StartError::Database(e.to_string()))?.is_some(),
                None => false,
            };
            if exists {
                None
            } else {
                Some(
                    rpassword::prompt_password("Password for the new administrator: ")
                        .map_err(|e| StartError::Io(e.to_string()))?,
                )
            }
        }
        None => None,
    };
    let outcome = app.services.accounts.ensure_admin(email, password.map(Password::new)).await.map_err(
        |e| match e {
            portcullis_domain::DomainError::Validation { errors, .. } => StartError::Command(
                errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "),
            ),
            other => StartError::Command(other.to_string()),
        },
    )?;
    let what = match outcome {
        AdminOutcome::Created => "created administrator",
        AdminOutcome::Promoted => "promoted to administrator",
        AdminOutcome::AlreadyAdmin => "already an administrator",
    };
    tracing::info!(email, "{what}");
    #[allow(clippy::print_stdout)]
    {
        println!("{email}: {what}");
    }
    Ok(())
}
