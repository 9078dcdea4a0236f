use async_trait::async_trait;
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::{
    ApiKey, ApiKeyId, Environment, KeyDigest, Project, SessionId, SessionLookup, User, UserId,
};

/// The reads on the path of every authenticated request (its credential),
/// and the example resource's list: apart from the repositories, so that a
/// cache can stand in front of these alone.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait HotReads: Send + Sync {
    /// What a request with a JWT needs, in one round trip: the user `id`,
    /// whether the token `jti` is revoked, whether its session `sid` (when
    /// it names one) is ended or gone, and the providers linked to the user.
    /// `None` when there is no such user.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_session(
        &self,
        id: UserId,
        jti: Uuid,
        sid: Option<SessionId>,
    ) -> Result<Option<SessionLookup>, StoreError>;

    /// The key with this digest and its owner, in one round trip: this runs on
    /// every key-authenticated request.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_key_with_owner(&self, digest: &KeyDigest) -> Result<Option<(ApiKey, User)>, StoreError>;

    /// The user's projects in one environment, newest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn list_projects(&self, user: UserId, environment: Environment)
    -> Result<Vec<Project>, StoreError>;
}

/// What a write changed that a copy of an earlier [`HotReads`] answer may
/// still show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// The user's sessions and keys: password, role, status, linked providers.
    User(UserId),
    /// One access token, revoked.
    Token(Uuid),
    /// One API key, revoked.
    Key(ApiKeyId),
    /// A user's projects in one environment.
    Projects(UserId, Environment),
}

/// Where the services say, after each write, what it changed, so that
/// whatever keeps copies of [`HotReads`] answers (a cache on this instance,
/// other instances) forgets them. A service says it whether the write
/// succeeded or not: a write whose answer was lost may still have happened.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait ChangeFeed: Send + Sync {
    fn changed(&self, change: Change);
}

/// Nobody keeps copies: changes go nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCopies;

impl ChangeFeed for NoCopies {
    fn changed(&self, _: Change) {}
}
