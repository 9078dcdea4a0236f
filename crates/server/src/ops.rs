//! The operator's commands that need no running service: `healthcheck`,
//! `backup`, `restore` and `completions`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use portcullis_store_sqlite::BackupError;

use crate::config::{Cli, Config, DatabaseUrl};
use crate::error::StartError;

/// `portcullis healthcheck`: GET /healthz on the address the service listens
/// on (loopback when it listens on every interface).
///
/// # Errors
/// [`StartError::Command`] saying why the service is not healthy.
pub(crate) fn healthcheck(config: &Config, timeout: Duration) -> Result<(), StartError> {
    let address = reachable(config.server.bind);
    let fail = |why: String| StartError::Command(format!("unhealthy: http://{address}/healthz: {why}"));
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| fail(e.to_string()))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| fail(e.to_string()))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| fail(e.to_string()))?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| fail(e.to_string()))?;
    let mut answer = Vec::new();
    // The status line is all that counts; a body is a few bytes.
    stream.take(64 * 1024).read_to_end(&mut answer).map_err(|e| fail(e.to_string()))?;
    let status = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(fail(format!("answered {code}"))),
        None => Err(fail("no HTTP answer".to_owned())),
    }
}

/// Where a client on this machine reaches a service bound to `bind`.
fn reachable(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// `portcullis backup --to PATH`.
///
/// # Errors
/// [`StartError::Settings`] (exit 2) on PostgreSQL or for a target that
/// exists; [`StartError::Command`] when the copy fails.
pub(crate) async fn backup(config: &Config, to: PathBuf) -> Result<String, StartError> {
    let db =
        sqlite_only(config, "backup", "pg_dump --format=custom --file=portcullis.dump \"$DATABASE_URL\"")?;
    let (from, into) = (db.clone(), to.clone());
    let size = blocking(move || portcullis_store_sqlite::backup(&from, &into)).await?;
    Ok(format!("backed up {} to {} ({size} bytes)\n", db.display(), to.display()))
}

/// `portcullis restore --from PATH`.
///
/// # Errors
/// As [`backup`]; [`StartError::Command`] while an instance holds the database.
pub(crate) async fn restore(config: &Config, from: PathBuf) -> Result<String, StartError> {
    let db = sqlite_only(config, "restore", "pg_restore --clean --dbname=\"$DATABASE_URL\" portcullis.dump")?;
    let (into, backup) = (db.clone(), from.clone());
    blocking(move || portcullis_store_sqlite::restore(&into, &backup)).await?;
    Ok(format!(
        "restored {} from {}; start the service to apply any newer migrations\n",
        db.display(),
        from.display()
    ))
}

fn sqlite_only(config: &Config, command: &str, instead: &str) -> Result<PathBuf, StartError> {
    match &config.database.database_url {
        DatabaseUrl::Sqlite(path) => Ok(path.clone()),
        DatabaseUrl::Postgres(_) => Err(StartError::Settings(format!(
            "DATABASE_URL is PostgreSQL: `portcullis {command}` copies the embedded SQLite database only; \
             use PostgreSQL's own tools, e.g. {instead}"
        ))),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, StartError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(BackupError::Refused(why))) => Err(StartError::Settings(why)),
        Ok(Err(BackupError::InUse(why) | BackupError::Failed(why))) => Err(StartError::Command(why)),
        Err(e) => Err(StartError::Command(format!("the task failed: {e}"))),
    }
}

/// `portcullis completions SHELL`: the script on stdout.
///
/// # Errors
/// [`StartError::Io`] when stdout cannot be written.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<(), StartError> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "portcullis", &mut script);
    std::io::stdout().lock().write_all(&script).map_err(|e| StartError::Io(format!("stdout: {e}")))
}
