use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;

use crate::model::{Email, NewUser, PasswordHash, Role, User, UserId, UsersFrom};

/// Where users are kept.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user. Atomic with respect to the email: of concurrent calls
    /// with one email, exactly one succeeds.
    ///
    /// # Errors
    /// [`StoreError::Conflict`]`("email")` when the email is taken;
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn create(&self, user: NewUser) -> Result<User, StoreError>;

    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Looks a user up by normalised email.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// Sets the role and returns the updated user.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Unavailable`].
    async fn set_role(&self, id: UserId, role: Role, now: OffsetDateTime) -> Result<User, StoreError>;

    /// Up to `limit` users, oldest first (by creation time, then id), from
    /// `from`, and how many there are in all.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when `from` is [`UsersFrom::After`] a user
    /// that does not exist; [`StoreError::Unavailable`] when the store cannot
    /// be reached.
    async fn list_users(&self, limit: u32, from: UsersFrom) -> Result<(Vec<User>, u64), StoreError>;

    /// Enables or disables the user and returns the updated user. Disabling
    /// also increments `session_version`, so re-enabling the user later does
    /// not bring old tokens back.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Unavailable`].
    async fn set_active(&self, id: UserId, active: bool, now: OffsetDateTime) -> Result<User, StoreError>;

    /// Replaces the hash of an unchanged password (a re-hash under stronger
    /// parameters): only if the stored hash is still `old`, so a concurrent
    /// password change wins; the session version is left alone. Returns
    /// whether the hash was replaced.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn rehash_password(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: PasswordHash,
    ) -> Result<bool, StoreError>;

    /// Replaces the password hash and, in the same write, increments
    /// `session_version`, so every token issued before is refused afterwards.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Unavailable`].
    async fn set_password(
        &self,
        id: UserId,
        hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<User, StoreError>;
}
