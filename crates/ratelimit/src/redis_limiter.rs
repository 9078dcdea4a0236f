//! GCRA in Redis, and the fallback to the in-process limiter.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use portcullis_domain::ports::RateLimiter;
use portcullis_domain::{Quota, RateDecision, StoreError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use time::OffsetDateTime;

use crate::{MemoryRateLimiter, ceil_secs, millis};

/// One GCRA step, atomic in Redis. KEYS[1]: the key. ARGV: now (ms), the
/// emission interval (ms), the period (ms), and `hit` or `refund`.
/// Returns {allowed, ms until the budget is whole, ms until a retry}.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if ARGV[4] == 'refund' then
  local earlier = tat - interval
  if earlier > now then
    redis.call('SET', KEYS[1], earlier, 'PX', earlier - now)
  else
    redis.call('DEL', KEYS[1])
  end
  return {1, 0, 0}
end
local new_tat = tat + interval
if new_tat - now > period then
  return {0, tat - now, new_tat - period - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, new_tat - now, 0}
";

/// Limits shared by every instance using the same Redis.
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Connects through `client` (plain or TLS, as its URL says), with short
    /// timeouts so a slow Redis never holds a request for long. Keys are
    /// `prefix` + the caller's key.
    ///
    /// # Errors
    /// A message when Redis cannot be reached now.
    pub async fn connect(client: redis::Client, prefix: &str) -> Result<Self, String> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| format!("Redis cannot be reached: {e}"))?;
        Ok(Self { connection, script: redis::Script::new(GCRA), prefix: prefix.to_owned() })
    }

    async fn step(
        &self,
        key: &str,
        quota: Quota,
        now: OffsetDateTime,
        mode: &str,
    ) -> Result<(i64, i64, i64), StoreError> {
        let (interval, period) = spacing(quota);
        let mut connection = self.connection.clone();
        self.script
            .key(format!("{}{key}", self.prefix))
            .arg(i64::try_from(millis(now)).unwrap_or(i64::MAX))
            .arg(interval)
            .arg(period)
            .arg(mode)
            .invoke_async::<(i64, i64, i64)>(&mut connection)
            .await
            .map_err(|e| StoreError::Unavailable(format!("Redis: {e}")))
    }
}

/// The emission interval and the period, in milliseconds.
fn spacing(quota: Quota) -> (i64, i64) {
    let period = i64::from(quota.period_secs.max(1)) * 1000;
    (period / i64::from(quota.limit.max(1)), period)
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<RateDecision, StoreError> {
        let (allowed, reset_ms, retry_ms) = self.step(key, quota, now, "hit").await?;
        let (interval, period) = spacing(quota);
        let limit = quota.limit.max(1);
        Ok(if allowed == 1 {
            let remaining = u32::try_from((period - reset_ms) / interval.max(1)).unwrap_or(0);
            RateDecision {
                allowed: true,
                limit,
                remaining,
                reset_after_secs: ceil_secs(i128::from(reset_ms)),
                retry_after_secs: 0,
            }
        } else {
            RateDecision {
                allowed: false,
                limit,
                remaining: 0,
                reset_after_secs: ceil_secs(i128::from(reset_ms)),
                retry_after_secs: ceil_secs(i128::from(retry_ms)).max(1),
            }
        })
    }

    async fn refund(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<(), StoreError> {
        self.step(key, quota, now, "refund").await.map(|_| ())
    }
}

/// Redis when it answers, the in-process limiter when it does not: a Redis
/// outage weakens the limits to per-instance ones instead of lifting them or
/// failing requests. After a failure Redis is left alone for a few seconds (no
/// request waits on a dead server), then tried again; if it was unreachable
/// at start, connecting is retried the same way. Switches are logged once.
pub struct FallbackRateLimiter {
    client: Option<redis::Client>,
    prefix: String,
    redis: Mutex<Option<RedisRateLimiter>>,
    local: MemoryRateLimiter,
    degraded: AtomicBool,
    /// Unix milliseconds before which Redis is not tried again.
    retry_at: AtomicI64,
}

impl std::fmt::Debug for FallbackRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackRateLimiter").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// How long Redis is left alone after a failure.
const BACKOFF_MS: i64 = 5_000;

impl FallbackRateLimiter {
    /// Shared limits in the Redis `client` reaches, keys under `prefix`;
    /// connects now if it can.
    pub async fn connect(client: redis::Client, prefix: &str) -> Self {
        let redis = match RedisRateLimiter::connect(client.clone(), prefix).await {
            Ok(redis) => Some(redis),
            Err(e) => {
                tracing::warn!(error = %e, "Redis rate limiter unavailable at start: limiting per instance");
                None
            }
        };
        let degraded = redis.is_none();
        Self {
            client: Some(client),
            prefix: prefix.to_owned(),
            redis: Mutex::new(redis),
            local: MemoryRateLimiter::new(),
            degraded: AtomicBool::new(degraded),
            retry_at: AtomicI64::new(0),
        }
    }

    /// No Redis at all: the in-process limiter only.
    #[must_use]
    pub fn local_only() -> Self {
        Self {
            client: None,
            prefix: String::new(),
            redis: Mutex::new(None),
            local: MemoryRateLimiter::new(),
            degraded: AtomicBool::new(false),
            retry_at: AtomicI64::new(i64::MAX),
        }
    }

    /// Keys the in-process limiter holds: every key without Redis, the keys
    /// counted while Redis could not be reached with it.
    #[must_use]
    pub fn local_keys(&self) -> usize {
        self.local.len()
    }

    /// One round trip to Redis, for readiness: `Ok` without Redis configured.
    ///
    /// # Errors
    /// Why Redis cannot be reached or did not answer.
    pub async fn ping(&self) -> Result<(), String> {
        let Some(client) = &self.client else { return Ok(()) };
        let current = self.redis.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let redis = match current {
            Some(redis) => redis,
            None => RedisRateLimiter::connect(client.clone(), &self.prefix).await?,
        };
        let mut connection = redis.connection.clone();
        redis::cmd("PING").query_async::<String>(&mut connection).await.map(drop).map_err(|e| e.to_string())
    }

    /// Forgets in-process keys whose budget is whole again (see
    /// [`MemoryRateLimiter::sweep`]).
    pub fn sweep(&self, now: OffsetDateTime) {
        self.local.sweep(now);
    }

    /// The Redis limiter to use now, if any (reconnecting when it is time).
    async fn redis(&self, now_ms: i64) -> Option<RedisRateLimiter> {
        if now_ms < self.retry_at.load(Ordering::Relaxed) {
            return None;
        }
        let current = self.redis.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if current.is_some() {
            return current;
        }
        let client = self.client.clone()?;
        self.retry_at.store(now_ms + BACKOFF_MS, Ordering::Relaxed);
        let connected = RedisRateLimiter::connect(client, &self.prefix).await.ok()?;
        *self.redis.lock().unwrap_or_else(PoisonError::into_inner) = Some(connected.clone());
        Some(connected)
    }

    fn note(&self, failed: Option<&StoreError>, now_ms: i64) {
        if failed.is_some() {
            self.retry_at.store(now_ms + BACKOFF_MS, Ordering::Relaxed);
        }
        let was_degraded = self.degraded.swap(failed.is_some(), Ordering::Relaxed);
        match (was_degraded, failed) {
            (false, Some(e)) => {
                tracing::warn!(error = %e, "Redis rate limiter unavailable: limiting per instance")
            }
            (true, None) => tracing::info!("Redis rate limiter back: limits are shared again"),
            _ => {}
        }
    }
}

fn wall_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[async_trait]
impl RateLimiter for FallbackRateLimiter {
    async fn hit(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<RateDecision, StoreError> {
        let wall = wall_ms();
        if let Some(redis) = self.redis(wall).await {
            match redis.hit(key, quota, now).await {
                Ok(decision) => {
                    self.note(None, wall);
                    return Ok(decision);
                }
                Err(e) => self.note(Some(&e), wall),
            }
        }
        self.local.hit(key, quota, now).await
    }

    async fn refund(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<(), StoreError> {
        let wall = wall_ms();
        if let Some(redis) = self.redis(wall).await {
            match redis.refund(key, quota, now).await {
                Ok(()) => return Ok(()),
                Err(e) => self.note(Some(&e), wall),
            }
        }
        self.local.refund(key, quota, now).await
    }
}
