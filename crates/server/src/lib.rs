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
mod jobs;
mod ops;
mod providers;
mod secret;
mod telemetry;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use actix_web::dev::Server;
use portcullis_broadcast::{Broadcast, Transport};
use portcullis_connect::PgTarget;
use portcullis_crypto::{Argon2Hasher, HashingConfig, HmacSigner, JwtCodec, OsSecrets, TotpCodes};
use portcullis_domain::ports::{Clock, StoreHealth, SystemClock};
use portcullis_domain::{
    Adapters, AdminOutcome, AuthSettings, Password, PasswordPolicy, Ports, Services, Store,
};
use portcullis_http::{AppState, HttpRequestContext, HttpSettings, Metrics};
use portcullis_ratelimit::FallbackRateLimiter;
use portcullis_store_postgres::PostgresStore;
use portcullis_store_sqlite::SqliteStore;

pub use config::{Cli, Command, Config, DatabaseUrl, Environment, LogFormat, Secret};
pub use error::StartError;
use jobs::Jobs;
pub use telemetry::{LogWriter, init_tracing};

/// How often expired revocations are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How often the outbox is checked for emails that are due.
const DELIVER_EVERY: Duration = Duration::from_secs(1);
/// How often counted API-key uses are written (and once more at shutdown).
const FLUSH_USAGE_EVERY: Duration = Duration::from_secs(5);
/// How often the in-process limiter forgets keys whose budget is whole again.
const SWEEP_LIMITS_EVERY: Duration = Duration::from_secs(5);
/// How often the signing keys are read again (a key another instance or the
/// CLI added is published within this), and the rotation schedule checked.
const REFRESH_KEYS_EVERY: Duration = Duration::from_secs(5);
/// How often audit events past their retention are deleted.
const PRUNE_AUDIT_EVERY: Duration = Duration::from_secs(3600);

/// Opens the database `DATABASE_URL` names and applies pending migrations.
///
/// # Errors
/// [`StartError::Database`] when it cannot be opened or migrated.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    let max = usize::from(config.database.db_max_connections);
    let database = |e: portcullis_domain::StoreError| StartError::Database(e.to_string());
    match &config.database.database_url {
        DatabaseUrl::Sqlite(path) => {
            let store = Arc::new(SqliteStore::open(path, max).map_err(database)?);
            let applied = store.migrate().await.map_err(database)?;
            tracing::info!(path = %path.display(), applied, "SQLite database ready");
            Ok(store)
        }
        DatabaseUrl::Postgres(url) => {
            let target = PgTarget::parse(url).map_err(StartError::Settings)?;
            tracing::info!(sslmode = target.mode().as_str(), "PostgreSQL connection settings");
            let store = Arc::new(PostgresStore::connect_to(target, max).map_err(database)?);
            let applied = store.migrate().await.map_err(database)?;
            tracing::info!(applied, "PostgreSQL database ready");
            Ok(store)
        }
    }
}
/// A wired application: the services over their adapters.
#[derive(Clone)]
pub struct App {
    pub services: Services,
    /// What tells the other instances about changes (with a cache and a
    /// transport), for its counts.
    pub broadcast: Option<Arc<Broadcast>>,
    /// The database, every port of it.
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    http: HttpSettings,
    workers: usize,
    metrics_bind: Option<std::net::SocketAddr>,
    audit_retention_days: u32,
    limiter: Arc<FallbackRateLimiter>,
    /// `AUTH_REDIS_REQUIRED`: readiness also needs Redis.
    redis_required: bool,
    clock: Arc<dyn Clock>,
}

/// What `/readyz` asks: the database, and Redis when `AUTH_REDIS_REQUIRED`.
struct Readiness {
    store: Arc<dyn Store>,
    redis: Option<Arc<FallbackRateLimiter>>,
}

#[async_trait::async_trait]
impl StoreHealth for Readiness {
    async fn ping(&self) -> Result<(), portcullis_domain::StoreError> {
        self.store.ping().await?;
        if let Some(limiter) = &self.redis {
            limiter
                .ping()
                .await
                .map_err(|why| portcullis_domain::StoreError::Unavailable(format!("Redis: {why}")))?;
        }
        Ok(())
    }

    fn pool_usage(&self) -> Option<portcullis_domain::ports::PoolUsage> {
        self.store.pool_usage()
    }
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
        let signing = secret::signing(config)?;
        let store = open_store(config).await?;
        let settings = AuthSettings {
            issuer: config.tokens.issuer.clone(),
            audience: config.tokens.jwt_audience.0.clone(),
            key_publish_secs: config.tokens.key_publish_secs,
            key_rotation_days: config.tokens.key_rotation_days,
            token_ttl_secs: config.tokens.token_ttl_secs,
            api_key_default_days: config.tokens.api_key_default_days,
            session_max_age_secs: config.tokens.session_max_age_secs,
            session_idle_secs: config.tokens.session_idle_secs,
            refresh_reuse_grace_secs: config.tokens.refresh_reuse_grace_secs,
            password_reset_url: config.password_reset_url(),
            email_verify_url: config.email_verify_url(),
            require_verified_email: config.mail.require_verified_email,
            oauth_require_state: config.oauth_require_state(),
            rate_limits: config.limits.rate_limits.clone(),
            password_policy: match config.passwords.password_rules {
                config::PasswordRulesArg::Composition => PasswordPolicy::default(),
                config::PasswordRulesArg::Nist => PasswordPolicy::nist(),
            },
            ..AuthSettings::default()
        };
        let defaults = HashingConfig::default();
        let threads =
            if config.passwords.hash_threads == 0 { defaults.threads } else { config.passwords.hash_threads };
        let queue = if config.passwords.hash_queue == 0 { threads * 64 } else { config.passwords.hash_queue };
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
        // One Redis client (and one reading of its CA file) for the limiter
        // and the broadcast alike.
        let redis = redis_client(config)?;
        let limiter = rate_limiter(config, redis.clone()).await;
        let held = Arc::downgrade(&limiter);
        metrics.watch_limiter(Arc::new(move || held.upgrade().map_or(0, |l| l.local_keys())));
        metrics.watch_log_drops(Arc::new(telemetry::dropped_log_lines));
        let adapters = Adapters {
            mailer: mailer(config)?,
            oauth_providers: providers::oauth_providers(&config.providers)?,
            signer: Arc::new(HmacSigner::derive(&signing.state_secret, "portcullis oauth state")),
            rate_limiter: Arc::clone(&limiter) as Arc<dyn portcullis_domain::ports::RateLimiter>,
            hasher,
            blocklist: Arc::new(portcullis_crypto::CommonPasswords),
            tokens: Arc::new(token_codec(&signing, &settings)),
            one_time_codes: Arc::new(TotpCodes::new(&signing.totp_keys())),
            clock: Arc::clone(&clock),
            secrets: Arc::new(OsSecrets),
            context: Arc::new(HttpRequestContext),
            changes: Arc::new(portcullis_domain::ports::NoCopies),
            // Audit events are counted for the metrics once stored.
            observer: Arc::clone(&metrics) as Arc<dyn portcullis_domain::ports::AuditObserver>,
        };
        let ports = Ports::from_store(Arc::clone(&store), adapters);
        // The authentication reads, kept for AUTH_CACHE_TTL_MS; writes through these ports forget what they touch.
        let portcullis_cache::Shared { mut ports, forgets, sizes } =
            portcullis_cache::wrap_shared(ports, config.cache.cache_ttl_ms);
        if let Some(sizes) = sizes {
            metrics.watch_cache(Arc::new(move || sizes.entries().to_vec()));
        }
        // ...and tell the other instances, whose caches forget it too.
        let broadcast = match (forgets, broadcast_transport(config, redis)?) {
            (Some(forgets), Some(transport)) => {
                tracing::info!(transport = ?transport, "cache invalidations are broadcast to the other instances");
                let broadcast =
                    Arc::new(Broadcast::start(transport, Arc::clone(&ports.adapters.changes), forgets));
                ports.adapters.changes =
                    Arc::clone(&broadcast) as Arc<dyn portcullis_domain::ports::ChangeFeed>;
                Some(broadcast)
            }
            _ => None,
        };
        let http = HttpSettings {
            test_endpoints: config.server.environment != Environment::Production,
            trusted_proxies: config.server.trusted_proxies.clone(),
            cors_origins: config.server.cors_origins.0.clone(),
            metrics_on_main: config.server.metrics_bind.is_none(),
            hsts: config.public_url().starts_with("https://"),
            public_url: config.public_url(),
            issuer: settings.issuer.clone(),
            ..HttpSettings::default()
        };
        let services = Services::new(ports, settings);
        services.signing_keys.ensure().await.map_err(key_error)?;
        Ok(Self {
            services,
            broadcast,
            store,
            metrics,
            http,
            workers: config.server.workers,
            metrics_bind: config.server.metrics_bind,
            audit_retention_days: config.audit.audit_retention_days,
            limiter,
            redis_required: config.limits.redis_required,
            clock,
        })
    }

    /// Starts serving on `listener`, and the background jobs (see
    /// [`Serving::jobs`]). Nothing is served until the returned value is
    /// [run](Serving::run).
    ///
    /// # Errors
    /// [`StartError::Io`] when the listener cannot be used;
    /// [`StartError::Config`] when the metrics address cannot be bound.
    pub fn serve(self, listener: TcpListener) -> Result<Serving, StartError> {
        let state = AppState {
            services: self.services.clone(),
            health: Arc::new(Readiness {
                store: Arc::clone(&self.store),
                redis: self.redis_required.then(|| Arc::clone(&self.limiter)),
            }),
            settings: self.http.clone(),
            metrics: Arc::clone(&self.metrics),
        };
        let metrics_server = match self.metrics_bind {
            Some(address) => {
                let metrics_state = state.clone();
                let server = HttpServer::new(move || portcullis_http::metrics_app(metrics_state.clone()))
                    .workers(1)
                    .shutdown_timeout(1)
                    .bind(address)
                    .map_err(|e| {
                        StartError::config("AUTH_METRICS_BIND", format!("cannot listen on {address}: {e}"))
                    })?
                    .disable_signals()
                    .run();
                tracing::info!(address = %format!("http://{address}/metrics"), "metrics are served");
                Some(server)
            }
            None => None,
        };
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
        let jobs = self.start_jobs();
        Ok(Serving { server, metrics_server, jobs, services: self.services })
    }

    fn start_jobs(&self) -> Jobs {
        let mut jobs = Jobs::new();
        let api_keys = self.services.api_keys.clone();
        jobs.every("usage-flush", FLUSH_USAGE_EVERY, move || {
            let api_keys = api_keys.clone();
            async move {
                if let Err(e) = api_keys.flush_usage().await {
                    tracing::warn!(error = %e, "could not write API-key usage; kept for the next flush");
                }
                let unrecorded = api_keys.unrecorded_sightings();
                if unrecorded > 0 {
                    tracing::warn!(
                        uses = unrecorded,
                        "API keys were used from new addresses faster than their events could be written; \
                         each is noted again at the key's next use from that address"
                    );
                }
            }
        });
        let passwords = self.services.passwords.clone();
        jobs.every("outbox", DELIVER_EVERY, move || {
            let passwords = passwords.clone();
            async move { deliver(&passwords).await }
        });
        let (audit, retention) = (self.services.audit.clone(), self.audit_retention_days);
        jobs.every("audit-prune", PRUNE_AUDIT_EVERY, move || {
            let audit = audit.clone();
            async move {
                match prune_paced(&audit, retention).await {
                    Ok(0) => {}
                    Ok(pruned) => {
                        tracing::info!(pruned, retention_days = retention, "pruned old audit events")
                    }
                    Err(e) => tracing::warn!(error = %e, "could not prune the audit log"),
                }
            }
        });
        let (limiter, clock) = (Arc::clone(&self.limiter), Arc::clone(&self.clock));
        jobs.every("limiter-sweep", SWEEP_LIMITS_EVERY, move || {
            limiter.sweep(clock.now());
            std::future::ready(())
        });
        let keys = self.services.signing_keys.clone();
        jobs.every("signing-keys", REFRESH_KEYS_EVERY, move || {
            let keys = keys.clone();
            async move {
                match keys.refresh().await {
                    Ok(None) => {}
                    Ok(Some(kid)) => tracing::info!(kid, "added the next signing key (AUTH_KEY_ROTATION_DAYS)"),
                    Err(e) => tracing::warn!(error = %e, "could not refresh the signing keys; keeping the ones loaded"),
                }
            }
        });
        let (sessions, oauth, mfa) =
            (self.services.sessions.clone(), self.services.oauth.clone(), self.services.mfa.clone());
        jobs.every("revocation-purge", PURGE_EVERY, move || {
            let (sessions, oauth, mfa) = (sessions.clone(), oauth.clone(), mfa.clone());
            async move {
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
                match sessions.purge_sessions().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged ended and expired sessions"),
                    Err(e) => tracing::warn!(error = %e, "could not purge ended and expired sessions"),
                }
                match mfa.purge_challenges().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged expired second-factor sign-ins"),
                    Err(e) => tracing::warn!(error = %e, "could not purge expired second-factor sign-ins"),
                }
            }
        });
        jobs
    }
}

/// The codec for the configured algorithm and keys.
fn token_codec(signing: &secret::Signing, settings: &AuthSettings) -> JwtCodec {
    let mut codec = JwtCodec::with_algorithm(signing.algorithm, &settings.issuer)
        .for_audiences(settings.audience.clone());
    if let Some(kek) = &signing.kek {
        codec = codec.with_key_encryption(kek.clone());
    }
    for secret in &signing.secrets {
        codec = codec.also_accepting(secret);
    }
    codec
}

/// A signing-key failure at start, for the operator: a key that does not
/// decrypt names the variable; anything else is the database's.
fn key_error(error: portcullis_domain::DomainError) -> StartError {
    let message = error.to_string();
    if message.contains("AUTH_KEY_ENCRYPTION_KEY") {
        StartError::config(
            "AUTH_KEY_ENCRYPTION_KEY",
            format!("{message}. No key was replaced: start with the key the signing keys were stored under"),
        )
    } else {
        StartError::Database(format!("signing keys: {message}"))
    }
}

/// How long one prune batch may hold the database's writer: a batch slower
/// than this halves the next one, one under a quarter of it doubles it (up
/// to 1 000 events). A batch's time varies: on SQLite with 10 million
/// events, sized for 20 ms, one in thirty held the other writers 20-54 ms
/// (a page of the by-user index to read and dirty per event, on a machine
/// whose two cores the load shares); sized for 10 ms, the slowest stay
/// well under the 50 ms that a write may wait behind the prune.
const PRUNE_BATCH_TARGET: Duration = Duration::from_millis(10);
const PRUNE_BATCH_MIN: u32 = 50;
const PRUNE_BATCH_MAX: u32 = 1_000;
/// The first batch, before the prune has timed one: a cold cache makes it
/// the slowest.
const PRUNE_BATCH_FIRST: u32 = 250;
/// After each batch the prune rests this many times as long as it took.
const PRUNE_REST_FACTOR: u32 = 3;
/// The most events the prune deletes a second.
const PRUNE_EVENTS_PER_SEC: u32 = 5_000;

/// The pace of the audit prune: the size of the next batch, and the rest
/// after each. Batches are sized to hold the writer about
/// [`PRUNE_BATCH_TARGET`] at most; after each the prune rests three times as
/// long as the batch took, and never deletes more than
/// [`PRUNE_EVENTS_PER_SEC`]: other writers get three quarters of the time at
/// least, and the write-ahead log grows slowly enough for SQLite's
/// background checkpoints to keep up (deleting an event dirties about a page
/// of the by-user index: at full speed a 10-million-event backlog wrote
/// 180 MB of WAL a second, and each restart of the log then held writers
/// 130 ms). A cold cache or a large index makes batches slower; the size
/// follows. The usual hourly run deletes an hour's events in a second; a
/// backlog of ten million (a lowered retention) takes about half an hour.
#[derive(Debug)]
struct PrunePace {
    limit: u32,
}

impl PrunePace {
    fn new() -> Self {
        Self { limit: PRUNE_BATCH_FIRST }
    }

    /// After a full batch (of `self.limit` events) that held the writer
    /// `took`: sizes the next one, and says how long to rest first.
    fn after(&mut self, took: Duration) -> Duration {
        let deleted = self.limit;
        if took > PRUNE_BATCH_TARGET {
            self.limit = (self.limit / 2).max(PRUNE_BATCH_MIN);
        } else if took < PRUNE_BATCH_TARGET / 4 {
            self.limit = (self.limit * 2).min(PRUNE_BATCH_MAX);
        }
        // The batch just deleted, not the next, sets the time it must fill
        // at the capped rate.
        let budget = Duration::from_secs(1) * deleted / PRUNE_EVENTS_PER_SEC;
        (took * PRUNE_REST_FACTOR).max(budget.saturating_sub(took))
    }
}

/// Prunes the audit log a batch at a time, at the [`PrunePace`].
async fn prune_paced(
    audit: &portcullis_domain::AuditService,
    retention_days: u32,
) -> Result<u64, portcullis_domain::DomainError> {
    let (mut total, mut pace) = (0, PrunePace::new());
    loop {
        let (started, limit) = (std::time::Instant::now(), pace.limit);
        let deleted = audit.prune_batch(retention_days, limit).await?;
        let took = started.elapsed();
        tracing::debug!(
            target: "portcullis::audit_prune",
            events = deleted,
            limit,
            took_ms = took.as_secs_f64() * 1e3,
            "audit prune batch"
        );
        total += deleted;
        if deleted < u64::from(limit) {
            return Ok(total);
        }
        tokio::time::sleep(pace.after(took)).await;
    }
}

/// One round of the outbox: reset requests answered, emails sent.
async fn deliver(passwords: &portcullis_domain::PasswordService) {
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

/// A server that is serving, with its background jobs.
#[must_use = "nothing is served until it is run"]
pub struct Serving {
    server: Server,
    metrics_server: Option<Server>,
    jobs: Jobs,
    services: Services,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving").field("jobs", &self.jobs.names()).finish_non_exhaustive()
    }
}

impl Serving {
    /// Stops the server from elsewhere (a test, say) as SIGTERM would.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The background jobs, by name: `usage-flush`, `outbox`,
    /// `audit-prune`, `limiter-sweep`, `signing-keys` and `revocation-purge`.
    #[must_use]
    pub fn jobs(&self) -> Vec<&'static str> {
        self.jobs.names()
    }

    /// Serves until the server is stopped (SIGINT or SIGTERM, or
    /// [`handle`](Self::handle)); in-flight requests get up to 30 s. Then the
    /// one shutdown path: the metrics listener closes, each background job
    /// finishes its round and stops, and the counted API-key uses are
    /// written, so none is lost.
    ///
    /// # Errors
    /// [`StartError::Io`] when the server fails.
    pub async fn run(self) -> Result<(), StartError> {
        let Self { server, metrics_server, jobs, services } = self;
        let metrics = metrics_server.map(|m| (m.handle(), tokio::spawn(m)));
        let served = server.await.map_err(|e| StartError::Io(e.to_string()));
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        jobs.stop().await;
        flush(&services).await;
        served
    }
}

/// rustls's process-wide crypto provider (ring), needed before any TLS client
/// (SMTP, OAuth providers) is built. Idempotent.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where cache invalidations travel: Redis when `AUTH_REDIS_URL` is set, else
/// PostgreSQL's LISTEN/NOTIFY on PostgreSQL, else nowhere (SQLite is one
/// instance by design).
fn broadcast_transport(
    config: &Config,
    redis: Option<redis::Client>,
) -> Result<Option<Transport>, StartError> {
    let channel = format!("{}changes", config.limits.redis_prefix);
    Ok(match (redis, &config.database.database_url) {
        (Some(client), _) => Some(Transport::Redis { client: Box::new(client), channel }),
        (None, DatabaseUrl::Postgres(url)) => {
            let target = Arc::new(PgTarget::parse(url).map_err(StartError::Settings)?);
            Some(Transport::Postgres { target, channel: "portcullis_changes".to_owned() })
        }
        (None, DatabaseUrl::Sqlite(_)) => None,
    })
}

/// A client for `AUTH_REDIS_URL` (TLS with `rediss://`, trusting
/// `AUTH_REDIS_CA_FILE` when set), or `None` without Redis.
///
/// # Errors
/// A URL the client refuses, or a CA file that cannot serve, named.
fn redis_client(config: &Config) -> Result<Option<redis::Client>, StartError> {
    let limits = &config.limits;
    match (&limits.redis_url, &limits.redis_ca_file) {
        (None, Some(_)) => Err(StartError::Settings(
            "AUTH_REDIS_CA_FILE is set but AUTH_REDIS_URL is not: set both, or neither".to_owned(),
        )),
        (None, None) => Ok(None),
        (Some(url), ca) => portcullis_connect::redis_client(url.expose(), ca.as_deref())
            .map(Some)
            .map_err(StartError::Settings),
    }
}

/// Redis-backed limits (falling back to in-process ones) when `AUTH_REDIS_URL`
/// is set, else in-process ones.
async fn rate_limiter(config: &Config, redis: Option<redis::Client>) -> Arc<FallbackRateLimiter> {
    match redis {
        Some(client) => {
            let prefix = format!("{}rl:", config.limits.redis_prefix);
            Arc::new(FallbackRateLimiter::connect(client, &prefix).await)
        }
        None => Arc::new(FallbackRateLimiter::local_only()),
    }
}

/// SMTP when `AUTH_SMTP_URL` is set, else the log (with bodies outside production only).
fn mailer(config: &Config) -> Result<Arc<dyn portcullis_domain::ports::Mailer>, StartError> {
    match &config.mail.smtp_url {
        Some(url) => {
            let smtp = portcullis_mail::SmtpMailer::new(url.expose(), &config.mail.mail_from)
                .map_err(|why| StartError::config("AUTH_SMTP_URL", why))?;
            Ok(Arc::new(smtp))
        }
        None => {
            let production = config.server.environment == Environment::Production;
            if production {
                tracing::warn!("AUTH_SMTP_URL is unset: password-reset emails cannot be delivered");
            }
            Ok(Arc::new(portcullis_mail::LogMailer::new(!production)))
        }
    }
}

/// Writes what is still buffered (API-key usage) after the server stopped.
async fn flush(services: &portcullis_domain::Services) {
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
            let listener = TcpListener::bind(config.server.bind).map_err(|e| {
                StartError::config("AUTH_BIND", format!("cannot listen on {}: {e}", config.server.bind))
            })?;
            tracing::info!(address = %format!("http://{}", config.server.bind), environment = ?config.server.environment, "Portcullis is serving");
            app.serve(listener)?.run().await?;
            tracing::info!("Portcullis stopped");
            Ok(())
        }
        Command::Migrate => {
            open_store(&config).await?;
            Ok(())
        }
        Command::Healthcheck { timeout } => ops::healthcheck(&config, Duration::from_secs(timeout)),
        Command::Backup { to } => say(&ops::backup(&config, to).await?),
        Command::Restore { from } => say(&ops::restore(&config, from).await?),
        Command::Completions { shell } => ops::completions(shell),
        Command::CreateAdmin { email, password } => create_admin(&config, &email, password).await,
        Command::Keys { action } => keys(&config, action).await,
    }
}

/// `portcullis keys list|rotate`.
async fn keys(config: &Config, action: config::KeysCommand) -> Result<(), StartError> {
    let app = App::build(config, Arc::new(SystemClock)).await?;
    let keys = &app.services.signing_keys;
    let fail = |e: portcullis_domain::DomainError| StartError::Command(e.to_string());
    let date = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string())
    };
    let mut out = String::new();
    match action {
        config::KeysCommand::List => {
            let listed = keys.list().await.map_err(fail)?;
            out.push_str(&format!("signing with {}\n", keys.algorithm()));
            if listed.is_empty() {
                out.push_str("no stored keys\n");
            }
            for status in listed {
                let key = &status.key;
                let mut line = format!(
                    "{kid}  {alg:<5}  {state:<7}  created {created}  current from {active}",
                    kid = key.kid,
                    alg = key.algorithm.as_str(),
                    state = status.state.as_str(),
                    created = date(key.created_at),
                    active = date(key.activates_at),
                );
                if let Some(retired) = status.retired_at {
                    line.push_str(&format!("  retired {}", date(retired)));
                }
                if let Some(until) = status.published_until {
                    line.push_str(&format!("  published until {}", date(until)));
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        config::KeysCommand::Rotate => match keys.rotate().await.map_err(fail)? {
            portcullis_domain::Rotation::Added(status) => out.push_str(&format!(
                "added {} ({}): published now, signing from {}\n",
                status.key.kid,
                status.key.algorithm,
                date(status.key.activates_at)
            )),
            portcullis_domain::Rotation::AlreadyPending(status) => out.push_str(&format!(
                "{} ({}) is already waiting to sign from {}; nothing added\n",
                status.key.kid,
                status.key.algorithm,
                date(status.key.activates_at)
            )),
        },
    }
    #[allow(clippy::print_stdout)]
    {
        print!("{out}");
    }
    Ok(())
}

/// A command's result on stdout.
#[allow(clippy::print_stdout, clippy::unnecessary_wraps)]
fn say(text: &str) -> Result<(), StartError> {
    print!("{text}");
    Ok(())
}

async fn create_admin(config: &Config, email: &str, password: Option<String>) -> Result<(), StartError> {
    let app = App::build(config, Arc::new(SystemClock)).await?;
    let password = match password {
        Some(p) => Some(p),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            let exists = portcullis_domain::Email::parse(email)
                .ok()
                .map(|e| async move { app.store.find_by_email(&e).await });
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use async_trait::async_trait;
    use portcullis_domain::ports::{AuditLog, SystemClock};
    use portcullis_domain::{AuditEvent, AuditQuery, AuditService, StoreError};
    use time::OffsetDateTime;

    use super::{
        PRUNE_BATCH_FIRST, PRUNE_BATCH_MAX, PRUNE_BATCH_MIN, PRUNE_EVENTS_PER_SEC, PrunePace, prune_paced,
    };

    #[test]
    fn slow_batches_halve_fast_ones_double_and_the_rest_follows() {
        let mut pace = PrunePace::new();
        assert_eq!(pace.limit, PRUNE_BATCH_FIRST);
        // 250 events in 1 ms: double, and the rate cap (250 at 5 000/s is 50 ms) sets the rest.
        assert_eq!(pace.after(Duration::from_millis(1)), Duration::from_millis(49));
        assert_eq!(pace.limit, 500);
        pace.after(Duration::from_millis(2));
        assert_eq!(pace.limit, PRUNE_BATCH_MAX);
        // 1 000 events in 60 ms: the next batch is half, after 180 ms.
        assert_eq!(pace.after(Duration::from_millis(60)), Duration::from_millis(180));
        assert_eq!(pace.limit, 500);
        // 500 in 8 ms: right; the rate cap (500 at 5 000/s is 100 ms) sets the rest.
        assert_eq!(pace.after(Duration::from_millis(8)), Duration::from_millis(92));
        assert_eq!(pace.limit, 500);
        // 500 in 2 ms: double, but the rest still keeps 500 events to 100 ms.
        assert_eq!(pace.after(Duration::from_millis(2)), Duration::from_millis(98));
        assert_eq!(pace.limit, PRUNE_BATCH_MAX);
        pace.after(Duration::from_millis(2));
        assert_eq!(pace.limit, PRUNE_BATCH_MAX, "never above the ceiling");
        for _ in 0..10 {
            pace.after(Duration::from_secs(1));
        }
        assert_eq!(pace.limit, PRUNE_BATCH_MIN, "never below the floor");
    }

    /// An audit log whose prune takes `per_event` for each event it deletes
    /// (an index that makes each delete cost), and records each batch.
    struct SlowLog {
        backlog: Mutex<u64>,
        per_event: Duration,
        batches: Mutex<Vec<(u32, Instant, Instant)>>,
    }

    #[async_trait]
    impl AuditLog for SlowLog {
        async fn append(&self, _: AuditEvent) -> Result<(), StoreError> {
            Ok(())
        }

        async fn list_events(&self, _: AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
            Ok(Vec::new())
        }

        async fn prune_events(&self, _: OffsetDateTime, limit: u32) -> Result<u64, StoreError> {
            let started = Instant::now();
            let deleted = {
                let mut backlog = self.backlog.lock().unwrap();
                let deleted = (*backlog).min(u64::from(limit));
                *backlog -= deleted;
                deleted
            };
            tokio::time::sleep(self.per_event * u32::try_from(deleted).unwrap()).await;
            self.batches.lock().unwrap().push((limit, started, Instant::now()));
            Ok(deleted)
        }
    }

    async fn prune(backlog: u64, per_event: Duration) -> (Arc<SlowLog>, Duration) {
        let log = Arc::new(SlowLog { backlog: Mutex::new(backlog), per_event, batches: Mutex::default() });
        let audit = AuditService::new(Arc::clone(&log) as Arc<dyn AuditLog>, Arc::new(SystemClock));
        let started = Instant::now();
        assert_eq!(prune_paced(&audit, 30).await.unwrap(), backlog);
        (log, started.elapsed())
    }

    #[tokio::test]
    async fn a_slow_store_gets_smaller_batches_and_three_quarters_of_the_time() {
        // 100 µs an event: the first batch holds the writer 25 ms.
        let (log, elapsed) = prune(2_000, Duration::from_micros(100)).await;
        let batches = log.batches.lock().unwrap();
        let sizes: Vec<u32> = batches.iter().map(|b| b.0).collect();
        assert_eq!(sizes[..2], [250, 125], "halved while slower than the target: {sizes:?}");
        assert!(sizes[1..].iter().all(|s| (PRUNE_BATCH_MIN..=125).contains(s)), "{sizes:?}");
        let held: Duration = batches.iter().map(|(_, from, to)| *to - *from).sum();
        assert!(held * 4 <= elapsed + Duration::from_millis(5), "held {held:?} of {elapsed:?}");
        // Rests come between batches, each at least three times the one before.
        for pair in batches.windows(2) {
            let (took, rest) = (pair[0].2 - pair[0].1, pair[1].1 - pair[0].2);
            assert!(rest >= took * 3, "{took:?} then a rest of {rest:?}");
        }
    }

    #[tokio::test]
    async fn a_fast_store_is_pruned_at_the_capped_rate() {
        let (log, elapsed) = prune(3_000, Duration::ZERO).await;
        let sizes: Vec<u32> = log.batches.lock().unwrap().iter().map(|b| b.0).collect();
        assert_eq!(
            sizes,
            [250, 500, 1_000, 1_000, 1_000],
            "growing to full batches; the last finds 250 left"
        );
        // Every batch but the last followed by its share of a second.
        let floor = Duration::from_secs(2_750) / PRUNE_EVENTS_PER_SEC;
        assert!(elapsed >= floor, "3 000 events in {elapsed:?}: faster than {PRUNE_EVENTS_PER_SEC}/s");
    }
}
