//! Keeping SQLite's write-ahead log bounded under steady load.
//!
//! SQLite's own checkpoint runs in the connection that commits past 1000 log
//! pages, and is passive: it copies only the frames no reader still needs,
//! and the log starts again from its beginning only when a writer finds it
//! fully copied and no reader in it. Under overlapping reads and writes
//! (every authenticated request reads) that moment seldom comes (only when
//! the writes pause long enough for every snapshot to begin after the last
//! commit): the `-wal` file grew to 590 MB in a few minutes of the
//! benchmark, and every commit past the 1000 pages paid for another partial
//! copy and its `fsync`s.
//!
//! So the store checkpoints on its own connection instead: every check, a
//! passive copy if the log has changed (requests' commits no longer do it),
//! and past a size, passive copies until little is left and then a
//! restarting checkpoint, which holds writers back for a moment while it
//! copies the last frames and the last readers of old frames finish, so that
//! the next commit starts the log again from the beginning of the file.
//! Restarting rather than truncating: an emptied file grew back page by page,
//! and each truncation held writers for ~30 ms.
//!
//! The log's size is read from the frames in it (what each passive copy
//! reports), not from the file, and SQLite keeps the file at up to twice the
//! bound ([`WalMaintenance::kept_bytes`]). With the file cut back to the
//! bound at each restart, the log grew past it again within the next check,
//! so every restart freed the file's tail and the next writes allocated it
//! again, and the cut's discards ran in a writer's commit (seen in the
//! server's kernel stacks under the large-data prune). Kept, the file is
//! overwritten from its beginning.
//!
//! The restart runs on the thread that holds the writers' turn
//! (a hop to the blocking pool waited behind the load for a core) and polls
//! for readers instead of SQLite's sleeping busy handler; it still costs
//! 5-10 ms of `fsync`s and copying under load. Hence the size: a refresh-token
//! exchange writes ~11 pages (45 KB of log), so the benchmark's ~4 000
//! rotations a second fill 64 MiB three times a second, and three 10 ms
//! holds a second were the p99 (S7 p99 21 ms); at 256 MiB it is under one a
//! second (p99 15 ms).

use std::path::PathBuf;
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use diesel_async::RunQueryDsl;
use portcullis_domain::StoreError;
use portcullis_store_diesel::query_error;

use super::{Conn, Queries, Setup, connect};

/// The default size of log past which the store restarts it, and (without
/// the maintenance task) the size SQLite cuts the `-wal` file back to.
pub(crate) const JOURNAL_SIZE_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// Each frame of the log: a page and its 24-byte header.
const FRAME_HEADER_BYTES: u64 = 24;

/// Before a restart, passive copies run until one copies fewer than
/// `SMALL_BACKLOG_FRAMES` new frames (2 MiB of 4 KiB pages), at most
/// `PASSIVE_ROUNDS` of them.
const PASSIVE_ROUNDS: u32 = 4;
const SMALL_BACKLOG_FRAMES: i64 = 512;

/// How long a checkpoint waits for readers and writers. A truncating one
/// holds the write lock while it waits for readers, so it gives up long before
/// a writer of another process would (5 s by default), and tries again at the
/// next check; the store's own writers wait in its queue meanwhile.
const CHECKPOINT_BUSY_TIMEOUT_MS: u32 = 200;

/// How long a restart, holding the writers' turn, polls for readers still in
/// the old frames before it lets the writers go and tries again at the next
/// check. A request's read is gone within a millisecond; a long one (an
/// admin listing by `offset`, a count, a backup) is not, and waiting 200 ms
/// for it held every writer 164 ms at the end of the large-data prune.
const RESTART_WAIT_MS: u64 = 20;

/// How the store keeps its write-ahead log bounded (see
/// [`SqliteOptions`](crate::SqliteOptions)).
///
/// Every `check_every`, the store looks at the `-wal` file (one `stat`): if
/// it changed, the new frames are copied into the database file without
/// blocking anyone; once the log holds more than `truncate_at_bytes` of
/// frames, it is copied whole and restarted, writers waiting for at most
/// 20 ms while readers of old frames finish (else it tries again at the next
/// check). The file itself is kept at up
/// to [`kept_bytes`](Self::kept_bytes) and overwritten from its beginning.
/// Requests' commits no longer checkpoint themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalMaintenance {
    /// The `-wal` size past which the log is restarted.
    pub truncate_at_bytes: u64,
    /// How often the file is looked at.
    pub check_every: Duration,
}

impl WalMaintenance {
    /// The size SQLite cuts the `-wal` file back to when the log restarts
    /// (`PRAGMA journal_size_limit`): twice `truncate_at_bytes`, so that a
    /// log restarted just past the bound reuses the file's blocks.
    #[must_use]
    pub fn kept_bytes(&self) -> u64 {
        self.truncate_at_bytes.saturating_mul(2)
    }
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
    /// The database's page size, read once.
    page_bytes: Option<u64>,
}

#[derive(diesel::QueryableByName)]
struct PageSizeRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    page_size: i64,
}

impl Checkpointer {
    /// For the database at `path`, which it opens only if it exists: a file
    /// deleted or moved while the service runs is not recreated empty.
    pub(crate) fn new(path: &str) -> Self {
        Self { url: existing_file_uri(path), conn: None, page_bytes: None }
    }

    /// The bytes of log that `frames` frames take.
    async fn log_bytes(&mut self, frames: i64) -> Result<u64, StoreError> {
        let page = match self.page_bytes {
            Some(page) => page,
            None => {
                let conn = self.conn().await?;
                let read = diesel::sql_query("PRAGMA page_size").load(conn).await;
                let rows: Vec<PageSizeRow> = self.kept(read)?;
                let page =
                    rows.into_iter().next().and_then(|r| u64::try_from(r.page_size).ok()).unwrap_or(4096);
                *self.page_bytes.insert(page)
            }
        };
        Ok(u64::try_from(frames).unwrap_or(0).saturating_mul(page + FRAME_HEADER_BYTES))
    }

    /// Restarts the log, polling: SQLite's busy handler sleeps 1, 2, 5, 10 ...
    /// ms between its tries, so a restart that met a reader still in the old
    /// frames held writers back 16 to 22 ms under load, though such a reader
    /// is gone within a millisecond. Each try here waits for no one (busy
    /// timeout 0) and copies what it can; the next comes after a yield, for
    /// at most [`RESTART_WAIT_MS`].
    pub(crate) async fn restart(&mut self) -> Result<Checkpoint, StoreError> {
        let deadline = std::time::Instant::now() + Duration::from_millis(RESTART_WAIT_MS);
        self.busy_timeout(0).await?;
        let outcome = loop {
            match self.run(Mode::Restart).await {
                Ok(done) if !done.completed && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                outcome => break outcome,
            }
        };
        // The restart's own outcome is the answer: a connection that cannot
        // take its timeout back is closed (`busy_timeout` drops it) and the
        // next checkpoint opens a new one with the usual timeout.
        let _ = self.busy_timeout(CHECKPOINT_BUSY_TIMEOUT_MS).await;
        outcome
    }

    async fn busy_timeout(&mut self, ms: u32) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let set = diesel::sql_query(format!("PRAGMA busy_timeout = {ms}")).execute(conn).await;
        self.kept(set).map(drop)
    }

    /// A statement's result; an error also closes the connection, so that
    /// the next call opens a new one rather than reuse one in an unknown state.
    fn kept<T>(&mut self, result: diesel::QueryResult<T>) -> Result<T, StoreError> {
        result.map_err(|e| {
            self.conn = None;
            query_error(e)
        })
    }

    async fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.is_none() {
            // A checkpoint copies log frames to the file; it reads no pages
            // through the cache.
            // Its own limit never applies: only a connection that writes
            // frames cuts the file back.
            let setup = Setup {
                busy_timeout_ms: CHECKPOINT_BUSY_TIMEOUT_MS,
                auto_checkpoint: false,
                cache_kib: 512,
                journal_size_limit_bytes: JOURNAL_SIZE_LIMIT_BYTES,
            };
            let opened = connect(self.url.clone(), setup)
                .await
                .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite to checkpoint: {e}")))?;
            self.conn = Some(opened);
        }
        self.conn.as_mut().ok_or_else(|| StoreError::Unavailable("no checkpoint connection".to_owned()))
    }

    pub(crate) async fn run(&mut self, mode: Mode) -> Result<Checkpoint, StoreError> {
        let conn = self.conn().await?;
        let pragma = match mode {
            Mode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
            Mode::Restart => "PRAGMA wal_checkpoint(RESTART)",
            Mode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        };
        let copied = diesel::sql_query(pragma).load(conn).await;
        let rows: Vec<CheckpointRow> = self.kept(copied)?;
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
    // Checks to let pass before the next restart after a miss: each try
    // holds the writers up to `RESTART_WAIT_MS`, and a long read outlasts
    // many checks.
    let mut wait_checks = 0_u32;
    loop {
        every.tick().await;
        if queries.strong_count() == 0 {
            return;
        }
        // No file yet (no write since start) or no change since the last copy: nothing to do.
        let Ok(meta) = std::fs::metadata(&file) else { continue };
        let modified = meta.modified().ok();
        if meta.len() == 0 || (modified.is_some() && modified == copied_at) {
            continue;
        }
        // The new frames are copied without holding anyone back.
        let started = std::time::Instant::now();
        let outcome = checkpointer.run(Mode::Passive).await;
        let took = started.elapsed();
        if took >= crate::LONG_WRITE {
            // It holds no one back, but its `fsync`s share the disk with
            // the writers: what to look at beside a long write.
            tracing::debug!(
                took_ms = took.as_secs_f64() * 1e3,
                frames = outcome.as_ref().map_or(-1, |done| done.checkpointed_frames),
                "WAL copied without restarting"
            );
        }
        let done = match outcome {
            Ok(done) => done,
            Err(e) => {
                failed(&mut errors, &e);
                continue;
            }
        };
        let log_bytes = match checkpointer.log_bytes(done.log_frames).await {
            Ok(bytes) => bytes,
            Err(e) => {
                failed(&mut errors, &e);
                continue;
            }
        };
        if log_bytes <= settings.truncate_at_bytes {
            // Frames a reader still needed are copied at a later check.
            if done.checkpointed_frames == done.log_frames {
                errors = 0;
                copied_at = modified;
            }
            continue;
        }
        if wait_checks > 0 {
            wait_checks -= 1;
            continue;
        }
        // In the writers' queue, so the store's own writers wait their
        // turn instead of polling SQLite's lock meanwhile.
        let Some(strong) = queries.upgrade() else { return };
        // More rounds without holding anyone back while writers keep adding
        // (under the benchmark's rotations the log grows ~200 MB a second),
        // so that writers wait only while the last few frames are copied.
        let mut copied = done.checkpointed_frames;
        for _ in 1..PASSIVE_ROUNDS {
            match checkpointer.run(Mode::Passive).await {
                Ok(done) => {
                    let new = done.checkpointed_frames - copied;
                    copied = done.checkpointed_frames;
                    if new < SMALL_BACKLOG_FRAMES {
                        break;
                    }
                }
                Err(e) => {
                    failed(&mut errors, &e);
                    break;
                }
            }
        }
        let (outcome, held) = {
            let _turn = strong.writer.lock().await;
            let started = std::time::Instant::now();
            // On this thread, as a write's statements: a hop to the
            // blocking pool and back waited for a core behind the load
            // (restarts held writers 15 ms, of which ~1 ms was SQLite's).
            let outcome = crate::statements::on_this_thread(checkpointer.restart()).await;
            // Counted before the turn passes on: a write that follows the
            // restart sees it counted.
            if matches!(outcome, Ok(done) if done.completed) {
                strong.wal_restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (outcome, started.elapsed())
        };
        match outcome {
            Ok(done) if done.completed => {
                (misses, errors) = (0, 0);
                copied_at = None;
                tracing::debug!(
                    wal_bytes = log_bytes,
                    writers_held_ms = held.as_secs_f64() * 1e3,
                    "WAL copied and restarted"
                );
            }
            Ok(done) => {
                misses = misses.saturating_add(1);
                // 2, 4, 8, then 16 checks (1.6 s by default) between tries.
                wait_checks = 1 << misses.min(4);
                if misses.is_multiple_of(10) {
                    tracing::warn!(
                        wal_bytes = log_bytes,
                        frames = done.log_frames,
                        misses,
                        "the WAL could not be restarted: readers of old frames stayed at ten checks in a row"
                    );
                } else {
                    tracing::debug!(wal_bytes = log_bytes, frames = done.log_frames, "WAL busy; retrying");
                }
            }
            Err(e) => failed(&mut errors, &e),
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
