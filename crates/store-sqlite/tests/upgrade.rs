//! A database written by an earlier release, brought up to date by `migrate`.

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use portcullis_domain::ports::AuditLog;
use portcullis_store_sqlite::SqliteOptions;
use portcullis_testkit::upgrades::{
    ADMIN_RENAME_VERSION, OLD_NAME_WRITE, admin_change, assert_found_under_the_contracts_name,
};

mod common;

/// Releases before 2026-12-05 stored an administrator's change as
/// `user_updated`; the contract's name is `admin_user_updated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrators_change_stored_under_its_old_name_is_renamed() {
    let scratch = common::scratch(2, SqliteOptions::default()).await;
    let store = &scratch.store;
    let event = admin_change();
    store.append(event.clone()).await.unwrap();

    // The file as the earlier release left it: the old name, and the
    // renaming migration not yet applied.
    let mut raw = SqliteConnection::establish(scratch.db.to_str().unwrap()).unwrap();
    let renamed = diesel::sql_query(OLD_NAME_WRITE).execute(&mut raw).unwrap();
    assert_eq!(renamed, 1);
    let forgotten = diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = ?")
        .bind::<diesel::sql_types::Text, _>(ADMIN_RENAME_VERSION)
        .execute(&mut raw)
        .unwrap();
    assert_eq!(forgotten, 1);
    drop(raw);

    assert_eq!(store.migrate().await.unwrap(), 1, "the renaming migration runs");
    assert_found_under_the_contracts_name(store, &[&event]).await;

    // During a rolling upgrade an instance of the earlier release still
    // writes the old name after the migration ran: still found.
    let late = admin_change();
    store.append(late.clone()).await.unwrap();
    let mut raw = SqliteConnection::establish(scratch.db.to_str().unwrap()).unwrap();
    assert_eq!(diesel::sql_query(OLD_NAME_WRITE).execute(&mut raw).unwrap(), 2);
    assert_found_under_the_contracts_name(store, &[&late, &event]).await;
}
