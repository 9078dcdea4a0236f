use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::{Quota, RateDecision};

/// Counts hits per key against a quota. Every operation is atomic for its key:
/// of concurrent hits that would cross the limit, the excess are refused.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one hit if the quota allows it, and says whether it did.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when a shared limiter cannot be reached.
    async fn hit(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<RateDecision, StoreError>;

    /// Gives back one hit (e.g. a login attempt that turned out right).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when a shared limiter cannot be reached.
    async fn refund(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<(), StoreError>;
}
