//! What authenticating a request read from the store (and the example
//! resource's lists), kept for a short while.
//!
//! A token or key seen a moment ago does not need the store again: the
//! session (user, revocation, linked providers) of a JWT and the key and
//! owner of an API key are kept for `ttl`. Every change made through these
//! services forgets what it touches at once (a logout its token, a password
//! change or an admin's update the user's sessions and keys, a revoked key
//! itself), so on one instance nothing stale is ever served. Changes made by
//! another instance are seen within `ttl`. A `ttl` of zero turns it off.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::model::{ApiKey, ApiKeyId, Environment, KeyDigest, Project, SessionLookup, User, UserId};

/// Most entries of each kind; beyond, expired ones go, then everything.
const MAX_ENTRIES: usize = 50_000;

#[derive(Debug)]
pub(super) struct AuthCache {
    ttl: Duration,
    sessions: Mutex<HashMap<Uuid, (SessionLookup, OffsetDateTime)>>,
    keys: Mutex<HashMap<KeyDigest, (ApiKey, User, OffsetDateTime)>>,
    projects: Mutex<HashMap<Owner, (Vec<Project>, OffsetDateTime)>>,
}

/// Whose projects, in which environment.
type Owner = (UserId, Environment);

impl AuthCache {
    pub(super) fn new(ttl_ms: u64) -> Self {
        Self {
            ttl: Duration::milliseconds(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
            sessions: Mutex::default(),
            keys: Mutex::default(),
            projects: Mutex::default(),
        }
    }

    fn on(&self) -> bool {
        self.ttl > Duration::ZERO
    }

    fn fresh(&self, at: OffsetDateTime, now: OffsetDateTime) -> bool {
        now >= at && now - at < self.ttl
    }

    pub(super) fn session(&self, jti: Uuid, now: OffsetDateTime) -> Option<SessionLookup> {
        if !self.on() {
            return None;
        }
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.get(&jti).filter(|(_, at)| self.fresh(*at, now)).map(|(lookup, _)| lookup.clone())
    }

    pub(super) fn keep_session(&self, jti: Uuid, lookup: SessionLookup, now: OffsetDateTime) {
        if !self.on() {
            return;
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= MAX_ENTRIES {
            sessions.retain(|_, (_, at)| self.fresh(*at, now));
            if sessions.len() >= MAX_ENTRIES {
                sessions.clear();
            }
        }
        sessions.insert(jti, (lookup, now));
    }

    pub(super) fn key(&self, digest: &KeyDigest, now: OffsetDateTime) -> Option<(ApiKey, User)> {
        if !self.on() {
            return None;
        }
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(digest)
            .filter(|(_, _, at)| self.fresh(*at, now))
            .map(|(key, user, _)| (key.clone(), user.clone()))
    }

    pub(super) fn keep_key(&self, digest: KeyDigest, key: ApiKey, user: User, now: OffsetDateTime) {
        if !self.on() {
            return;
        }
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_ENTRIES {
            keys.retain(|_, (_, _, at)| self.fresh(*at, now));
            if keys.len() >= MAX_ENTRIES {
                keys.clear();
            }
        }
        keys.insert(digest, (key, user, now));
    }

    pub(super) fn projects(&self, owner: Owner, now: OffsetDateTime) -> Option<Vec<Project>> {
        if !self.on() {
            return None;
        }
        let projects = self.projects.lock().unwrap_or_else(PoisonError::into_inner);
        projects.get(&owner).filter(|(_, at)| self.fresh(*at, now)).map(|(list, _)| list.clone())
    }

    pub(super) fn keep_projects(
        &self,
        owner: (UserId, Environment),
        list: Vec<Project>,
        now: OffsetDateTime,
    ) {
        if !self.on() {
            return;
        }
        let mut projects = self.projects.lock().unwrap_or_else(PoisonError::into_inner);
        if projects.len() >= MAX_ENTRIES {
            projects.retain(|_, (_, at)| self.fresh(*at, now));
            if projects.len() >= MAX_ENTRIES {
                projects.clear();
            }
        }
        projects.insert(owner, (list, now));
    }

    /// A project was created here.
    pub(super) fn forget_projects(&self, owner: Owner) {
        self.projects.lock().unwrap_or_else(PoisonError::into_inner).remove(&owner);
    }

    /// A token was revoked here.
    pub(super) fn forget_token(&self, jti: Uuid) {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(&jti);
    }

    /// A key was revoked here.
    pub(super) fn forget_key(&self, id: ApiKeyId) {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, (key, _, _)| key.id != id);
    }

    /// The user changed here (password, status, role, linked providers).
    pub(super) fn forget_user(&self, id: UserId) {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, (s, _)| s.user.id != id);
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, (_, user, _)| user.id != id);
    }
}
