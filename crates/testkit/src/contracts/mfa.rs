use futures_util::future::join_all;
use portcullis_domain::{
    Email, KeyDigest, MfaChallenge, NewUser, RecoveryCode, Role, SignInMethod, TotpFactor, User, UserId,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::ContractStore;

const NOW: OffsetDateTime = datetime!(2026-02-03 12:00:00 UTC);

async fn user<S: ContractStore + ?Sized>(store: &S, email: &str) -> User {
    let new = NewUser {
        id: UserId::new(),
        email: Email::parse(email).expect("Email::parse accepts the fixture"),
        full_name: None,
        password_hash: None,
        role: Role::User,
        email_verified: true,
        created_at: NOW,
    };
    store.create(new).await.expect("create succeeds")
}

fn factor(user: UserId, sealed: u8) -> TotpFactor {
    TotpFactor {
        user_id: user,
        sealed_secret: vec![sealed; 49],
        created_at: NOW,
        confirmed_at: None,
        last_step: None,
    }
}

fn codes(user: UserId, first: u8) -> Vec<RecoveryCode> {
    (0..10)
        .map(|i| RecoveryCode {
            id: Uuid::now_v7(),
            user_id: user,
            digest: KeyDigest([first + i; 32]),
            created_at: NOW,
            used_at: None,
        })
        .collect()
}

pub async fn a_totp_factor_is_confirmed_once_and_turns_mfa_on<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "totp-confirm@example.com").await;
    assert!(store.put_totp(factor(owner.id, 1)).await.expect("put_totp succeeds"));
    // A second set-up replaces the unconfirmed one: a confirm of the first fails.
    assert!(store.put_totp(factor(owner.id, 2)).await.expect("put_totp succeeds"));
    assert!(!store.confirm_totp(owner.id, &[1; 49], 100, codes(owner.id, 10), NOW).await.unwrap());
    assert!(!store.find_by_id(owner.id).await.unwrap().unwrap().mfa_enabled);
    let confirmed =
        join_all((0..4).map(|_| store.confirm_totp(owner.id, &[2; 49], 100, codes(owner.id, 30), NOW))).await;
    let wins = confirmed.into_iter().filter(|r| *r.as_ref().expect("the concurrent call succeeds")).count();
    assert_eq!(wins, 1, "one confirm wins");
    assert!(store.find_by_id(owner.id).await.unwrap().unwrap().mfa_enabled);
    let stored = store.find_totp(owner.id).await.unwrap().expect("the factor is stored");
    assert_eq!((stored.confirmed_at, stored.last_step), (Some(NOW), Some(100)));
    assert!(!store.put_totp(factor(owner.id, 3)).await.unwrap(), "a confirmed factor is not replaced");
    assert_eq!(store.find_totp(owner.id).await.unwrap().unwrap().sealed_secret, vec![2; 49]);
    assert_eq!(store.recovery_codes_left(owner.id).await.unwrap(), 10);
}

pub async fn a_totp_step_is_accepted_once_and_only_forward<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "totp-steps@example.com").await;
    assert!(!store.spend_totp_step(owner.id, 5).await.unwrap(), "no factor, nothing accepted");
    store.put_totp(factor(owner.id, 4)).await.unwrap();
    assert!(!store.spend_totp_step(owner.id, 5).await.unwrap(), "an unconfirmed factor accepts nothing");
    store.confirm_totp(owner.id, &[4; 49], 100, codes(owner.id, 50), NOW).await.unwrap();
    assert!(!store.spend_totp_step(owner.id, 100).await.unwrap(), "the confirming code is used");
    let results = join_all((0..8).map(|_| store.spend_totp_step(owner.id, 101))).await;
    assert_eq!(results.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1, "one of 8 wins");
    assert!(!store.spend_totp_step(owner.id, 100).await.unwrap(), "never backwards");
    assert!(store.spend_totp_step(owner.id, 102).await.unwrap());
}

pub async fn recovery_codes_work_once_and_are_replaced_whole<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "recovery@example.com").await;
    let other = user(store, "recovery-other@example.com").await;
    store.put_totp(factor(owner.id, 5)).await.unwrap();
    store.confirm_totp(owner.id, &[5; 49], 100, codes(owner.id, 70), NOW).await.unwrap();
    let code = KeyDigest([71; 32]);
    assert!(
        !store.spend_recovery_code(other.id, &code, NOW).await.unwrap(),
        "another user's code is not theirs"
    );
    let results = join_all((0..8).map(|_| store.spend_recovery_code(owner.id, &code, NOW))).await;
    assert_eq!(results.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1, "a code works once");
    assert_eq!(store.recovery_codes_left(owner.id).await.unwrap(), 9);
    store.replace_recovery_codes(owner.id, codes(owner.id, 90)).await.unwrap();
    assert!(
        !store.spend_recovery_code(owner.id, &KeyDigest([72; 32]), NOW).await.unwrap(),
        "the old set is void"
    );
    assert_eq!(store.recovery_codes_left(owner.id).await.unwrap(), 10);
    assert!(store.remove_totp(owner.id, NOW).await.unwrap());
    assert!(!store.find_by_id(owner.id).await.unwrap().unwrap().mfa_enabled);
    assert_eq!(store.find_totp(owner.id).await.unwrap(), None);
    assert_eq!(store.recovery_codes_left(owner.id).await.unwrap(), 0);
    assert!(!store.remove_totp(owner.id, NOW).await.unwrap());
}

pub async fn a_challenge_is_spent_once_and_dies_of_failures_or_age<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "challenge@example.com").await;
    let challenge = |byte: u8| MfaChallenge {
        id: Uuid::now_v7(),
        user_id: owner.id,
        digest: KeyDigest([byte; 32]),
        method: SignInMethod::password(),
        created_at: NOW,
        expires_at: NOW + Duration::minutes(5),
        failures: 0,
        used_at: None,
    };
    let first = challenge(110);
    store.create_challenge(first.clone()).await.unwrap();
    assert_eq!(store.find_challenge(&KeyDigest([110; 32])).await.unwrap(), Some(first.clone()));
    let results = join_all((0..8).map(|_| store.spend_challenge(first.id, 5, NOW))).await;
    assert_eq!(results.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1, "spent once");

    let failing = challenge(111);
    store.create_challenge(failing.clone()).await.unwrap();
    for expected in 1..=5 {
        assert_eq!(store.fail_challenge(failing.id).await.unwrap(), expected);
    }
    assert!(!store.spend_challenge(failing.id, 5, NOW).await.unwrap(), "five wrong codes kill it");

    let late = challenge(112);
    store.create_challenge(late.clone()).await.unwrap();
    assert!(!store.spend_challenge(late.id, 5, NOW + Duration::minutes(6)).await.unwrap(), "expired");
    assert_eq!(store.purge_challenges(NOW + Duration::minutes(6)).await.unwrap(), 3);
    assert_eq!(store.find_challenge(&KeyDigest([112; 32])).await.unwrap(), None);
}
