//! Ready-made ports for tests of services and of the HTTP layer.

use std::sync::Arc;

use portcullis_crypto::{Argon2Hasher, HashingConfig, HmacSigner, JwtCodec, JwtSecret, OsSecrets};
use portcullis_domain::ports::{Clock, PasswordHasher};
use portcullis_domain::{Adapters, Ports};
use portcullis_mail::LogMailer;
use portcullis_store_memory::MemoryStore;

/// argon2id with tiny parameters: tests are about rules, not cost.
///
/// # Panics
/// Never with these parameters.
#[must_use]
#[allow(clippy::expect_used)]
pub fn cheap_hasher() -> Arc<dyn PasswordHasher> {
    let config = HashingConfig { memory_kib: 64, iterations: 1, parallelism: 1, threads: 2, queue: 64 };
    Arc::new(Argon2Hasher::new(&config).expect("valid argon2 parameters"))
}

/// Every port over one memory store, with real crypto (cheap hashing), the log
/// mailer and no OAuth provider. Override fields with struct update syntax:
/// `Ports { api_keys: counting, ..memory_ports(store, clock) }`, or an
/// adapter with `Ports { adapters: Adapters { hasher, ..ports.adapters }, ..ports }`.
///
/// # Panics
/// Never: the built-in key is long enough.
#[must_use]
#[allow(clippy::expect_used)]
pub fn memory_ports(store: Arc<MemoryStore>, clock: Arc<dyn Clock>) -> Ports {
    let secret =
        JwtSecret::new(b"portcullis-testkit-secret-portcullis-testkit".to_vec()).expect("a long enough key");
    let adapters = Adapters {
        context: Arc::new(portcullis_domain::ports::NoRequestContext),
        changes: Arc::new(portcullis_domain::ports::NoCopies),
        observer: Arc::new(portcullis_domain::ports::NoObserver),
        mailer: Arc::new(LogMailer::new(true)),
        oauth_providers: Vec::new(),
        signer: Arc::new(HmacSigner::derive(&secret, "testkit")),
        rate_limiter: Arc::new(portcullis_ratelimit::MemoryRateLimiter::new()),
        hasher: cheap_hasher(),
        blocklist: Arc::new(portcullis_crypto::CommonPasswords),
        tokens: Arc::new(JwtCodec::new(&secret, "portcullis")),
        one_time_codes: Arc::new(portcullis_crypto::TotpCodes::new(std::slice::from_ref(&secret))),
        clock,
        secrets: Arc::new(OsSecrets),
    };
    Ports::from_store(store, adapters)
}
