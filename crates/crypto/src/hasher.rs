//! argon2id password hashing behind the `PasswordHasher` port.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use portcullis_domain::ports::PasswordHasher;
use portcullis_domain::{DomainError, Password, PasswordHash};

use crate::pool::{PoolError, WorkerPool};

/// Cost parameters and pool size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashingConfig {
    /// Memory in KiB (OWASP: 19456).
    pub memory_kib: u32,
    /// Iterations (OWASP: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
    /// Hashes computed at once; one per core is the most the machine can do.
    pub threads: usize,
    /// Hashes that may wait; more are refused with `Unavailable`.
    pub queue: usize,
}

impl Default for HashingConfig {
    /// OWASP's argon2id parameters on one thread per core, with a queue of 64
    /// jobs per thread (about 2.5 s of waiting at 40 ms a hash).
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
            threads,
            queue: threads * 64,
        }
    }
}

/// argon2id on a dedicated, bounded pool of threads.
#[derive(Debug)]
pub struct Argon2Hasher {
    argon2: Arc<Argon2<'static>>,
    pool: WorkerPool,
    /// A real hash of a random password, verified against for unknown emails.
    dummy: Arc<str>,
}

impl Argon2Hasher {
    /// Starts the pool and computes the dummy hash (one hash, ~40 ms).
    ///
    /// # Errors
    /// When the parameters are out of argon2's range or threads cannot start.
    pub fn new(config: &HashingConfig) -> Result<Self, String> {
        let params = Params::new(config.memory_kib, config.iterations, config.parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        // On a thread of its own: a hashing thread keeps its working area (see
        // `memory`), and this one-off hash would leave 19 MiB on the caller's
        // thread for the life of the process; the thread's end frees it.
        let dummy =
            std::thread::scope(|scope| scope.spawn(|| crate::memory::hash(&argon2, &seed, &salt())).join())
                .map_err(|_| "argon2 panicked".to_owned())?
                .map_err(|e| format!("argon2 failed: {e}"))?;
        let pool = WorkerPool::new("argon2", config.threads, config.queue)
            .map_err(|e| format!("cannot start hashing threads: {e}"))?;
        Ok(Self { argon2: Arc::new(argon2), pool, dummy: dummy.into() })
    }

    /// Reports each job's time in the queue to `observer` (a metrics histogram).
    #[must_use]
    pub fn observe_waits(mut self, observer: crate::pool::WaitObserver) -> Self {
        self.pool.observe_waits(observer);
        self
    }

    /// Hashes waiting for a thread (a metric, and what a load shedder watches).
    #[must_use]
    pub fn queued(&self) -> usize {
        self.pool.queued()
    }
}

fn unavailable(error: PoolError) -> DomainError {
    match error {
        PoolError::Saturated => DomainError::Unavailable("password hashing capacity exhausted".to_owned()),
        PoolError::Lost => DomainError::Unavailable("password hashing worker failed".to_owned()),
    }
}

/// 16 random bytes (RFC 9106's recommended salt length).
fn salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    salt
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: Password) -> Result<PasswordHash, DomainError> {
        let argon2 = Arc::clone(&self.argon2);
        let hashed = self
            .pool
            .run(move || crate::memory::hash(&argon2, password.expose().as_bytes(), &salt()))
            .await
            .map_err(unavailable)?;
        hashed.map(PasswordHash::new).map_err(|e| DomainError::Unavailable(format!("argon2 failed: {e}")))
    }

    async fn verify(&self, password: Password, hash: PasswordHash) -> Result<bool, DomainError> {
        self.pool
            .run(move || crate::memory::verify(password.expose().as_bytes(), hash.as_str()))
            .await
            .map_err(unavailable)
    }

    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Ok(parsed) = PhcHash::new(hash.as_str()) else { return false };
        let params = self.argon2.params();
        let expected = [
            ("m", params.m_cost().to_string()),
            ("t", params.t_cost().to_string()),
            ("p", params.p_cost().to_string()),
        ];
        parsed.algorithm.as_str() != "argon2id"
            || parsed.version != Some(0x13)
            || expected.iter().any(|(name, value)| {
                parsed.params.iter().find(|(k, _)| k.as_str() == *name).map(|(_, v)| v.to_string()).as_deref()
                    != Some(value.as_str())
            })
    }

    async fn verify_dummy(&self, password: Password) -> Result<(), DomainError> {
        let dummy = Arc::clone(&self.dummy);
        self.pool
            .run(move || {
                crate::memory::verify(password.expose().as_bytes(), &dummy);
            })
            .await
            .map_err(unavailable)
    }
}
