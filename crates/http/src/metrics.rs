//! Prometheus metrics: what the service counts, and `/metrics`.
//!
//! Counters move as things happen (requests, audit events, key checks);
//! gauges that describe a state (hashing queue, database pool, outbox) are
//! read when scraped.

use std::sync::Arc;
use std::time::Duration;

use portcullis_domain::ports::AuditObserver;
use portcullis_domain::{AuditEvent, AuditKind};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to ~13 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.5, 14))
}

/// Reads the length of the hashing queue when scraped.
pub type QueueDepth = Arc<dyn Fn() -> usize + Send + Sync>;

/// Reads how many keys the in-process rate limiter holds when scraped.
pub type LimiterKeys = Arc<dyn Fn() -> usize + Send + Sync>;

/// Reads how many entries the auth cache holds, by kind, when scraped.
pub type CacheEntries = Arc<dyn Fn() -> Vec<(&'static str, usize)> + Send + Sync>;

/// Reads a count kept elsewhere (it only grows) when scraped.
pub type CountReading = Arc<dyn Fn() -> u64 + Send + Sync>;

/// One value another component keeps (a queue's length, a count), read
/// when scraped, as a gauge or a counter: 0 until its reading is set.
#[derive(Clone)]
struct Reading {
    kind: prometheus_client::metrics::MetricType,
    read: Arc<std::sync::OnceLock<CountReading>>,
}

impl Reading {
    fn gauge() -> Self {
        Self { kind: prometheus_client::metrics::MetricType::Gauge, read: Arc::default() }
    }

    fn counter() -> Self {
        Self { kind: prometheus_client::metrics::MetricType::Counter, read: Arc::default() }
    }

    /// Sets the reading (once; later calls are ignored).
    fn watch(&self, read: CountReading) {
        let _ = self.read.set(read);
    }
}

impl std::fmt::Debug for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reading").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl prometheus_client::encoding::EncodeMetric for Reading {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder) -> Result<(), std::fmt::Error> {
        let value = self.read.get().map_or(0, |read| read());
        match self.kind {
            prometheus_client::metrics::MetricType::Counter => {
                encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&value, None)
            }
            _ => encoder.encode_gauge(&value),
        }
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        self.kind
    }
}

/// A reading of a `usize` (a length), as the metrics read it.
fn widened(read: Arc<dyn Fn() -> usize + Send + Sync>) -> CountReading {
    Arc::new(move || u64::try_from(read()).unwrap_or(u64::MAX))
}

/// Every metric of one process.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    rate_limited: Family<RouteLabels, Counter>,
    logins: Family<OutcomeLabels, Counter>,
    audit_events: Family<TypeLabels, Counter>,
    tokens_issued: Counter,
    tokens_revoked: Counter,
    api_key_auth: Family<OutcomeLabels, Counter>,
    hash_wait: Histogram,
    hash_queue: Reading,
    db_pool: Family<StateLabels, Gauge>,
    outbox_backlog: Gauge,
    limiter_keys: Reading,
    cache_entries: Family<KindLabels, Gauge>,
    log_lines_dropped: Reading,
    cache_reading: std::sync::OnceLock<CacheEntries>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Reads the hashing queue's length at each scrape (set once; later calls are ignored).
    pub fn watch_hash_queue(&self, depth: QueueDepth) {
        self.hash_queue.watch(widened(depth));
    }

    /// Reads the in-process limiter's key count at each scrape (set once).
    pub fn watch_limiter(&self, keys: LimiterKeys) {
        self.limiter_keys.watch(widened(keys));
    }

    /// Reads the auth cache's entries at each scrape (set once).
    pub fn watch_cache(&self, entries: CacheEntries) {
        let _ = self.cache_reading.set(entries);
    }

    /// Reads how many log lines the log writer dropped, at each scrape (set once).
    pub fn watch_log_drops(&self, dropped: CountReading) {
        self.log_lines_dropped.watch(dropped);
    }
}

impl Default for Metrics {
    /// A fresh registry.
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        let rate_limited = Family::<RouteLabels, Counter>::default();
        let logins = Family::<OutcomeLabels, Counter>::default();
        let audit_events = Family::<TypeLabels, Counter>::default();
        let tokens_issued = Counter::default();
        let tokens_revoked = Counter::default();
        let api_key_auth = Family::<OutcomeLabels, Counter>::default();
        let hash_wait = latency_histogram();
        let hash_queue = Reading::gauge();
        let db_pool = Family::<StateLabels, Gauge>::default();
        let outbox_backlog = Gauge::default();
        let limiter_keys = Reading::gauge();
        let cache_entries = Family::<KindLabels, Gauge>::default();
        let log_lines_dropped = Reading::counter();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by method and route template",
            latency.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429, by route template",
            rate_limited.clone(),
        );
        registry.register(
            "logins",
            "Password logins by outcome: success, bad_password, unknown_email, no_password, locked, disabled",
            logins.clone(),
        );
        registry.register("audit_events", "Security events written, by type", audit_events.clone());
        registry.register("tokens_issued", "Access tokens issued", tokens_issued.clone());
        registry.register(
            "tokens_revoked",
            "Access tokens revoked (logout, refresh)",
            tokens_revoked.clone(),
        );
        registry.register(
            "api_key_authentications",
            "Requests authenticated with X-API-Key, by outcome (success or the error code)",
            api_key_auth.clone(),
        );
        registry.register(
            "hash_queue_wait_seconds",
            "Time an argon2 job waited for a hashing thread",
            hash_wait.clone(),
        );
        registry.register("hash_queue_depth", "argon2 jobs waiting for a hashing thread", hash_queue.clone());
        registry.register(
            "db_pool_connections",
            "Database pool: max, open, idle connections and waiting callers",
            db_pool.clone(),
        );
        registry.register("outbox_backlog", "Emails waiting to be sent", outbox_backlog.clone());
        registry.register(
            "rate_limiter_keys",
            "Keys held by the in-process rate limiter (with Redis: those counted while Redis was unreachable)",
            limiter_keys.clone(),
        );
        registry.register(
            "cache_entries",
            "Entries held by the auth cache, by kind: sessions, api_keys, projects",
            cache_entries.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because stderr was not read fast enough (the log writer's queue was full)",
            log_lines_dropped.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            rate_limited,
            logins,
            audit_events,
            tokens_issued,
            tokens_revoked,
            api_key_auth,
            hash_wait,
            hash_queue,
            db_pool,
            outbox_backlog,
            limiter_keys,
            cache_entries,
            log_lines_dropped,
            cache_reading: std::sync::OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let (method, route) = (method.to_owned(), route.to_owned());
        self.requests
            .get_or_create(&RequestLabels { method: method.clone(), route: route.clone(), status })
            .inc();
        let labels = RouteLabels { method, route };
        self.latency.get_or_create(&labels).observe(took.as_secs_f64());
        if status == 429 {
            self.rate_limited.get_or_create(&labels).inc();
        }
    }

    /// Counts one `X-API-Key` check: `success` or the error code.
    pub fn observe_api_key(&self, outcome: &str) {
        self.api_key_auth.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
    }

    /// Records how long an argon2 job queued.
    pub fn observe_hash_wait(&self, waited: Duration) {
        self.hash_wait.observe(waited.as_secs_f64());
    }

    /// Counts an audit event once stored: logins by outcome, tokens issued
    /// and revoked, events by type.
    fn observe_event(&self, event: &AuditEvent) {
        self.audit_events.get_or_create(&TypeLabels { r#type: event.kind.as_str().to_owned() }).inc();
        let outcome = match event.kind {
            AuditKind::LoginSucceeded => Some("success"),
            AuditKind::LoginFailed => Some(event.detail.as_deref().unwrap_or("failed")),
            _ => None,
        };
        if let Some(outcome) = outcome {
            self.logins.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
        }
        if event.kind.issues_token() {
            self.tokens_issued.inc();
        }
        if matches!(event.kind, AuditKind::Logout | AuditKind::TokenRefreshed) {
            self.tokens_revoked.inc();
        }
    }

    /// Sets the gauges read at scrape time.
    pub(crate) fn sample(&self, pool: Option<portcullis_domain::ports::PoolUsage>, backlog: Option<u64>) {
        if let Some(pool) = pool {
            for (state, value) in
                [("max", pool.max), ("open", pool.open), ("idle", pool.idle), ("waiting", pool.waiting)]
            {
                self.db_pool
                    .get_or_create(&StateLabels { state })
                    .set(i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
        if let Some(backlog) = backlog {
            self.outbox_backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
        }
        if let Some(entries) = self.cache_reading.get() {
            for (kind, count) in entries() {
                self.cache_entries
                    .get_or_create(&KindLabels { kind })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
    }

    /// The text exposition format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl AuditObserver for Metrics {
    fn written(&self, event: &AuditEvent) {
        self.observe_event(event);
    }
}
