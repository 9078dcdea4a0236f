use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{Config, LogFormat};
use crate::error::StartError;

/// Logs to stderr, one line per event, plus one line when each request's span
/// closes (method, route, status, latency and request id).
///
/// # Errors
/// [`StartError::Config`] naming `RUST_LOG` when the filter does not parse.
pub fn init_tracing(config: &Config) -> Result<(), StartError> {
    let filter = EnvFilter::try_new(&config.telemetry.log_filter)
        .map_err(|e| StartError::config("RUST_LOG", e.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_span_events(FmtSpan::CLOSE);
    let result = match config.telemetry.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already initialised (e.g. twice in one test process): keep the first.
    drop(result);
    Ok(())
}
