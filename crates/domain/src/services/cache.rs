//! What authenticating a request read from the store (and the example
//! resource's lists), kept for a short while.
//!
//! A token or key seen a moment ago does not need the store again: the
//! session (user, revocation, linked providers) of a JWT, an API key with its
//! owner, and a caller's project list are kept for `ttl`. The cache sits in
//! front of the store ports themselves ([`wrap`]): every write that goes
//! through a port forgets what it touches (a revocation its token, a password,
//! role or status change, a reset or an OAuth link the user's sessions and
//! keys, a revoked key itself, a new project its owner's list), whichever
//! service made it. A read that raced a write is not kept, so one instance
//! never serves what it changed. Changes made by another instance sharing the
//! database are seen within `ttl`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::{
    ApiKey, ApiKeyId, Email, Environment, KeyDigest, KeyUsage, NewUser, OAuthIdentity, OAuthProviderKind,
    OutboxMessage, PasswordHash, PasswordReset, Project, Role, SessionLookup, User, UserId,
};
use crate::ports::{
    ApiKeyRepository, Clock, OAuthIdentityRepository, PasswordResetRepository, ProjectRepository,
    RevokedTokenRepository, UserRepository,
};

use super::Ports;

/// Most entries of each kind; beyond, expired ones go, then everything.
const MAX_ENTRIES: usize = 50_000;

/// Entries of one kind, each with the time it was read.
struct Entries<K, V>(Mutex<HashMap<K, (V, OffsetDateTime)>>);

impl<K: Eq + Hash, V: Clone> Entries<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, OffsetDateTime)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &K, now: OffsetDateTime, ttl: Duration) -> Option<V> {
        self.lock().get(key).filter(|(_, at)| fresh(*at, now, ttl)).map(|(value, _)| value.clone())
    }

    fn put(&self, key: K, value: V, now: OffsetDateTime, ttl: Duration) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, at)| fresh(*at, now, ttl));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (value, now));
    }

    fn forget(&self, keep: impl Fn(&K, &V) -> bool) {
        self.lock().retain(|key, (value, _)| keep(key, value));
    }
}

fn fresh(at: OffsetDateTime, now: OffsetDateTime, ttl: Duration) -> bool {
    now >= at && now - at < ttl
}

/// Whose projects, in which environment.
type Owner = (UserId, Environment);

struct AuthCache {
    ttl: Duration,
    clock: Arc<dyn Clock>,
    /// Moves on every write; a read that began before a write is not kept.
    epoch: AtomicU64,
    sessions: Entries<Uuid, SessionLookup>,
    keys: Entries<KeyDigest, (ApiKey, User)>,
    projects: Entries<Owner, Vec<Project>>,
}

impl AuthCache {
    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether a read that began at `epoch` may be kept.
    fn unchanged_since(&self, epoch: u64) -> bool {
        self.epoch() == epoch
    }

    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn forget_token(&self, jti: Uuid) {
        self.changed();
        self.sessions.forget(|key, _| *key != jti);
    }

    fn forget_key(&self, id: ApiKeyId) {
        self.changed();
        self.keys.forget(|_, (key, _)| key.id != id);
    }

    fn forget_user(&self, id: UserId) {
        self.changed();
        self.sessions.forget(|_, session| session.user.id != id);
        self.keys.forget(|_, (_, user)| user.id != id);
    }

    fn forget_projects(&self, owner: Owner) {
        self.changed();
        self.projects.forget(|key, _| *key != owner);
    }
}

/// Puts the cache in front of the ports it concerns; `ttl_ms` of 0 leaves the
/// ports as they are.
pub(super) fn wrap(ports: Ports, ttl_ms: u64) -> Ports {
    if ttl_ms == 0 {
        return ports;
    }
    let cache = Arc::new(AuthCache {
        ttl: Duration::milliseconds(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
        clock: Arc::clone(&ports.clock),
        epoch: AtomicU64::new(0),
        sessions: Entries::new(),
        keys: Entries::new(),
        projects: Entries::new(),
    });
    Ports {
        users: Arc::new(Cached { inner: Arc::clone(&ports.users), cache: Arc::clone(&cache) }),
        revoked_tokens: Arc::new(Cached {
            inner: Arc::clone(&ports.revoked_tokens),
            cache: Arc::clone(&cache),
        }),
        api_keys: Arc::new(Cached { inner: Arc::clone(&ports.api_keys), cache: Arc::clone(&cache) }),
        projects: Arc::new(Cached { inner: Arc::clone(&ports.projects), cache: Arc::clone(&cache) }),
        identities: Arc::new(Cached { inner: Arc::clone(&ports.identities), cache: Arc::clone(&cache) }),
        resets: Arc::new(Cached { inner: Arc::clone(&ports.resets), cache: Arc::clone(&cache) }),
        ..ports
    }
}

/// A port with the cache in front of it.
struct Cached<P: ?Sized> {
    inner: Arc<P>,
    cache: Arc<AuthCache>,
}

#[async_trait]
impl UserRepository for Cached<dyn UserRepository> {
    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        self.inner.create(user).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.inner.find_by_id(id).await
    }

    async fn find_session(&self, id: UserId, jti: Uuid) -> Result<Option<SessionLookup>, StoreError> {
        let (cache, now) = (&self.cache, self.cache.now());
        if let Some(session) = cache.sessions.get(&jti, now, cache.ttl).filter(|s| s.user.id == id) {
            return Ok(Some(session));
        }
        let epoch = cache.epoch();
        let read = self.inner.find_session(id, jti).await?;
        if let Some(session) = read.as_ref().filter(|_| cache.unchanged_since(epoch)) {
            cache.sessions.put(jti, session.clone(), now, cache.ttl);
        }
        Ok(read)
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.inner.find_by_email(email).await
    }

    async fn set_role(&self, id: UserId, role: Role, now: OffsetDateTime) -> Result<User, StoreError> {
        let result = self.inner.set_role(id, role, now).await;
        self.cache.forget_user(id);
        result
    }

    async fn list_users(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError> {
        self.inner.list_users(limit, offset).await
    }

    async fn set_active(&self, id: UserId, active: bool, now: OffsetDateTime) -> Result<User, StoreError> {
        let result = self.inner.set_active(id, active, now).await;
        self.cache.forget_user(id);
        result
    }

    async fn rehash_password(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: PasswordHash,
    ) -> Result<bool, StoreError> {
        self.inner.rehash_password(id, old, new).await
    }

    async fn set_password(
        &self,
        id: UserId,
        hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let result = self.inner.set_password(id, hash, now).await;
        self.cache.forget_user(id);
        result
    }
}

#[async_trait]
impl RevokedTokenRepository for Cached<dyn RevokedTokenRepository> {
    async fn revoke(
        &self,
        jti: Uuid,
        user_id: UserId,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self.inner.revoke(jti, user_id, expires_at).await;
        self.cache.forget_token(jti);
        result
    }

    async fn is_revoked(&self, jti: Uuid) -> Result<bool, StoreError> {
        self.inner.is_revoked(jti).await
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.purge_expired(now).await
    }
}

#[async_trait]
impl ApiKeyRepository for Cached<dyn ApiKeyRepository> {
    async fn insert_key(&self, key: ApiKey) -> Result<ApiKey, StoreError> {
        self.inner.insert_key(key).await
    }

    async fn find_key_with_owner(&self, digest: &KeyDigest) -> Result<Option<(ApiKey, User)>, StoreError> {
        let (cache, now) = (&self.cache, self.cache.now());
        if let Some(found) = cache.keys.get(digest, now, cache.ttl) {
            return Ok(Some(found));
        }
        let epoch = cache.epoch();
        let read = self.inner.find_key_with_owner(digest).await?;
        if let Some(found) = read.as_ref().filter(|_| cache.unchanged_since(epoch)) {
            cache.keys.put(*digest, found.clone(), now, cache.ttl);
        }
        Ok(read)
    }

    async fn list_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.list_keys(user).await
    }

    async fn revoke_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        now: OffsetDateTime,
    ) -> Result<ApiKey, StoreError> {
        let result = self.inner.revoke_key(user, id, now).await;
        self.cache.forget_key(id);
        result
    }

    async fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<(), StoreError> {
        self.inner.record_key_usage(usage).await
    }

    async fn remember_key_ip(&self, id: ApiKeyId, ip: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.inner.remember_key_ip(id, ip, now).await
    }
}

#[async_trait]
impl ProjectRepository for Cached<dyn ProjectRepository> {
    async fn insert_project(&self, project: Project) -> Result<Project, StoreError> {
        let owner = (project.user_id, project.environment);
        let result = self.inner.insert_project(project).await;
        self.cache.forget_projects(owner);
        result
    }

    async fn list_projects(
        &self,
        user: UserId,
        environment: Environment,
    ) -> Result<Vec<Project>, StoreError> {
        let (cache, now, owner) = (&self.cache, self.cache.now(), (user, environment));
        if let Some(list) = cache.projects.get(&owner, now, cache.ttl) {
            return Ok(list);
        }
        let epoch = cache.epoch();
        let list = self.inner.list_projects(user, environment).await?;
        if cache.unchanged_since(epoch) {
            cache.projects.put(owner, list.clone(), now, cache.ttl);
        }
        Ok(list)
    }
}

#[async_trait]
impl OAuthIdentityRepository for Cached<dyn OAuthIdentityRepository> {
    async fn find_identity(
        &self,
        provider: OAuthProviderKind,
        subject: &str,
    ) -> Result<Option<(OAuthIdentity, User)>, StoreError> {
        self.inner.find_identity(provider, subject).await
    }

    async fn link_identity(&self, identity: OAuthIdentity) -> Result<OAuthIdentity, StoreError> {
        let user = identity.user_id;
        let result = self.inner.link_identity(identity).await;
        self.cache.forget_user(user);
        result
    }

    async fn create_user_with_identity(
        &self,
        user: NewUser,
        identity: OAuthIdentity,
    ) -> Result<User, StoreError> {
        self.inner.create_user_with_identity(user, identity).await
    }

    async fn list_identities(&self, user: UserId) -> Result<Vec<OAuthIdentity>, StoreError> {
        self.inner.list_identities(user).await
    }
}

#[async_trait]
impl PasswordResetRepository for Cached<dyn PasswordResetRepository> {
    async fn issue_reset(&self, reset: PasswordReset, email: OutboxMessage) -> Result<(), StoreError> {
        self.inner.issue_reset(reset, email).await
    }

    async fn find_valid_reset(
        &self,
        digest: &KeyDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PasswordReset>, StoreError> {
        self.inner.find_valid_reset(digest, now).await
    }

    async fn consume_reset(
        &self,
        digest: &KeyDigest,
        hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let consumed = self.inner.consume_reset(digest, hash, now).await;
        if let Ok(Some(user)) = &consumed {
            self.cache.forget_user(user.id);
        }
        consumed
    }
}
