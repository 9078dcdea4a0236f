//! `portcullis`: see `portcullis --help`.

use std::process::ExitCode;

use portcullis::{Cli, init_tracing, run};

/// See the `tikv-jemallocator` entry in this crate's `Cargo.toml`.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    // `.env` in the working directory fills in variables that are not set.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: .env: {e}");
        return ExitCode::FAILURE;
    }
    let mut cli = match Cli::from_env() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    if let Err(e) = cli.config.read_oidc_providers(
        // A variable that is not UTF-8 cannot be one of ours.
        std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?))),
    ) {
        eprintln!("error: {e}");
        return ExitCode::from(e.exit_code());
    }
    // Held until `main` returns: dropping it writes out the queued log lines.
    let _logs = match init_tracing(&cli.config) {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
