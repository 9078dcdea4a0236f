use portcullis_domain::{
    ApiKey, ApiKeyId, AuditEvent, AuditKind, AuditQuery, Email, Environment, KeyDigest, KeySighting, NewUser,
    ResourceName, Role, UserId,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::ContractStore;

const START: OffsetDateTime = datetime!(2026-03-01 08:00:00 UTC);

fn event(kind: AuditKind, user: Option<UserId>, at: OffsetDateTime) -> AuditEvent {
    let nanos = at.unix_timestamp_nanos();
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(nanos / 1_000_000_000).expect("fits"),
        u32::try_from(nanos % 1_000_000_000).expect("fits"),
    );
    AuditEvent {
        id: Uuid::new_v7(ts),
        at,
        kind,
        user_id: user,
        detail: Some("reason".to_owned()),
        ip: Some("203.0.113.7".to_owned()),
        user_agent: Some("contract/1.0".to_owned()),
        request_id: Some("req-1".to_owned()),
    }
}

fn query(limit: u32) -> AuditQuery {
    AuditQuery { user_id: None, kind: None, before: None, limit }
}

pub async fn audit_events_round_trip_newest_first<S: ContractStore + ?Sized>(store: &S) {
    let user = UserId::new();
    let written: Vec<AuditEvent> =
        (0..3).map(|i| event(AuditKind::LoginSucceeded, Some(user), START + Duration::seconds(i))).collect();
    for e in &written {
        store.append(e.clone()).await.expect("append succeeds");
    }
    let listed = store
        .list_events(AuditQuery { user_id: Some(user), ..query(10) })
        .await
        .expect("list_events succeeds");
    let expected: Vec<AuditEvent> = written.into_iter().rev().collect();
    assert_eq!(listed, expected, "every field survives, newest first");
}

pub async fn audit_events_filter_by_user_and_kind_and_page<S: ContractStore + ?Sized>(store: &S) {
    let (alice, bob) = (UserId::new(), UserId::new());
    for i in 0..5 {
        let at = START + Duration::minutes(i);
        store.append(event(AuditKind::LoginFailed, Some(alice), at)).await.expect("append succeeds");
        store.append(event(AuditKind::Logout, Some(bob), at)).await.expect("append succeeds");
    }
    store.append(event(AuditKind::LoginFailed, None, START)).await.expect("append succeeds");
    let alice_only = store
        .list_events(AuditQuery { user_id: Some(alice), ..query(100) })
        .await
        .expect("list_events succeeds");
    assert_eq!(alice_only.len(), 5);
    assert!(alice_only.iter().all(|e| e.user_id == Some(alice)));
    let failures = store
        .list_events(AuditQuery { kind: Some(AuditKind::LoginFailed), ..query(100) })
        .await
        .expect("list_events succeeds");
    assert!(failures.iter().all(|e| e.kind == AuditKind::LoginFailed));
    assert!(failures.len() >= 6, "kind filter spans users");

    let first = store
        .list_events(AuditQuery { user_id: Some(alice), ..query(2) })
        .await
        .expect("list_events succeeds");
    assert_eq!(first.len(), 2, "limit holds");
    let before = first.last().expect("the first page has events").id;
    let second = store
        .list_events(AuditQuery { user_id: Some(alice), before: Some(before), ..query(10) })
        .await
        .expect("list_events succeeds");
    assert_eq!(second.len(), 3, "the next page is what is older than the cursor");
    assert!(second.iter().all(|e| e.id < before));
    let mut all: Vec<Uuid> = first.iter().chain(&second).map(|e| e.id).collect();
    all.dedup();
    assert_eq!(all.len(), 5, "pages do not overlap");
}

pub async fn audit_prune_removes_only_old_events<S: ContractStore + ?Sized>(store: &S) {
    let user = UserId::new();
    let old = event(AuditKind::Register, Some(user), START - Duration::days(100));
    let recent = event(AuditKind::Logout, Some(user), START);
    store.append(old).await.expect("append succeeds");
    store.append(recent.clone()).await.expect("append succeeds");
    let pruned = store.prune_events(START - Duration::days(90), 1_000).await.expect("prune_events succeeds");
    assert!(pruned >= 1);
    let left = store
        .list_events(AuditQuery { user_id: Some(user), ..query(10) })
        .await
        .expect("list_events succeeds");
    assert_eq!(left, vec![recent]);
}

pub async fn audit_prune_goes_oldest_first_in_bounded_batches<S: ContractStore + ?Sized>(store: &S) {
    let user = UserId::new();
    // Older than anything another contract writes, so only these are in reach.
    let cutoff = START - Duration::days(1_000);
    let mut old = Vec::new();
    for age in [1_005, 1_004, 1_003, 1_002, 1_001] {
        let e = event(AuditKind::Register, Some(user), START - Duration::days(age));
        store.append(e.clone()).await.expect("append succeeds");
        old.push(e);
    }
    let kept = event(AuditKind::Logout, Some(user), cutoff + Duration::days(1));
    store.append(kept.clone()).await.expect("append succeeds");

    assert_eq!(store.prune_events(cutoff, 2).await.expect("prune_events succeeds"), 2, "a batch is bounded");
    let mine = AuditQuery { user_id: Some(user), ..query(10) };
    let left = store.list_events(mine.clone()).await.expect("list_events succeeds");
    assert_eq!(left.len(), 4);
    assert!(!left.iter().any(|e| e.id == old[0].id || e.id == old[1].id), "the oldest go first");
    assert_eq!(store.prune_events(cutoff, 2).await.expect("prune_events succeeds"), 2);
    assert_eq!(
        store.prune_events(cutoff, 2).await.expect("prune_events succeeds"),
        1,
        "the last, short batch"
    );
    assert_eq!(store.prune_events(cutoff, 2).await.expect("prune_events succeeds"), 0);
    let left = store.list_events(mine).await.expect("list_events succeeds");
    assert_eq!(left, vec![kept], "nothing newer than the cutoff is touched");
}

pub async fn a_key_address_is_new_once<S: ContractStore + ?Sized>(store: &S) {
    let owner = NewUser {
        id: UserId::new(),
        email: Email::parse("address-owner@example.com").expect("Email::parse accepts the fixture"),
        full_name: None,
        password_hash: None,
        role: Role::User,
        email_verified: false,
        created_at: START,
    };
    let owner = store.create(owner).await.expect("create succeeds");
    let key = ApiKey {
        id: ApiKeyId::new(),
        user_id: owner.id,
        name: ResourceName::parse("Address key").expect("ResourceName::parse accepts the fixture"),
        environment: Environment::Live,
        digest: KeyDigest([42; 32]),
        created_at: START,
        expires_at: START + Duration::days(30),
        revoked_at: None,
        last_used_at: None,
        usage_count: 0,
    };
    let key = store.insert_key(key).await.expect("insert_key succeeds");
    let at = |minutes: i64| START + Duration::minutes(minutes);
    let sighting = |id: ApiKeyId, ip: &str, minutes: i64| KeySighting {
        id,
        ip: ip.to_owned(),
        event: event(AuditKind::ApiKeyNewIp, Some(owner.id), at(minutes)),
    };
    let first = [
        sighting(key.id, "198.51.100.1", 1),
        sighting(key.id, "2001:db8::1", 2),
        sighting(ApiKeyId::new(), "198.51.100.1", 3),
    ];
    assert_eq!(
        store.record_key_sightings(&first).await,
        Ok(vec![first[0].event.id, first[1].event.id]),
        "an unknown key is skipped"
    );
    let again = [sighting(key.id, "198.51.100.1", 4)];
    assert_eq!(store.record_key_sightings(&again).await, Ok(vec![]), "seen before");
    let query =
        AuditQuery { limit: 10, before: None, user_id: Some(owner.id), kind: Some(AuditKind::ApiKeyNewIp) };
    let written: Vec<Uuid> =
        store.list_events(query.clone()).await.expect("list_events succeeds").iter().map(|e| e.id).collect();
    assert_eq!(
        written,
        vec![first[1].event.id, first[0].event.id],
        "one event a new pair, none for a known one"
    );

    // Both or neither: a batch whose second event cannot be written (its id
    // is taken) remembers no address either.
    let mut clash = sighting(key.id, "203.0.113.2", 6);
    clash.event.id = first[0].event.id;
    let failed = [sighting(key.id, "203.0.113.1", 5), clash];
    assert!(store.record_key_sightings(&failed).await.is_err(), "the batch fails whole");
    let retried = [sighting(key.id, "203.0.113.1", 7), sighting(key.id, "203.0.113.2", 8)];
    assert_eq!(
        store.record_key_sightings(&retried).await.map(|ids| ids.len()),
        Ok(2),
        "nothing of the failed batch was kept"
    );
    assert_eq!(store.list_events(query).await.expect("list_events succeeds").len(), 4);
    assert_eq!(store.record_key_sightings(&[]).await, Ok(vec![]));
}
