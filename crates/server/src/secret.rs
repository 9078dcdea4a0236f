//! Where the JWT key comes from.

use std::io::Write;
use std::path::{Path, PathBuf};

use portcullis_crypto::{JwtSecret, KeyEncryptionKey, MIN_KEK_LEN, MIN_SECRET_LEN};
use portcullis_domain::SigningAlgorithm;

use crate::config::{Config, DatabaseUrl, Environment, JwtAlgorithmArg};
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
    let path = key_file(&config.database.database_url, "jwt-secret");
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

fn key_file(database: &DatabaseUrl, name: &str) -> PathBuf {
    match database {
        DatabaseUrl::Sqlite(db) => db.parent().unwrap_or_else(|| Path::new("")).join(name),
        DatabaseUrl::Postgres(_) => PathBuf::from("data").join(name),
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

/// How tokens are signed, with the keys for it.
pub(crate) struct Signing {
    pub(crate) algorithm: SigningAlgorithm,
    /// The HS256 secrets: the one that signs under HS256 first, then the
    /// previous one; under ES256/EdDSA they only verify (tokens from before a switch).
    pub(crate) secrets: Vec<JwtSecret>,
    pub(crate) kek: Option<KeyEncryptionKey>,
    /// Signs OAuth states: AUTH_JWT_SECRET (or the development key) when
    /// there is one, else derived from the key-encryption key.
    pub(crate) state_secret: JwtSecret,
}

impl Signing {
    /// What seals TOTP secrets: a key derived from the key-encryption key
    /// when there is one (it survives a change of HS256 secret), then each
    /// HS256 secret (an HS256-only deployment, and what sealed before a
    /// key-encryption key was set).
    pub(crate) fn totp_keys(&self) -> Vec<JwtSecret> {
        let mut keys: Vec<JwtSecret> =
            self.kek.iter().map(|kek| kek.derived_secret("portcullis totp")).collect();
        keys.extend(self.secrets.iter().cloned());
        keys
    }
}

/// The algorithm `AUTH_JWT_ALGORITHM` names, or its default: HS256 when
/// `AUTH_JWT_SECRET` is set, ES256 otherwise.
pub(crate) fn algorithm(config: &Config) -> SigningAlgorithm {
    match config.tokens.jwt_algorithm {
        Some(JwtAlgorithmArg::Hs256) => SigningAlgorithm::Hs256,
        Some(JwtAlgorithmArg::Es256) => SigningAlgorithm::Es256,
        Some(JwtAlgorithmArg::EdDsa) => SigningAlgorithm::EdDsa,
        None if config.tokens.jwt_secret.is_some() => SigningAlgorithm::Hs256,
        None => SigningAlgorithm::Es256,
    }
}

/// Everything token signing needs, from the configuration (and, outside
/// production, from key files generated once beside the SQLite database).
///
/// # Errors
/// [`StartError::Config`] naming the variable that is missing or wrong.
pub(crate) fn signing(config: &Config) -> Result<Signing, StartError> {
    let algorithm = algorithm(config);
    let production = config.server.environment == Environment::Production;
    let kek = match &config.tokens.key_encryption_key {
        Some(text) => Some(
            KeyEncryptionKey::parse(text.expose())
                .map_err(|why| StartError::config("AUTH_KEY_ENCRYPTION_KEY", why))?,
        ),
        None if !algorithm.is_asymmetric() => None,
        None if production => {
            return Err(StartError::config(
                "AUTH_KEY_ENCRYPTION_KEY",
                format!(
                    "is required in production to sign with {algorithm} (at least {MIN_KEK_LEN} random bytes, raw or base64); \
                     or set AUTH_JWT_ALGORITHM=HS256 with AUTH_JWT_SECRET"
                ),
            ));
        }
        None => {
            let path = key_file(&config.database.database_url, "key-encryption-key");
            let text =
                load_or_create(&path).map_err(|e| StartError::Io(format!("{}: {e}", path.display())))?;
            tracing::warn!(path = %path.display(), "AUTH_KEY_ENCRYPTION_KEY is unset: using the generated development key");
            let text = String::from_utf8(text).map_err(|_| {
                StartError::config("AUTH_KEY_ENCRYPTION_KEY", format!("{}: not text", path.display()))
            })?;
            Some(KeyEncryptionKey::parse(&text).map_err(|why| {
                StartError::config("AUTH_KEY_ENCRYPTION_KEY", format!("{}: {why}", path.display()))
            })?)
        }
    };
    let mut secrets = Vec::new();
    if !algorithm.is_asymmetric() || config.tokens.jwt_secret.is_some() {
        secrets.push(resolve(config)?);
        secrets.extend(previous(config)?);
    } else if !production {
        // A development deployment that signed with the generated HS256 key
        // before: its tokens keep verifying (no new key file is made).
        let path = key_file(&config.database.database_url, "jwt-secret");
        if path.exists() {
            let bytes =
                load_or_create(&path).map_err(|e| StartError::Io(format!("{}: {e}", path.display())))?;
            secrets.push(JwtSecret::new(bytes).map_err(|why| {
                StartError::config("AUTH_JWT_SECRET", format!("{}: {why}", path.display()))
            })?);
        }
    }
    if algorithm == SigningAlgorithm::Hs256 && config.tokens.jwt_algorithm.is_none() {
        tracing::warn!(
            "tokens are signed with HS256 because AUTH_JWT_SECRET is set: every verifier must hold the secret \
             that mints tokens. Set AUTH_JWT_ALGORITHM=ES256 (with AUTH_KEY_ENCRYPTION_KEY) to publish verification keys instead"
        );
    }
    let state_secret = match (secrets.first(), &kek) {
        (Some(secret), _) => secret.clone(),
        (None, Some(kek)) => kek.derived_secret("portcullis oauth state"),
        (None, None) => {
            return Err(StartError::config("AUTH_JWT_SECRET", "is needed: no key to sign OAuth states with"));
        }
    };
    Ok(Signing { algorithm, secrets, kek, state_secret })
}
