use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::{KeyDigest, OutboxMessage, PasswordHash, PasswordReset, ResetBudget, ResetRequest, User};

/// Password-reset tokens, stored as digests, and the emails that carry them.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PasswordResetRepository: Send + Sync {
    /// Queues a forgot-password request as it arrived, for the worker. This
    /// is all a forgot-password request does, whatever the email.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn request_reset(&self, request: ResetRequest) -> Result<(), StoreError>;

    /// Claims up to `limit` queued requests that are due at `now` by moving
    /// their due time to `lease_until`, oldest first. A request is claimed by
    /// one worker only; one whose worker died is claimed again after the lease.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn claim_reset_requests(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ResetRequest>, StoreError>;

    /// Forgets a request that leads to no email (no such user, or a disabled one).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn drop_reset_request(&self, id: Uuid) -> Result<(), StoreError>;

    /// Answers the queued request `request` with a token and its email, in
    /// one transaction, unless the user already got `budget.max` reset
    /// emails since `budget.since`: then only the request goes. Otherwise
    /// the user's earlier unused tokens are voided, `reset` is stored,
    /// `email` is queued in the outbox and the request goes. A token never
    /// exists without its email, nor the other way round; concurrent calls
    /// for one user are counted one after the other, so the budget holds
    /// across workers. `true` when the email was queued.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn issue_reset(
        &self,
        request: Uuid,
        reset: PasswordReset,
        email: OutboxMessage,
        budget: ResetBudget,
    ) -> Result<bool, StoreError>;

    /// The unused, unexpired reset with this digest.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_valid_reset(
        &self,
        digest: &KeyDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PasswordReset>, StoreError>;

    /// In one transaction: marks the reset used if it is still unused and
    /// unexpired at `now`, voids every other outstanding reset of its user,
    /// and sets the user's password hash, incrementing the session version. Of concurrent calls with one token, at most one gets
    /// `Some`; a token that is not valid gets `None` and changes nothing.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn consume_reset(
        &self,
        digest: &KeyDigest,
        hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;
}

/// The durable queue of emails to send.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` pending messages due at `now` by moving their
    /// `next_attempt_at` to `lease_until`, and returns them. A message is
    /// claimed by one caller only, so several instances never send it twice
    /// at once; a worker that dies lets its lease run out and another retries.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Marks a message sent and forgets its body (it may hold a reset link).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn mark_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Records a failed attempt: the message is retried at `retry_at`, or, when
    /// that is `None`, given up (status failed, body forgotten).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn mark_failed(
        &self,
        id: Uuid,
        attempts: i32,
        retry_at: Option<OffsetDateTime>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The message with this id (tests and operators).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_message(&self, id: Uuid) -> Result<Option<OutboxMessage>, StoreError>;

    /// How many messages wait to be sent (the backlog, for metrics).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn pending_count(&self) -> Result<u64, StoreError>;
}

/// Why an email was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth retrying: the server is down, busy, or answered 4xx.
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// Retrying will not help: the server refused the message for good (5xx).
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

/// Sends email.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync {
    /// # Errors
    /// [`MailError`], transient or permanent.
    async fn send(&self, message: &crate::model::MailMessage) -> Result<(), MailError>;
}
