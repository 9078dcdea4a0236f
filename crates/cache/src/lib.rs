//! What authenticating a request read from the store (and the example
//! resource's lists), kept for a short while: a performance adapter, wired
//! by the server in front of the store's ports; the domain knows nothing of it.
//!
//! A token or key seen a moment ago does not need the store again: the
//! session (user, revocation, linked providers) of a JWT, an API key with its
//! owner, and a caller's project list are kept for `ttl`. The cache stands in
//! front of the `HotReads` port alone ([`wrap`]), and listens on the
//! `ChangeFeed` the services announce each write's change on: it forgets what
//! the change touches (a revocation its token, a password, role or status
//! change, a reset or an OAuth link the user's sessions and keys, a revoked
//! key itself, a new project its owner's list). A read that raced a write is
//! not kept, so one instance never serves what it changed. Changes made by another instance sharing the
//! database are seen within `ttl`; for an entry in steady use, within about
//! half of it, because the first caller in the second half of an entry's life
//! has it read again in the background while every caller is still served it
//! (see `AuthCache::read_through`).

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use portcullis_domain::ports::{Change, ChangeFeed, Clock, HotReads};
use portcullis_domain::{
    Adapters, ApiKey, ApiKeyId, Environment, KeyDigest, Ports, Project, SessionId, SessionLookup, StoreError,
    User, UserId,
};

/// Most entries of each kind; at the bound the oldest goes. 20 000 distinct
/// tokens or keys within one ttl (at most a minute) is far more than one
/// instance serves; a flood of new ones only cycles them, and the bound
/// keeps that to about 20 MiB a kind (an API key with its owner is about
/// 700 bytes with its index entries).
const MAX_ENTRIES: usize = 20_000;
/// Locks the entries of one kind are spread over.
const SHARDS: usize = 16;
/// Expired entries one insert forgets at most (each insert adds one).
const EXPIRE_PER_PUT: usize = 8;

/// What an entry is about, so that a write forgets exactly the entries it
/// concerns, without looking at the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tag {
    User(UserId),
    Key(ApiKeyId),
}

/// One value and when it was read. The value sits behind an `Arc`, so a
/// shard's table holds a pointer per slot, not the value: a table has up to
/// twice the slots it fills, and an API key with its owner is half a
/// kilobyte.
struct Entry<V> {
    value: Arc<V>,
    read_at: OffsetDateTime,
    /// One caller is reading it again (see [`Lookup::Refresh`]).
    refreshing: bool,
}

/// What the cache holds for a key.
enum Lookup<V> {
    /// Read less than half the ttl ago, or already being read again.
    Fresh(V),
    /// Read in the second half of its ttl: still valid, and the one caller
    /// that gets this reads it again while everyone else is served it.
    Refresh(V),
    /// Nothing, or read a full ttl ago.
    Miss,
}

/// The entries of one shard, and the order they were put in: entries live
/// `ttl` from when they were put, so the front of that order is the first to
/// expire, and the one to go when the shard is full. A key put again leaves
/// a stale position behind, which is skipped when it reaches the front.
struct Shard<K, V> {
    map: HashMap<K, Entry<V>>,
    order: VecDeque<(K, OffsetDateTime)>,
}

/// Which keys each tag concerns (one shard of the index).
type Index<K> = HashMap<Tag, Keys<K>>;

/// The keys of one tag: nearly always one (a user with one token or key in
/// use), kept without an allocation of its own.
enum Keys<K> {
    One(K),
    Many(HashSet<K>),
}

impl<K: Eq + Hash + Copy> Keys<K> {
    fn insert(&mut self, key: K) {
        match self {
            Self::One(one) if *one == key => {}
            Self::One(one) => *self = Self::Many(HashSet::from([*one, key])),
            Self::Many(keys) => {
                keys.insert(key);
            }
        }
    }

    /// Removes `key`; whether none is left.
    fn remove(&mut self, key: &K) -> bool {
        match self {
            Self::One(one) => one == key,
            Self::Many(keys) => {
                keys.remove(key);
                match keys.len() {
                    0 => true,
                    1 => {
                        if let Some(last) = keys.iter().next().copied() {
                            *self = Self::One(last);
                        }
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(keys) => keys.len(),
        }
    }

    fn into_vec(self) -> Vec<K> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(keys) => keys.into_iter().collect(),
        }
    }
}

/// Entries of one kind: sharded maps (a lookup locks one shard) and an index
/// from [`Tag`] to keys (a write forgets the entries it concerns, O(affected)).
struct Entries<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    index: Box<[Mutex<Index<K>>]>,
    hasher: RandomState,
    per_shard: usize,
    tags: fn(&V) -> [Option<Tag>; 2],
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Eq + Hash + Copy, V: Clone> Entries<K, V> {
    fn new(tags: fn(&V) -> [Option<Tag>; 2]) -> Self {
        Self::bounded(MAX_ENTRIES, tags)
    }

    fn bounded(max: usize, tags: fn(&V) -> [Option<Tag>; 2]) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard { map: HashMap::new(), order: VecDeque::new() }))
                .collect(),
            index: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: max.div_ceil(SHARDS).max(1),
            tags,
        }
    }

    fn shard_of(&self, key: &K) -> &Mutex<Shard<K, V>> {
        &self.shards[usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)]
    }

    fn index_of(&self, tag: Tag) -> &Mutex<Index<K>> {
        &self.index[usize::try_from(self.hasher.hash_one(tag) % SHARDS as u64).unwrap_or(0)]
    }

    fn lookup(&self, key: &K, now: OffsetDateTime, ttl: Duration) -> Lookup<V> {
        let mut shard = locked(self.shard_of(key));
        let Some(entry) = shard.map.get_mut(key).filter(|e| within(e.read_at, now, ttl)) else {
            return Lookup::Miss;
        };
        if entry.refreshing || within(entry.read_at, now, ttl / 2) {
            return Lookup::Fresh(V::clone(&entry.value));
        }
        entry.refreshing = true;
        Lookup::Refresh(V::clone(&entry.value))
    }

    /// Keeps `value` unless `unchanged` (asked under the shard's lock) says a
    /// write happened since the read began. A write moves the epoch first and
    /// then forgets through the index; the key is in the index before the
    /// check, so either the check sees the write or the write finds the entry.
    fn put(&self, key: K, value: V, now: OffsetDateTime, ttl: Duration, unchanged: impl Fn() -> bool) {
        let tags = (self.tags)(&value);
        for tag in tags.into_iter().flatten() {
            match locked(self.index_of(tag)).entry(tag) {
                std::collections::hash_map::Entry::Occupied(mut keys) => keys.get_mut().insert(key),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Keys::One(key));
                }
            }
        }
        let mut shard = locked(self.shard_of(&key));
        if !unchanged() {
            drop(shard);
            self.unindex(&key, tags);
            return;
        }
        self.expire(&mut shard, now, ttl);
        if !shard.map.contains_key(&key) && shard.map.len() >= self.per_shard {
            self.evict_oldest(&mut shard);
        }
        shard.order.push_back((key, now));
        let value = Arc::new(value);
        if let Some(old) = shard.map.insert(key, Entry { value, read_at: now, refreshing: false }) {
            let old_tags = (self.tags)(&old.value);
            if old_tags != tags {
                self.unindex(&key, old_tags);
            }
        }
    }

    /// Forgets up to [`EXPIRE_PER_PUT`] entries put a full ttl ago.
    fn expire(&self, shard: &mut Shard<K, V>, now: OffsetDateTime, ttl: Duration) {
        for _ in 0..EXPIRE_PER_PUT {
            match shard.order.front() {
                Some((_, at)) if !within(*at, now, ttl) => {}
                _ => return,
            }
            if let Some((key, at)) = shard.order.pop_front() {
                self.drop_if_put_at(shard, key, at);
            }
        }
    }

    /// Makes room for one entry: the one put longest ago goes.
    fn evict_oldest(&self, shard: &mut Shard<K, V>) {
        while let Some((key, at)) = shard.order.pop_front() {
            if self.drop_if_put_at(shard, key, at) {
                return;
            }
        }
    }

    /// Removes `key` if it is still the entry put at `at` (not put again since).
    fn drop_if_put_at(&self, shard: &mut Shard<K, V>, key: K, at: OffsetDateTime) -> bool {
        if shard.map.get(&key).is_none_or(|entry| entry.read_at != at) {
            return false;
        }
        if let Some(entry) = shard.map.remove(&key) {
            self.unindex(&key, (self.tags)(&entry.value));
        }
        true
    }

    fn unindex(&self, key: &K, tags: [Option<Tag>; 2]) {
        for tag in tags.into_iter().flatten() {
            let mut index = locked(self.index_of(tag));
            if index.get_mut(&tag).is_some_and(|keys| keys.remove(key)) {
                index.remove(&tag);
            }
        }
    }

    fn remove(&self, key: &K) {
        let removed = locked(self.shard_of(key)).map.remove(key);
        if let Some(entry) = removed {
            self.unindex(key, (self.tags)(&entry.value));
        }
    }

    /// Forgets every entry about `tag`.
    fn forget(&self, tag: Tag) {
        let keys = locked(self.index_of(tag)).remove(&tag).map_or_else(Vec::new, Keys::into_vec);
        for key in keys {
            let mut shard = locked(self.shard_of(&key));
            let about = shard.map.get(&key).is_some_and(|e| (self.tags)(&e.value).contains(&Some(tag)));
            let removed = if about { shard.map.remove(&key) } else { None };
            drop(shard);
            if let Some(entry) = removed {
                self.unindex(&key, (self.tags)(&entry.value));
            }
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| locked(s).map.len()).sum()
    }
}

/// Whether something read at `at` is less than `ttl` old at `now`.
fn within(at: OffsetDateTime, now: OffsetDateTime, ttl: Duration) -> bool {
    now >= at && now - at < ttl
}

/// Whose projects, in which environment.
type Owner = (UserId, Environment);

fn session_tags(session: &SessionLookup) -> [Option<Tag>; 2] {
    [Some(Tag::User(session.user.id)), None]
}

fn key_tags((key, owner): &(ApiKey, User)) -> [Option<Tag>; 2] {
    [Some(Tag::User(owner.id)), Some(Tag::Key(key.id))]
}

fn no_tags(_: &Vec<Project>) -> [Option<Tag>; 2] {
    [None, None]
}

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
    fn new(ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            ttl,
            clock,
            epoch: AtomicU64::new(0),
            sessions: Entries::new(session_tags),
            keys: Entries::new(key_tags),
            projects: Entries::new(no_tags),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The value of `key`: what the cache holds when it is `usable`, else what
    /// `read` finds, kept unless a write raced the read.
    ///
    /// A value in the second half of its ttl is read again, in the
    /// background, by the first caller to find it there, and every caller,
    /// that one included, is served the value meanwhile (it is still within
    /// its ttl), so a key in steady use never expires and no request waits
    /// on the store for it. Without that, keys first read together (a
    /// client's tokens, a benchmark's) expire together, and every request
    /// that uses one waits on the store at the same moment, once per ttl;
    /// and with the refresh in the caller, one request per key and half-ttl
    /// still waited, which on PostgreSQL under load was the p99 of `/me`.
    /// A refresh that fails leaves the value until its ttl ends; a refresh
    /// that finds nothing forgets it. Outside a tokio runtime the caller
    /// refreshes, and is served what it read.
    async fn read_through<K, V, F>(
        self: &Arc<Self>,
        entries: fn(&Self) -> &Entries<K, V>,
        key: K,
        usable: impl Fn(&V) -> bool + Send,
        read: impl FnOnce() -> F + Send,
    ) -> Result<Option<V>, StoreError>
    where
        K: Eq + Hash + Copy + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        F: Future<Output = Result<Option<V>, StoreError>> + Send + 'static,
    {
        let now = self.now();
        let cached = match entries(self).lookup(&key, now, self.ttl) {
            Lookup::Fresh(value) if usable(&value) => return Ok(Some(value)),
            Lookup::Refresh(value) if usable(&value) => Some(value),
            Lookup::Fresh(_) | Lookup::Refresh(_) | Lookup::Miss => None,
        };
        let epoch = self.epoch();
        let reading = read();
        if let Some(value) = &cached
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let cache = Arc::clone(self);
            runtime.spawn(async move {
                let _ = cache.keep(entries, key, now, epoch, reading.await);
            });
            return Ok(Some(value.clone()));
        }
        match self.keep(entries, key, now, epoch, reading.await) {
            Err(error) => cached.map_or(Err(error), |value| Ok(Some(value))),
            found => found,
        }
    }

    /// Keeps what a read that began at `now` (and `epoch`) found.
    fn keep<K: Eq + Hash + Copy, V: Clone>(
        &self,
        entries: fn(&Self) -> &Entries<K, V>,
        key: K,
        now: OffsetDateTime,
        epoch: u64,
        found: Result<Option<V>, StoreError>,
    ) -> Result<Option<V>, StoreError> {
        match found {
            Ok(Some(value)) => {
                entries(self).put(key, value.clone(), now, self.ttl, || self.epoch() == epoch);
                Ok(Some(value))
            }
            Ok(None) => {
                entries(self).remove(&key);
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    fn forget_token(&self, jti: Uuid) {
        self.changed();
        self.sessions.remove(&jti);
    }

    fn forget_key(&self, id: ApiKeyId) {
        self.changed();
        self.keys.forget(Tag::Key(id));
    }

    fn forget_user(&self, id: UserId) {
        self.changed();
        self.sessions.forget(Tag::User(id));
        self.keys.forget(Tag::User(id));
    }

    fn forget_projects(&self, owner: Owner) {
        self.changed();
        self.projects.remove(&owner);
    }
}

/// Puts the cache in front of the hot reads, and has it forget what each
/// change the services announce touches (before passing the change on to
/// whoever else listens); `ttl_ms` of 0 leaves the ports as they are.
#[must_use]
pub fn wrap(ports: Ports, ttl_ms: u64) -> Ports {
    wrap_shared(ports, ttl_ms).ports
}

/// What [`wrap_shared`] gives: the ports with the cache in front, the
/// cache's own feed, and a view of its sizes. Both options are `None` when
/// the ttl is 0 (there is no cache).
pub struct Shared {
    pub ports: Ports,
    /// Where the changes other instances announce go: the cache forgets,
    /// then passes them on to the feed the ports had, not to whatever is put
    /// in front of it later, so they are not sent back out.
    pub forgets: Option<Arc<dyn ChangeFeed>>,
    pub sizes: Option<CacheSizes>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("sizes", &self.sizes).finish_non_exhaustive()
    }
}

/// [`wrap`], and the cache's own feed and sizes besides (see [`Shared`]).
#[must_use]
pub fn wrap_shared(ports: Ports, ttl_ms: u64) -> Shared {
    if ttl_ms == 0 {
        return Shared { ports, forgets: None, sizes: None };
    }
    let ttl = Duration::milliseconds(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
    let cache = Arc::new(AuthCache::new(ttl, Arc::clone(&ports.adapters.clock)));
    let reads = Arc::new(CachedReads { inner: Arc::clone(&ports.reads), cache: Arc::clone(&cache) });
    let sizes = CacheSizes(Arc::clone(&cache));
    let changes: Arc<dyn ChangeFeed> = Arc::new(Forgets { cache, next: Arc::clone(&ports.adapters.changes) });
    let forgets = Arc::clone(&changes);
    Shared {
        ports: Ports { reads, adapters: Adapters { changes, ..ports.adapters }, ..ports },
        forgets: Some(forgets),
        sizes: Some(sizes),
    }
}

/// How many entries the cache holds, by kind (for the metrics).
#[derive(Clone)]
pub struct CacheSizes(Arc<AuthCache>);

impl CacheSizes {
    /// Entries held now: `sessions` (by token), `api_keys` (by key, with the
    /// owner), `projects` (by owner). Each is at most 20 000.
    #[must_use]
    pub fn entries(&self) -> [(&'static str, usize); 3] {
        [
            ("sessions", self.0.sessions.len()),
            ("api_keys", self.0.keys.len()),
            ("projects", self.0.projects.len()),
        ]
    }
}

impl std::fmt::Debug for CacheSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CacheSizes").field(&self.entries()).finish()
    }
}

/// The hot reads with the cache in front of them.
struct CachedReads {
    inner: Arc<dyn HotReads>,
    cache: Arc<AuthCache>,
}

#[async_trait]
impl HotReads for CachedReads {
    /// Keyed by the token id: a token's user and session never change.
    async fn find_session(
        &self,
        id: UserId,
        jti: Uuid,
        sid: Option<SessionId>,
    ) -> Result<Option<SessionLookup>, StoreError> {
        let usable = |session: &SessionLookup| session.user.id == id;
        let inner = Arc::clone(&self.inner);
        let read = move || async move { inner.find_session(id, jti, sid).await };
        self.cache.read_through(|c| &c.sessions, jti, usable, read).await
    }

    async fn find_key_with_owner(&self, digest: &KeyDigest) -> Result<Option<(ApiKey, User)>, StoreError> {
        let (inner, digest) = (Arc::clone(&self.inner), *digest);
        let read = move || async move { inner.find_key_with_owner(&digest).await };
        self.cache.read_through(|c| &c.keys, digest, |_| true, read).await
    }

    async fn list_projects(
        &self,
        user: UserId,
        environment: Environment,
    ) -> Result<Vec<Project>, StoreError> {
        let inner = Arc::clone(&self.inner);
        let read = move || async move { inner.list_projects(user, environment).await.map(Some) };
        let list = self.cache.read_through(|c| &c.projects, (user, environment), |_| true, read).await?;
        Ok(list.unwrap_or_default())
    }
}

/// Forgets what a change touches, then passes it on.
struct Forgets {
    cache: Arc<AuthCache>,
    next: Arc<dyn ChangeFeed>,
}

impl ChangeFeed for Forgets {
    fn changed(&self, change: Change) {
        match change {
            Change::User(id) => self.cache.forget_user(id),
            Change::Token(jti) => self.cache.forget_token(jti),
            Change::Key(id) => self.cache.forget_key(id),
            Change::Projects(user, environment) => self.cache.forget_projects((user, environment)),
        }
        self.next.changed(change);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use mockall::Sequence;
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};
    use uuid::Uuid;

    use super::{AuthCache, CachedReads, Entries, Forgets, Lookup};
    use portcullis_domain::ports::{Change, ChangeFeed, HotReads, MockChangeFeed, MockClock, MockHotReads};
    use portcullis_domain::{Email, Role, SessionLookup, StoreError, User, UserId};

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
            email_verified: false,
            mfa_enabled: false,
            session_version,
            created_at: T0,
            updated_at: T0,
        };
        SessionLookup { user, revoked: false, session_ended: false, linked: Vec::new() }
    }

    /// The cache in front of `store`, on a clock the test moves by hand.
    fn cached(store: MockHotReads) -> (CachedReads, Arc<Mutex<OffsetDateTime>>) {
        let now = Arc::new(Mutex::new(T0));
        let mut clock = MockClock::new();
        let read = Arc::clone(&now);
        clock.expect_now().returning(move || *read.lock().expect("the test's clock"));
        let cache = Arc::new(AuthCache::new(TTL, Arc::new(clock)));
        (CachedReads { inner: Arc::new(store), cache }, now)
    }

    /// The store answers `answers` in order, one read each, and no more.
    fn store(answers: Vec<Result<Option<SessionLookup>, StoreError>>) -> MockHotReads {
        let mut store = MockHotReads::new();
        let mut order = Sequence::new();
        for answer in answers {
            store.expect_find_session().times(1).in_sequence(&mut order).return_once(move |_, _, _| answer);
        }
        store
    }

    /// Moves the test's clock to `T0 + since`.
    fn move_to(now: &Mutex<OffsetDateTime>, since: Duration) {
        *now.lock().expect("the test's clock") = T0 + since;
    }

    /// Lets a refresh started in the background finish (the store's
    /// answers here are ready at once).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn version(found: &Result<Option<SessionLookup>, StoreError>) -> Option<i64> {
        found.as_ref().expect("an answer").as_ref().map(|s| s.user.session_version)
    }

    #[test]
    fn one_caller_refreshes_a_value_in_the_second_half_of_its_ttl() {
        let entries = Entries::new(|_: &&str| [None, None]);
        entries.put(1, "read at 0", T0, TTL, || true);
        assert!(matches!(entries.lookup(&1, T0 + Duration::milliseconds(499), TTL), Lookup::Fresh(_)));
        let later = T0 + Duration::milliseconds(500);
        assert!(matches!(entries.lookup(&1, later, TTL), Lookup::Refresh("read at 0")));
        assert!(matches!(entries.lookup(&1, later, TTL), Lookup::Fresh("read at 0")), "only one refreshes");
        assert!(matches!(entries.lookup(&1, T0 + TTL, TTL), Lookup::Miss), "never served past its ttl");
        entries.put(1, "read at 500", later, TTL, || true);
        assert!(matches!(entries.lookup(&1, T0 + TTL, TTL), Lookup::Refresh("read at 500")));
    }

    #[tokio::test]
    async fn a_session_in_steady_use_is_read_again_before_it_expires() {
        let (id, jti) = (UserId::new(), Uuid::new_v4());
        let (cache, now) = cached(store(vec![Ok(Some(session(id, 1))), Ok(Some(session(id, 2)))]));
        assert_eq!(version(&cache.find_session(id, jti, None).await), Some(1));
        move_to(&now, Duration::milliseconds(400));
        assert_eq!(version(&cache.find_session(id, jti, None).await), Some(1), "served from the cache");
        move_to(&now, Duration::milliseconds(600));
        assert_eq!(
            version(&cache.find_session(id, jti, None).await),
            Some(1),
            "served while it is read again in the background"
        );
        settle().await;
        assert_eq!(version(&cache.find_session(id, jti, None).await), Some(2), "read again");
        // Read at 600, so still served at 1 050, past the first read's ttl.
        move_to(&now, Duration::milliseconds(1_050));
        assert_eq!(version(&cache.find_session(id, jti, None).await), Some(2), "served from the cache");
    }

    #[tokio::test]
    async fn a_refresh_that_fails_serves_the_value_until_its_ttl_ends() {
        let (id, jti) = (UserId::new(), Uuid::new_v4());
        let down = || Err(StoreError::Unavailable("down".into()));
        let (cache, now) = cached(store(vec![Ok(Some(session(id, 1))), down(), down()]));
        assert_eq!(version(&cache.find_session(id, jti, None).await), Some(1));
        move_to(&now, Duration::milliseconds(600));
        assert_eq!(version(&cache.find_session(id, jti, None).await), Some(1), "served meanwhile");
        settle().await;
        assert_eq!(version(&cache.find_session(id, jti, None).await), Some(1), "the refresh failed");
        move_to(&now, Duration::milliseconds(700));
        assert_eq!(
            version(&cache.find_session(id, jti, None).await),
            Some(1),
            "not tried again before the ttl"
        );
        move_to(&now, TTL);
        assert!(cache.find_session(id, jti, None).await.is_err(), "expired: the store's answer");
    }

    #[tokio::test]
    async fn a_refresh_that_finds_nothing_forgets_the_value() {
        let (id, jti) = (UserId::new(), Uuid::new_v4());
        let (cache, now) = cached(store(vec![Ok(Some(session(id, 1))), Ok(None), Ok(None), Ok(None)]));
        assert_eq!(version(&cache.find_session(id, jti, None).await), Some(1));
        move_to(&now, Duration::milliseconds(600));
        assert_eq!(version(&cache.find_session(id, jti, None).await), Some(1), "served meanwhile");
        settle().await;
        assert_eq!(version(&cache.find_session(id, jti, None).await), None, "forgotten, read again");
        move_to(&now, Duration::milliseconds(650));
        assert_eq!(version(&cache.find_session(id, jti, None).await), None, "read again, not served");
    }

    fn sessions(max: usize) -> Entries<Uuid, SessionLookup> {
        Entries::bounded(max, super::session_tags)
    }

    #[test]
    fn the_bound_holds_and_the_oldest_entries_go_first() {
        let entries = sessions(super::SHARDS * 4);
        let user = UserId::new();
        let keys: Vec<Uuid> = (0..5_000).map(|_| Uuid::new_v4()).collect();
        for (i, key) in keys.iter().enumerate() {
            let at = T0 + Duration::microseconds(i64::try_from(i).expect("small"));
            entries.put(*key, session(user, 1), at, Duration::hours(1), || true);
        }
        assert!(entries.len() <= super::SHARDS * 4, "{} entries", entries.len());
        let now = T0 + Duration::seconds(1);
        let hit = |key: &Uuid| matches!(entries.lookup(key, now, Duration::hours(1)), Lookup::Fresh(_));
        assert!(!keys[..100].iter().any(hit), "the first ones went");
        assert!(keys[4_990..].iter().all(hit), "the last ones stay");
        let indexed: usize = entries
            .index
            .iter()
            .map(|i| super::locked(i).values().map(super::Keys::len).sum::<usize>())
            .sum();
        assert_eq!(indexed, entries.len(), "the index follows evictions");
    }

    #[test]
    fn forgetting_a_user_forgets_their_entries_only() {
        let entries = sessions(1_000);
        let (alice, bob) = (UserId::new(), UserId::new());
        let (a1, a2, b1) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for (key, user) in [(a1, alice), (a2, alice), (b1, bob)] {
            entries.put(key, session(user, 1), T0, TTL, || true);
        }
        entries.forget(super::Tag::User(alice));
        let fresh = |key: &Uuid| matches!(entries.lookup(key, T0, TTL), Lookup::Fresh(_));
        assert!(!fresh(&a1) && !fresh(&a2), "alice's sessions are gone");
        assert!(fresh(&b1), "bob's stays");
        assert_eq!(entries.len(), 1);
    }

    /// A write that comes right after a read's epoch check cannot miss the
    /// entry the read is putting: the check and the insert are one step
    /// under the shard's lock, and the key is indexed before it.
    #[test]
    fn a_write_just_after_the_epoch_check_still_forgets_the_entry() {
        let entries = Arc::new(sessions(1_000));
        let (user, jti) = (UserId::new(), Uuid::new_v4());
        let (checked, on_check) = std::sync::mpsc::channel::<()>();
        let writer = {
            let entries = Arc::clone(&entries);
            std::thread::spawn(move || {
                on_check.recv().expect("the check happens");
                entries.forget(super::Tag::User(user));
            })
        };
        entries.put(jti, session(user, 1), T0, TTL, || {
            checked.send(()).expect("the writer waits");
            // The writer runs now; it must wait for this put to finish.
            std::thread::sleep(std::time::Duration::from_millis(50));
            true
        });
        writer.join().expect("the writer finishes");
        assert!(matches!(entries.lookup(&jti, T0, TTL), Lookup::Miss), "the write's forget found the entry");
    }

    #[tokio::test]
    async fn a_change_forgets_what_it_concerns_and_is_passed_on() {
        let (alice, bob) = (UserId::new(), UserId::new());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut store = MockHotReads::new();
        // Alice's session is read twice (the change forgets it), Bob's once.
        store
            .expect_find_session()
            .withf(move |_, jti, _| *jti == a)
            .times(2)
            .returning(move |_, _, _| Ok(Some(session(alice, 1))));
        store
            .expect_find_session()
            .withf(move |_, jti, _| *jti == b)
            .times(1)
            .returning(move |_, _, _| Ok(Some(session(bob, 1))));
        let (reads, _now) = cached(store);
        let mut next = MockChangeFeed::new();
        next.expect_changed().withf(move |change| *change == Change::User(alice)).times(1).return_const(());
        let feed = Forgets { cache: Arc::clone(&reads.cache), next: Arc::new(next) };
        for jti in [a, b] {
            let id = if jti == a { alice } else { bob };
            assert!(reads.find_session(id, jti, None).await.expect("read").is_some());
        }
        feed.changed(Change::User(alice));
        assert!(reads.find_session(alice, a, None).await.expect("read again").is_some());
        assert!(reads.find_session(bob, b, None).await.expect("still cached").is_some());
    }
}
