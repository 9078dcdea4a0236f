use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::SigningKey;

/// Where the signing keys are kept, shared by every instance. Keys are only
/// ever added: their states follow from their times (see
/// [`key_states`](crate::model::key_states)), so no instance writes a state
/// change.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SigningKeyRepository: Send + Sync {
    /// Every stored key, in no particular order.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;

    /// Adds `key` unless a key of the same `generation` (or `kid`) exists:
    /// `false` then, and nothing is written. Of two instances adding the key
    /// of one generation at the same instant, exactly one gets `true`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn insert_signing_key(&self, key: SigningKey) -> Result<bool, StoreError>;
}
