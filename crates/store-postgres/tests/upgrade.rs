//! A database written by an earlier release, brought up to date by `migrate`.
//! Skipped, with a line on stderr, without `TEST_DATABASE_URL`.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use portcullis_domain::ports::AuditLog;
use portcullis_store_postgres::PostgresStore;
use portcullis_store_postgres::testing::TestDatabase;
use portcullis_testkit::upgrades::{
    ADMIN_RENAME_VERSION, OLD_NAME_WRITE, admin_change, assert_found_under_the_contracts_name,
};

/// Releases before 2026-12-05 stored an administrator's change as
/// `user_updated`; the contract's name is `admin_user_updated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrators_change_stored_under_its_old_name_is_renamed() {
    let Some(database) = TestDatabase::create("the PostgreSQL upgrade test").await else { return };
    let store = PostgresStore::connect(database.url(), 2).unwrap();
    store.migrate().await.unwrap();
    let event = admin_change();
    store.append(event.clone()).await.unwrap();

    // The database as the earlier release left it: the old name, and the
    // renaming migration not yet applied.
    let mut raw = AsyncPgConnection::establish(database.url()).await.unwrap();
    let renamed = diesel::sql_query(OLD_NAME_WRITE).execute(&mut raw).await.unwrap();
    assert_eq!(renamed, 1);
    let forgotten = diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = $1")
        .bind::<diesel::sql_types::Text, _>(ADMIN_RENAME_VERSION)
        .execute(&mut raw)
        .await
        .unwrap();
    assert_eq!(forgotten, 1);
    drop(raw);

    assert_eq!(store.migrate().await.unwrap(), 1, "the renaming migration runs");
    assert_found_under_the_contracts_name(&store, &[&event]).await;

    // During a rolling upgrade an instance of the earlier release still
    // writes the old name after the migration ran: still found.
    let late = admin_change();
    store.append(late.clone()).await.unwrap();
    let mut raw = AsyncPgConnection::establish(database.url()).await.unwrap();
    assert_eq!(diesel::sql_query(OLD_NAME_WRITE).execute(&mut raw).await.unwrap(), 2);
    assert_found_under_the_contracts_name(&store, &[&late, &event]).await;
}
