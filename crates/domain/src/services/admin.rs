use std::sync::Arc;

use crate::error::{DomainError, Forbidden, StoreError};
use crate::model::{AuditKind, AuthMethod, Principal, Role, User, UserId, UsersFrom};

use crate::ports::{Change, ChangeFeed, Clock, SessionRepository, UserRepository};

use super::audit::Recorder;
use super::{Ports, from_ports, opaque_debug};

/// What an administrator may change about a user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub is_active: Option<bool>,
    pub role: Option<Role>,
}

/// A page of [`AdminService::list_users`].
#[derive(Debug, Clone)]
pub struct UsersPage {
    pub users: Vec<User>,
    /// Every user, not only this page's.
    pub total: u64,
    /// The last user of this page when another page follows: the next page
    /// is the one [`UsersFrom::After`] it. `None` on the last page.
    pub next_after: Option<UserId>,
}

/// Administration of users. Authorisation reads the caller's stored role,
/// loaded on this request, never a role claimed by a token.
#[derive(Clone)]
pub struct AdminService {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    clock: Arc<dyn Clock>,
    changes: Arc<dyn ChangeFeed>,
    audit: Recorder,
}

opaque_debug!(AdminService);

impl AdminService {
    pub(super) fn new(ports: &Ports) -> Self {
        from_ports!(ports => Self { users, sessions; clock, changes; audit: Recorder::new(ports) })
    }

    /// One page of users (oldest first), the total, and when more follow,
    /// the user to ask for the next page after.
    ///
    /// # Errors
    /// `InsufficientPermissions`, `JwtRequired`; 422 for a limit outside 1..=100,
    /// an offset past the int64 range or an `after` that is no user; `Unavailable`.
    pub async fn list_users(
        &self,
        caller: &Principal,
        limit: u32,
        from: UsersFrom,
    ) -> Result<UsersPage, DomainError> {
        require_admin(caller)?;
        if !(1..=100).contains(&limit) {
            return Err(DomainError::invalid_field("limit", "must be between 1 and 100"));
        }
        // Databases count rows in signed 64 bits, and the contract says int64.
        if matches!(from, UsersFrom::Offset(offset) if i64::try_from(offset).is_err()) {
            return Err(DomainError::invalid_field("offset", "must be between 0 and 9223372036854775807"));
        }
        // One more than asked tells whether another page follows.
        let (mut users, total) = match self.users.list_users(limit + 1, from).await {
            Err(StoreError::NotFound) => {
                return Err(DomainError::invalid_field("after", "is not a user's id"));
            }
            other => other?,
        };
        let more = users.len() > limit as usize;
        users.truncate(limit as usize);
        let next_after = if more { users.last().map(|u| u.id) } else { None };
        Ok(UsersPage { users, total, next_after })
    }

    /// Enables, disables, promotes or demotes a user. Disabling takes effect on
    /// the user's next request with any token or key, on every instance.
    ///
    /// # Errors
    /// `InsufficientPermissions`, `JwtRequired`; `NotFound`; 422 when an
    /// administrator would disable or demote themselves (which could leave no
    /// administrator); `Unavailable`.
    pub async fn update_user(
        &self,
        caller: &Principal,
        id: UserId,
        changes: UserChanges,
    ) -> Result<User, DomainError> {
        require_admin(caller)?;
        if id == caller.user.id && (changes.is_active == Some(false) || changes.role == Some(Role::User)) {
            return Err(DomainError::invalid_field(
                "id",
                "administrators cannot disable or demote themselves",
            ));
        }
        let now = self.clock.now();
        let mut user = self.users.find_by_id(id).await?.ok_or(DomainError::NotFound)?;
        let mut changed = Vec::new();
        if let Some(active) = changes.is_active.filter(|a| *a != user.is_active) {
            let written = self.users.set_active(id, active, now).await;
            self.changes.changed(Change::User(id));
            user = written?;
            if !active {
                // A disabled account's sessions do not come back when it is enabled again.
                self.sessions.end_sessions(id, None, now).await?;
            }
            changed.push(format!("is_active={active}"));
        }
        if let Some(role) = changes.role.filter(|r| *r != user.role) {
            let written = self.users.set_role(id, role, now).await;
            self.changes.changed(Change::User(id));
            user = written?;
            changed.push(format!("role={}", role.as_str()));
        }
        if !changed.is_empty() {
            let detail = format!("{} by={}", changed.join(" "), caller.user.id);
            self.audit.record(AuditKind::AdminUserUpdated, Some(id), Some(detail)).await?;
        }
        Ok(user)
    }
}

impl AdminService {
    /// Signs a user out everywhere: ends every session of theirs; how many.
    ///
    /// # Errors
    /// `InsufficientPermissions`, `JwtRequired`; `NotFound`; `Unavailable`.
    pub async fn end_sessions(&self, caller: &Principal, id: UserId) -> Result<u64, DomainError> {
        require_admin(caller)?;
        self.users.find_by_id(id).await?.ok_or(DomainError::NotFound)?;
        let ended = self.sessions.end_sessions(id, None, self.clock.now()).await;
        self.changes.changed(Change::User(id));
        let ended = ended?;
        let detail = Some(format!("admin sessions={ended} by={}", caller.user.id));
        self.audit.record(AuditKind::SessionsEnded, Some(id), detail).await?;
        Ok(ended)
    }
}

pub(super) fn require_admin(caller: &Principal) -> Result<(), DomainError> {
    if caller.user.role != Role::Admin {
        return Err(DomainError::Forbidden(Forbidden::InsufficientPermissions));
    }
    if caller.method != AuthMethod::Jwt {
        return Err(DomainError::Forbidden(Forbidden::JwtRequired));
    }
    Ok(())
}
