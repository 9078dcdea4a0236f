use futures_util::future::join_all;
use portcullis_domain::{
    ApiKey, ApiKeyId, AuditEvent, AuditKind, DeliveryStatus, Email, EmailVerification, Environment,
    KeyDigest, MailMessage, NewUser, OAuthIdentity, OutboxMessage, PasswordHash, PasswordReset, ProviderName,
    RecoveryCode, ResetBudget, ResourceName, Role, Session, SessionId, SignInMethod, StoreError, TotpFactor,
    User, UserId,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::ContractStore;

const NOW: OffsetDateTime = datetime!(2026-02-03 12:00:00 UTC);

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Email::parse(email).expect("Email::parse accepts the fixture"),
        full_name: None,
        password_hash: Some(PasswordHash::new("$argon2id$registrant")),
        role: Role::User,
        email_verified: false,
        created_at: NOW,
    }
}

fn link(user: UserId, byte: u8, created_at: OffsetDateTime) -> EmailVerification {
    EmailVerification {
        id: Uuid::now_v7(),
        user_id: user,
        digest: KeyDigest([byte; 32]),
        created_at,
        expires_at: created_at + Duration::hours(24),
        used_at: None,
    }
}

fn email(to: &Email, at: OffsetDateTime) -> OutboxMessage {
    OutboxMessage {
        id: Uuid::now_v7(),
        message: MailMessage {
            to: to.clone(),
            subject: "Verify your email address".to_owned(),
            text: "link: https://example.com/verify-email?token=pev_x".to_owned(),
            html: "<a href=\"https://example.com/verify-email?token=pev_x\">verify</a>".to_owned(),
        },
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: at,
        created_at: at,
    }
}

/// A registered, unverified user with its first link (digest `byte`).
async fn registered<S: ContractStore + ?Sized>(store: &S, address: &str, byte: u8) -> User {
    let new = new_user(address);
    let message = email(&new.email, NOW);
    store
        .create_user_with_verification(new.clone(), link(new.id, byte, NOW), message)
        .await
        .expect("create_user_with_verification succeeds")
}

fn budget(max: u32, at: OffsetDateTime) -> ResetBudget {
    ResetBudget { max, since: at - Duration::hours(1) }
}

pub async fn registering_stores_the_user_its_link_and_its_email_or_nothing<S: ContractStore + ?Sized>(
    store: &S,
) {
    let new = new_user("verify-register@example.com");
    let message = email(&new.email, NOW);
    let user = store
        .create_user_with_verification(new.clone(), link(new.id, 150, NOW), message.clone())
        .await
        .expect("create_user_with_verification succeeds");
    assert_eq!(user, new.clone().into_user());
    assert!(!user.email_verified);
    let queued =
        store.find_message(message.id).await.expect("find_message succeeds").expect("the email is queued");
    assert_eq!(queued.status, DeliveryStatus::Pending);
    assert_eq!(queued.message.to, user.email);

    // The same address again: nothing of the second attempt is kept.
    let again = NewUser { id: UserId::new(), ..new };
    let second = email(&again.email, NOW);
    let refused =
        store.create_user_with_verification(again.clone(), link(again.id, 151, NOW), second.clone()).await;
    assert_eq!(refused, Err(StoreError::Conflict("email")));
    assert_eq!(store.find_message(second.id).await.expect("find_message succeeds"), None, "no orphan email");
    assert_eq!(
        store.consume_verification(&KeyDigest([151; 32]), NOW).await.expect("consume succeeds"),
        None,
        "no orphan link"
    );
    assert_eq!(store.find_by_id(again.id).await.expect("find_by_id succeeds"), None);
}

pub async fn a_verification_link_verifies_once_even_under_concurrency<S: ContractStore + ?Sized>(store: &S) {
    let user = registered(store, "verify-race@example.com", 152).await;
    let at = NOW + Duration::minutes(5);
    let results = join_all((0..8).map(|_| store.consume_verification(&KeyDigest([152; 32]), at))).await;
    let winners: Vec<&User> =
        results.iter().filter_map(|r| r.as_ref().expect("the concurrent call succeeds").as_ref()).collect();
    assert_eq!(winners.len(), 1, "exactly one consume wins");
    assert!(winners[0].email_verified);
    assert_eq!(winners[0].session_version, user.session_version, "verifying ends no session");
    assert_eq!(winners[0].password_hash, user.password_hash);
    let stored = store.find_by_id(user.id).await.expect("find_by_id succeeds").expect("it is found");
    assert!(stored.email_verified);
    assert_eq!(store.consume_verification(&KeyDigest([152; 32]), at).await.expect("consume succeeds"), None);
}

pub async fn a_new_link_voids_the_older_ones_and_the_budget_holds<S: ContractStore + ?Sized>(store: &S) {
    let user = registered(store, "verify-resend@example.com", 153).await;
    let at = NOW + Duration::minutes(10);
    let issued = store
        .issue_verification(link(user.id, 154, at), email(&user.email, at), budget(3, at))
        .await
        .expect("issue_verification succeeds");
    assert!(issued, "the second email of the hour is within a budget of 3");
    assert_eq!(
        store.consume_verification(&KeyDigest([153; 32]), at).await.expect("consume succeeds"),
        None,
        "the older link is void"
    );
    // The third fits; the fourth in the hour does not, and leaves the newest link working.
    assert!(
        store
            .issue_verification(link(user.id, 155, at), email(&user.email, at), budget(3, at))
            .await
            .unwrap()
    );
    let over = email(&user.email, at);
    assert!(!store.issue_verification(link(user.id, 156, at), over.clone(), budget(3, at)).await.unwrap());
    assert_eq!(
        store.find_message(over.id).await.expect("find_message succeeds"),
        None,
        "no email over budget"
    );
    assert_eq!(store.consume_verification(&KeyDigest([156; 32]), at).await.unwrap(), None);
    let verified = store.consume_verification(&KeyDigest([155; 32]), at).await.unwrap();
    assert!(verified.expect("the newest link works").email_verified);
    // An hour later the budget is free again.
    let later = at + Duration::hours(2);
    assert!(
        store
            .issue_verification(link(user.id, 157, later), email(&user.email, later), budget(3, later))
            .await
            .unwrap()
    );
}

pub async fn an_expired_verification_link_cannot_be_used<S: ContractStore + ?Sized>(store: &S) {
    let user = registered(store, "verify-late@example.com", 158).await;
    let late = NOW + Duration::hours(25);
    assert_eq!(
        store.consume_verification(&KeyDigest([158; 32]), late).await.expect("consume succeeds"),
        None
    );
    let stored = store.find_by_id(user.id).await.expect("find_by_id succeeds").expect("it is found");
    assert!(!stored.email_verified);
}

pub async fn a_password_reset_proves_the_address<S: ContractStore + ?Sized>(store: &S) {
    let user = registered(store, "verify-by-reset@example.com", 159).await;
    let reset = PasswordReset {
        id: Uuid::now_v7(),
        user_id: user.id,
        digest: KeyDigest([160; 32]),
        created_at: NOW,
        expires_at: NOW + Duration::hours(1),
        used_at: None,
    };
    let queued = store
        .issue_reset(Uuid::now_v7(), reset, email(&user.email, NOW), budget(3, NOW))
        .await
        .expect("issue_reset succeeds");
    assert!(queued);
    let after = store
        .consume_reset(
            &KeyDigest([160; 32]),
            PasswordHash::new("$argon2id$reset"),
            NOW + Duration::minutes(1),
        )
        .await
        .expect("consume_reset succeeds")
        .expect("the reset is valid");
    assert!(after.email_verified);
}

fn identity(user: UserId, subject: &str) -> OAuthIdentity {
    OAuthIdentity {
        id: Uuid::now_v7(),
        user_id: user,
        provider: ProviderName::parse("github").expect("a provider name"),
        subject: subject.to_owned(),
        email: None,
        email_verified: true,
        created_at: NOW,
    }
}

pub async fn claiming_an_unverified_account_leaves_the_registrant_nothing<S: ContractStore + ?Sized>(
    store: &S,
) {
    let user = registered(store, "claimed@example.com", 161).await;
    let session = Session {
        id: SessionId::new(),
        user_id: user.id,
        created_at: NOW,
        last_used_at: NOW,
        expires_at: NOW + Duration::days(30),
        auth_time: NOW,
        ip: None,
        user_agent: None,
        method: SignInMethod::password(),
        mfa: false,
        ended_at: None,
    };
    let signed_in = AuditEvent {
        id: Uuid::now_v7(),
        at: NOW,
        kind: AuditKind::Register,
        user_id: Some(user.id),
        detail: None,
        ip: None,
        user_agent: None,
        request_id: None,
    };
    store
        .create_session(session.clone(), KeyDigest([162; 32]), signed_in)
        .await
        .expect("create_session succeeds");
    let key = ApiKey {
        id: ApiKeyId::new(),
        user_id: user.id,
        name: ResourceName::parse("registrant key").expect("a key name"),
        environment: Environment::Live,
        digest: KeyDigest([163; 32]),
        created_at: NOW,
        expires_at: NOW + Duration::days(365),
        revoked_at: None,
        last_used_at: None,
        usage_count: 0,
    };
    store.insert_key(key).await.expect("insert_key succeeds");
    // The registrant turned a second factor on, too.
    let factor = TotpFactor {
        user_id: user.id,
        sealed_secret: vec![9; 49],
        created_at: NOW,
        confirmed_at: None,
        last_step: None,
    };
    store.put_totp(factor).await.expect("put_totp succeeds");
    let codes = vec![RecoveryCode {
        id: Uuid::now_v7(),
        user_id: user.id,
        digest: KeyDigest([165; 32]),
        created_at: NOW,
        used_at: None,
    }];
    assert!(store.confirm_totp(user.id, &[9; 49], 10, codes, NOW).await.expect("confirm_totp succeeds"));
    let at = NOW + Duration::hours(1);

    let claimed = store
        .claim_account(user.id, identity(user.id, "owner-1"), at)
        .await
        .expect("claim_account succeeds")
        .expect("an unverified account is claimed");
    assert_eq!(claimed.id, user.id, "the same account");
    assert_eq!(claimed.password_hash, None, "the registrant's password is gone");
    assert!(claimed.email_verified);
    assert_eq!(claimed.session_version, user.session_version + 1, "every access token dies");
    assert!(!claimed.mfa_enabled, "the registrant's second factor is gone");
    assert_eq!(store.find_totp(user.id).await.unwrap(), None);
    assert!(!store.spend_recovery_code(user.id, &KeyDigest([165; 32]), at).await.unwrap());
    let ended = store.find_session_by_id(session.id).await.unwrap().expect("the session is kept");
    assert!(ended.ended_at.is_some(), "the registrant's session ended");
    let (stored_key, _) =
        store.find_key_with_owner(&KeyDigest([163; 32])).await.unwrap().expect("the key is kept");
    assert!(stored_key.revoked_at.is_some(), "the registrant's key is revoked");
    assert_eq!(store.consume_verification(&KeyDigest([161; 32]), at).await.unwrap(), None, "old links void");
    let github = ProviderName::parse("github").expect("a provider name");
    let (_, owner) = store.find_identity(github.clone(), "owner-1").await.unwrap().expect("linked");
    assert_eq!(owner.id, user.id);

    // A verified account is not claimed, and nothing changes.
    assert_eq!(store.claim_account(user.id, identity(user.id, "owner-2"), at).await.unwrap(), None);
    assert_eq!(store.find_identity(github, "owner-2").await.unwrap(), None);
    let other = registered(store, "claim-conflict@example.com", 164).await;
    // A provider account linked already cannot be linked again by a claim.
    let conflict = store.claim_account(other.id, identity(other.id, "owner-1"), at).await;
    assert!(matches!(conflict, Err(StoreError::Conflict(_))), "{conflict:?}");
    let untouched = store.find_by_id(other.id).await.unwrap().expect("found");
    assert_eq!(untouched, other, "a refused claim changes nothing");
}
