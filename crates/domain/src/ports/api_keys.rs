use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::{ApiKey, ApiKeyId, KeySighting, KeyUsage, UserId};

/// Where API keys are kept: digests only, never secrets.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// Stores a new key.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the id or digest exists; [`StoreError::Unavailable`].
    async fn insert_key(&self, key: ApiKey) -> Result<ApiKey, StoreError>;

    /// The user's keys, newest first, revoked and expired ones included.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn list_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the user's key `id` and returns it. Revoking a revoked key keeps
    /// its first `revoked_at`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when no key `id` belongs to `user`; [`StoreError::Unavailable`].
    async fn revoke_key(&self, user: UserId, id: ApiKeyId, now: OffsetDateTime)
    -> Result<ApiKey, StoreError>;

    /// Adds each entry's count to its key's `usage_count` and moves its
    /// `last_used_at` forward (never back). Keys that no longer exist are skipped.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached; the caller
    /// keeps the counts and tries again.
    async fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<(), StoreError>;

    /// For each first use of a key from an address that the store does not
    /// know yet, remembers the pair (first seen at the event's time) and
    /// appends the sighting's `api_key_new_ip` event, both or neither; pairs
    /// already known and keys that no longer exist are skipped. Returns the
    /// ids of the events appended (one a new pair), in the batch's order.
    /// Callers pass bounded batches (a thousand or so): one batch is one
    /// transaction.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached: nothing
    /// of the batch is written.
    async fn record_key_sightings(&self, sightings: &[KeySighting]) -> Result<Vec<Uuid>, StoreError>;
}
