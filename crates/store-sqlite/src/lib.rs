//! Portcullis's repositories on an embedded SQLite database.
//!
//! SQLite is the zero-setup default: one file, created on first start, with
//! the bundled library (no system SQLite). Connections go through diesel-async's
//! `SyncConnectionWrapper`, which runs each query on tokio's blocking pool.
//! Every connection is set up for concurrent use: WAL journal, a busy timeout
//! instead of immediate "database is locked" errors, and foreign keys on.
//! A task of the store keeps the WAL file bounded (see [`WalMaintenance`]).
//! Depends on the domain and diesel only, never on HTTP.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod backup;
mod schema;
mod statements;
mod wal;

pub use backup::{BackupError, backup, restore};
pub use wal::{Checkpoint, WalMaintenance};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::QueueMode;
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use portcullis_domain::StoreError;
use portcullis_store_diesel::{Access, pool_error, query_error};
use tokio::runtime::Handle;

type Conn = SyncConnectionWrapper<SqliteConnection, statements::Statements>;

/// A write that holds the writers' turn this long is logged (at debug).
const LONG_WRITE: Duration = Duration::from_millis(20);

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How a [`SqliteStore`] is run beyond its file and pool size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How the WAL is kept bounded; `None` leaves checkpoints to SQLite,
    /// after each commit past 1000 log pages, which lets the file grow under
    /// steady load (see [`WalMaintenance`]).
    pub wal: Option<WalMaintenance>,
    /// How long a statement waits for a lock held by another connection
    /// before it fails (a 503). The store's own writers queue before they
    /// reach SQLite, so this is what another process (or a checkpoint) may
    /// make them wait. Whole milliseconds, at most `u32::MAX`.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { wal: Some(WalMaintenance::default()), busy_timeout: Duration::from_secs(5) }
    }
}

/// The readers' pool and the writers' queue, shared by [`SqliteStore`]'s
/// queries (which it runs where cancelling a request cannot interrupt them)
/// and the WAL maintenance task.
struct Queries {
    pool: Pool<Conn>,
    /// Whose turn it is to write, and the one connection every write runs
    /// on (opened at the first write).
    ///
    /// The queue: SQLite takes one writer at a time, and one that finds the
    /// file locked sleeps and retries (1, 2, 5 ... 100 ms apart), so under
    /// contention a write could wait far longer than the writes ahead of it
    /// took. The store's writers queue here instead, in arrival order;
    /// readers never wait.
    ///
    /// The one connection: in WAL mode a connection that begins a
    /// transaction after another connection committed drops its whole page
    /// cache, so when writes took any pooled connection each write read
    /// every page it touched from the file again (a fifth of a refresh-token
    /// exchange's time under load). The writer's own commits leave its cache
    /// valid; only the maintenance task's restart of the log empties it.
    writer: Arc<tokio::sync::Mutex<Option<Conn>>>,
    url: String,
    setup: Setup,
    /// Restarts of the log by the maintenance task, since the store opened.
    wal_restarts: std::sync::atomic::AtomicU64,
}

impl Queries {
    async fn conn(&self) -> Result<Object<Conn>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Waits for the writers' turn and lends the writer connection.
    async fn writer(&self) -> Result<Lease, StoreError> {
        let mut slot = Arc::clone(&self.writer).lock_owned().await;
        let conn = match slot.take() {
            Some(conn) => conn,
            None => connect(self.url.clone(), self.setup).await.map_err(|e| {
                StoreError::Unavailable(format!("cannot open the SQLite writer connection: {e}"))
            })?,
        };
        Ok(Lease::Writer { conn: Some(conn), slot })
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

/// A connection lent to one query: a pooled one to read, or the writer
/// with the writers' turn (both released when the query's future drops it).
pub(crate) enum Lease {
    Pooled(Object<Conn>),
    Writer { conn: Option<Conn>, slot: tokio::sync::OwnedMutexGuard<Option<Conn>> },
}

impl std::ops::Deref for Lease {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        match self {
            Self::Pooled(conn) => conn,
            // `conn` is `None` only inside `drop`.
            Self::Writer { conn, .. } => conn.as_ref().unwrap_or_else(|| unreachable!("the writer is lent")),
        }
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Conn {
        match self {
            Self::Pooled(conn) => conn,
            Self::Writer { conn, .. } => conn.as_mut().unwrap_or_else(|| unreachable!("the writer is lent")),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A write that panicked may have left a transaction open: its
        // connection is closed, and the next write opens a new one.
        if let Self::Writer { conn, slot } = self
            && !std::thread::panicking()
        {
            **slot = conn.take();
        }
    }
}

/// Every repository port over one SQLite file.
///
/// diesel-async runs SQLite queries on blocking threads; if the future of a
/// query in flight is dropped (a client disconnects, or a sibling extractor of
/// the request fails first), it waits for the query with `block_in_place`,
/// which panics on actix's single-threaded workers. So every call runs as a
/// task of its own on the runtime the store was opened on (multi-threaded):
/// a cancelled request only stops waiting for it, and the query completes.
#[derive(Clone)]
pub struct SqliteStore {
    queries: Arc<Queries>,
    runtime: Handle,
    path: PathBuf,
    /// Held (shared) for as long as any clone lives: `restore` waits for none.
    _instance: Arc<backup::InstanceLock>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed, with its folder) the database at `path`.
    /// Connections are made lazily; call [`migrate`](Self::migrate) before use.
    /// Must be called on a multi-threaded tokio runtime, which runs the queries.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the folder cannot be created, the pool
    /// built, or there is no runtime.
    pub fn open(path: &Path, max_connections: usize) -> Result<Self, StoreError> {
        Self::open_with(path, max_connections, SqliteOptions::default())
    }

    /// [`open`](Self::open) with other [`SqliteOptions`]. The WAL maintenance
    /// task stops when the last clone of the store is dropped.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(
        path: &Path,
        max_connections: usize,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        owner_only(path)?;
        let instance = Arc::new(backup::InstanceLock::shared(path).map_err(StoreError::Unavailable)?);
        let mut config = ManagerConfig::default();
        // With the maintenance task on, it does all the checkpointing: no
        // request's commit stops to copy the log into the database file.
        let busy_timeout_ms = u32::try_from(options.busy_timeout.as_millis()).unwrap_or(u32::MAX);
        let auto_checkpoint = options.wal.is_none();
        let journal_size_limit_bytes = options.wal.map_or(wal::JOURNAL_SIZE_LIMIT_BYTES, |w| w.kept_bytes());
        let setup =
            Setup { busy_timeout_ms, auto_checkpoint, cache_kib: WRITER_CACHE_KIB, journal_size_limit_bytes };
        let reader = Setup { cache_kib: reader_cache_kib(max_connections), ..setup };
        config.custom_setup = Box::new(move |url| Box::pin(connect(url.to_owned(), reader)));
        // No test query when a connection goes back to the pool: a local file
        // does not drop connections, and the query would double every request's work.
        config.recycling_method = RecyclingMethod::Fast;
        let url = path.to_string_lossy().into_owned();
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(url.clone(), config);
        // Last in, first out: the reader used last goes out next, so a steady
        // load keeps reusing the few readers whose page caches and prepared
        // statements are warm.
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(pool_error)?;
        let runtime =
            Handle::try_current().map_err(|e| StoreError::Unavailable(format!("no tokio runtime: {e}")))?;
        let queries = Arc::new(Queries {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(None)),
            url: url.clone(),
            setup,
            wal_restarts: std::sync::atomic::AtomicU64::new(0),
        });
        if let Some(maintenance) = options.wal {
            runtime.spawn(wal::maintain(Arc::downgrade(&queries), url, wal_file(path), maintenance));
        }
        Ok(Self { queries, runtime, path: path.to_owned(), _instance: instance })
    }

    /// Copies the whole WAL into the database file and empties it, on a
    /// connection of its own, waiting (briefly, see [`WalMaintenance`]) for
    /// readers of older frames to finish. The maintenance task does this when
    /// the log passes its size; operators and tests may call it directly.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be opened or SQLite fails.
    pub async fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        let path = self.path.to_string_lossy().into_owned();
        self.runtime
            .spawn(async move { wal::Checkpointer::new(&path).run(wal::Mode::Truncate).await })
            .await
            .map_err(|e| StoreError::Unavailable(format!("SQLite task failed: {e}")))?
    }

    /// How many times the maintenance task has restarted the log since the
    /// store opened: about once per `truncate_at_bytes` of log written.
    #[must_use]
    pub fn wal_restarts(&self) -> u64 {
        std::sync::atomic::AtomicU64::load(&self.queries.wal_restarts, std::sync::atomic::Ordering::Relaxed)
    }

    /// Applies the pending embedded migrations. Needs a multi-thread runtime
    /// (the harness blocks in place).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be opened or a migration fails.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let conn = self.queries.conn().await?;
        let mut harness = AsyncMigrationHarness::new(conn);
        let applied = harness
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        Ok(applied.len())
    }

    /// The file this store writes to.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a query as a task of its own (see the type's docs): a read on a
    /// pooled connection; a write waits for its turn among the store's
    /// writers (see [`Queries::writer`]), runs on the writer connection,
    /// and runs its statements on the task's own thread (see
    /// `statements.rs`). Every query of `diesel_repositories!` comes through here
    /// and says, next to its SQL, whether it writes: none can skip the queue.
    async fn run<T, F, R>(&self, access: Access, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Lease) -> R + Send + 'static,
        R: Future<Output = Result<T, StoreError>> + Send,
    {
        let queries = Arc::clone(&self.queries);
        self.runtime
            .spawn(async move {
                match access {
                    Access::Write => {
                        let writer = queries.writer().await?;
                        let started = std::time::Instant::now();
                        let outcome = statements::on_this_thread(query(writer)).await;
                        let held = started.elapsed();
                        if held >= LONG_WRITE {
                            // Every other writer waited this long: what an
                            // operator (or the large-data benchmark) looks
                            // for when writes stall.
                            tracing::debug!(
                                writers_held_ms = held.as_secs_f64() * 1e3,
                                "a write held the writers' turn"
                            );
                        }
                        outcome
                    }
                    Access::Read => query(Lease::Pooled(queries.conn().await?)).await,
                }
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("SQLite task failed: {e}")))?
    }

    fn usage(&self) -> portcullis_domain::ports::PoolUsage {
        self.queries.usage()
    }
}

/// How a connection is set up beyond what every connection shares.
#[derive(Debug, Clone, Copy)]
struct Setup {
    busy_timeout_ms: u32,
    /// SQLite's own checkpoint after a commit that takes the log past 1000
    /// pages; off when the maintenance task checkpoints instead.
    auto_checkpoint: bool,
    /// The connection's page cache, at most (`PRAGMA cache_size`).
    cache_kib: u32,
    /// What SQLite cuts the `-wal` file back to when the log restarts.
    journal_size_limit_bytes: u64,
}

/// The writer's page cache: SQLite's default. Its own commits leave it valid.
const WRITER_CACHE_KIB: u32 = 2_000;

/// The page caches of all the readers together, at most. A reader's cache
/// is emptied whenever it begins a transaction after any commit (WAL mode),
/// so under writes it rarely holds more than the few pages one read needs,
/// while a busy pool that kept SQLite's default 2 MiB each held 32 MiB of a
/// million-key load's 200 MiB; pages it lacks come from the OS page cache.
const READER_CACHE_BUDGET_KIB: usize = 16 * 1024;

/// Each reader's share of [`READER_CACHE_BUDGET_KIB`]: between 512 KiB and
/// SQLite's default.
fn reader_cache_kib(max_connections: usize) -> u32 {
    let share = READER_CACHE_BUDGET_KIB / max_connections.max(1);
    u32::try_from(share.clamp(512, 2_000)).unwrap_or(2_000)
}

async fn connect(url: String, setup: Setup) -> diesel::ConnectionResult<Conn> {
    let mut conn = Conn::establish(&url).await?;
    for pragma in [
        "PRAGMA journal_mode = WAL".to_owned(),
        "PRAGMA synchronous = NORMAL".to_owned(),
        format!("PRAGMA busy_timeout = {}", setup.busy_timeout_ms),
        "PRAGMA foreign_keys = ON".to_owned(),
        // When the log restarts from its beginning, a file that once grew
        // past this is cut back to it rather than kept at its peak.
        format!("PRAGMA journal_size_limit = {}", setup.journal_size_limit_bytes),
        format!("PRAGMA wal_autocheckpoint = {}", if setup.auto_checkpoint { 1000 } else { 0 }),
        // Negative: a size in KiB rather than in pages.
        format!("PRAGMA cache_size = -{}", setup.cache_kib),
    ] {
        diesel::sql_query(pragma)
            .execute(&mut conn)
            .await
            .map_err(|e| diesel::ConnectionError::BadConnection(query_error(e).to_string()))?;
    }
    Ok(conn)
}

/// The `-wal` file SQLite keeps beside `db`.
/// Creates the database file (and its folder) readable by its owner only,
/// before SQLite opens it: SQLite gives the `-wal` and `-shm` files the mode
/// of the database file. A file that exists with wider permissions (made by
/// an earlier version) is narrowed, with its `-wal` and `-shm`.
fn owner_only(path: &Path) -> Result<(), StoreError> {
    let failed = |what: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {}: {e}", what.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut folder = std::fs::DirBuilder::new();
        folder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
        folder.create(parent).map_err(|e| failed(parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    file.open(path).map_err(|e| failed(path, e))?;
    #[cfg(unix)]
    for file in [path.to_path_buf(), wal_file(path), sibling(path, "-shm")] {
        use std::os::unix::fs::PermissionsExt;
        let Ok(metadata) = std::fs::metadata(&file) else { continue };
        if metadata.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                StoreError::Unavailable(format!("cannot make {} private: {e}", file.display()))
            })?;
        }
    }
    Ok(())
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn wal_file(db: &Path) -> PathBuf {
    sibling(db, "-wal")
}

portcullis_store_diesel::diesel_repositories!(
    SqliteStore,
    diesel::sqlite::Sqlite,
    linked_providers = "(SELECT group_concat(provider, ',') FROM oauth_identities WHERE oauth_identities.user_id = users.id)",
    rotation = transaction,
    usage = per_key,
    prune_read_ahead = true
);

#[cfg(test)]
mod tests {
    use super::*;
    use diesel_async::SimpleAsyncConnection;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    async fn count(store: &SqliteStore, access: Access, sql: &'static str) -> Result<i64, StoreError> {
        store
            .run(access, move |mut conn| async move {
                let rows: Vec<Count> = diesel::sql_query(sql).load(&mut *conn).await.map_err(query_error)?;
                Ok(rows.into_iter().next().map_or(0, |c| c.n))
            })
            .await
    }

    async fn exec(store: &SqliteStore, sql: &'static str) -> Result<(), StoreError> {
        store
            .run(
                Access::Write,
                move |mut conn| async move { conn.batch_execute(sql).await.map_err(query_error) },
            )
            .await
    }

    fn store() -> (SqliteStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("portcullis-writer-{}", uuid::Uuid::new_v4()));
        let store = SqliteStore::open(&dir.join("w.db"), 4).expect("opens");
        (store, dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_write_runs_on_the_one_writer_connection() {
        let (store, dir) = store();
        // A temporary table lives on the connection that made it.
        exec(&store, "CREATE TEMP TABLE mine (x INTEGER)").await.expect("a write");
        for _ in 0..5 {
            exec(&store, "INSERT INTO temp.mine VALUES (1)").await.expect("the same connection");
        }
        let n = count(&store, Access::Write, "SELECT count(*) AS n FROM temp.mine").await.expect("written");
        assert_eq!(n, 5);
        // Reads are pooled connections, which never see it.
        assert!(count(&store, Access::Read, "SELECT count(*) AS n FROM temp.mine").await.is_err());
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reader_returned_last_is_lent_first() {
        let (store, dir) = store();
        let first = store.queries.conn().await.expect("a reader");
        let mut second = store.queries.conn().await.expect("another reader");
        // A temporary table lives on the connection that made it.
        second.batch_execute("CREATE TEMP TABLE last_used (x INTEGER)").await.expect("on the second reader");
        drop(first);
        drop(second);
        for _ in 0..3 {
            // First in, first out would lend the first reader, without the table.
            let n = count(&store, Access::Read, "SELECT count(*) AS n FROM temp.last_used").await;
            assert_eq!(n, Ok(0), "the reader used last serves again");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_readers_share_a_page_cache_budget_and_the_writer_keeps_its_own() {
        assert_eq!(reader_cache_kib(16), 1_024);
        assert_eq!(reader_cache_kib(1), 2_000, "never more than SQLite's default");
        assert_eq!(reader_cache_kib(1_000), 512, "never less than 512 KiB");
        let dir = std::env::temp_dir().join(format!("portcullis-cache-{}", uuid::Uuid::new_v4()));
        let store = SqliteStore::open(&dir.join("c.db"), 16).expect("opens");
        let sql = "SELECT cache_size AS n FROM pragma_cache_size()";
        assert_eq!(count(&store, Access::Read, sql).await, Ok(-1_024), "a reader's share, in KiB");
        assert_eq!(count(&store, Access::Write, sql).await, Ok(-2_000), "the writer's");
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_panics_in_a_transaction_leaves_no_transaction_behind() {
        let (store, dir) = store();
        exec(&store, "CREATE TABLE t (x INTEGER)").await.expect("a write");
        let panicked = store
            .run(Access::Write, |mut conn| async move {
                conn.batch_execute("BEGIN; INSERT INTO t VALUES (1)").await.map_err(query_error)?;
                panic!("a bug in a write");
                #[allow(unreachable_code)]
                Ok(())
            })
            .await;
        assert!(panicked.is_err(), "the failed task is an error, not a hang");
        // Had the writer been kept, this insert would sit in the open
        // transaction, unseen by readers and holding the file's write lock.
        exec(&store, "INSERT INTO t VALUES (2)").await.expect("the next write works");
        let seen = count(&store, Access::Read, "SELECT count(*) AS n FROM t").await.expect("read");
        assert_eq!(seen, 1, "only the committed row");
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
