//! The store's writers take turns before they reach SQLite.
//!
//! With no busy timeout at all, a write that finds another connection's
//! write in progress fails at once ("database is locked"). Many concurrent
//! writes over several pooled connections all succeed only if the store
//! queues them itself.

use std::time::Duration;

use common::{new_user, scratch};
use portcullis_domain::ports::{AuditLog, UserRepository};
use portcullis_domain::{AuditEvent, AuditKind, UserId};
use portcullis_store_sqlite::SqliteOptions;
use time::OffsetDateTime;

mod common;

const WRITES: usize = 200;

fn event(user: UserId) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: OffsetDateTime::UNIX_EPOCH,
        kind: AuditKind::Register,
        user_id: Some(user),
        detail: None,
        ip: Some("203.0.113.7".to_owned()),
        user_agent: None,
        request_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_never_meet_sqlites_lock() {
    let scratch =
        scratch(8, SqliteOptions { busy_timeout: Duration::ZERO, ..SqliteOptions::default() }).await;
    let store = &scratch.store;
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..WRITES {
        let store = store.clone();
        writers.spawn(async move {
            let user = store.create(new_user(i)).await?;
            store.append(event(user.id)).await
        });
    }
    let mut failed = Vec::new();
    while let Some(joined) = writers.join_next().await {
        if let Err(e) = joined.expect("the task runs") {
            failed.push(e.to_string());
        }
    }
    assert!(failed.is_empty(), "{} of {} writers failed, first: {:?}", failed.len(), WRITES, failed.first());
    let (_, total) =
        store.list_users(1, portcullis_domain::UsersFrom::Offset(0)).await.expect("count the users");
    assert_eq!(total, u64::try_from(WRITES).expect("small"));
}
