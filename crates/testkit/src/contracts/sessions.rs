use futures_util::future::join_all;
use portcullis_domain::{
    AuditEvent, AuditKind, AuditQuery, Email, KeyDigest, NewUser, RefreshLookup, Role, Session, SessionId,
    SignInMethod, StoreError, User, UserId,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::ContractStore;

const NOW: OffsetDateTime = datetime!(2026-02-03 12:00:00 UTC);

async fn user<S: ContractStore + ?Sized>(store: &S) -> User {
    let email = format!("session-{}@example.com", uuid::Uuid::new_v4().simple());
    store
        .create(NewUser {
            id: UserId::new(),
            email: Email::parse(&email).expect("a fixture email"),
            full_name: None,
            password_hash: None,
            role: Role::User,
            email_verified: false,
            created_at: NOW,
        })
        .await
        .expect("create succeeds")
}

fn session(user: UserId, created_at: OffsetDateTime) -> Session {
    Session {
        id: SessionId::new(),
        user_id: user,
        created_at,
        last_used_at: created_at,
        expires_at: created_at + Duration::days(30),
        auth_time: created_at,
        ip: Some("203.0.113.7".to_owned()),
        user_agent: Some("contract/1.0".to_owned()),
        method: SignInMethod::password(),
        mfa: false,
        ended_at: None,
    }
}

/// The event a sign-in writes with the session it starts.
fn signed_in(session: &Session) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: session.created_at,
        kind: AuditKind::LoginSucceeded,
        user_id: Some(session.user_id),
        detail: Some("mfa".to_owned()),
        ip: session.ip.clone(),
        user_agent: session.user_agent.clone(),
        request_id: Some("req-sign-in".to_owned()),
    }
}

/// The event a rotation of `user`'s token writes with it.
fn refreshed(user: UserId, at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7(),
        at,
        kind: AuditKind::TokenRefreshed,
        user_id: Some(user),
        detail: None,
        ip: Some("203.0.113.7".to_owned()),
        user_agent: Some("contract/1.0".to_owned()),
        request_id: Some("req-rotate".to_owned()),
    }
}

/// The `token_refreshed` events of `user`, newest first.
async fn refreshes<S: ContractStore + ?Sized>(store: &S, user: UserId) -> Vec<AuditEvent> {
    let query =
        AuditQuery { user_id: Some(user), kind: Some(AuditKind::TokenRefreshed), before: None, limit: 100 };
    store.list_events(query).await.expect("list_events succeeds")
}

fn digest() -> KeyDigest {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    KeyDigest(bytes)
}

pub async fn a_session_is_stored_with_its_refresh_token<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store).await;
    let mut stored = session(owner.id, NOW);
    stored.method = SignInMethod::parse("acme_sso").expect("a provider's name");
    stored.mfa = true;
    let token = digest();
    let signed_in_event = signed_in(&stored);
    store
        .create_session(stored.clone(), token, signed_in_event.clone())
        .await
        .expect("create_session succeeds");
    let RefreshLookup { token: record, session: found, user } =
        store.find_refresh(&token).await.expect("find_refresh succeeds").expect("the token is found");
    assert_eq!(found, stored, "every field round-trips");
    assert_eq!(user, owner, "with the session's user");
    assert_eq!(
        (record.digest, record.session_id, record.issued_at, record.spent_at),
        (token, stored.id, NOW, None)
    );
    assert_eq!(
        store.find_session_by_id(stored.id).await.expect("find_session_by_id succeeds"),
        Some(stored.clone())
    );
    assert!(store.find_refresh(&digest()).await.expect("find_refresh succeeds").is_none());
    assert!(store.find_session_by_id(SessionId::new()).await.expect("find_session_by_id succeeds").is_none());
    let again = session(owner.id, NOW);
    let refused = signed_in(&again);
    assert!(store.create_session(again, token, refused).await.is_err(), "a digest is stored once");
    let events = store
        .list_events(AuditQuery { user_id: Some(owner.id), kind: None, before: None, limit: 100 })
        .await
        .expect("list_events succeeds");
    assert_eq!(
        events,
        vec![signed_in_event],
        "the sign-in's event is written with its session, and only then"
    );
}

pub async fn a_refresh_token_rotates_once_under_concurrency<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store).await;
    let stored = session(owner.id, NOW);
    let first = digest();
    store.create_session(stored.clone(), first, signed_in(&stored)).await.expect("create_session succeeds");
    let later = NOW + Duration::minutes(5);
    let nexts: Vec<KeyDigest> = (0..8).map(|_| digest()).collect();
    let events: Vec<AuditEvent> = nexts.iter().map(|_| refreshed(owner.id, later)).collect();
    let rotations = join_all(
        nexts
            .iter()
            .zip(&events)
            .map(|(next, event)| store.rotate_refresh(&first, *next, later, event.clone())),
    )
    .await;
    let winners: Vec<KeyDigest> = rotations
        .iter()
        .zip(&nexts)
        .filter(|(won, _)| *won.as_ref().expect("rotate_refresh succeeds"))
        .map(|(_, next)| *next)
        .collect();
    assert_eq!(winners.len(), 1, "of 8 concurrent rotations exactly one wins");
    let RefreshLookup { token: spent, session, .. } =
        store.find_refresh(&first).await.expect("find_refresh succeeds").expect("kept when spent");
    assert_eq!(spent.spent_at, Some(later), "the presented token is spent, and kept to recognise its reuse");
    assert_eq!(session.last_used_at, later, "the session was used");
    let next = store
        .find_refresh(&winners[0])
        .await
        .expect("find_refresh succeeds")
        .expect("the next is stored")
        .token;
    assert_eq!((next.session_id, next.issued_at, next.spent_at), (stored.id, later, None));
    for loser in nexts.iter().filter(|n| **n != winners[0]) {
        assert!(
            store.find_refresh(loser).await.expect("find_refresh succeeds").is_none(),
            "a lost rotation writes nothing"
        );
    }
    let winner = nexts.iter().position(|n| *n == winners[0]).expect("a winner");
    assert_eq!(
        refreshes(store, owner.id).await,
        [events[winner].clone()],
        "the winner's event alone is written"
    );
    assert!(
        !store
            .rotate_refresh(&first, digest(), later, refreshed(owner.id, later))
            .await
            .expect("rotate_refresh succeeds"),
        "spent for good"
    );
    assert_eq!(refreshes(store, owner.id).await.len(), 1, "a refused rotation writes no event");
}

/// An audit event id is stored once, also when a store writes the event
/// with a sign-in or a rotation: the whole write is refused and the stored
/// event is left as it was.
pub async fn a_write_whose_event_id_is_taken_writes_nothing<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store).await;
    let stored = session(owner.id, NOW);
    let token = digest();
    let first = signed_in(&stored);
    store.create_session(stored.clone(), token, first.clone()).await.expect("create_session succeeds");

    let clash = session(owner.id, NOW);
    let clash_token = digest();
    let mut taken = signed_in(&clash);
    taken.id = first.id;
    taken.detail = Some("another sign-in".to_owned());
    let refused = store.create_session(clash.clone(), clash_token, taken).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert!(store.find_session_by_id(clash.id).await.expect("find_session_by_id succeeds").is_none());
    assert!(store.find_refresh(&clash_token).await.expect("find_refresh succeeds").is_none());

    let later = NOW + Duration::minutes(5);
    let next = digest();
    let mut taken = refreshed(owner.id, later);
    taken.id = first.id;
    let refused = store.rotate_refresh(&token, next, later, taken).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert!(store.find_refresh(&next).await.expect("find_refresh succeeds").is_none(), "no next token");
    let RefreshLookup { token: record, session, .. } =
        store.find_refresh(&token).await.expect("find_refresh succeeds").expect("still there");
    assert_eq!((record.spent_at, session.last_used_at), (None, NOW), "nothing spent, nothing used");

    let mut taken = refreshed(owner.id, later);
    taken.id = first.id;
    let refused = store.replace_refresh(stored.id, next, later, taken).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert!(store.find_refresh(&next).await.expect("find_refresh succeeds").is_none(), "no next token");
    let RefreshLookup { token: record, session, .. } =
        store.find_refresh(&token).await.expect("find_refresh succeeds").expect("still there");
    assert_eq!((record.spent_at, session.last_used_at), (None, NOW), "a refused replacement spends nothing");

    let events = store
        .list_events(AuditQuery { user_id: Some(owner.id), kind: None, before: None, limit: 100 })
        .await
        .expect("list_events succeeds");
    assert_eq!(events, vec![first], "the stored event is left as it was");
}

pub async fn an_ended_session_neither_rotates_nor_replaces<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store).await;
    let stored = session(owner.id, NOW);
    let token = digest();
    store.create_session(stored.clone(), token, signed_in(&stored)).await.expect("create_session succeeds");
    let later = NOW + Duration::hours(1);
    assert!(store.end_session(stored.id, later).await.expect("end_session succeeds"));
    assert!(!store.end_session(stored.id, later).await.expect("end_session succeeds"), "ended once");
    let refused = store.rotate_refresh(&token, digest(), later, refreshed(owner.id, later)).await;
    assert!(!refused.expect("rotate_refresh succeeds"));
    assert!(refreshes(store, owner.id).await.is_empty(), "nor an event");
    let refused = store.replace_refresh(stored.id, digest(), later, refreshed(owner.id, later)).await;
    assert!(!refused.expect("replace_refresh succeeds"));
    let refused = store.replace_refresh(SessionId::new(), digest(), later, refreshed(owner.id, later)).await;
    assert!(!refused.expect("replace_refresh succeeds"));
    assert!(refreshes(store, owner.id).await.is_empty(), "a refused replacement writes no event");
    let RefreshLookup { token: record, session, .. } =
        store.find_refresh(&token).await.expect("find_refresh succeeds").expect("still there");
    assert_eq!(record.spent_at, None, "a refused rotation spends nothing");
    assert_eq!((session.ended_at, session.last_used_at), (Some(later), NOW));
}

pub async fn replacing_spends_every_refresh_token_of_the_session<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store).await;
    let stored = session(owner.id, NOW);
    let other = session(owner.id, NOW);
    let (first, second, third, others) = (digest(), digest(), digest(), digest());
    store.create_session(stored.clone(), first, signed_in(&stored)).await.expect("create_session succeeds");
    store.create_session(other.clone(), others, signed_in(&other)).await.expect("create_session succeeds");
    let t1 = NOW + Duration::minutes(1);
    assert!(
        store
            .rotate_refresh(&first, second, t1, refreshed(owner.id, t1))
            .await
            .expect("rotate_refresh succeeds")
    );
    let t2 = NOW + Duration::minutes(2);
    let event = refreshed(owner.id, t2);
    assert!(
        store.replace_refresh(stored.id, third, t2, event.clone()).await.expect("replace_refresh succeeds")
    );
    assert!(refreshes(store, owner.id).await.contains(&event), "its event is written with it");
    let spent = |d| async move {
        store.find_refresh(&d).await.expect("find_refresh succeeds").expect("kept").token.spent_at
    };
    assert_eq!(spent(first).await, Some(t1));
    assert_eq!(spent(second).await, Some(t2), "the session's live token is spent by the replacement");
    assert_eq!(spent(third).await, None);
    assert_eq!(spent(others).await, None, "another session's token is untouched");
    let session =
        store.find_session_by_id(stored.id).await.expect("find_session_by_id succeeds").expect("found");
    assert_eq!(session.last_used_at, t2);
}

pub async fn sessions_are_listed_live_newest_first_and_ended_per_user<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store).await;
    let stranger = user(store).await;
    let older = session(owner.id, NOW);
    let newer = session(owner.id, NOW + Duration::minutes(10));
    let mut expired = session(owner.id, NOW - Duration::days(40));
    expired.expires_at = NOW - Duration::days(10);
    let ended = session(owner.id, NOW + Duration::minutes(5));
    let theirs = session(stranger.id, NOW);
    for s in [&older, &newer, &expired, &ended, &theirs] {
        store.create_session(s.clone(), digest(), signed_in(s)).await.expect("create_session succeeds");
    }
    let now = NOW + Duration::hours(1);
    assert!(store.end_session(ended.id, now).await.expect("end_session succeeds"));
    let ids = |list: Vec<Session>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_sessions(owner.id, now).await.expect("list_sessions succeeds")),
        [newer.id, older.id]
    );
    let ended_now = store.end_sessions(owner.id, Some(older.id), now).await.expect("end_sessions succeeds");
    assert_eq!(ended_now, 2, "the newer and the absolutely expired one; the ended one is not ended twice");
    assert_eq!(ids(store.list_sessions(owner.id, now).await.expect("list_sessions succeeds")), [older.id]);
    assert_eq!(store.end_sessions(owner.id, None, now).await.expect("end_sessions succeeds"), 1);
    assert!(store.list_sessions(owner.id, now).await.expect("list_sessions succeeds").is_empty());
    assert_eq!(
        ids(store.list_sessions(stranger.id, now).await.expect("list_sessions succeeds")),
        [theirs.id]
    );
}

pub async fn purging_removes_ended_and_expired_sessions_with_their_tokens<S: ContractStore + ?Sized>(
    store: &S,
) {
    let owner = user(store).await;
    let cutoff = NOW;
    let ended = session(owner.id, NOW - Duration::days(3));
    let mut expired = session(owner.id, NOW - Duration::days(40));
    expired.expires_at = NOW - Duration::days(1);
    let live = session(owner.id, NOW - Duration::days(3));
    let ended_recently = session(owner.id, NOW - Duration::days(3));
    let tokens: Vec<KeyDigest> = (0..4).map(|_| digest()).collect();
    for (s, token) in [&ended, &expired, &live, &ended_recently].into_iter().zip(&tokens) {
        store.create_session(s.clone(), *token, signed_in(s)).await.expect("create_session succeeds");
    }
    assert!(store.end_session(ended.id, NOW - Duration::days(2)).await.expect("end_session succeeds"));
    assert!(
        store.end_session(ended_recently.id, NOW + Duration::minutes(1)).await.expect("end_session succeeds")
    );
    assert_eq!(store.purge_sessions(cutoff).await.expect("purge_sessions succeeds"), 2);
    for (token, kept) in tokens.iter().zip([false, false, true, true]) {
        assert_eq!(store.find_refresh(token).await.expect("find_refresh succeeds").is_some(), kept);
    }
    assert!(store.find_session_by_id(ended.id).await.expect("find_session_by_id succeeds").is_none());
    assert!(store.find_session_by_id(live.id).await.expect("find_session_by_id succeeds").is_some());
}

pub async fn a_session_lookup_says_whether_the_tokens_session_ended<S: ContractStore + ?Sized>(store: &S) {
    let owner = user(store).await;
    let stored = session(owner.id, NOW);
    store
        .create_session(stored.clone(), digest(), signed_in(&stored))
        .await
        .expect("create_session succeeds");
    let jti = uuid::Uuid::new_v4();
    let ended = |sid: Option<SessionId>| async move {
        store
            .find_session(owner.id, jti, sid)
            .await
            .expect("find_session succeeds")
            .expect("the user exists")
            .session_ended
    };
    assert!(!ended(Some(stored.id)).await, "a live session");
    assert!(!ended(None).await, "a token of an earlier version names no session");
    assert!(ended(Some(SessionId::new())).await, "a session that is not there");
    assert!(store.end_session(stored.id, NOW + Duration::minutes(1)).await.expect("end_session succeeds"));
    assert!(ended(Some(stored.id)).await, "an ended session");
}
