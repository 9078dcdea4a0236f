use portcullis_domain::{
    ApiKey, ApiKeyId, Email, Environment, KeyDigest, KeyUsage, NewUser, Project, ResourceName, Role,
    StoreError, User, UserId,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::ContractStore;

const CREATED: OffsetDateTime = datetime!(2026-02-03 12:00:00 UTC);

async fn owner<S: ContractStore + ?Sized>(store: &S, email: &str) -> User {
    let user = NewUser {
        id: UserId::new(),
        email: Email::parse(email).expect("Email::parse accepts the fixture"),
        full_name: None,
        password_hash: None,
        role: Role::User,
        email_verified: false,
        created_at: CREATED,
    };
    store.create(user).await.expect("create succeeds")
}

fn key(user: &User, digest_byte: u8, created_at: OffsetDateTime) -> ApiKey {
    ApiKey {
        id: ApiKeyId::new(),
        user_id: user.id,
        name: ResourceName::parse("Production Server Key").expect("ResourceName::parse accepts the fixture"),
        environment: Environment::Live,
        digest: KeyDigest([digest_byte; 32]),
        created_at,
        expires_at: created_at + Duration::days(90),
        revoked_at: None,
        last_used_at: None,
        usage_count: 0,
    }
}

pub async fn key_insert_then_find_with_owner<S: ContractStore + ?Sized>(store: &S) {
    let user = owner(store, "key-owner@example.com").await;
    let mut new = key(&user, 1, CREATED);
    new.environment = Environment::Test;
    let stored = store.insert_key(new.clone()).await.expect("insert_key succeeds");
    assert_eq!(stored, new);
    let found = store.find_key_with_owner(&KeyDigest([1; 32])).await.expect("find_key_with_owner succeeds");
    assert_eq!(found, Some((new, user)), "the key and its owner in one lookup");
    assert_eq!(
        store.find_key_with_owner(&KeyDigest([2; 32])).await.expect("find_key_with_owner succeeds"),
        None
    );
}

pub async fn key_digests_are_unique<S: ContractStore + ?Sized>(store: &S) {
    let user = owner(store, "key-dup@example.com").await;
    store.insert_key(key(&user, 3, CREATED)).await.expect("insert_key succeeds");
    let duplicate = store.insert_key(key(&user, 3, CREATED)).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
}

pub async fn keys_are_listed_newest_first_for_their_owner_only<S: ContractStore + ?Sized>(store: &S) {
    let alice = owner(store, "alice-keys@example.com").await;
    let bob = owner(store, "bob-keys@example.com").await;
    let old = store.insert_key(key(&alice, 10, CREATED)).await.expect("insert_key succeeds");
    let new =
        store.insert_key(key(&alice, 11, CREATED + Duration::hours(1))).await.expect("insert_key succeeds");
    store.insert_key(key(&bob, 12, CREATED)).await.expect("insert_key succeeds");
    assert_eq!(store.list_keys(alice.id).await.expect("list_keys succeeds"), vec![new, old]);
    assert_eq!(store.list_keys(UserId::new()).await.expect("list_keys succeeds"), vec![]);
}

pub async fn revoking_a_key_is_for_its_owner_only_and_keeps_the_first_time<S: ContractStore + ?Sized>(
    store: &S,
) {
    let alice = owner(store, "alice-revoke@example.com").await;
    let bob = owner(store, "bob-revoke@example.com").await;
    let stored = store.insert_key(key(&alice, 20, CREATED)).await.expect("insert_key succeeds");
    let first = CREATED + Duration::hours(2);

    assert_eq!(store.revoke_key(bob.id, stored.id, first).await, Err(StoreError::NotFound), "not bob's key");
    assert_eq!(store.revoke_key(alice.id, ApiKeyId::new(), first).await, Err(StoreError::NotFound));

    let revoked = store.revoke_key(alice.id, stored.id, first).await.expect("revoke_key succeeds");
    assert_eq!(revoked.revoked_at, Some(first));
    let again =
        store.revoke_key(alice.id, stored.id, first + Duration::hours(1)).await.expect("revoke_key succeeds");
    assert_eq!(again.revoked_at, Some(first), "the first revocation time stays");
    let (found, _) = store
        .find_key_with_owner(&KeyDigest([20; 32]))
        .await
        .expect("find_key_with_owner succeeds")
        .expect("it is found");
    assert_eq!(found.revoked_at, Some(first));
}

pub async fn key_usage_adds_up_and_only_moves_forward<S: ContractStore + ?Sized>(store: &S) {
    let user = owner(store, "usage@example.com").await;
    let stored = store.insert_key(key(&user, 30, CREATED)).await.expect("insert_key succeeds");
    let later = CREATED + Duration::minutes(5);
    let earlier = CREATED + Duration::minutes(1);
    store
        .record_key_usage(&[KeyUsage { id: stored.id, count: 3, last_used_at: later }])
        .await
        .expect("record_key_usage succeeds");
    let other =
        store.insert_key(key(&user, 31, CREATED - Duration::days(1))).await.expect("insert_key succeeds");
    store
        .record_key_usage(&[
            KeyUsage { id: stored.id, count: 4, last_used_at: earlier },
            KeyUsage { id: ApiKeyId::new(), count: 9, last_used_at: later },
            KeyUsage { id: other.id, count: 2, last_used_at: earlier },
        ])
        .await
        .expect("record_key_usage succeeds");
    let listed = store.list_keys(user.id).await.expect("list_keys succeeds");
    assert_eq!(listed[0].usage_count, 7, "counts from several flushes add up");
    assert_eq!(listed[0].last_used_at, Some(later), "an older batch does not move last_used_at back");
    assert_eq!((listed[1].id, listed[1].usage_count), (other.id, 2), "every key of a batch is counted");
    assert_eq!(listed[1].last_used_at, Some(earlier), "a first use sets last_used_at");
    store.record_key_usage(&[]).await.expect("an empty batch is nothing to write");
}

pub async fn projects_are_per_owner_and_environment_newest_first<S: ContractStore + ?Sized>(store: &S) {
    let alice = owner(store, "alice-projects@example.com").await;
    let bob = owner(store, "bob-projects@example.com").await;
    let project = |user: &User, environment, minutes: i64| Project {
        id: uuid::Uuid::now_v7(),
        user_id: user.id,
        name: ResourceName::parse("My project").expect("ResourceName::parse accepts the fixture"),
        environment,
        created_at: CREATED + Duration::minutes(minutes),
    };
    let first =
        store.insert_project(project(&alice, Environment::Live, 0)).await.expect("insert_project succeeds");
    let second =
        store.insert_project(project(&alice, Environment::Live, 1)).await.expect("insert_project succeeds");
    let test =
        store.insert_project(project(&alice, Environment::Test, 2)).await.expect("insert_project succeeds");
    store.insert_project(project(&bob, Environment::Live, 3)).await.expect("insert_project succeeds");
    assert_eq!(
        store.list_projects(alice.id, Environment::Live).await.expect("list_projects succeeds"),
        vec![second, first]
    );
    assert_eq!(
        store.list_projects(alice.id, Environment::Test).await.expect("list_projects succeeds"),
        vec![test]
    );
}
