//! Rate limiting for Portcullis: the `RateLimiter` port with GCRA (the generic
//! cell rate algorithm), in process ([`MemoryRateLimiter`]: limits per
//! instance) and in Redis ([`RedisRateLimiter`]: one limit across instances,
//! atomic in a Lua script), and [`FallbackRateLimiter`], which uses Redis and
//! falls back to the in-process limiter while Redis cannot be reached.
//! Depends on the domain and redis only.
//!
//! GCRA spaces hits `period / limit` apart and tolerates a burst of `limit`:
//! each key stores its theoretical arrival time (TAT); a hit is allowed when
//! the TAT it would push forward stays within one period of now.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod redis_limiter;

pub use redis_limiter::{FallbackRateLimiter, RedisRateLimiter};

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use portcullis_domain::ports::RateLimiter;
use portcullis_domain::{Quota, RateDecision, StoreError};
use time::OffsetDateTime;

/// Keys kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

/// The in-process limiter: limits hold per instance.
#[derive(Debug, Default)]
pub struct MemoryRateLimiter {
    /// Key → theoretical arrival time, in milliseconds since the epoch.
    tats: Mutex<HashMap<String, i128>>,
}

impl MemoryRateLimiter {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

pub(crate) fn millis(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000_000
}

pub(crate) fn ceil_secs(ms: i128) -> u64 {
    u64::try_from((ms.max(0) + 999) / 1000).unwrap_or(u64::MAX)
}

/// The GCRA step: the decision and, when allowed, the new TAT.
pub(crate) fn decide(stored: Option<i128>, quota: Quota, now: i128) -> (RateDecision, Option<i128>) {
    let limit = quota.limit.max(1);
    let period = i128::from(quota.period_secs.max(1)) * 1000;
    let interval = period / i128::from(limit);
    let tat = stored.map_or(now, |t| t.max(now));
    let new_tat = tat + interval;
    if new_tat - now > period {
        let decision = RateDecision {
            allowed: false,
            limit,
            remaining: 0,
            reset_after_secs: ceil_secs(tat - now),
            retry_after_secs: ceil_secs(new_tat - period - now).max(1),
        };
        return (decision, None);
    }
    let remaining = u32::try_from((period - (new_tat - now)) / interval.max(1)).unwrap_or(0);
    let decision = RateDecision {
        allowed: true,
        limit,
        remaining,
        reset_after_secs: ceil_secs(new_tat - now),
        retry_after_secs: 0,
    };
    (decision, Some(new_tat))
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<RateDecision, StoreError> {
        let now = millis(now);
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if tats.len() >= SWEEP_AT {
            // A TAT in the past is a key whose budget is whole again: forget it.
            tats.retain(|_, tat| *tat > now);
        }
        let (decision, new_tat) = decide(tats.get(key).copied(), quota, now);
        if let Some(tat) = new_tat {
            tats.insert(key.to_owned(), tat);
        }
        Ok(decision)
    }

    async fn refund(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<(), StoreError> {
        let now = millis(now);
        let interval = i128::from(quota.period_secs.max(1)) * 1000 / i128::from(quota.limit.max(1));
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = tats.get_mut(key) {
            *tat = (*tat - interval).max(now);
        }
        Ok(())
    }
}
