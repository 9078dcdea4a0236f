//! A pooled connection's driver runs on the runtime that opened it. A
//! connection whose runtime has ended (an HTTP worker stopped at shutdown,
//! an embedder's short-lived runtime) must be replaced, not lent out dead.
//! Skipped, with a line on stderr, without `TEST_DATABASE_URL`.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use portcullis_store_postgres::PostgresStore;
use portcullis_store_postgres::testing::TestDatabase;

#[test]
fn a_connection_whose_runtime_ended_is_replaced_not_lent() {
    let admin = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let Some(database) = admin.block_on(TestDatabase::create("the runtime test")) else { return };
    // One connection at most, so the second runtime is handed the first's.
    let store = PostgresStore::connect(database.url(), 1).unwrap();
    let first = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    assert!(first.block_on(store.migrate()).unwrap() > 0, "the schema is created");
    // Its driver task goes with it, and the connection closes.
    drop(first);
    assert_eq!(admin.block_on(backends(database.url())), 1, "only the counting connection is left");
    let second = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    assert_eq!(
        second.block_on(store.migrate()).expect("a working connection on the second runtime"),
        0,
        "nothing left to apply"
    );
    drop(second);
    drop(store);
    drop(database);
    drop(admin);
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Backends connected to the database at `url`, this query's own included:
/// the first count of one, or the last count seen within two seconds.
async fn backends(url: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let mut seen = 0;
    // The closed connection's backend may take a moment to exit.
    for _ in 0..100 {
        let rows: Vec<Count> = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()",
        )
        .load(&mut conn)
        .await
        .unwrap();
        seen = rows[0].n;
        if seen == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    seen
}
