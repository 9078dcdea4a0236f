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

mod memory;
mod redis_limiter;

pub use memory::{DEFAULT_MAX_KEYS, MemoryRateLimiter};
pub use redis_limiter::{FallbackRateLimiter, RedisRateLimiter};

use portcullis_domain::{Quota, RateDecision};
use time::OffsetDateTime;

pub(crate) fn millis(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000_000
}

pub(crate) fn ceil_secs(ms: i128) -> u64 {
    u64::try_from((ms.max(0) + 999) / 1000).unwrap_or(u64::MAX)
}

/// The spacing of hits, `period / limit`, in milliseconds.
pub(crate) fn interval_ms(quota: Quota) -> i128 {
    i128::from(quota.period_secs.max(1)) * 1000 / i128::from(quota.limit.max(1))
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
