use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::{EmailVerification, KeyDigest, NewUser, OutboxMessage, ResetBudget, User};

/// Email-verification links, stored as digests, and the emails that carry them.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait VerificationRepository: Send + Sync {
    /// Stores a newly registered user, its first verification link and the
    /// email that carries it, in one transaction: a registered address
    /// always has its link on the way.
    ///
    /// # Errors
    /// [`StoreError::Conflict`]`("email")` when the email is taken;
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn create_user_with_verification(
        &self,
        user: NewUser,
        verification: EmailVerification,
        email: OutboxMessage,
    ) -> Result<User, StoreError>;

    /// In one transaction, unless the user got `budget.max` verification
    /// emails since `budget.since` already: voids the user's earlier unused
    /// links, stores `verification` and queues `email` in the outbox. A link
    /// never exists without its email, nor the other way round; concurrent
    /// calls for one user are counted one after the other. `true` when the
    /// email was queued.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn issue_verification(
        &self,
        verification: EmailVerification,
        email: OutboxMessage,
        budget: ResetBudget,
    ) -> Result<bool, StoreError>;

    /// In one transaction: marks the link with this digest used if it is
    /// still unused and unexpired at `now`, voids the user's other links,
    /// and marks the user's email verified. Of concurrent calls with one
    /// token at most one gets `Some`; a token that is not valid gets `None`
    /// and changes nothing.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn consume_verification(
        &self,
        digest: &KeyDigest,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;
}
