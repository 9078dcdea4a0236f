use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::UserId;

/// The blacklist of token ids (`jti`) revoked before they expire.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RevokedTokenRepository: Send + Sync {
    /// Revokes `jti` until `expires_at`. Atomic: of several concurrent calls with
    /// the same `jti`, exactly one returns `true`; the others return `false`.
    /// This is what makes refresh rotation single-use.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn revoke(
        &self,
        jti: Uuid,
        user_id: UserId,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Whether `jti` has been revoked.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn is_revoked(&self, jti: Uuid) -> Result<bool, StoreError>;

    /// Deletes entries whose `expires_at` is before `now` (the tokens they name
    /// are refused as expired anyway) and returns how many went.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
