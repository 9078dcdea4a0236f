//! The PostgreSQL store against every repository contract, each case in a
//! database of its own. Skipped, with a line on stderr, without `TEST_DATABASE_URL`.

use std::ops::Deref;

use portcullis_store_postgres::PostgresStore;
use portcullis_store_postgres::testing::TestDatabase;

struct Fixture {
    store: PostgresStore,
    _database: TestDatabase,
}

impl Deref for Fixture {
    type Target = PostgresStore;
    fn deref(&self) -> &PostgresStore {
        &self.store
    }
}

async fn fresh() -> Option<Fixture> {
    let database = TestDatabase::create("the PostgreSQL store contract").await?;
    let store = PostgresStore::connect(database.url(), 8).unwrap();
    store.migrate().await.unwrap();
    Some(Fixture { store, _database: database })
}

portcullis_testkit::store_contract_tests!(fresh());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent() {
    let Some(fixture) = fresh().await else { return };
    assert_eq!(fixture.migrate().await.unwrap(), 0, "a second run applies nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable_not_a_panic() {
    let store = PostgresStore::connect("postgres://postgres@127.0.0.1:1/none", 2).unwrap();
    let result = portcullis_domain::ports::StoreHealth::ping(&store).await;
    assert!(matches!(result, Err(portcullis_domain::StoreError::Unavailable(_))), "{result:?}");
}
