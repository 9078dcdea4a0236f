//! The store keeps SQLite's write-ahead log bounded under overlapping reads.
//!
//! With a reader always holding a snapshot (as under steady request load),
//! SQLite's own passive checkpoints seldom restart the log, so nearly every
//! commit makes the `-wal` file longer. The same writes run twice: once with
//! the store's WAL maintenance off and a snapshot held across them all, to
//! measure the log they make when nothing restarts it, and once with the
//! maintenance on under overlapping reads, to show the file stays small.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{new_user, scratch};
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use portcullis_domain::ports::UserRepository;
use portcullis_store_sqlite::{SqliteOptions, WalMaintenance};

mod common;

const ROWS: usize = 4_000;
const TRUNCATE_AT: u64 = 512 * 1024;

/// The two tests that time the maintenance against readers take turns: each
/// keeps both cores busy, and a reader thread that waits for a core holds
/// its snapshot (and the log) longer than the test's workload means it to.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn raw(db: &Path) -> SqliteConnection {
    let url = db.to_str().expect("temporary paths are UTF-8");
    let mut conn = SqliteConnection::establish(url).expect("open the database beside the store");
    for pragma in ["PRAGMA busy_timeout = 5000", "PRAGMA synchronous = NORMAL"] {
        diesel::sql_query(pragma).execute(&mut conn).expect("set up the connection");
    }
    conn
}

fn count(conn: &mut SqliteConnection) -> i64 {
    let rows: Vec<Count> =
        diesel::sql_query("SELECT count(*) AS n FROM users").load(conn).expect("count the users");
    rows.first().map_or(0, |c| c.n)
}

fn wal_size(db: &Path) -> u64 {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    std::fs::metadata(PathBuf::from(name)).map_or(0, |m| m.len())
}

/// Two connections take turns holding a read snapshot, their transactions
/// overlapping so that one is always open, until `stop`.
fn overlapping_readers(db: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut pair = [raw(&db), raw(&db)];
        diesel::sql_query("BEGIN").execute(&mut pair[0]).expect("begin");
        count(&mut pair[0]);
        let mut open = 0;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(2));
            let next = 1 - open;
            diesel::sql_query("BEGIN").execute(&mut pair[next]).expect("begin");
            count(&mut pair[next]);
            diesel::sql_query("COMMIT").execute(&mut pair[open]).expect("end the older snapshot");
            open = next;
        }
        diesel::sql_query("COMMIT").execute(&mut pair[open]).expect("end the last snapshot");
    })
}

/// Writes `ROWS` users through the store while the readers overlap, and
/// returns the largest `-wal` file seen after any commit and how many times
/// the maintenance task restarted the log. Without maintenance, a snapshot
/// is also held across every write: the overlapping readers alone let
/// SQLite's own checkpoint restart the log now and then (when the writer
/// stalls long enough for both snapshots to begin after its last commit, as
/// on a loaded machine), and the log would then undercount what the writes
/// add.
async fn largest_wal(maintenance: Option<WalMaintenance>) -> (u64, u64) {
    let scratch = scratch(2, SqliteOptions { wal: maintenance, ..SqliteOptions::default() }).await;
    let (store, db) = (&scratch.store, scratch.db.clone());
    let mut held = maintenance.is_none().then(|| raw(&db));
    if let Some(conn) = held.as_mut() {
        diesel::sql_query("BEGIN").execute(conn).expect("begin the held snapshot");
        count(conn);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers = overlapping_readers(db.clone(), Arc::clone(&stop));
    let mut largest = 0;
    for i in 0..ROWS {
        store.create(new_user(i)).await.expect("every write succeeds, checkpoint or not");
        largest = largest.max(wal_size(&db));
    }
    if let Some(conn) = held.as_mut() {
        diesel::sql_query("COMMIT").execute(conn).expect("end the held snapshot");
    }
    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || readers.join()).await.expect("join").expect("the readers finish");
    assert_eq!(count(&mut raw(&db)), i64::try_from(ROWS).expect("small"), "no write is lost");
    (largest, store.wal_restarts())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_overlapping_reads() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (unmaintained, none) = largest_wal(None).await;
    let maintenance =
        WalMaintenance { truncate_at_bytes: TRUNCATE_AT, check_every: Duration::from_millis(5) };
    let (maintained, restarts) = largest_wal(Some(maintenance)).await;
    eprintln!(
        "largest WAL: {unmaintained} bytes unmaintained, {maintained} maintained ({restarts} restarts)"
    );
    // 4 000 commits of a few 4 KiB pages: without a restart the log holds them all.
    assert!(
        unmaintained > 10 * 1024 * 1024,
        "the held snapshot keeps every write in the log: {unmaintained}"
    );
    assert_eq!(none, 0, "no maintenance, no restart");
    assert!(
        maintained < unmaintained / 3,
        "the maintained WAL ({maintained} bytes) stays well below the starved one ({unmaintained})"
    );
    assert!(
        maintained <= maintenance.kept_bytes() + unmaintained / 10,
        "the file is cut back to twice the bound at a restart: {maintained}"
    );
    // The unmaintained log holds every frame the writes made: the
    // maintained log restarts at most once per bound's worth of them, and
    // less where SQLite's own checkpoint restarted it between checks. Judged
    // by the frames in the log, not by the file (which SQLite keeps at up to
    // twice the bound), else it would restart at every check once the file
    // is large: 1 430 restarts for 98 MB, ten times this bound. The upper
    // bound leaves room for the two runs' page counts to differ.
    let expected = unmaintained / TRUNCATE_AT;
    assert!(
        (1..=expected * 3 / 2 + 2).contains(&restarts),
        "{restarts} restarts for {unmaintained} bytes of log at a bound of {TRUNCATE_AT}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_empties_the_wal_and_keeps_the_data() {
    let scratch = scratch(2, SqliteOptions { wal: None, ..SqliteOptions::default() }).await;
    let (store, db) = (&scratch.store, scratch.db.clone());
    for i in 0..100 {
        store.create(new_user(i)).await.expect("write");
    }
    assert!(wal_size(&db) > 100 * 4096, "the writes are in the log");
    let done = store.checkpoint().await.expect("checkpoint");
    assert!(done.completed, "nothing holds the log: {done:?}");
    assert_eq!(done.log_frames, 0, "no frame is left in the log: {done:?}");
    assert_eq!(wal_size(&db), 0, "the log is truncated");
    let mut reader = raw(&db);
    assert_eq!(count(&mut reader), 100, "the users are in the database file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_never_recreates_a_deleted_database() {
    let scratch = scratch(2, SqliteOptions { wal: None, ..SqliteOptions::default() }).await;
    let (store, db) = (&scratch.store, scratch.db.clone());
    std::fs::remove_file(&db).expect("delete the database under the store");
    assert!(store.checkpoint().await.is_err(), "there is nothing to checkpoint");
    assert!(!db.exists(), "no empty database appears in its place");
}

/// A read that stays in the log's old frames (an admin listing by `offset`,
/// a count, a backup) keeps the log from restarting; the restart, which holds
/// the writers' turn, gives up after a short wait and tries again at the next
/// check rather than holding every write while the read lasts (it waited
/// 200 ms a try, and writes waited as long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_read_never_holds_the_writers_behind_a_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let maintenance =
        WalMaintenance { truncate_at_bytes: TRUNCATE_AT, check_every: Duration::from_millis(5) };
    let scratch = scratch(2, SqliteOptions { wal: Some(maintenance), ..SqliteOptions::default() }).await;
    let (store, db) = (&scratch.store, scratch.db.clone());
    // The migrations' log may be past the bound, so a restart may be due
    // before the read. It needs no waiting out: a restart is counted before
    // the writers' turn passes on, so one that completes before the write
    // below is counted before the read begins, and none can complete after
    // it (the pin, then the long read, keep the log's new frames).
    let mut i = 0;
    // A read that begins when every frame is already copied reads the
    // database file alone (SQLite's read mark 0) and does not keep the log
    // from restarting. So a first snapshot pins the log while a write adds
    // frames it cannot copy, and the long read begins on those frames.
    let step = Arc::new(AtomicU32::new(0));
    let reader = {
        let step = Arc::clone(&step);
        std::thread::spawn(move || {
            let (mut pin, mut conn) = (raw(&db), raw(&db));
            diesel::sql_query("BEGIN").execute(&mut pin).expect("begin the pin");
            count(&mut pin);
            step.store(1, Ordering::Release);
            while step.load(Ordering::Acquire) < 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            diesel::sql_query("BEGIN").execute(&mut conn).expect("begin");
            count(&mut conn);
            diesel::sql_query("COMMIT").execute(&mut pin).expect("end the pin");
            step.store(3, Ordering::Release);
            while step.load(Ordering::Acquire) < 4 {
                std::thread::sleep(Duration::from_millis(5));
            }
            diesel::sql_query("COMMIT").execute(&mut conn).expect("end the snapshot");
        })
    };
    while step.load(Ordering::Acquire) < 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    store.create(new_user(i)).await.expect("a write the pinned log keeps");
    i += 1;
    step.store(2, Ordering::Release);
    while step.load(Ordering::Acquire) < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let restarts = store.wal_restarts();
    let (started, mut slowest) = (std::time::Instant::now(), Duration::ZERO);
    let first = i;
    while started.elapsed() < Duration::from_millis(1500) {
        let write = std::time::Instant::now();
        store.create(new_user(i)).await.expect("every write succeeds while the read lasts");
        slowest = slowest.max(write.elapsed());
        i += 1;
    }
    step.store(4, Ordering::Release);
    tokio::task::spawn_blocking(move || reader.join()).await.expect("join").expect("the reader finishes");
    let writes = i - first;
    eprintln!("{writes} writes during the read, slowest {slowest:?}");
    assert!(
        wal_size(&scratch.db) > TRUNCATE_AT,
        "the writes passed the bound, so restarts were tried meanwhile"
    );
    assert_eq!(store.wal_restarts(), restarts, "no restart while the read stays in the old frames");
    assert!(
        slowest < Duration::from_millis(150),
        "a write waited {slowest:?} behind a restart's wait for the read"
    );
    // Each try holds the writers; after a miss the next comes later and
    // later, so that a long read does not turn into a slow write per check.
    assert!(writes > 300, "only {writes} writes in 1.5 s: restarts tried at every check held them");
}
