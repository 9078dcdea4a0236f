//! How Portcullis reaches PostgreSQL and Redis.
//!
//! One place reads the TLS settings an operator writes in the URLs, so the
//! connection pool, the `LISTEN` connection and every Redis client agree:
//!
//! - PostgreSQL: libpq's `sslmode` (`disable`, `prefer` (the default),
//!   `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file; by
//!   default the platform's roots) in `DATABASE_URL`, over rustls;
//! - Redis: `rediss://` in `AUTH_REDIS_URL`, with `AUTH_REDIS_CA_FILE` for a
//!   private CA.
//!
//! Every error is a sentence an operator can act on, naming the setting.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod pg;
mod verify;

use std::path::Path;

pub use pg::{PgTarget, SslMode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Reads the certificates of a PEM file: at least one, or an error that names
/// the file and `setting`.
///
/// # Errors
/// A sentence naming `setting` when the file cannot be read, is not PEM, or
/// holds no certificate.
pub fn read_ca_file(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{setting}: cannot read {}: {e}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{setting}: {} is not a PEM certificate file: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{setting}: {} holds no certificate (expected PEM blocks of -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certificates)
}

/// A Redis client for `url` (`redis://` or `rediss://`). With a `ca_file`,
/// the server's certificate must chain to it (and the URL must be `rediss://`);
/// without one, a `rediss://` server is checked against the platform's roots.
///
/// # Errors
/// A sentence naming `AUTH_REDIS_URL` or `AUTH_REDIS_CA_FILE`.
pub fn redis_client(url: &str, ca_file: Option<&Path>) -> Result<redis::Client, String> {
    let secure = url.starts_with("rediss://");
    match ca_file {
        None => redis::Client::open(url).map_err(|e| format!("AUTH_REDIS_URL: {e}")),
        Some(_) if !secure => Err(
            "AUTH_REDIS_CA_FILE is set but AUTH_REDIS_URL is not a rediss:// URL: the CA is only used over TLS"
                .to_owned(),
        ),
        Some(path) => {
            // Parsed here first, so a bad file is named rather than reported
            // by the client at the first connection.
            read_ca_file(path, "AUTH_REDIS_CA_FILE")?;
            let root_cert = std::fs::read(path)
                .map_err(|e| format!("AUTH_REDIS_CA_FILE: cannot read {}: {e}", path.display()))?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) },
            )
            .map_err(|e| format!("AUTH_REDIS_URL: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_not_pem_is_named() {
        let dir = std::env::temp_dir().join(format!("portcullis-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, b"not a certificate\n").unwrap();
        let error = read_ca_file(&junk, "AUTH_REDIS_CA_FILE").unwrap_err();
        assert!(error.starts_with("AUTH_REDIS_CA_FILE:"), "{error}");
        assert!(error.contains("holds no certificate"), "{error}");

        let broken = dir.join("broken.pem");
        std::fs::write(&broken, b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
        let error = read_ca_file(&broken, "DATABASE_URL sslrootcert").unwrap_err();
        assert!(error.contains("not a PEM certificate file"), "{error}");

        let missing = read_ca_file(&dir.join("missing.pem"), "AUTH_REDIS_CA_FILE").unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_ca_file_needs_a_tls_url() {
        let error = redis_client("redis://127.0.0.1:6379", Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(error.contains("not a rediss:// URL"), "{error}");
        assert!(redis_client("rediss://127.0.0.1:6380", None).is_ok());
    }
}
