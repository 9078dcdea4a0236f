use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::{AuditEvent, KeyDigest, RefreshLookup, Session, SessionId, UserId};

/// Where sessions and their refresh tokens are kept. A refresh token is
/// stored as its digest only, and spent once: rotation is a conditional
/// write, so of concurrent uses of one token exactly one wins.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Stores a new session with its first refresh token, and appends
    /// `event` (the sign-in that started it) to the audit log, in one
    /// transaction (one commit: a sign-in is a hot write, and no session is
    /// left without its event, nor an event without its session). Nothing
    /// is written when it fails.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the id or the digest exists;
    /// [`StoreError::Unavailable`].
    async fn create_session(
        &self,
        session: Session,
        refresh: KeyDigest,
        event: AuditEvent,
    ) -> Result<(), StoreError>;

    /// The refresh token with this digest, spent or not, with its session
    /// and the session's user.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_refresh(&self, digest: &KeyDigest) -> Result<Option<RefreshLookup>, StoreError>;

    /// Spends `presented` (if it is still unspent and its session not ended)
    /// and stores `next` for the same session, whose `last_used_at` becomes
    /// `now`, and appends `event` to the audit log; one transaction (one
    /// commit: an exchange is a hot path). `false` when `presented` was spent
    /// meanwhile or its session ended: nothing is written then, the event
    /// neither. Of concurrent calls with one `presented`, exactly one gets `true`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn rotate_refresh(
        &self,
        presented: &KeyDigest,
        next: KeyDigest,
        now: OffsetDateTime,
        event: AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Spends every unspent refresh token of a live session, stores `next`
    /// as its one refresh token, `last_used_at` becoming `now`, and appends
    /// `event` to the audit log: a refresh by access token, in one
    /// transaction (one commit, as [`rotate_refresh`](Self::rotate_refresh)).
    /// `false` when the session is ended or gone: nothing is written then,
    /// the event neither.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn replace_refresh(
        &self,
        session: SessionId,
        next: KeyDigest,
        now: OffsetDateTime,
        event: AuditEvent,
    ) -> Result<bool, StoreError>;

    /// The session with this id, ended or not.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_session_by_id(&self, id: SessionId) -> Result<Option<Session>, StoreError>;

    /// The user's sessions that are not ended and whose absolute end is
    /// after `now`, newest first (the idle end is the caller's to judge).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn list_sessions(&self, user: UserId, now: OffsetDateTime) -> Result<Vec<Session>, StoreError>;

    /// Ends the session at `now`; `true` when it was not ended before.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn end_session(&self, id: SessionId, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Ends every session of `user` not ended yet, but `except`; how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn end_sessions(
        &self,
        user: UserId,
        except: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Deletes the sessions (and their refresh tokens) that ended, or reached
    /// their absolute end, before `before`; how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn purge_sessions(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}
