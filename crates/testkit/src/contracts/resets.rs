use futures_util::future::join_all;
use portcullis_domain::{
    DeliveryStatus, Email, KeyDigest, MailMessage, NewUser, OutboxMessage, PasswordHash, PasswordReset,
    RequestContext, ResetBudget, ResetRequest, Role, User, UserId,
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
        password_hash: Some(PasswordHash::new("$argon2id$old")),
        role: Role::User,
        email_verified: false,
        created_at: NOW,
    };
    store.create(new).await.expect("create succeeds")
}

fn reset(user: &User, byte: u8, created_at: OffsetDateTime) -> PasswordReset {
    PasswordReset {
        id: Uuid::now_v7(),
        user_id: user.id,
        digest: KeyDigest([byte; 32]),
        created_at,
        expires_at: created_at + Duration::hours(1),
        used_at: None,
    }
}

fn email(to: &User, at: OffsetDateTime) -> OutboxMessage {
    OutboxMessage {
        id: Uuid::now_v7(),
        message: MailMessage {
            to: to.email.clone(),
            subject: "Reset your password".to_owned(),
            text: "link: https://example.com/reset?token=prt_x".to_owned(),
            html: "<a href=\"https://example.com/reset?token=prt_x\">reset</a>".to_owned(),
        },
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: at,
        created_at: at,
    }
}

/// Issues a reset answering no queued request, with room in the budget.
async fn issue<S: ContractStore + ?Sized>(store: &S, reset: PasswordReset, email: OutboxMessage) {
    let budget = ResetBudget { max: 100, since: reset.created_at - Duration::hours(1) };
    let queued = store.issue_reset(Uuid::now_v7(), reset, email, budget).await.expect("issue_reset succeeds");
    assert!(queued, "within the budget");
}

fn request(email: &str, at: OffsetDateTime) -> ResetRequest {
    ResetRequest {
        id: Uuid::now_v7(),
        email: Email::parse(email).expect("Email::parse accepts the fixture"),
        requested_at: at,
        context: RequestContext {
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("contract".to_owned()),
            request_id: Some("req-1".to_owned()),
        },
    }
}

pub async fn reset_requests_are_claimed_once_per_lease_and_leave_when_answered<S: ContractStore + ?Sized>(
    store: &S,
) {
    let owner = user(store, "reset-request@example.com").await;
    let first = request("reset-request@example.com", NOW);
    let unknown = request("nobody-here@example.com", NOW);
    store.request_reset(first.clone()).await.expect("request_reset succeeds");
    store.request_reset(unknown.clone()).await.expect("request_reset succeeds");
    let lease = NOW + Duration::minutes(2);
    let mut claimed = store.claim_reset_requests(NOW, lease, 10).await.expect("claim succeeds");
    claimed.sort_by_key(|r| r.id);
    assert_eq!(claimed, vec![first.clone(), unknown.clone()], "as queued, with who asked");
    assert!(store.claim_reset_requests(NOW, lease, 10).await.expect("claim succeeds").is_empty(), "leased");
    store.drop_reset_request(unknown.id).await.expect("drop succeeds");
    let budget = ResetBudget { max: 3, since: NOW - Duration::hours(1) };
    let queued = email(&owner, NOW);
    let issued = store
        .issue_reset(first.id, reset(&owner, 70, NOW), queued.clone(), budget)
        .await
        .expect("issue_reset succeeds");
    assert!(issued);
    assert!(store.find_message(queued.id).await.expect("find_message succeeds").is_some());
    assert!(
        store
            .claim_reset_requests(lease, lease + Duration::minutes(2), 10)
            .await
            .expect("claim succeeds")
            .is_empty(),
        "answered and dropped requests are gone for good"
    );
    let concurrent = join_all((0..4).map(|_| {
        let again = request("reset-request@example.com", NOW);
        async move {
            store.request_reset(again).await.expect("request_reset succeeds");
        }
    }))
    .await;
    assert_eq!(concurrent.len(), 4);
    let claims =
        join_all((0..4).map(|_| store.claim_reset_requests(lease, lease + Duration::minutes(2), 10))).await;
    let total: usize = claims.iter().map(|c| c.as_ref().expect("claim succeeds").len()).sum();
    assert_eq!(total, 4, "concurrent claims never hand out one request twice");
}

pub async fn reset_emails_stop_at_the_accounts_budget<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "reset-budget@example.com").await;
    let other = user(store, "reset-budget-other@example.com").await;
    let budget = |at: OffsetDateTime| ResetBudget { max: 3, since: at - Duration::hours(1) };
    let mut outcomes = Vec::new();
    for i in 0..5u8 {
        let at = NOW + Duration::minutes(i64::from(i));
        let queued = email(&owner, at);
        let issued = store
            .issue_reset(Uuid::now_v7(), reset(&owner, 80 + i, at), queued.clone(), budget(at))
            .await
            .expect("issue_reset succeeds");
        let stored = store.find_message(queued.id).await.expect("find_message succeeds");
        assert_eq!(stored.is_some(), issued, "an email is queued exactly when issued");
        outcomes.push(issued);
    }
    assert_eq!(outcomes, [true, true, true, false, false]);
    assert!(
        store
            .find_valid_reset(&KeyDigest([83; 32]), NOW + Duration::minutes(4))
            .await
            .expect("find succeeds")
            .is_none(),
        "a refused reset stores no token"
    );
    assert!(
        store
            .issue_reset(Uuid::now_v7(), reset(&other, 90, NOW), email(&other, NOW), budget(NOW))
            .await
            .expect("issue_reset succeeds"),
        "another account has its own budget"
    );
    let later = NOW + Duration::minutes(61);
    assert!(
        store
            .issue_reset(Uuid::now_v7(), reset(&owner, 91, later), email(&owner, later), budget(later))
            .await
            .expect("issue_reset succeeds"),
        "the first reset left the window"
    );
    let racing = join_all((0..6u8).map(|i| {
        let at = NOW + Duration::hours(3);
        store.issue_reset(Uuid::now_v7(), reset(&other, 100 + i, at), email(&other, at), budget(at))
    }))
    .await;
    let issued = racing.iter().filter(|r| *r.as_ref().expect("the concurrent call succeeds")).count();
    assert_eq!(issued, 3, "concurrent issues for one account count each other");
}

pub async fn a_new_password_voids_every_outstanding_reset<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "reset-voided@example.com").await;
    issue(store, reset(&owner, 110, NOW), email(&owner, NOW)).await;
    let at = NOW + Duration::minutes(1);
    store
        .set_password(owner.id, PasswordHash::new("$argon2id$changed"), at)
        .await
        .expect("set_password succeeds");
    assert_eq!(
        store.find_valid_reset(&KeyDigest([110; 32]), at).await.expect("find succeeds"),
        None,
        "the link died with the password change"
    );
    assert_eq!(
        store
            .consume_reset(&KeyDigest([110; 32]), PasswordHash::new("$argon2id$attacker"), at)
            .await
            .expect("consume_reset succeeds"),
        None
    );
}

pub async fn a_reset_is_valid_until_it_expires<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "reset-valid@example.com").await;
    let issued = reset(&owner, 1, NOW);
    let queued = email(&owner, NOW);
    issue(store, issued.clone(), queued.clone()).await;
    assert_eq!(
        store.find_valid_reset(&KeyDigest([1; 32]), NOW).await.expect("find_valid_reset succeeds"),
        Some(issued)
    );
    assert_eq!(
        store.find_valid_reset(&KeyDigest([2; 32]), NOW).await.expect("find_valid_reset succeeds"),
        None
    );
    let later = NOW + Duration::hours(1);
    assert_eq!(
        store.find_valid_reset(&KeyDigest([1; 32]), later).await.expect("find_valid_reset succeeds"),
        None,
        "expired at expires_at"
    );
    assert_eq!(
        store.find_message(queued.id).await.expect("find_message succeeds"),
        Some(queued),
        "the email is queued with it"
    );
}

pub async fn a_new_reset_invalidates_the_earlier_ones<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "reset-twice@example.com").await;
    let other = user(store, "reset-other@example.com").await;
    issue(store, reset(&owner, 10, NOW), email(&owner, NOW)).await;
    issue(store, reset(&other, 12, NOW), email(&other, NOW)).await;
    issue(store, reset(&owner, 11, NOW + Duration::minutes(1)), email(&owner, NOW)).await;
    let at = NOW + Duration::minutes(2);
    assert_eq!(
        store.find_valid_reset(&KeyDigest([10; 32]), at).await.expect("find_valid_reset succeeds"),
        None,
        "the older token is dead"
    );
    assert!(
        store.find_valid_reset(&KeyDigest([11; 32]), at).await.expect("find_valid_reset succeeds").is_some()
    );
    assert!(
        store.find_valid_reset(&KeyDigest([12; 32]), at).await.expect("find_valid_reset succeeds").is_some(),
        "other users keep theirs"
    );
}

pub async fn a_reset_is_consumed_once_even_under_concurrency<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "reset-race@example.com").await;
    issue(store, reset(&owner, 20, NOW), email(&owner, NOW)).await;
    let at = NOW + Duration::minutes(5);
    let attempts = (0..10).map(|i| {
        store.consume_reset(&KeyDigest([20; 32]), PasswordHash::new(format!("$argon2id$new{i}")), at)
    });
    let results = join_all(attempts).await;
    let winners: Vec<&User> =
        results.iter().filter_map(|r| r.as_ref().expect("the concurrent call succeeds").as_ref()).collect();
    assert_eq!(winners.len(), 1, "exactly one consume wins");
    assert_eq!(winners[0].session_version, owner.session_version + 1, "every earlier token dies");
    let stored = store.find_by_id(owner.id).await.expect("find_by_id succeeds").expect("it is found");
    assert_eq!(stored.password_hash, winners[0].password_hash);
    assert_ne!(stored.password_hash, owner.password_hash);
    assert_eq!(
        store.find_valid_reset(&KeyDigest([20; 32]), at).await.expect("find_valid_reset succeeds"),
        None
    );
}

pub async fn an_expired_reset_cannot_be_consumed<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "reset-late@example.com").await;
    issue(store, reset(&owner, 30, NOW), email(&owner, NOW)).await;
    let late = NOW + Duration::hours(2);
    assert_eq!(
        store
            .consume_reset(&KeyDigest([30; 32]), PasswordHash::new("$argon2id$late"), late)
            .await
            .expect("consume_reset succeeds"),
        None
    );
    let stored = store.find_by_id(owner.id).await.expect("find_by_id succeeds").expect("it is found");
    assert_eq!(stored, owner, "nothing changed");
}

pub async fn outbox_messages_are_claimed_once_per_lease<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "outbox-claim@example.com").await;
    let first = email(&owner, NOW);
    let future = email(&owner, NOW + Duration::minutes(10));
    issue(store, reset(&owner, 40, NOW), first.clone()).await;
    issue(store, reset(&owner, 41, NOW), future.clone()).await;
    let lease = NOW + Duration::minutes(2);
    let claimed = store.claim_due(NOW, lease, 10).await.expect("claim_due succeeds");
    assert_eq!(claimed.len(), 1, "only what is due");
    assert_eq!(claimed[0].id, first.id);
    assert_eq!(claimed[0].message, first.message);
    assert_eq!(
        store.claim_due(NOW + Duration::minutes(1), lease, 10).await.expect("claim_due succeeds"),
        vec![],
        "held by its lease"
    );
    let again = store.claim_due(lease, lease + Duration::minutes(2), 10).await.expect("claim_due succeeds");
    assert_eq!(again.len(), 1, "a lapsed lease frees the message for another worker");
    let concurrent =
        join_all((0..4).map(|_| store.claim_due(NOW + Duration::hours(1), NOW + Duration::hours(2), 10)))
            .await;
    let total: usize =
        concurrent.iter().map(|r| r.as_ref().expect("the concurrent call succeeds").len()).sum();
    assert_eq!(total, 2, "concurrent claims never hand out one message twice");
}

pub async fn sent_and_given_up_messages_are_done_and_forget_their_body<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "outbox-done@example.com").await;
    let sent = email(&owner, NOW);
    let failing = email(&owner, NOW);
    issue(store, reset(&owner, 50, NOW), sent.clone()).await;
    issue(store, reset(&owner, 51, NOW), failing.clone()).await;
    store.mark_sent(sent.id, NOW).await.expect("mark_sent succeeds");
    let retry_at = NOW + Duration::seconds(5);
    store
        .mark_failed(failing.id, 1, Some(retry_at), "connection refused")
        .await
        .expect("mark_failed succeeds");

    let stored = store.find_message(sent.id).await.expect("find_message succeeds").expect("it is found");
    assert_eq!(stored.status, DeliveryStatus::Sent);
    assert!(stored.message.text.is_empty() && stored.message.html.is_empty(), "the link is gone once sent");
    let waiting = store.find_message(failing.id).await.expect("find_message succeeds").expect("it is found");
    assert_eq!(
        (waiting.status, waiting.attempts, waiting.next_attempt_at),
        (DeliveryStatus::Pending, 1, retry_at)
    );
    assert_eq!(
        store.claim_due(NOW, NOW + Duration::minutes(2), 10).await.expect("claim_due succeeds"),
        vec![],
        "waits for its retry"
    );
    let retried =
        store.claim_due(retry_at, retry_at + Duration::minutes(2), 10).await.expect("claim_due succeeds");
    assert_eq!(retried.iter().map(|m| m.id).collect::<Vec<_>>(), vec![failing.id]);

    store.mark_failed(failing.id, 2, None, "550 mailbox unavailable").await.expect("mark_failed succeeds");
    let given_up = store.find_message(failing.id).await.expect("find_message succeeds").expect("it is found");
    assert_eq!(given_up.status, DeliveryStatus::Failed);
    assert!(given_up.message.text.is_empty());
    assert_eq!(
        store
            .claim_due(NOW + Duration::days(1), NOW + Duration::days(2), 10)
            .await
            .expect("claim_due succeeds"),
        vec![]
    );
}

pub async fn outbox_backlog_counts_pending_messages<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store, "outbox-backlog@example.com").await;
    let before = store.pending_count().await.expect("pending_count succeeds");
    let (sent, waiting) = (email(&owner, NOW), email(&owner, NOW));
    issue(store, reset(&owner, 60, NOW), sent.clone()).await;
    issue(store, reset(&owner, 61, NOW), waiting).await;
    assert_eq!(store.pending_count().await.expect("pending_count succeeds"), before + 2);
    store.mark_sent(sent.id, NOW).await.expect("mark_sent succeeds");
    assert_eq!(
        store.pending_count().await.expect("pending_count succeeds"),
        before + 1,
        "a sent message leaves the backlog"
    );
}
