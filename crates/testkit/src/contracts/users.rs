use futures_util::future::join_all;
use portcullis_domain::{Email, FullName, NewUser, PasswordHash, Role, StoreError, UserId, UsersFrom};
use time::OffsetDateTime;
use time::macros::datetime;

use super::ContractStore;

/// Whole seconds, so every backend's timestamp precision keeps it exactly.
const CREATED: OffsetDateTime = datetime!(2026-02-03 12:00:00 UTC);
const LATER: OffsetDateTime = datetime!(2026-02-04 08:30:00 UTC);

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Email::parse(email).expect("Email::parse accepts the fixture"),
        full_name: FullName::parse("John Doe").expect("FullName::parse accepts the fixture"),
        password_hash: Some(PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g")),
        role: Role::User,
        email_verified: false,
        created_at: CREATED,
    }
}

pub async fn user_create_then_find_by_id_and_email<S: ContractStore + ?Sized>(store: &S) {
    let new = new_user("contract-create@example.com");
    let expected = new.clone().into_user();
    let created = store.create(new).await.expect("create succeeds");
    assert_eq!(created, expected, "create returns the stored user");
    assert_eq!(store.find_by_id(expected.id).await.expect("find_by_id succeeds"), Some(expected.clone()));
    assert_eq!(store.find_by_email(&expected.email).await.expect("find_by_email succeeds"), Some(expected));
}

pub async fn user_without_password_and_name_round_trips<S: ContractStore + ?Sized>(store: &S) {
    let mut new = new_user("contract-bare@example.com");
    new.password_hash = None;
    new.full_name = None;
    new.role = Role::Admin;
    let expected = new.clone().into_user();
    store.create(new).await.expect("create succeeds");
    assert_eq!(store.find_by_id(expected.id).await.expect("find_by_id succeeds"), Some(expected));
}

pub async fn user_find_unknown_is_none<S: ContractStore + ?Sized>(store: &S) {
    assert_eq!(store.find_by_id(UserId::new()).await.expect("find_by_id succeeds"), None);
    let email = Email::parse("nobody@example.com").expect("Email::parse accepts the fixture");
    assert_eq!(store.find_by_email(&email).await.expect("find_by_email succeeds"), None);
}

pub async fn user_duplicate_email_conflicts<S: ContractStore + ?Sized>(store: &S) {
    store.create(new_user("contract-dup@example.com")).await.expect("create succeeds");
    let second = store.create(new_user("contract-dup@example.com")).await;
    assert_eq!(second, Err(StoreError::Conflict("email")));
}

pub async fn user_concurrent_creates_with_one_email_one_wins<S: ContractStore + ?Sized>(store: &S) {
    let attempts = (0..20).map(|_| store.create(new_user("contract-race@example.com")));
    let results = join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| **r == Err(StoreError::Conflict("email"))).count();
    assert_eq!((created, conflicts), (1, 19), "exactly one create wins: {results:?}");
}

pub async fn user_set_role_and_active<S: ContractStore + ?Sized>(store: &S) {
    let user = store.create(new_user("contract-update@example.com")).await.expect("create succeeds");

    let promoted = store.set_role(user.id, Role::Admin, LATER).await.expect("set_role succeeds");
    assert_eq!(promoted.role, Role::Admin);
    assert_eq!(promoted.updated_at, LATER);

    let disabled = store.set_active(user.id, false, LATER).await.expect("set_active succeeds");
    assert!(!disabled.is_active);
    assert_eq!(disabled.session_version, 1, "disabling ends every session");
    assert_eq!(disabled.role, Role::Admin, "set_active keeps the role");
    assert_eq!(store.find_by_id(user.id).await.expect("find_by_id succeeds"), Some(disabled));

    let enabled = store.set_active(user.id, true, LATER).await.expect("set_active succeeds");
    assert!(enabled.is_active);
    assert_eq!(enabled.session_version, 1, "re-enabling does not revive old tokens");
    let again = store.set_active(user.id, true, LATER).await.expect("set_active succeeds");
    assert_eq!(again.session_version, 1);
}

pub async fn user_updates_of_unknown_id_are_not_found<S: ContractStore + ?Sized>(store: &S) {
    let id = UserId::new();
    assert_eq!(store.set_role(id, Role::Admin, LATER).await, Err(StoreError::NotFound));
    assert_eq!(store.set_active(id, false, LATER).await, Err(StoreError::NotFound));
    let hash = PasswordHash::new("$argon2id$x");
    assert_eq!(store.set_password(id, hash, LATER).await, Err(StoreError::NotFound));
}

pub async fn user_set_password_bumps_session_version<S: ContractStore + ?Sized>(store: &S) {
    let user = store.create(new_user("contract-password@example.com")).await.expect("create succeeds");
    assert_eq!(user.session_version, 0);
    let hash = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA");
    let updated = store.set_password(user.id, hash.clone(), LATER).await.expect("set_password succeeds");
    assert_eq!(updated.password_hash, Some(hash));
    assert_eq!(updated.session_version, 1);
    assert_eq!(updated.updated_at, LATER);
    let again = store
        .set_password(user.id, PasswordHash::new("$argon2id$y"), LATER)
        .await
        .expect("set_password succeeds");
    assert_eq!(again.session_version, 2, "every password change bumps the version");
    assert_eq!(store.find_by_id(user.id).await.expect("find_by_id succeeds"), Some(again));
}

pub async fn user_list_pages_in_creation_order_with_the_total<S: ContractStore + ?Sized>(store: &S) {
    let mut created = Vec::new();
    for i in 0..5 {
        let mut user = new_user(&format!("page{i}@example.com"));
        user.created_at = CREATED + time::Duration::minutes(i);
        created.push(store.create(user).await.expect("create succeeds"));
    }
    let (first, total) = store.list_users(2, UsersFrom::Offset(0)).await.expect("list_users succeeds");
    assert_eq!(total, 5);
    assert_eq!(first, created[..2].to_vec());
    let (middle, _) = store.list_users(2, UsersFrom::Offset(2)).await.expect("list_users succeeds");
    assert_eq!(middle, created[2..4].to_vec());
    let (last, _) = store.list_users(2, UsersFrom::Offset(4)).await.expect("list_users succeeds");
    assert_eq!(last, created[4..].to_vec());
    let (beyond, total) = store.list_users(2, UsersFrom::Offset(10)).await.expect("list_users succeeds");
    assert_eq!((beyond.len(), total), (0, 5));
}

pub async fn user_list_pages_after_a_user_through_ties_in_creation_time<S: ContractStore + ?Sized>(
    store: &S,
) {
    // Three of the five share one creation second: the id orders them.
    let mut created = Vec::new();
    for (i, minute) in [0, 1, 1, 1, 2].into_iter().enumerate() {
        let mut user = new_user(&format!("keyset{i}@example.com"));
        user.created_at = CREATED + time::Duration::minutes(minute);
        created.push(store.create(user).await.expect("create succeeds"));
    }
    created.sort_by_key(|u| (u.created_at, u.id));
    let mut walked = Vec::new();
    let (mut page, total) = store.list_users(2, UsersFrom::Offset(0)).await.expect("list_users succeeds");
    assert_eq!(total, 5);
    while let Some(last) = page.last().map(|u| u.id) {
        walked.extend(page);
        (page, _) = store.list_users(2, UsersFrom::After(last)).await.expect("list_users succeeds");
    }
    assert_eq!(walked, created, "every user once, in order, across the tie");
    let (after_tie, _) =
        store.list_users(10, UsersFrom::After(created[1].id)).await.expect("list_users succeeds");
    assert_eq!(after_tie, created[2..].to_vec(), "after the first of the tie: the other two, then the rest");
    let unknown = store.list_users(2, UsersFrom::After(UserId::new())).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "after an unknown user: {unknown:?}");
}

pub async fn a_rehash_replaces_only_the_hash_it_was_made_from<S: ContractStore + ?Sized>(store: &S) {
    let user = store.create(new_user("contract-rehash@example.com")).await.expect("create succeeds");
    let old = user.password_hash.clone().expect("the user has a password");
    let stronger = PasswordHash::new("$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$c3Ryb25n");
    assert!(store.rehash_password(user.id, &old, stronger.clone()).await.expect("rehash_password succeeds"));
    let stored = store.find_by_id(user.id).await.expect("find_by_id succeeds").expect("it is found");
    assert_eq!(stored.password_hash, Some(stronger.clone()));
    assert_eq!(stored.session_version, user.session_version, "a rehash ends no session");
    // The hash changed meanwhile (a password change): the stale rehash loses.
    assert!(
        !store
            .rehash_password(user.id, &old, PasswordHash::new("$argon2id$late"))
            .await
            .expect("rehash_password succeeds")
    );
    assert_eq!(
        store.find_by_id(user.id).await.expect("find_by_id succeeds").expect("it is found").password_hash,
        Some(stronger)
    );
}
