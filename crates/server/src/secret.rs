//! Where the JWT key comes from.

use std::io::Write;
use std::path::{Path, PathBuf};

use portcullis_crypto::{JwtSecret, MIN_SECRET_LEN};

use crate::config::{Config, DatabaseUrl, Environment};
use crate::error::StartError;

/// `AUTH_JWT_SECRET` when set (32+ bytes, in every environment). Otherwise, in
/// production, a refusal; in development and test, a key generated once and
/// kept in `jwt-secret` beside the SQLite file (or in `data/` with PostgreSQL),
/// readable by its owner only, so tokens survive restarts.
///
/// # Errors
/// [`StartError::Config`] naming `AUTH_JWT_SECRET`, or an I/O failure on the key file.
pub(crate) fn resolve(config: &Config) -> Result<JwtSecret, StartError> {
    if let Some(secret) = &config.tokens.jwt_secret {
        return JwtSecret::new(secret.expose().as_bytes().to_vec())
            .map_err(|why| StartError::config("AUTH_JWT_SECRET", why));
    }
    if config.server.environment == Environment::Production {
        return Err(StartError::config(
            "AUTH_JWT_SECRET",
            format!("is required in production (at least {MIN_SECRET_LEN} random bytes)"),
        ));
    }
    let path = key_file(&config.database.database_url);
    let secret = load_or_create(&path).map_err(|e| StartError::Io(format!("{}: {e}", path.display())))?;
    tracing::warn!(path = %path.display(), "AUTH_JWT_SECRET is unset: using the generated development key");
    JwtSecret::new(secret)
        .map_err(|why| StartError::config("AUTH_JWT_SECRET", format!("{}: {why}", path.display())))
}

/// `AUTH_JWT_PREVIOUS_SECRET`, the key being rotated out, when set.
///
/// # Errors
/// [`StartError::Config`] naming it when it is too short or equals the current key.
pub(crate) fn previous(config: &Config) -> Result<Option<JwtSecret>, StartError> {
    let Some(previous) = &config.tokens.jwt_previous_secret else { return Ok(None) };
    if config.tokens.jwt_secret.as_ref() == Some(previous) {
        return Err(StartError::config("AUTH_JWT_PREVIOUS_SECRET", "is the same as AUTH_JWT_SECRET"));
    }
    let previous = JwtSecret::new(previous.expose().as_bytes().to_vec())
        .map_err(|why| StartError::config("AUTH_JWT_PREVIOUS_SECRET", why))?;
    tracing::info!("AUTH_JWT_PREVIOUS_SECRET is set: tokens signed with the previous key are still accepted");
    Ok(Some(previous))
}

fn key_file(database: &DatabaseUrl) -> PathBuf {
    match database {
        DatabaseUrl::Sqlite(db) => db.parent().unwrap_or_else(|| Path::new("")).join("jwt-secret"),
        DatabaseUrl::Postgres(_) => PathBuf::from("data").join("jwt-secret"),
    }
}

/// A secret file anyone but its owner may read is refused: it would mean the
/// key has been readable by others for as long as it has been so.
fn private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "is readable by others (mode {:o}); refusing to use it. Make it private (chmod 600) \
                     or, if others may have read it, delete it to generate a new one",
                    mode & 0o777
                ),
            ));
        }
    }
    let _ = path;
    Ok(())
}

fn load_or_create(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(existing) => {
            private(path)?;
            return Ok(trim(existing));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut folder = std::fs::DirBuilder::new();
        folder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
        folder.create(dir)?;
    }
    let mut bytes = [0u8; 48];
    rand::fill(&mut bytes);
    let encoded: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(encoded.as_bytes())?;
            file.sync_all()?;
            Ok(encoded.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            private(path)?;
            std::fs::read(path).map(trim)
        }
        Err(e) => Err(e),
    }
}

fn trim(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    bytes
}
