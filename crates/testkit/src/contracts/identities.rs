use portcullis_domain::{Email, NewUser, OAuthIdentity, ProviderName, Role, StoreError, User, UserId};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

use super::ContractStore;

const NOW: OffsetDateTime = datetime!(2026-02-03 12:00:00 UTC);

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Email::parse(email).expect("Email::parse accepts the fixture"),
        full_name: None,
        password_hash: None,
        role: Role::User,
        email_verified: false,
        created_at: NOW,
    }
}

/// A provider by name: the store keeps any configured name, not a fixed set.
fn provider(name: &str) -> ProviderName {
    ProviderName::parse(name).expect("a provider name")
}

fn identity(user: UserId, provider: ProviderName, subject: &str, email: &str) -> OAuthIdentity {
    OAuthIdentity {
        id: Uuid::now_v7(),
        user_id: user,
        provider,
        subject: subject.to_owned(),
        email: Some(Email::parse(email).expect("Email::parse accepts the fixture")),
        email_verified: true,
        created_at: NOW,
    }
}

pub async fn an_identity_is_found_with_its_user<S: ContractStore + ?Sized>(store: &S) {
    let user: User = store.create(new_user("linked@example.com")).await.expect("create succeeds");
    let linked = identity(user.id, provider("github"), "12345", "linked@example.com");
    assert_eq!(store.link_identity(linked.clone()).await.expect("link_identity succeeds"), linked);
    assert_eq!(
        store.find_identity(provider("github"), "12345").await.expect("find_identity succeeds"),
        Some((linked, user))
    );
    assert_eq!(
        store.find_identity(provider("linkedin"), "12345").await.expect("find_identity succeeds"),
        None,
        "per provider"
    );
    assert_eq!(store.find_identity(provider("github"), "54321").await.expect("find_identity succeeds"), None);
}

pub async fn a_provider_account_links_to_one_user_only<S: ContractStore + ?Sized>(store: &S) {
    let first = store.create(new_user("first-link@example.com")).await.expect("create succeeds");
    let second = store.create(new_user("second-link@example.com")).await.expect("create succeeds");
    store
        .link_identity(identity(first.id, provider("linkedin"), "abc", "first-link@example.com"))
        .await
        .expect("link_identity succeeds");
    let again = store
        .link_identity(identity(second.id, provider("linkedin"), "abc", "second-link@example.com"))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let (_, owner) = store
        .find_identity(provider("linkedin"), "abc")
        .await
        .expect("find_identity succeeds")
        .expect("it is found");
    assert_eq!(owner.id, first.id);
}

pub async fn creating_a_user_with_an_identity_is_all_or_nothing<S: ContractStore + ?Sized>(store: &S) {
    let created = new_user("oauth-new@example.com");
    let with = identity(created.id, provider("github"), "777", "oauth-new@example.com");
    let user = store
        .create_user_with_identity(created.clone(), with.clone())
        .await
        .expect("create_user_with_identity succeeds");
    assert_eq!(user, created.into_user());
    assert_eq!(store.list_identities(user.id).await.expect("list_identities succeeds"), vec![with]);

    // The email is taken: nothing is stored, not even the identity.
    let taken = new_user("oauth-new@example.com");
    let orphan = identity(taken.id, provider("github"), "778", "oauth-new@example.com");
    let result = store.create_user_with_identity(taken, orphan).await;
    assert_eq!(result, Err(StoreError::Conflict("email")));
    assert_eq!(store.find_identity(provider("github"), "778").await.expect("find_identity succeeds"), None);

    // The identity is taken: no user is created.
    let other = new_user("oauth-other@example.com");
    let duplicate = identity(other.id, provider("github"), "777", "oauth-other@example.com");
    assert!(matches!(
        store.create_user_with_identity(other.clone(), duplicate).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.find_by_email(&other.email).await.expect("find_by_email succeeds"), None);
}

pub async fn identities_are_listed_per_user<S: ContractStore + ?Sized>(store: &S) {
    let user = store.create(new_user("many@example.com")).await.expect("create succeeds");
    let other = store.create(new_user("few@example.com")).await.expect("create succeeds");
    let github = identity(user.id, provider("github"), "1", "many@example.com");
    let mut linkedin = identity(user.id, provider("linkedin"), "x", "many@example.com");
    linkedin.created_at = NOW + time::Duration::minutes(1);
    store.link_identity(github.clone()).await.expect("link_identity succeeds");
    store.link_identity(linkedin.clone()).await.expect("link_identity succeeds");
    store
        .link_identity(identity(other.id, provider("github"), "2", "few@example.com"))
        .await
        .expect("link_identity succeeds");
    assert_eq!(
        store.list_identities(user.id).await.expect("list_identities succeeds"),
        vec![github, linkedin]
    );
}

pub async fn a_session_lookup_reads_user_revocation_and_providers_at_once<S: ContractStore + ?Sized>(
    store: &S,
) {
    let user: User = store.create(new_user("session@example.com")).await.expect("create succeeds");
    let other: User = store.create(new_user("other-session@example.com")).await.expect("create succeeds");
    let (live, revoked) = (Uuid::new_v4(), Uuid::new_v4());
    store.revoke(revoked, user.id, NOW + time::Duration::hours(1)).await.expect("revoke succeeds");

    let session = store
        .find_session(user.id, live, None)
        .await
        .expect("find_session succeeds")
        .expect("the user exists");
    assert_eq!((session.user, session.revoked, session.linked), (user.clone(), false, vec![]));
    assert!(
        store
            .find_session(user.id, revoked, None)
            .await
            .expect("find_session succeeds")
            .expect("it is found")
            .revoked
    );

    store
        .link_identity(identity(user.id, provider("linkedin"), "li-1", "session@example.com"))
        .await
        .expect("link_identity succeeds");
    store
        .link_identity(identity(user.id, provider("github"), "gh-1", "session@example.com"))
        .await
        .expect("link_identity succeeds");
    store
        .link_identity(identity(user.id, provider("acme-sso_2"), "sub-1", "session@example.com"))
        .await
        .expect("an OpenID Connect provider added by configuration is stored like the others");
    store
        .link_identity(identity(other.id, provider("github"), "gh-2", "other-session@example.com"))
        .await
        .expect("link_identity succeeds");
    let session =
        store.find_session(user.id, live, None).await.expect("find_session succeeds").expect("it is found");
    assert_eq!(session.linked, vec![provider("acme-sso_2"), provider("github"), provider("linkedin")]);
    let session = store
        .find_session(other.id, revoked, None)
        .await
        .expect("find_session succeeds")
        .expect("it is found");
    assert_eq!(
        (session.revoked, session.linked),
        (true, vec![provider("github")]),
        "revocation is by token id"
    );
    assert!(store.find_session(UserId::new(), live, None).await.expect("find_session succeeds").is_none());
}

pub async fn an_oauth_state_is_spent_once<S: ContractStore + ?Sized>(store: &S) {
    let nonce = format!("nonce-{}", uuid::Uuid::new_v4().simple());
    let expires = NOW + time::Duration::minutes(10);
    let spends = futures_util::future::join_all((0..6).map(|_| store.spend_state(&nonce, expires))).await;
    let first: usize = spends.iter().filter(|r| *r.as_ref().expect("spend_state succeeds")).count();
    assert_eq!(first, 1, "of concurrent uses, one wins");
    assert!(!store.spend_state(&nonce, expires).await.expect("spend_state succeeds"), "spent for good");
    let other = format!("{nonce}-other");
    assert!(
        store.spend_state(&other, expires).await.expect("spend_state succeeds"),
        "another state is fresh"
    );
    assert_eq!(store.purge_spent_states(NOW).await.expect("purge succeeds"), 0, "nothing expired yet");
    let purged =
        store.purge_spent_states(expires + time::Duration::seconds(1)).await.expect("purge succeeds");
    assert!(purged >= 2, "expired states are forgotten: {purged}");
}
