//! The SQLite store against every repository contract, each case on a fresh file.

use std::ops::Deref;

use portcullis_store_sqlite::SqliteStore;

/// A store on a temporary file, deleted with its folder when dropped.
struct Fixture {
    store: SqliteStore,
    dir: std::path::PathBuf,
}

impl Deref for Fixture {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fresh() -> Option<Fixture> {
    let dir = std::env::temp_dir().join(format!("portcullis-sqlite-{}", uuid::Uuid::new_v4()));
    let store = SqliteStore::open(&dir.join("test.db"), 4).unwrap();
    store.migrate().await.unwrap();
    Some(Fixture { store, dir })
}

portcullis_testkit::store_contract_tests!(fresh());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent() {
    let fixture = fresh().await.unwrap();
    assert_eq!(fixture.migrate().await.unwrap(), 0, "a second run applies nothing");
}
