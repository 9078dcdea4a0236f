//! The services' rules over the memory store, real crypto and mockall mocks.

use std::sync::Arc;

use portcullis_crypto::OsSecrets;
use portcullis_domain::ports::{MockPasswordHasher, PasswordHasher, UserRepository};
use portcullis_domain::{
    Adapters, AuthError, AuthSettings, DomainError, Email, Password, Ports, Registration, Services, UsersFrom,
};
use portcullis_store_memory::MemoryStore;
use portcullis_testkit::ManualClock;
use time::Duration;

struct World {
    services: Services,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
}

fn fast_hasher() -> Arc<dyn PasswordHasher> {
    portcullis_testkit::cheap_hasher()
}

fn world_with(hasher: Arc<dyn PasswordHasher>) -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new());
    let base = portcullis_testkit::memory_ports(store.clone(), clock.clone());
    let ports = Ports { adapters: Adapters { hasher, ..base.adapters }, ..base };
    World { services: Services::new(ports, AuthSettings::default()), store, clock }
}

fn world() -> World {
    world_with(fast_hasher())
}

/// `email`'s caller after a login with `password` (no second factor).
async fn signed_in(services: &Services, email: &str, password: &str) -> portcullis_domain::Principal {
    let token =
        services.sessions.login(email, Password::new(password)).await.unwrap().into_session().unwrap();
    services.sessions.authenticate(token.access_token.as_str()).await.unwrap()
}

fn registration(email: &str) -> Registration {
    Registration { email: email.to_owned(), password: Password::new("SecurePass123!"), full_name: None }
}

#[tokio::test]
async fn an_unknown_email_costs_exactly_one_dummy_verification() {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify_dummy().times(1).returning(|_| Ok(()));
    hasher.expect_verify().never();
    let world = world_with(Arc::new(hasher));
    let result = world.services.sessions.login("nobody@example.com", Password::new("SecurePass123!")).await;
    assert_eq!(result.unwrap_err(), DomainError::Unauthenticated(AuthError::InvalidCredentials));
}

#[tokio::test]
async fn invalid_registrations_are_refused_before_any_hashing() {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().never();
    let world = world_with(Arc::new(hasher));
    let bad_email = world.services.accounts.register(registration("not-an-email")).await.unwrap_err();
    assert_eq!(bad_email.code(), "invalid_email");
    let weak = Registration { password: Password::new("weak"), ..registration("user@example.com") };
    assert_eq!(world.services.accounts.register(weak).await.unwrap_err().code(), "weak_password");
}

#[tokio::test]
async fn exhausted_hashing_capacity_is_unavailable_and_stores_nothing() {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().returning(|_| Err(DomainError::Unavailable("saturated".to_owned())));
    let world = world_with(Arc::new(hasher));
    let error = world.services.accounts.register(registration("user@example.com")).await.unwrap_err();
    assert_eq!(error.code(), "service_unavailable");
    let email = Email::parse("user@example.com").unwrap();
    assert_eq!(world.store.find_by_email(&email).await.unwrap(), None);
}

#[tokio::test]
async fn a_password_change_in_the_same_second_revokes_earlier_tokens() {
    let world = world();
    let (_, first) = world.services.accounts.register(registration("user@example.com")).await.unwrap();
    let first = first.expect("signed in: verification is not required");
    let principal = world.services.sessions.authenticate(first.access_token.as_str()).await.unwrap();
    let new = world
        .services
        .accounts
        .change_password(&principal, Password::new("SecurePass123!"), Password::new("NewSecurePass456!"))
        .await
        .unwrap();
    assert_eq!(first.claims.iat, new.claims.iat, "the clock did not move");
    let old = world.services.sessions.authenticate(first.access_token.as_str()).await.unwrap_err();
    assert_eq!(old, DomainError::Unauthenticated(AuthError::TokenRevoked));
    assert!(world.services.sessions.authenticate(new.access_token.as_str()).await.is_ok());
}

#[tokio::test]
async fn refresh_is_single_use() {
    let world = world();
    let (_, token) = world.services.accounts.register(registration("user@example.com")).await.unwrap();
    let token = token.expect("signed in: verification is not required");
    let refreshed = world.services.sessions.refresh(token.access_token.as_str()).await.unwrap();
    assert_ne!(refreshed.claims.jti, token.claims.jti);
    let again = world.services.sessions.refresh(token.access_token.as_str()).await.unwrap_err();
    assert_eq!(again, DomainError::Unauthenticated(AuthError::TokenRevoked));
}

#[tokio::test]
async fn revocations_are_purged_only_once_their_token_has_expired() {
    let world = world();
    let (_, token) = world.services.accounts.register(registration("user@example.com")).await.unwrap();
    let token = token.expect("signed in: verification is not required");
    world.services.sessions.logout(token.access_token.as_str()).await.unwrap();
    assert_eq!(world.services.sessions.purge_expired_revocations().await.unwrap(), 0);
    world.clock.advance(Duration::seconds(28_800));
    assert_eq!(
        world.services.sessions.purge_expired_revocations().await.unwrap(),
        0,
        "kept through the leeway"
    );
    world.clock.advance(Duration::seconds(6));
    assert_eq!(world.services.sessions.purge_expired_revocations().await.unwrap(), 1);
    let expired = world.services.sessions.authenticate(token.access_token.as_str()).await.unwrap_err();
    assert_eq!(expired, DomainError::Unauthenticated(AuthError::TokenExpired), "and the token stays refused");
}

#[tokio::test]
async fn a_user_without_a_password_cannot_log_in() {
    let world = world();
    let email = Email::parse("oauth-only@example.com").unwrap();
    world
        .store
        .create(portcullis_domain::NewUser {
            id: portcullis_domain::UserId::new(),
            email,
            full_name: None,
            password_hash: None,
            role: portcullis_domain::Role::User,
            email_verified: false,
            created_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    let result = world.services.sessions.login("oauth-only@example.com", Password::new("")).await;
    assert_eq!(result.unwrap_err(), DomainError::Unauthenticated(AuthError::InvalidCredentials));
}

#[tokio::test]
async fn ensure_admin_creates_then_promotes() {
    let world = world();
    let created =
        world.services.accounts.ensure_admin("boss@example.com", Some(Password::new("BossPass123!"))).await;
    assert_eq!(created.unwrap(), portcullis_domain::AdminOutcome::Created);
    world.services.accounts.register(registration("user@example.com")).await.unwrap();
    let promoted = world.services.accounts.ensure_admin(" USER@example.com", None).await.unwrap();
    assert_eq!(promoted, portcullis_domain::AdminOutcome::Promoted);
    let none = world.services.accounts.ensure_admin("new@example.com", None).await.unwrap_err();
    assert_eq!(none.code(), "invalid_field");
}

/// The memory store, counting writes of key usage.
struct CountingKeys {
    inner: Arc<MemoryStore>,
    usage_writes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl portcullis_domain::ports::ApiKeyRepository for CountingKeys {
    async fn insert_key(
        &self,
        key: portcullis_domain::ApiKey,
    ) -> Result<portcullis_domain::ApiKey, portcullis_domain::StoreError> {
        self.inner.insert_key(key).await
    }
    async fn list_keys(
        &self,
        user: portcullis_domain::UserId,
    ) -> Result<Vec<portcullis_domain::ApiKey>, portcullis_domain::StoreError> {
        self.inner.list_keys(user).await
    }
    async fn revoke_key(
        &self,
        user: portcullis_domain::UserId,
        id: portcullis_domain::ApiKeyId,
        now: time::OffsetDateTime,
    ) -> Result<portcullis_domain::ApiKey, portcullis_domain::StoreError> {
        self.inner.revoke_key(user, id, now).await
    }
    async fn record_key_usage(
        &self,
        usage: &[portcullis_domain::KeyUsage],
    ) -> Result<(), portcullis_domain::StoreError> {
        self.usage_writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.record_key_usage(usage).await
    }
    async fn record_key_sightings(
        &self,
        sightings: &[portcullis_domain::KeySighting],
    ) -> Result<Vec<uuid::Uuid>, portcullis_domain::StoreError> {
        self.inner.record_key_sightings(sightings).await
    }
}

#[tokio::test]
async fn key_authentication_writes_nothing_until_the_flush() {
    use portcullis_domain::ports::ApiKeyRepository;

    let store = Arc::new(MemoryStore::new());
    let keys =
        Arc::new(CountingKeys { inner: store.clone(), usage_writes: std::sync::atomic::AtomicUsize::new(0) });
    let ports = Ports {
        api_keys: keys.clone(),
        ..portcullis_testkit::memory_ports(store.clone(), Arc::new(ManualClock::new()))
    };
    let services = Services::new(ports, AuthSettings::default());
    let (user, token) = services.accounts.register(registration("user@example.com")).await.unwrap();
    let token = token.expect("signed in: verification is not required");
    let caller = services.sessions.authenticate(token.access_token.as_str()).await.unwrap();
    let (key, secret) = services
        .api_keys
        .create(&caller, portcullis_domain::NewKeyRequest { name: "k".to_owned(), ..Default::default() })
        .await
        .unwrap();

    for _ in 0..25 {
        let principal = services.api_keys.authenticate(secret.expose()).await.unwrap();
        assert_eq!(principal.user.id, user.id);
        assert_eq!(principal.method, portcullis_domain::AuthMethod::ApiKey);
    }
    assert_eq!(
        keys.usage_writes.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no write on the request path"
    );

    assert_eq!(services.api_keys.flush_usage().await.unwrap(), 1);
    assert_eq!(keys.usage_writes.load(std::sync::atomic::Ordering::SeqCst), 1, "one batched write");
    assert_eq!(services.api_keys.flush_usage().await.unwrap(), 0, "nothing left to write");
    let stored = store.list_keys(user.id).await.unwrap();
    assert_eq!((stored[0].id, stored[0].usage_count), (key.id, 25));
}

#[tokio::test]
async fn counts_survive_a_failed_flush() {
    use portcullis_domain::ports::MockApiKeyRepository;

    let mut keys = MockApiKeyRepository::new();
    let user = portcullis_domain::NewUser {
        id: portcullis_domain::UserId::new(),
        email: Email::parse("user@example.com").unwrap(),
        full_name: None,
        password_hash: None,
        role: portcullis_domain::Role::User,
        email_verified: false,
        created_at: time::OffsetDateTime::now_utc(),
    }
    .into_user();
    let secret = portcullis_domain::ApiKeySecret::from_random(portcullis_domain::Environment::Live, [5; 32]);
    let key = portcullis_domain::ApiKey {
        id: portcullis_domain::ApiKeyId::new(),
        user_id: user.id,
        name: portcullis_domain::ResourceName::parse("k").unwrap(),
        environment: portcullis_domain::Environment::Live,
        digest: portcullis_domain::KeyDigest(portcullis_domain::ports::SecretGenerator::digest(
            &OsSecrets,
            secret.expose().as_bytes(),
        )),
        created_at: time::OffsetDateTime::now_utc(),
        expires_at: time::OffsetDateTime::now_utc() + Duration::days(1),
        revoked_at: None,
        last_used_at: None,
        usage_count: 0,
    };
    let found = (key.clone(), user);
    let mut reads = portcullis_domain::ports::MockHotReads::new();
    reads.expect_find_key_with_owner().returning(move |_| Ok(Some(found.clone())));
    let mut sequence = mockall::Sequence::new();
    keys.expect_record_key_usage()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_| Err(portcullis_domain::StoreError::Unavailable("down".to_owned())));
    keys.expect_record_key_usage()
        .times(1)
        .in_sequence(&mut sequence)
        .withf(|usage| usage.len() == 1 && usage[0].count == 3)
        .returning(|_| Ok(()));
    let store = Arc::new(MemoryStore::new());
    let ports = Ports {
        api_keys: Arc::new(keys),
        reads: Arc::new(reads),
        ..portcullis_testkit::memory_ports(store, Arc::new(ManualClock::new()))
    };
    let services = Services::new(ports, AuthSettings::default());
    services.api_keys.authenticate(secret.expose()).await.unwrap();
    services.api_keys.authenticate(secret.expose()).await.unwrap();
    assert!(services.api_keys.flush_usage().await.is_err(), "the store is down");
    services.api_keys.authenticate(secret.expose()).await.unwrap();
    assert_eq!(services.api_keys.flush_usage().await.unwrap(), 1, "the kept counts go out with the new one");
}

/// A flush writes a thousand keys a store call (one short transaction each);
/// when a call fails, what it and the calls after it held waits for the next
/// flush, and nothing already written is written twice.
#[tokio::test]
async fn a_flush_writes_in_bounded_batches_and_keeps_what_failed() {
    use portcullis_domain::ports::MockApiKeyRepository;
    use std::collections::HashMap;
    use std::sync::Mutex;

    let user = portcullis_domain::NewUser {
        id: portcullis_domain::UserId::new(),
        email: Email::parse("fleet@example.com").unwrap(),
        full_name: None,
        password_hash: None,
        role: portcullis_domain::Role::User,
        email_verified: false,
        created_at: time::OffsetDateTime::now_utc(),
    }
    .into_user();
    // Every presented key resolves to a key of its own: 2 500 distinct keys.
    let mut reads = portcullis_domain::ports::MockHotReads::new();
    reads.expect_find_key_with_owner().returning(move |digest| {
        let key = portcullis_domain::ApiKey {
            id: portcullis_domain::ApiKeyId::new(),
            user_id: user.id,
            name: portcullis_domain::ResourceName::parse("k").unwrap(),
            environment: portcullis_domain::Environment::Live,
            digest: *digest,
            created_at: time::OffsetDateTime::now_utc(),
            expires_at: time::OffsetDateTime::now_utc() + Duration::days(1),
            revoked_at: None,
            last_used_at: None,
            usage_count: 0,
        };
        Ok(Some((key, user.clone())))
    });
    let written: Arc<Mutex<HashMap<portcullis_domain::ApiKeyId, i64>>> = Arc::default();
    let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let mut keys = MockApiKeyRepository::new();
    let (kept, seen) = (written.clone(), sizes.clone());
    keys.expect_record_key_usage().returning(move |usage| {
        let mut seen = seen.lock().unwrap();
        seen.push(usage.len());
        if seen.len() == 2 {
            return Err(portcullis_domain::StoreError::Unavailable("down".to_owned()));
        }
        let mut kept = kept.lock().unwrap();
        for entry in usage {
            *kept.entry(entry.id).or_default() += entry.count;
        }
        Ok(())
    });
    let store = Arc::new(MemoryStore::new());
    let ports = Ports {
        api_keys: Arc::new(keys),
        reads: Arc::new(reads),
        ..portcullis_testkit::memory_ports(store, Arc::new(ManualClock::new()))
    };
    let services = Services::new(ports, AuthSettings::default());
    for i in 0..2_500u32 {
        let mut bytes = [0; 32];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        let secret =
            portcullis_domain::ApiKeySecret::from_random(portcullis_domain::Environment::Live, bytes);
        services.api_keys.authenticate(secret.expose()).await.unwrap();
    }
    assert!(services.api_keys.flush_usage().await.is_err(), "the second batch fails");
    assert_eq!(*sizes.lock().unwrap(), [1_000, 1_000], "the flush stops at the failure");
    assert_eq!(written.lock().unwrap().len(), 1_000, "the first batch is written");
    assert_eq!(services.api_keys.flush_usage().await.unwrap(), 1_500, "the rest goes out at the next flush");
    assert_eq!(*sizes.lock().unwrap(), [1_000, 1_000, 1_000, 500]);
    let written = written.lock().unwrap();
    assert_eq!(written.len(), 2_500, "every key");
    assert!(written.values().all(|&count| count == 1), "each counted once");
}

#[tokio::test]
async fn a_login_upgrades_a_hash_made_with_weaker_parameters() {
    use portcullis_domain::ports::UserRepository;

    let world = world();
    let (user, token) = world.services.accounts.register(registration("user@example.com")).await.unwrap();
    let token = token.expect("signed in: verification is not required");
    let weak_hash = world.store.find_by_id(user.id).await.unwrap().unwrap().password_hash.unwrap();

    // The operator raised the cost: same store, a stronger hasher.
    let stronger: Arc<dyn PasswordHasher> = Arc::new(
        portcullis_crypto::Argon2Hasher::new(&portcullis_crypto::HashingConfig {
            memory_kib: 128,
            iterations: 2,
            parallelism: 1,
            threads: 1,
            queue: 8,
        })
        .unwrap(),
    );
    let base = portcullis_testkit::memory_ports(world.store.clone(), world.clock.clone());
    let ports = Ports { adapters: Adapters { hasher: stronger, ..base.adapters }, ..base };
    let upgraded = Services::new(ports, AuthSettings::default());
    upgraded.sessions.login("user@example.com", Password::new("SecurePass123!")).await.unwrap();

    let stored = world.store.find_by_id(user.id).await.unwrap().unwrap();
    let new_hash = stored.password_hash.unwrap();
    assert_ne!(new_hash, weak_hash);
    assert!(new_hash.as_str().contains("m=128,t=2,p=1"), "{:?}", new_hash.as_str());
    assert_eq!(stored.session_version, user.session_version, "no session ends");
    assert!(world.services.sessions.authenticate(token.access_token.as_str()).await.is_ok());
    upgraded.sessions.login("user@example.com", Password::new("SecurePass123!")).await.unwrap();
}

/// The request path of forgot-password, for a registered and an unknown
/// email: one queued request each, and no user lookup, token or email
/// before the answer (any other call on these mocks would panic).
#[tokio::test]
async fn forgot_password_does_the_same_work_for_registered_and_unknown_emails() {
    use std::sync::Mutex;

    use portcullis_domain::ports::{MockOutbox, MockPasswordResetRepository, MockUserRepository};

    let world = world();
    world.services.accounts.register(registration("known@example.com")).await.unwrap();
    let queued = Arc::new(Mutex::new(Vec::new()));
    let mut resets = MockPasswordResetRepository::new();
    let seen = Arc::clone(&queued);
    resets.expect_request_reset().times(2).returning(move |request| {
        seen.lock().unwrap().push(request.email.as_str().to_owned());
        Ok(())
    });
    let ports = Ports {
        users: Arc::new(MockUserRepository::new()),
        resets: Arc::new(resets),
        outbox: Arc::new(MockOutbox::new()),
        ..portcullis_testkit::memory_ports(world.store.clone(), world.clock.clone())
    };
    let services = Services::new(ports, AuthSettings::default());
    services.passwords.forgot("Known@Example.com").await.unwrap();
    services.passwords.forgot("unknown@example.com").await.unwrap();
    assert_eq!(*queued.lock().unwrap(), ["known@example.com", "unknown@example.com"]);
}

#[tokio::test]
async fn the_worker_answers_a_registered_email_and_drops_an_unknown_one() {
    let world = world();
    world.services.accounts.register(registration("known@example.com")).await.unwrap();
    world.services.passwords.forgot("known@example.com").await.unwrap();
    world.services.passwords.forgot("unknown@example.com").await.unwrap();
    let report = world.services.passwords.deliver_due().await.unwrap();
    // Sent: the reset email, and registration's verification email.
    assert_eq!((report.resets_issued, report.requests_dropped, report.sent), (1, 1, 2), "{report:?}");
    let again = world.services.passwords.deliver_due().await.unwrap();
    assert_eq!((again.resets_issued, again.requests_dropped, again.sent), (0, 0, 0), "each request once");
}

#[test]
fn passwords_are_nfkc_normalised_and_keep_the_typed_form_when_it_differs() {
    let decomposed = Password::new("A\u{30a}bc\u{ff11}");
    assert_eq!(decomposed.expose(), "\u{c5}bc1");
    assert_eq!(decomposed.as_typed().unwrap().expose(), "A\u{30a}bc\u{ff11}");
    assert!(Password::new("SecurePass123!").as_typed().is_none(), "nothing to keep when nothing changed");
    // 10 000 combining marks: normalised in linear time, then judged by the rules.
    let marks = format!("Aa1!{}", "\u{301}".repeat(10_000));
    let long = Password::new(marks);
    assert!(long.expose().chars().count() > 128);
    let policy = portcullis_domain::PasswordPolicy::default();
    assert!(
        policy.check(long.expose(), None).unwrap_err().contains(&portcullis_domain::PasswordRule::TooLong)
    );
}

/// A change feed that writes down what it is told.
#[derive(Default)]
struct RecordedChanges(std::sync::Mutex<Vec<portcullis_domain::ports::Change>>);

impl portcullis_domain::ports::ChangeFeed for RecordedChanges {
    fn changed(&self, change: portcullis_domain::ports::Change) {
        self.0.lock().unwrap().push(change);
    }
}

impl RecordedChanges {
    fn take(&self) -> Vec<portcullis_domain::ports::Change> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Every write that changes what a cached read would show says so on the
/// change feed, once, naming exactly what it touched: that is all the cache
/// (and, later, other instances) learn of it.
#[tokio::test]
async fn each_write_that_a_cached_read_would_show_is_announced() {
    use portcullis_domain::ports::Change;
    use portcullis_domain::{NewKeyRequest, UserChanges};

    let store = Arc::new(MemoryStore::new());
    let feed = Arc::new(RecordedChanges::default());
    let base = portcullis_testkit::memory_ports(store, Arc::new(ManualClock::new()));
    let adapters = Adapters { hasher: fast_hasher(), changes: feed.clone(), ..base.adapters };
    let services = Services::new(Ports { adapters, ..base }, AuthSettings::default());

    let (user, token) = services.accounts.register(registration("user@example.com")).await.unwrap();
    let token = token.expect("signed in: verification is not required");
    assert_eq!(feed.take(), [], "a new user has no copies to forget");

    let rotated = services.sessions.refresh(token.access_token.as_str()).await.unwrap();
    assert_eq!(feed.take(), [Change::Token(token.claims.jti)], "refresh revokes the presented token");
    services.sessions.logout(rotated.access_token.as_str()).await.unwrap();
    assert_eq!(
        feed.take(),
        [Change::Token(rotated.claims.jti), Change::User(user.id)],
        "and ends its session"
    );

    let caller_now = signed_in(&services, "user@example.com", "SecurePass123!").await;
    let request = NewKeyRequest { name: "ci".to_owned(), expires_in_days: None, environment: None };
    let (key, _) = services.api_keys.create(&caller_now, request).await.unwrap();
    services.api_keys.revoke(&caller_now, key.id).await.unwrap();
    assert_eq!(feed.take(), [Change::Key(key.id)]);

    services.projects.create(&caller_now, "apollo").await.unwrap();
    assert_eq!(feed.take(), [Change::Projects(user.id, caller_now.environment)]);

    services
        .accounts
        .change_password(&caller_now, Password::new("SecurePass123!"), Password::new("NewSecurePass456!"))
        .await
        .unwrap();
    assert_eq!(feed.take(), [Change::User(user.id)]);

    services.accounts.ensure_admin("boss@example.com", Some(Password::new("BossPass123!"))).await.unwrap();
    assert_eq!(feed.take(), [], "a new administrator has no copies to forget");
    services.accounts.ensure_admin("user@example.com", None).await.unwrap();
    assert_eq!(feed.take(), [Change::User(user.id)], "a promotion");

    let boss = signed_in(&services, "boss@example.com", "BossPass123!").await;
    let disable = UserChanges { is_active: Some(false), role: None };
    services.admin.update_user(&boss, user.id, disable).await.unwrap();
    assert_eq!(feed.take(), [Change::User(user.id)], "a disable");
}

/// The contract types `offset` as int64: past it is a 422 naming the field,
/// not a page silently clamped.
#[tokio::test]
async fn an_offset_past_int64_is_refused() {
    let world = world();
    world
        .services
        .accounts
        .ensure_admin("boss@example.com", Some(Password::new("BossPass123!")))
        .await
        .unwrap();
    let token = world
        .services
        .sessions
        .login("boss@example.com", Password::new("BossPass123!"))
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let boss = world.services.sessions.authenticate(token.access_token.as_str()).await.unwrap();
    let past = u64::try_from(i64::MAX).unwrap() + 1;
    let refused = world.services.admin.list_users(&boss, 10, UsersFrom::Offset(past)).await.unwrap_err();
    assert_eq!(refused.code(), "invalid_field");
    let last = world.services.admin.list_users(&boss, 10, UsersFrom::Offset(past - 1)).await;
    assert!(last.is_ok(), "the last int64 is fine");
}

/// What an [`AuditObserver`](portcullis_domain::ports::AuditObserver) was told, in order.
#[derive(Default)]
struct Told(std::sync::Mutex<Vec<portcullis_domain::AuditEvent>>);

impl portcullis_domain::ports::AuditObserver for Told {
    fn written(&self, event: &portcullis_domain::AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// Every request comes from one address, so a key's first use is a sighting.
struct FromOneAddress;

impl portcullis_domain::ports::RequestContextSource for FromOneAddress {
    fn current(&self) -> portcullis_domain::RequestContext {
        portcullis_domain::RequestContext { ip: Some("203.0.113.9".to_owned()), ..Default::default() }
    }
}

/// The observer hears of every stored event once, whichever write stored
/// it (an append, a session's start, a rotation, the usage flush), and of
/// nothing a refused write did not store.
#[tokio::test]
async fn the_observer_is_told_each_stored_event_once() {
    use portcullis_domain::ports::AuditLog;
    use portcullis_domain::{AuditKind, AuditQuery, NewKeyRequest};

    let store = Arc::new(MemoryStore::new());
    let told = Arc::new(Told::default());
    let base = portcullis_testkit::memory_ports(store.clone(), Arc::new(ManualClock::new()));
    let adapters = Adapters {
        hasher: fast_hasher(),
        observer: told.clone(),
        context: Arc::new(FromOneAddress),
        ..base.adapters
    };
    let services = Services::new(Ports { adapters, ..base }, AuthSettings::default());

    let (_, token) = services.accounts.register(registration("user@example.com")).await.unwrap();
    let first = token.expect("signed in").refresh.expect("a refresh token").token;
    let second = services.sessions.refresh_with(first.expose()).await.unwrap();
    assert!(second.refresh.is_some());
    let reused = services.sessions.refresh_with(first.expose()).await;
    assert_eq!(
        reused.unwrap_err(),
        DomainError::Unauthenticated(AuthError::RefreshTokenReused),
        "within the grace"
    );
    let wrong = services.sessions.login("user@example.com", Password::new("WrongPass123!")).await;
    assert!(wrong.is_err());
    let caller = signed_in(&services, "user@example.com", "SecurePass123!").await;
    let request = NewKeyRequest { name: "ci".to_owned(), expires_in_days: None, environment: None };
    let (_, secret) = services.api_keys.create(&caller, request).await.unwrap();
    services.api_keys.authenticate(secret.expose()).await.unwrap();
    services.api_keys.flush_usage().await.unwrap();

    let told = std::mem::take(&mut *told.0.lock().unwrap());
    let mut stored =
        store.list_events(AuditQuery { user_id: None, kind: None, before: None, limit: 100 }).await.unwrap();
    stored.reverse();
    assert_eq!(told, stored, "told of each stored event once, in the order written");
    let kinds: Vec<AuditKind> = told.iter().map(|e| e.kind).collect();
    for kind in [
        AuditKind::Register,
        AuditKind::TokenRefreshed,
        AuditKind::LoginFailed,
        AuditKind::LoginSucceeded,
        AuditKind::ApiKeyCreated,
        AuditKind::ApiKeyNewIp,
    ] {
        assert_eq!(kinds.iter().filter(|k| **k == kind).count(), 1, "{kind}: {kinds:?}");
    }
}
