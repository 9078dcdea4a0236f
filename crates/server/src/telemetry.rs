use std::io::{BufWriter, Stderr};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{Config, LogFormat};
use crate::error::StartError;

/// Lines the log writer holds while stderr is not being read; beyond that,
/// new lines are dropped (and counted) rather than blocking the request
/// threads. A few MiB at most, and seconds of logging at ordinary rates.
const QUEUED_LINES: usize = 16_384;

/// Bytes gathered into one write: lines that queued while the writer was
/// busy go out together, and it writes whatever it has as soon as its queue
/// is empty.
const WRITE_BUFFER: usize = 64 * 1024;

/// The dropped-lines count of the writer `init_tracing` installed.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// The log writer's thread, kept for the life of the process. Dropping it
/// writes out the lines still queued (waiting at most a second), so `main`
/// holds it until it returns.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct LogWriter {
    _guard: WorkerGuard,
}

/// Log lines dropped since start because stderr was not read fast enough.
#[must_use]
pub(crate) fn dropped_log_lines() -> u64 {
    DROPPED.get().map_or(0, |counter| u64::try_from(counter.dropped_lines()).unwrap_or(u64::MAX))
}

/// Logs to stderr, one line per event, plus one line when each request's span
/// closes (method, route, status, latency and request id).
///
/// Lines are formatted on the thread that logs them and written by a thread
/// of their own: a request never waits for stderr, so a log collector that
/// stalls (a full pipe, a paused container runtime) slows nothing. What
/// cannot be queued is dropped and counted (`portcullis_log_lines_dropped_total`).
///
/// # Errors
/// [`StartError::Config`] naming `RUST_LOG` when the filter does not parse.
pub fn init_tracing(config: &Config) -> Result<LogWriter, StartError> {
    let filter = EnvFilter::try_new(&config.telemetry.log_filter)
        .map_err(|e| StartError::config("RUST_LOG", e.to_string()))?;
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(BufWriter::<Stderr>::with_capacity(WRITE_BUFFER, std::io::stderr()));
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_span_events(FmtSpan::CLOSE);
    let result = match config.telemetry.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already initialised (e.g. twice in one test process): the first
    // subscriber stays, and so does its count.
    if result.is_ok() {
        let _ = DROPPED.set(dropped);
    }
    Ok(LogWriter { _guard: guard })
}
