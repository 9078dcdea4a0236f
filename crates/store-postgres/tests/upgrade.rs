//! A database written by an earlier release, brought up to date by `migrate`.
//! Skipped, with a line on stderr, without `TEST_DATABASE_URL`.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use portcullis_domain::ports::AuditLog;
use portcullis_domain::{AuditEvent, AuditKind, AuditQuery, UserId};
use portcullis_store_postgres::PostgresStore;
use portcullis_store_postgres::testing::TestDatabase;
use time::OffsetDateTime;

/// Releases before 2026-12-05 stored an administrator's change as
/// `user_updated`; the contract's name is `admin_user_updated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrators_change_stored_under_its_old_name_is_renamed() {
    let Some(database) = TestDatabase::create("the PostgreSQL upgrade test").await else { return };
    let store = PostgresStore::connect(database.url(), 2).unwrap();
    store.migrate().await.unwrap();
    let event = AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: OffsetDateTime::now_utc(),
        kind: AuditKind::AdminUserUpdated,
        user_id: Some(UserId::new()),
        detail: Some("role=ADMIN by=someone".to_owned()),
        ip: None,
        user_agent: None,
        request_id: None,
    };
    store.append(event.clone()).await.unwrap();

    // The database as the earlier release left it: the old name, and the
    // renaming migration not yet applied.
    let mut raw = AsyncPgConnection::establish(database.url()).await.unwrap();
    let renamed =
        diesel::sql_query("UPDATE audit_events SET kind = 'user_updated'").execute(&mut raw).await.unwrap();
    assert_eq!(renamed, 1);
    let forgotten =
        diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = '20261205000014'")
            .execute(&mut raw)
            .await
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
