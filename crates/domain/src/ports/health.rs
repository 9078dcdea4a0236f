use async_trait::async_trait;

use crate::error::StoreError;

/// A connection pool's state, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Most connections the pool opens.
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections nobody is using.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// Whether storage answers right now (readiness).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// One cheap round trip to the store.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pool's state right now, when the store has one.
    fn pool_usage(&self) -> Option<PoolUsage> {
        None
    }
}
