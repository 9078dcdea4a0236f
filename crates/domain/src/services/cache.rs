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
//! database are seen within `ttl`; for an entry in steady use, within half of
//! it, because the first caller in the second half of an entry's life reads it
//! again while the others are still served it (see `AuthCache::read_through`).

use std::collections::HashMap;
use std::future::Future;
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

/// One value and when it was read.
struct Entry<V> {
    value: V,
    read_at: OffsetDateTime,
    /// One caller is reading it again (see [`Lookup::Refresh`]).
    refreshing: bool,
}

/// What the cache holds for a key.
enum Lookup<V> {
    /// Read less than half the ttl ago, or already being read again.
    Fresh(V),
    /// Read in the second half of its ttl: still valid, and the one caller
    /// that gets this reads it again while everyone else is served the value.
    Refresh(V),
    /// Nothing, or read a full ttl ago.
    Miss,
}

/// Entries of one kind.
struct Entries<K, V>(Mutex<HashMap<K, Entry<V>>>);

impl<K: Eq + Hash, V: Clone> Entries<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lookup(&self, key: &K, now: OffsetDateTime, ttl: Duration) -> Lookup<V> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(key).filter(|e| within(e.read_at, now, ttl)) else {
            return Lookup::Miss;
        };
        if entry.refreshing || within(entry.read_at, now, ttl / 2) {
            return Lookup::Fresh(entry.value.clone());
        }
        entry.refreshing = true;
        Lookup::Refresh(entry.value.clone())
    }

    fn put(&self, key: K, value: V, now: OffsetDateTime, ttl: Duration) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| within(entry.read_at, now, ttl));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { value, read_at: now, refreshing: false });
    }

    fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    fn forget(&self, keep: impl Fn(&K, &V) -> bool) {
        self.lock().retain(|key, entry| keep(key, &entry.value));
    }
}

/// Whether something read at `at` is less than `ttl` old at `now`.
fn within(at: OffsetDateTime, now: OffsetDateTime, ttl: Duration) -> bool {
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

    /// The value of `key`: what the cache holds when it is `usable`, else what
    /// `read` finds, kept unless a write raced the read.
    ///
    /// A value in the second half of its ttl is read again by the next caller
    /// while the others are still served it, so a key in steady use never
    /// expires. Without that, keys first read together (a client's tokens, a
    /// benchmark's) expire together, and every request that uses one waits on
    /// the store at the same moment, once per ttl. A refresh that fails
    /// serves the value it meant to replace, which is still within its ttl; a
    /// refresh that finds nothing forgets it.
    async fn read_through<K, V, F>(
        &self,
        entries: &Entries<K, V>,
        key: K,
        usable: impl Fn(&V) -> bool + Send,
        read: impl FnOnce() -> F + Send,
    ) -> Result<Option<V>, StoreError>
    where
        K: Eq + Hash + Send,
        V: Clone + Send,
        F: Future<Output = Result<Option<V>, StoreError>> + Send,
    {
        let now = self.now();
        let cached = match entries.lookup(&key, now, self.ttl) {
            Lookup::Fresh(value) if usable(&value) => return Ok(Some(value)),
            Lookup::Refresh(value) if usable(&value) => Some(value),
            Lookup::Fresh(_) | Lookup::Refresh(_) | Lookup::Miss => None,
        };
        let epoch = self.epoch();
        match read().await {
            Ok(Some(value)) => {
                if self.unchanged_since(epoch) {
                    entries.put(key, value.clone(), now, self.ttl);
                }
                Ok(Some(value))
            }
            Ok(None) => {
                entries.remove(&key);
                Ok(None)
            }
            Err(error) => cached.map_or(Err(error), |value| Ok(Some(value))),
        }
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
        let usable = |session: &SessionLookup| session.user.id == id;
        self.cache.read_through(&self.cache.sessions, jti, usable, || self.inner.find_session(id, jti)).await
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
        let read = || self.inner.find_key_with_owner(digest);
        self.cache.read_through(&self.cache.keys, *digest, |_| true, read).await
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
        let read = || async move { self.inner.list_projects(user, environment).await.map(Some) };
        let list = self.cache.read_through(&self.cache.projects, (user, environment), |_| true, read).await?;
        Ok(list.unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use mockall::Sequence;
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};
    use uuid::Uuid;

    use super::{AuthCache, Cached, Entries, Lookup};
    use crate::error::StoreError;
    use crate::model::{Email, Role, SessionLookup, User, UserId};
    use crate::ports::{MockClock, MockUserRepository, UserRepository};

    const T0: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);
    const TTL: Duration = Duration::seconds(1);

    fn session(id: UserId, session_version: i64) -> SessionLookup {
        let user = User {
            id,
            email: Email::parse("cached@example.com").expect("an email"),
            full_name: None,
            password_hash: None,
            role: Role::User,
            is_active: true,
            session_version,
            created_at: T0,
            updated_at: T0,
        };
        SessionLookup { user, revoked: false, linked: Vec::new() }
    }

    /// The cache in front of `store`, on a clock the test moves by hand.
    fn cached(store: MockUserRepository) -> (Cached<dyn UserRepository>, Arc<Mutex<OffsetDateTime>>) {
        let now = Arc::new(Mutex::new(T0));
        let mut clock = MockClock::new();
        let read = Arc::clone(&now);
        clock.expect_now().returning(move || *read.lock().expect("the test's clock"));
        let cache = Arc::new(AuthCache {
            ttl: TTL,
            clock: Arc::new(clock),
            epoch: 0.into(),
            sessions: Entries::new(),
            keys: Entries::new(),
            projects: Entries::new(),
        });
        (Cached { inner: Arc::new(store), cache }, now)
    }

    /// The store answers `answers` in order, one read each, and no more.
    fn store(answers: Vec<Result<Option<SessionLookup>, StoreError>>) -> MockUserRepository {
        let mut store = MockUserRepository::new();
        let mut order = Sequence::new();
        for answer in answers {
            store.expect_find_session().times(1).in_sequence(&mut order).return_once(move |_, _| answer);
        }
        store
    }

    /// Moves the test's clock to `T0 + since`.
    fn move_to(now: &Mutex<OffsetDateTime>, since: Duration) {
        *now.lock().expect("the test's clock") = T0 + since;
    }

    fn version(found: &Result<Option<SessionLookup>, StoreError>) -> Option<i64> {
        found.as_ref().expect("an answer").as_ref().map(|s| s.user.session_version)
    }

    #[test]
    fn one_caller_refreshes_a_value_in_the_second_half_of_its_ttl() {
        let entries = Entries::new();
        entries.put(1, "read at 0", T0, TTL);
        assert!(matches!(entries.lookup(&1, T0 + Duration::milliseconds(499), TTL), Lookup::Fresh(_)));
        let later = T0 + Duration::milliseconds(500);
        assert!(matches!(entries.lookup(&1, later, TTL), Lookup::Refresh("read at 0")));
        assert!(matches!(entries.lookup(&1, later, TTL), Lookup::Fresh("read at 0")), "only one refreshes");
        assert!(matches!(entries.lookup(&1, T0 + TTL, TTL), Lookup::Miss), "never served past its ttl");
        entries.put(1, "read at 500", later, TTL);
        assert!(matches!(entries.lookup(&1, T0 + TTL, TTL), Lookup::Refresh("read at 500")));
    }

    #[tokio::test]
    async fn a_session_in_steady_use_is_read_again_before_it_expires() {
        let (id, jti) = (UserId::new(), Uuid::new_v4());
        let (cache, now) = cached(store(vec![Ok(Some(session(id, 1))), Ok(Some(session(id, 2)))]));
        assert_eq!(version(&cache.find_session(id, jti).await), Some(1));
        move_to(&now, Duration::milliseconds(400));
        assert_eq!(version(&cache.find_session(id, jti).await), Some(1), "served from the cache");
        move_to(&now, Duration::milliseconds(600));
        assert_eq!(version(&cache.find_session(id, jti).await), Some(2), "read again");
        // Read at 600, so still served at 1 050, past the first read's ttl.
        move_to(&now, Duration::milliseconds(1_050));
        assert_eq!(version(&cache.find_session(id, jti).await), Some(2), "served from the cache");
    }

    #[tokio::test]
    async fn a_refresh_that_fails_serves_the_value_until_its_ttl_ends() {
        let (id, jti) = (UserId::new(), Uuid::new_v4());
        let down = || Err(StoreError::Unavailable("down".into()));
        let (cache, now) = cached(store(vec![Ok(Some(session(id, 1))), down(), down()]));
        assert_eq!(version(&cache.find_session(id, jti).await), Some(1));
        move_to(&now, Duration::milliseconds(600));
        assert_eq!(version(&cache.find_session(id, jti).await), Some(1), "the refresh failed");
        move_to(&now, Duration::milliseconds(700));
        assert_eq!(version(&cache.find_session(id, jti).await), Some(1), "not tried again before the ttl");
        move_to(&now, TTL);
        assert!(cache.find_session(id, jti).await.is_err(), "expired: the store's answer");
    }

    #[tokio::test]
    async fn a_refresh_that_finds_nothing_forgets_the_value() {
        let (id, jti) = (UserId::new(), Uuid::new_v4());
        let (cache, now) = cached(store(vec![Ok(Some(session(id, 1))), Ok(None), Ok(None)]));
        assert_eq!(version(&cache.find_session(id, jti).await), Some(1));
        move_to(&now, Duration::milliseconds(600));
        assert_eq!(version(&cache.find_session(id, jti).await), None);
        move_to(&now, Duration::milliseconds(650));
        assert_eq!(version(&cache.find_session(id, jti).await), None, "read again, not served");
    }
}
