//! Copies of the live database, and putting one back.
//!
//! A backup is `VACUUM INTO` on a connection of its own: one read transaction,
//! so the copy is the database as of one instant, while the service keeps
//! reading and writing (WAL readers do not block writers). It is written to a
//! private temporary file beside the target, checked, synced, and only then
//! given the target's name, without replacing anything there: an interrupted
//! or failed backup leaves nothing half-written under the target's name.
//!
//! Every process that opens the database for service holds a shared lock on
//! `<database>.lock`; a restore takes it exclusively, so it is refused while an
//! instance runs, and no instance starts while a restore is under way.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl, SqliteConnection};

use crate::sibling;

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The command was given something it cannot use (an existing target, a
    /// source that is not a Portcullis database): a usage mistake.
    #[error("{0}")]
    Refused(String),
    /// An instance holds the database.
    #[error("{0}")]
    InUse(String),
    /// SQLite or the file system failed (a full disk, say).
    #[error("{0}")]
    Failed(String),
}

/// The lock every serving process holds (shared) on `db`.
#[derive(Debug)]
pub(crate) struct InstanceLock {
    _file: File,
}

/// The lock file beside `db`.
pub(crate) fn lock_file(db: &Path) -> PathBuf {
    sibling(db, ".lock")
}

fn open_lock(db: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(lock_file(db))
}

impl InstanceLock {
    /// Takes the shared lock, or says a restore is under way.
    pub(crate) fn shared(db: &Path) -> Result<Self, String> {
        let file = open_lock(db).map_err(|e| format!("cannot open {}: {e}", lock_file(db).display()))?;
        file.try_lock_shared().map_err(|_| {
            format!(
                "{} is being restored (portcullis restore holds {}); start again once it is done",
                db.display(),
                lock_file(db).display()
            )
        })?;
        Ok(Self { _file: file })
    }
}

/// Writes a consistent copy of the database at `db` to `to` (mode 0600),
/// while other connections keep using it. Returns the copy's size in bytes.
///
/// # Errors
/// [`BackupError::Refused`] when `to` exists or `db` does not;
/// [`BackupError::Failed`] when SQLite or the disk fails (nothing is left at `to`).
pub fn backup(db: &Path, to: &Path) -> Result<u64, BackupError> {
    if !db.is_file() {
        return Err(BackupError::Refused(format!("there is no database at {}", db.display())));
    }
    if to.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists already: a backup never overwrites; choose a new name",
            to.display()
        )));
    }
    let partial = Partial::create(to)?;
    let mut conn = open(db)?;
    conn.batch_execute("PRAGMA busy_timeout = 10000")
        .map_err(|e| BackupError::Failed(format!("{}: {e}", db.display())))?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(partial.path.to_string_lossy())
        .execute(&mut conn)
        .map_err(|e| BackupError::Failed(format!("cannot write the backup to {}: {e}", to.display())))?;
    drop(conn);
    check(&partial.path)?;
    partial.finish(to)
}

/// Replaces the database at `db` with the backup at `from`, refusing while any
/// instance holds it. The `-wal` and `-shm` files of the replaced database go
/// with it (a log replayed over another database would corrupt it).
///
/// # Errors
/// [`BackupError::InUse`] when an instance holds `db`; [`BackupError::Refused`]
/// when `from` is not a sound Portcullis database; [`BackupError::Failed`] on
/// a file-system failure (the database at `db` is then unchanged).
pub fn restore(db: &Path, from: &Path) -> Result<(), BackupError> {
    if !from.is_file() {
        return Err(BackupError::Refused(format!("there is no backup at {}", from.display())));
    }
    check(from).map_err(|e| BackupError::Refused(format!("{} cannot be restored: {e}", from.display())))?;
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| BackupError::Failed(format!("cannot create {}: {e}", parent.display())))?;
    }
    let lock = open_lock(db)
        .map_err(|e| BackupError::Failed(format!("cannot open {}: {e}", lock_file(db).display())))?;
    lock.try_lock().map_err(|_| {
        BackupError::InUse(format!(
            "an instance is using {} (it holds {}): stop every instance before restoring",
            db.display(),
            lock_file(db).display()
        ))
    })?;
    let partial = Partial::create(db)?;
    std::fs::copy(from, &partial.path).map_err(|e| {
        BackupError::Failed(format!("cannot copy {} to {}: {e}", from.display(), partial.path.display()))
    })?;
    for stale in [sibling(db, "-wal"), sibling(db, "-shm")] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::Failed(format!("cannot remove {}: {e}", stale.display()))),
        }
    }
    partial.replace(db)?;
    drop(lock);
    Ok(())
}

fn open(db: &Path) -> Result<SqliteConnection, BackupError> {
    SqliteConnection::establish(&db.to_string_lossy())
        .map_err(|e| BackupError::Failed(format!("cannot open {}: {e}", db.display())))
}

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// `PRAGMA integrity_check` says ok, and the file holds Portcullis's tables.
fn check(file: &Path) -> Result<(), BackupError> {
    let mut conn = open(file)?;
    let lines: Vec<Line> = diesel::sql_query("PRAGMA integrity_check").load(&mut conn).map_err(|e| {
        BackupError::Failed(format!("{} is not a readable SQLite database: {e}", file.display()))
    })?;
    if lines.len() != 1 || lines.first().is_none_or(|line| line.integrity_check != "ok") {
        let found: Vec<String> = lines.into_iter().take(5).map(|line| line.integrity_check).collect();
        return Err(BackupError::Failed(format!(
            "{} fails SQLite's integrity check: {}",
            file.display(),
            found.join("; ")
        )));
    }
    let tables: Vec<Count> = diesel::sql_query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('users', '__diesel_schema_migrations')",
    )
    .load(&mut conn)
    .map_err(|e| BackupError::Failed(format!("{}: {e}", file.display())))?;
    if tables.first().map(|c| c.n) != Some(2) {
        return Err(BackupError::Refused(format!("{} is not a Portcullis database", file.display())));
    }
    Ok(())
}

/// A private temporary file beside its final name, removed unless finished.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Partial {
    fn create(beside: &Path) -> Result<Self, BackupError> {
        let name = beside.file_name().map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
        let path = beside.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .map_err(|e| BackupError::Failed(format!("cannot create {}: {e}", path.display())))?;
        Ok(Self { path, done: false })
    }

    /// Syncs the file and links it at `to`, which must not exist.
    fn finish(mut self, to: &Path) -> Result<u64, BackupError> {
        let size = self.sync()?;
        std::fs::hard_link(&self.path, to)
            .map_err(|e| BackupError::Failed(format!("cannot name the backup {}: {e}", to.display())))?;
        self.done = true;
        let _ = std::fs::remove_file(&self.path);
        sync_folder(to);
        Ok(size)
    }

    /// Syncs the file and renames it over `to`.
    fn replace(mut self, to: &Path) -> Result<(), BackupError> {
        self.sync()?;
        std::fs::rename(&self.path, to).map_err(|e| {
            BackupError::Failed(format!("cannot move the restored file to {}: {e}", to.display()))
        })?;
        self.done = true;
        sync_folder(to);
        Ok(())
    }

    fn sync(&self) -> Result<u64, BackupError> {
        let file = File::open(&self.path)
            .map_err(|e| BackupError::Failed(format!("cannot reopen {}: {e}", self.path.display())))?;
        file.sync_all()
            .map_err(|e| BackupError::Failed(format!("cannot sync {}: {e}", self.path.display())))?;
        Ok(file.metadata().map(|m| m.len()).unwrap_or(0))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes a new name in `file`'s folder durable (best effort: not every file
/// system lets a folder be synced).
fn sync_folder(file: &Path) {
    if let Some(parent) = file.parent() {
        let folder = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        if let Ok(dir) = File::open(folder) {
            let _ = dir.sync_all();
        }
    }
}
