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

mod schema;
mod statements;
mod wal;

pub use wal::{Checkpoint, WalMaintenance};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool::Runtime;
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

/// The pool and the writers' queue, shared by [`SqliteStore`]'s queries
/// (which it runs where cancelling a request cannot interrupt them) and the
/// WAL maintenance task.
struct Queries {
    pool: Pool<Conn>,
    /// Whose turn it is to write. SQLite takes one writer at a time, and one
    /// that finds the file locked sleeps and retries (1, 2, 5 ... 100 ms
    /// apart), so under contention a write could wait far longer than the
    /// writes ahead of it took. The store's writers queue here instead, in
    /// arrival order, before they take a connection; readers never wait.
    writes: tokio::sync::Mutex<()>,
}

impl Queries {
    async fn conn(&self) -> Result<Object<Conn>, StoreError> {
        self.pool.get().await.map_err(pool_error)
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
        let mut config = ManagerConfig::default();
        // With the maintenance task on, it does all the checkpointing: no
        // request's commit stops to copy the log into the database file.
        let busy_timeout_ms = u32::try_from(options.busy_timeout.as_millis()).unwrap_or(u32::MAX);
        let setup = Setup { busy_timeout_ms, auto_checkpoint: options.wal.is_none() };
        config.custom_setup = Box::new(move |url| Box::pin(connect(url.to_owned(), setup)));
        // No test query when a connection goes back to the pool: a local file
        // does not drop connections, and the query would double every request's work.
        config.recycling_method = RecyclingMethod::Fast;
        let url = path.to_string_lossy().into_owned();
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(url.clone(), config);
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(pool_error)?;
        let runtime =
            Handle::try_current().map_err(|e| StoreError::Unavailable(format!("no tokio runtime: {e}")))?;
        let queries = Arc::new(Queries { pool, writes: tokio::sync::Mutex::new(()) });
        if let Some(maintenance) = options.wal {
            runtime.spawn(wal::maintain(Arc::downgrade(&queries), url, wal_file(path), maintenance));
        }
        Ok(Self { queries, runtime, path: path.to_owned() })
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

    /// Runs a query on a pooled connection, as a task of its own (see the
    /// type's docs); a query that writes waits for its turn among the
    /// store's writers first (see [`Queries::writes`]), only then takes a
    /// connection, and runs its statements on the task's own thread (see
    /// `statements.rs`). Every query of `diesel_repositories!` comes through here
    /// and says, next to its SQL, whether it writes: none can skip the queue.
    async fn run<T, F, R>(&self, access: Access, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object<Conn>) -> R + Send + 'static,
        R: Future<Output = Result<T, StoreError>> + Send,
    {
        let queries = Arc::clone(&self.queries);
        self.runtime
            .spawn(async move {
                match access {
                    Access::Write => {
                        let _turn = queries.writes.lock().await;
                        statements::on_this_thread(async { query(queries.conn().await?).await }).await
                    }
                    Access::Read => query(queries.conn().await?).await,
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
        format!("PRAGMA journal_size_limit = {}", wal::JOURNAL_SIZE_LIMIT_BYTES),
        format!("PRAGMA wal_autocheckpoint = {}", if setup.auto_checkpoint { 1000 } else { 0 }),
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
    rotation = transaction
);
