//! Portcullis's repositories on PostgreSQL.
//!
//! For deployments with several instances: everything they must agree on lives
//! here. diesel-async's `AsyncPgConnection` speaks the protocol itself (no
//! libpq). The pool has timeouts everywhere, so a database that is down turns
//! into `StoreError::Unavailable` (503) within seconds rather than hung
//! requests, and broken connections are replaced once it is back.
//! Depends on the domain and diesel only, never on HTTP.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod schema;
pub mod testing;

use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::QueueMode;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;
use portcullis_connect::PgTarget;
use portcullis_domain::StoreError;
use portcullis_store_diesel::{Access, pool_error, query_error};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Serialises migrations between instances starting at once (an arbitrary
/// constant: "portcull" in ASCII).
const MIGRATION_LOCK: i64 = 0x706f_7274_6375_6c6c;

/// Every repository port over a PostgreSQL connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool<AsyncPgConnection>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Builds a pool for `url`. Connections are made lazily, so this succeeds
    /// while the database is down; [`migrate`](Self::migrate) is the first contact.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL's TLS settings are wrong (an
    /// unknown `sslmode`, an unreadable `sslrootcert`) or the pool cannot be built.
    pub fn connect(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let target = PgTarget::parse(url).map_err(StoreError::Unavailable)?;
        Self::connect_to(target, max_connections)
    }

    /// Builds a pool for a parsed target: every connection is opened with its
    /// TLS policy (rustls; `sslmode` and `sslrootcert` as libpq reads them).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the pool cannot be built.
    pub fn connect_to(target: PgTarget, max_connections: usize) -> Result<Self, StoreError> {
        // Recycling only checks for an open transaction, without a test query:
        // a broken connection fails its next query (503) and is then dropped,
        // which halves the round trips of every request.
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        let target = std::sync::Arc::new(target);
        config.custom_setup = Box::new(move |_| {
            let target = std::sync::Arc::clone(&target);
            async move {
                let (client, connection) =
                    target.connect().await.map_err(diesel::ConnectionError::BadConnection)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
            .boxed()
        });
        // The URL is not used again: the set-up above holds the parsed target.
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config("", config);
        // Last in, first out (as PgBouncer hands out server connections): the
        // connection used last goes out next, so the few a steady load needs
        // stay hot in PostgreSQL's backends and in the CPU's caches, instead
        // of every query waking the least recently used backend in turn.
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(pool_error)?;
        Ok(Self { pool })
    }

    /// Applies the pending embedded migrations under an advisory lock, so
    /// instances starting together do not race. Needs a multi-thread runtime.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be reached or a migration fails.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .execute(&mut *conn)
            .await
            .map_err(query_error)?;
        let mut harness = AsyncMigrationHarness::new(conn);
        let applied = harness
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.len())
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")));
        let mut conn = harness.into_inner();
        diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            .execute(&mut *conn)
            .await
            .map_err(query_error)?;
        applied
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs a query on a pooled connection. PostgreSQL takes concurrent
    /// writers itself: reads and writes go the same way.
    async fn run<T, F, R>(&self, _: Access, query: F) -> Result<T, StoreError>
    where
        F: FnOnce(Object<AsyncPgConnection>) -> R,
        R: Future<Output = Result<T, StoreError>>,
    {
        query(self.conn().await?).await
    }

    fn usage(&self) -> portcullis_domain::ports::PoolUsage {
        let status = self.pool.status();
        portcullis_domain::ports::PoolUsage {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        }
    }
}

portcullis_store_diesel::diesel_repositories!(
    PostgresStore,
    diesel::pg::Pg,
    linked_providers =
        "(SELECT string_agg(provider, ',') FROM oauth_identities WHERE oauth_identities.user_id = users.id)",
    rotation = one_statement,
    usage = unnest,
    prune_read_ahead = false
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;

    async fn backend_pid(conn: &mut AsyncPgConnection) -> i32 {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("pg_backend_pid()"))
            .get_result(conn)
            .await
            .expect("a query")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_connection_returned_last_is_lent_first() {
        let Some(database) = TestDatabase::create("the pool's order").await else { return };
        let store = PostgresStore::connect(database.url(), 4).expect("a pool");
        let mut first = store.conn().await.expect("a connection");
        let mut second = store.conn().await.expect("another connection");
        let (first_pid, second_pid) = (backend_pid(&mut first).await, backend_pid(&mut second).await);
        assert_ne!(first_pid, second_pid, "two connections, two backends");
        drop(first);
        drop(second);
        for _ in 0..3 {
            // First in, first out would lend the first one here.
            let mut next = store.conn().await.expect("a connection");
            assert_eq!(backend_pid(&mut next).await, second_pid, "the backend used last serves again");
        }
    }
}
