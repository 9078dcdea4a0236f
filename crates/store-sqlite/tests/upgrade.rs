//! A database written by an earlier release, brought up to date by `migrate`.

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use portcullis_domain::ports::AuditLog;
use portcullis_domain::{AuditEvent, AuditKind, AuditQuery, UserId};
use portcullis_store_sqlite::SqliteOptions;
use time::OffsetDateTime;

mod common;

/// Releases before 2026-12-05 stored an administrator's change as
/// `user_updated`; the contract's name is `admin_user_updated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrators_change_stored_under_its_old_name_is_renamed() {
    let scratch = common::scratch(2, SqliteOptions::default()).await;
    let store = &scratch.store;
    let user = UserId::new();
    let event = AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: OffsetDateTime::now_utc(),
        kind: AuditKind::AdminUserUpdated,
        user_id: Some(user),
        detail: Some("role=ADMIN by=someone".to_owned()),
        ip: None,
        user_agent: None,
        request_id: None,
    };
    store.append(event.clone()).await.unwrap();

    // The file as the earlier release left it: the old name, and the
    // renaming migration not yet applied.
    let mut raw = SqliteConnection::establish(scratch.db.to_str().unwrap()).unwrap();
    let renamed =
        diesel::sql_query("UPDATE audit_events SET kind = 'user_updated'").execute(&mut raw).unwrap();
    assert_eq!(renamed, 1);
    let forgotten =
        diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = '20261205000014'")
            .execute(&mut raw)
            .unwrap();
    assert_eq!(forgotten, 1);
    drop(raw);

    assert_eq!(store.migrate().await.unwrap(), 1, "the renaming migration runs");
    let query =
        AuditQuery { user_id: None, kind: Some(AuditKind::AdminUserUpdated), before: None, limit: 10 };
    let found = store.list_events(query).await.unwrap();
    assert_eq!(found.iter().map(|e| e.id).collect::<Vec<_>>(), [event.id], "found by the contract's name");
    assert_eq!(found[0].kind, AuditKind::AdminUserUpdated);
}
