//! In-memory implementations of Portcullis's repository ports.
//!
//! For tests, examples and services that embed the domain without a database.
//! Everything is lost when the process ends. It depends on the domain crate and
//! the standard library only; each port's guarantees (unique email, single-use
//! revocation) hold because every operation runs under one lock.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use portcullis_domain::ports::{RevokedTokenRepository, StoreHealth, UserRepository};
use portcullis_domain::{Email, NewUser, PasswordHash, Role, StoreError, User, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, User>,
    by_email: HashMap<Email, UserId>,
    revoked: HashMap<Uuid, OffsetDateTime>,
}

/// Every repository port over one in-process map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated:
        // every mutation below is a single insert or field write.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update_user(
        &self,
        id: UserId,
        now: OffsetDateTime,
        change: impl FnOnce(&mut User),
    ) -> Result<User, StoreError> {
        let mut state = self.state();
        let user = state.users.get_mut(&id).ok_or(StoreError::NotFound)?;
        change(user);
        user.updated_at = now;
        Ok(user.clone())
    }
}

#[async_trait]
impl UserRepository for MemoryStore {
    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let mut state = self.state();
        if state.by_email.contains_key(&user.email) {
            return Err(StoreError::Conflict("email"));
        }
        if state.users.contains_key(&user.id) {
            return Err(StoreError::Conflict("id"));
        }
        let user = user.into_user();
        state.by_email.insert(user.email.clone(), user.id);
        state.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.state().users.get(&id).cloned())
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let state = self.state();
        Ok(state.by_email.get(email).and_then(|id| state.users.get(id)).cloned())
    }

    async fn set_role(&self, id: UserId, role: Role, now: OffsetDateTime) -> Result<User, StoreError> {
        self.update_user(id, now, |user| user.role = role)
    }

    async fn set_active(&self, id: UserId, active: bool, now: OffsetDateTime) -> Result<User, StoreError> {
        self.update_user(id, now, |user| user.is_active = active)
    }

    async fn set_password(
        &self,
        id: UserId,
        hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        self.update_user(id, now, |user| {
            user.password_hash = Some(hash);
            user.session_version += 1;
        })
    }
}

#[async_trait]
impl RevokedTokenRepository for MemoryStore {
    async fn revoke(
        &self,
        jti: Uuid,
        _user_id: UserId,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.revoked.contains_key(&jti) {
            return Ok(false);
        }
        state.revoked.insert(jti, expires_at);
        Ok(true)
    }

    async fn is_revoked(&self, jti: Uuid) -> Result<bool, StoreError> {
        Ok(self.state().revoked.contains_key(&jti))
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.state();
        let before = state.revoked.len();
        state.revoked.retain(|_, expires_at| *expires_at >= now);
        Ok((before - state.revoked.len()) as u64)
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
