//! Rate limiting for Portcullis: the `RateLimiter` port implemented in-process
//! with GCRA (the generic cell rate algorithm): one timestamp per key, no
//! background timers, exact under concurrency because every key is updated
//! under one lock. Depends on the domain only.
//!
//! GCRA spaces hits `period / limit` apart and tolerates a burst of `limit`:
//! each key stores its theoretical arrival time (TAT); a hit is allowed when
//! the TAT it would push forward stays within one period of now.

#![deny(clippy::unwrap_used, clippy::expect_used)]

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

fn millis(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000_000
}

fn ceil_secs(ms: i128) -> u64 {
    u64::try_from((ms.max(0) + 999) / 1000).unwrap_or(u64::MAX)
}

/// The GCRA step: the decision and, when allowed, the new TAT.
fn decide(stored: Option<i128>, quota: Quota, now: i128) -> (RateDecision, Option<i128>) {
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

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-02-03 12:00:00 UTC);

    #[tokio::test]
    async fn allows_the_limit_then_refuses_with_retry_after() {
        let limiter = MemoryRateLimiter::new();
        let quota = Quota::new(5, 900);
        for expected in (0..5).rev() {
            let decision = limiter.hit("k", quota, NOW).await.unwrap();
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected);
        }
        let refused = limiter.hit("k", quota, NOW).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 180, "one slot frees every period / limit");
        assert!(limiter.hit("other", quota, NOW).await.unwrap().allowed, "keys are independent");
    }

    #[tokio::test]
    async fn the_whole_budget_returns_after_a_period() {
        let limiter = MemoryRateLimiter::new();
        let quota = Quota::new(20, 60);
        for _ in 0..20 {
            assert!(limiter.hit("ip", quota, NOW).await.unwrap().allowed);
        }
        assert!(!limiter.hit("ip", quota, NOW).await.unwrap().allowed);
        let later = NOW + Duration::seconds(60);
        for _ in 0..20 {
            assert!(limiter.hit("ip", quota, later).await.unwrap().allowed);
        }
    }

    #[tokio::test]
    async fn a_refund_gives_one_hit_back() {
        let limiter = MemoryRateLimiter::new();
        let quota = Quota::new(2, 60);
        limiter.hit("k", quota, NOW).await.unwrap();
        limiter.hit("k", quota, NOW).await.unwrap();
        assert!(!limiter.hit("k", quota, NOW).await.unwrap().allowed);
        limiter.refund("k", quota, NOW).await.unwrap();
        assert!(limiter.hit("k", quota, NOW).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn concurrent_hits_never_exceed_the_limit() {
        let limiter = std::sync::Arc::new(MemoryRateLimiter::new());
        let quota = Quota::new(5, 900);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let limiter = std::sync::Arc::clone(&limiter);
                tokio::spawn(async move { limiter.hit("k", quota, NOW).await.unwrap().allowed })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            allowed += usize::from(task.await.unwrap());
        }
        assert_eq!(allowed, 5);
    }
}
