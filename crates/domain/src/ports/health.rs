use async_trait::async_trait;

use crate::error::StoreError;

/// Whether storage answers right now (readiness).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// One cheap round trip to the store.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}
