use futures_util::future::join_all;
use portcullis_domain::UserId;
use time::macros::datetime;
use uuid::Uuid;

use super::ContractStore;

pub async fn revoked_token_is_reported<S: ContractStore + ?Sized>(store: &S) {
    let jti = Uuid::new_v4();
    assert!(!store.is_revoked(jti).await.expect("is_revoked succeeds"));
    assert!(
        store.revoke(jti, UserId::new(), datetime!(2030-01-01 00:00 UTC)).await.expect("revoke succeeds")
    );
    assert!(store.is_revoked(jti).await.expect("is_revoked succeeds"));
    assert!(!store.is_revoked(Uuid::new_v4()).await.expect("is_revoked succeeds"), "other ids stay valid");
}

pub async fn revoke_is_single_use_under_concurrency<S: ContractStore + ?Sized>(store: &S) {
    let jti = Uuid::new_v4();
    let user = UserId::new();
    let attempts = (0..8).map(|_| store.revoke(jti, user, datetime!(2030-01-01 00:00 UTC)));
    let results = join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let lost = results.iter().filter(|r| matches!(r, Ok(false))).count();
    assert_eq!((won, lost), (1, 7), "exactly one revoke wins: {results:?}");
}

pub async fn purge_removes_only_expired_revocations<S: ContractStore + ?Sized>(store: &S) {
    let user = UserId::new();
    let old = Uuid::new_v4();
    let current = Uuid::new_v4();
    store.revoke(old, user, datetime!(2026-01-01 00:00 UTC)).await.expect("revoke succeeds");
    store.revoke(current, user, datetime!(2026-03-01 00:00 UTC)).await.expect("revoke succeeds");
    let purged = store.purge_expired(datetime!(2026-02-01 00:00 UTC)).await.expect("purge_expired succeeds");
    assert_eq!(purged, 1);
    assert!(!store.is_revoked(old).await.expect("is_revoked succeeds"), "an expired entry is gone");
    assert!(store.is_revoked(current).await.expect("is_revoked succeeds"), "a live entry stays");
}
