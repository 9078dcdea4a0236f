//! Keeping SQLite's write-ahead log bounded under steady load.
//!
//! SQLite's own checkpoint runs in the connection that commits past 1000 log
//! pages, and is passive: it copies only the frames no reader still needs,
//! and the log starts again from its beginning only when a writer finds it
//! fully copied and no reader in it. Under overlapping reads and writes
//! (every authenticated request reads) that moment never comes: the `-wal`
//! file grew to 590 MB in a few minutes of the benchmark, and every commit
//! past the 1000 pages paid for another partial copy and its `fsync`s.
//!
//! So the store checkpoints on its own connection instead: every check, a
//! passive copy if the log has changed (requests' commits no longer do it),
//! and past a size, another passive copy and then a restarting checkpoint,
//! which holds writers back for a moment while it copies the last frames and
//! the last readers of old frames finish, so that the next commit starts the
//! log again from the beginning of the file (cut back to
//! [`JOURNAL_SIZE_LIMIT_BYTES`]). Restarting rather than truncating: an
//! emptied file grew back page by page, and under the benchmark's
//! refresh-token rotations each truncation held writers for ~30 ms (5 a
//! second at a 16 MiB bound), against ~8 ms for a restart, ~1 a second at
//! 64 MiB.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use diesel_async::RunQueryDsl;
use portcullis_domain::StoreError;
use portcullis_store_diesel::query_error;

use super::{Conn, Queries, Setup, connect};

/// The size SQLite cuts the `-wal` file back to when the log restarts, and
/// the default size past which the store truncates it.
pub(crate) const JOURNAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// How long a checkpoint waits for readers and writers. A truncating one
/// holds the write lock while it waits for readers, so it gives up long before
/// a writer of another process would (5 s by default), and tries again at the
/// next check; the store's own writers wait in its queue meanwhile.
const CHECKPOINT_BUSY_TIMEOUT_MS: u32 = 200;

/// How the store keeps its write-ahead log bounded (see
/// [`SqliteOptions`](crate::SqliteOptions)).
///
/// Every `check_every`, the store looks at the `-wal` file (one `stat`): if
/// it changed, the new frames are copied into the database file without
/// blocking anyone; past `truncate_at_bytes`, the log is copied whole and
/// restarted, writers waiting for at most 200 ms while readers of old frames
/// finish. Requests' commits no longer checkpoint themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalMaintenance {
    /// The `-wal` size past which the log is restarted.
    pub truncate_at_bytes: u64,
    /// How often the file is looked at.
    pub check_every: Duration,
}

impl Default for WalMaintenance {
    fn default() -> Self {
        Self { truncate_at_bytes: JOURNAL_SIZE_LIMIT_BYTES, check_every: Duration::from_millis(100) }
    }
}

/// What one checkpoint did, as SQLite reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// False when readers or writers kept it from finishing in time; the
    /// frames it could copy are copied, and the log keeps its size.
    pub completed: bool,
    /// Frames in the log (0 once it is emptied; -1 when it could not start).
    pub log_frames: i64,
    /// Of those, the frames copied into the database file.
    pub checkpointed_frames: i64,
}

#[derive(diesel::QueryableByName)]
struct CheckpointRow {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    log: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    checkpointed: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Copies what no reader needs; blocks no one.
    Passive,
    /// Copies everything, so that the next writer starts the log again from
    /// the beginning of the file (which SQLite then cuts back to
    /// [`JOURNAL_SIZE_LIMIT_BYTES`]); holds writers back meanwhile.
    Restart,
    /// As `Restart`, and empties the file.
    Truncate,
}

/// A connection of its own, with a short busy timeout, opened when first
/// needed and again after an error.
pub(crate) struct Checkpointer {
    url: String,
    conn: Option<Conn>,
}

impl Checkpointer {
    /// For the database at `path`, which it opens only if it exists: a file
    /// deleted or moved while the service runs is not recreated empty.
    pub(crate) fn new(path: &str) -> Self {
        Self { url: existing_file_uri(path), conn: None }
    }

    pub(crate) async fn run(&mut self, mode: Mode) -> Result<Checkpoint, StoreError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let setup = Setup { busy_timeout_ms: CHECKPOINT_BUSY_TIMEOUT_MS, auto_checkpoint: false };
                let opened = connect(self.url.clone(), setup)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite to checkpoint: {e}")))?;
                self.conn.insert(opened)
            }
        };
        let pragma = match mode {
            Mode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
            Mode::Restart => "PRAGMA wal_checkpoint(RESTART)",
            Mode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        };
        let rows: Vec<CheckpointRow> = match diesel::sql_query(pragma).load(conn).await {
            Ok(rows) => rows,
            Err(e) => {
                self.conn = None;
                return Err(query_error(e));
            }
        };
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Unavailable("wal_checkpoint returned no row".to_owned()))?;
        Ok(Checkpoint {
            completed: row.busy == 0,
            log_frames: row.log,
            checkpointed_frames: row.checkpointed,
        })
    }
}

/// An SQLite URI that opens `path` read-write but never creates it.
fn existing_file_uri(path: &str) -> String {
    let mut uri = String::with_capacity(path.len() + 16);
    uri.push_str("file:");
    for c in path.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3F"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=rw");
    uri
}

/// A failing checkpoint (say, the file was deleted) is a warning the first
/// time and every 100th time in a row, not ten times a second.
fn failed(errors: &mut u32, e: &StoreError) {
    if errors.is_multiple_of(100) {
        tracing::warn!(error = %e, failures = errors.saturating_add(1), "WAL checkpoint failed; retrying at the next check");
    }
    *errors = errors.saturating_add(1);
}

/// The maintenance task: runs until the store (its queries) is dropped. A
/// truncation that cannot finish is retried at the next check; every tenth
/// miss in a row is a warning.
pub(crate) async fn maintain(queries: Weak<Queries>, path: String, file: PathBuf, settings: WalMaintenance) {
    let mut checkpointer = Checkpointer::new(&path);
    let mut every = tokio::time::interval(settings.check_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut copied_at: Option<SystemTime> = None;
    let (mut misses, mut errors) = (0_u32, 0_u32);
    loop {
        every.tick().await;
        if queries.strong_count() == 0 {
            return;
        }
        // No file yet (no write since start) or no change since the last copy: nothing to do.
        let Ok(meta) = std::fs::metadata(&file) else { continue };
        let (size, modified) = (meta.len(), meta.modified().ok());
        if size > settings.truncate_at_bytes {
            // In the writers' queue, so the store's own writers wait their
            // turn instead of polling SQLite's lock meanwhile.
            let Some(queries) = queries.upgrade() else { return };
            // Most frames are copied first without holding anyone back, so
            // that writers wait only while the last few are.
            if let Err(e) = checkpointer.run(Mode::Passive).await {
                failed(&mut errors, &e);
            }
            let (outcome, held) = {
                let _turn = queries.writes.lock().await;
                let started = std::time::Instant::now();
                (checkpointer.run(Mode::Restart).await, started.elapsed())
            };
            drop(queries);
            match outcome {
                Ok(done) if done.completed => {
                    (misses, errors) = (0, 0);
                    copied_at = None;
                    tracing::debug!(
                        wal_bytes = size,
                        writers_held_ms = held.as_secs_f64() * 1e3,
                        "WAL copied and restarted"
                    );
                }
                Ok(done) => {
                    misses = misses.saturating_add(1);
                    if misses.is_multiple_of(10) {
                        tracing::warn!(
                            wal_bytes = size,
                            frames = done.log_frames,
                            misses,
                            "the WAL could not be restarted: readers or writers never let go for 200 ms"
                        );
                    } else {
                        tracing::debug!(wal_bytes = size, frames = done.log_frames, "WAL busy; retrying");
                    }
                }
                Err(e) => failed(&mut errors, &e),
            }
        } else if size > 0 && (modified.is_none() || modified != copied_at) {
            match checkpointer.run(Mode::Passive).await {
                // Frames a reader still needed are copied at a later check.
                Ok(done) if done.checkpointed_frames == done.log_frames => {
                    errors = 0;
                    copied_at = modified;
                }
                Ok(_) => {}
                Err(e) => failed(&mut errors, &e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::existing_file_uri;

    #[test]
    fn uris_keep_the_path_and_never_create() {
        assert_eq!(existing_file_uri("data/portcullis.db"), "file:data/portcullis.db?mode=rw");
        assert_eq!(existing_file_uri("/tmp/a?b#c%d.db"), "file:/tmp/a%3Fb%23c%25d.db?mode=rw");
    }
}
