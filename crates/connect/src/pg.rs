//! PostgreSQL: libpq's TLS parameters read out of `DATABASE_URL`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use tokio_postgres::config::Host;
use tokio_postgres::tls::TlsStream;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::verify::{AnyCertificate, AnyHostName};

/// libpq's `sslmode`, with its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, without checking its certificate;
    /// plain otherwise (libpq's default).
    Prefer,
    /// TLS or nothing; the certificate is checked only when `sslrootcert` is
    /// given (then as `verify-ca`), as libpq does.
    Require,
    /// TLS with a certificate that chains to a trusted root; any host name.
    VerifyCa,
    /// TLS with a certificate that chains to a trusted root and names the host.
    VerifyFull,
}

impl SslMode {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// The value as written in a URL.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where and how to reach PostgreSQL: the URL's connection settings and its
/// TLS policy, checked once (at start-up) and then used for every connection.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    mode: SslMode,
    tls: MakeRustlsConnect,
    place: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("PgTarget").field("at", &self.place).field("sslmode", &self.mode).finish()
    }
}

impl PgTarget {
    /// Reads `url` (`postgres://` or `postgresql://`), taking `sslmode` and
    /// `sslrootcert` out of its query and reading the root certificates.
    ///
    /// # Errors
    /// A sentence naming `DATABASE_URL`: an unknown `sslmode`, a root file that
    /// cannot be read or is not PEM, a URL tokio-postgres cannot read, or no
    /// platform roots where they are needed.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = SslMode::Prefer;
        let mut root_file: Option<PathBuf> = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    let value = percent_decode(value);
                    mode = SslMode::parse(&value).ok_or_else(|| {
                        format!(
                            "DATABASE_URL: sslmode={value} is not one of disable, prefer, require, verify-ca, verify-full"
                        )
                    })?;
                }
                "sslrootcert" => root_file = Some(PathBuf::from(percent_decode(value))),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| format!("DATABASE_URL: {e}"))?;
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = verifier(mode, root_file, &provider)?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("DATABASE_URL: TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let place = describe(&config);
        Ok(Self { config, mode, tls: MakeRustlsConnect::new(tls), place })
    }

    /// The `sslmode` in force.
    #[must_use]
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Opens one connection. The connection half must be polled (or given to
    /// diesel-async) for the client to make progress.
    ///
    /// # Errors
    /// A sentence saying where, under which `sslmode`, and what failed (the
    /// TLS handshake's reason, or the server's refusal).
    pub async fn connect(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, impl TlsStream + Unpin + Send + 'static>,
        ),
        String,
    > {
        self.config.connect(self.tls.clone()).await.map_err(|e| {
            let mut message = format!(
                "cannot connect to PostgreSQL at {} (sslmode={}): {e}",
                self.place,
                self.mode.as_str()
            );
            if let Some(why) = std::error::Error::source(&e)
                && !message.contains(&why.to_string())
            {
                message.push_str(&format!(": {why}"));
            }
            message
        })
    }
}

/// What checks the server's certificate, by mode.
fn verifier(
    mode: SslMode,
    root_file: Option<PathBuf>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let checked = match (mode, &root_file) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => None,
        (SslMode::Require | SslMode::VerifyCa, _) => Some(false),
        (SslMode::VerifyFull, _) => Some(true),
    };
    let Some(check_name) = checked else {
        // Still read a named file, so a mistake in it shows at start-up.
        if let Some(path) = &root_file {
            crate::read_ca_file(path, "DATABASE_URL sslrootcert")?;
        }
        return Ok(Arc::new(AnyCertificate::new(Arc::clone(provider))));
    };
    let mut roots = RootCertStore::empty();
    match root_file {
        Some(path) if path.as_os_str() != "system" => {
            for certificate in crate::read_ca_file(&path, "DATABASE_URL sslrootcert")? {
                roots.add(certificate).map_err(|e| {
                    format!(
                        "DATABASE_URL sslrootcert: {} holds a certificate rustls cannot use: {e}",
                        path.display()
                    )
                })?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(format!(
                    "DATABASE_URL: sslmode={} needs root certificates, and the platform has none; \
                     name the server's CA with sslrootcert=/path/to/ca.pem",
                    mode.as_str()
                ));
            }
        }
    }
    let full = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| format!("DATABASE_URL sslrootcert: {e}"))?;
    Ok(if check_name { full } else { Arc::new(AnyHostName::new(full)) })
}

/// `host:port/db` for messages (the first host when there are several).
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or_default())
}

/// `%XX` escapes of a URL query value (a path may hold them).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_read_out_of_the_url() {
        let target =
            PgTarget::parse("postgres://u:secret@db.example.com:6543/app?sslmode=require&application_name=x")
                .unwrap();
        assert_eq!(target.mode(), SslMode::Require);
        assert_eq!(target.config.get_application_name(), Some("x"));
        assert_eq!(target.config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        let printed = format!("{target:?}");
        assert!(printed.contains("db.example.com:6543/app") && !printed.contains("secret"), "{printed}");

        let default = PgTarget::parse("postgres://postgres@127.0.0.1/test").unwrap();
        assert_eq!(default.mode(), SslMode::Prefer);
        let plain = PgTarget::parse("postgresql://postgres@127.0.0.1/test?sslmode=disable").unwrap();
        assert_eq!(plain.config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }

    #[test]
    fn an_unknown_sslmode_or_a_missing_root_file_is_named() {
        let error = PgTarget::parse("postgres://h/db?sslmode=verify_full").unwrap_err();
        assert!(error.starts_with("DATABASE_URL: sslmode=verify_full is not one of"), "{error}");
        let error =
            PgTarget::parse("postgres://h/db?sslmode=verify-full&sslrootcert=/no/such/ca.pem").unwrap_err();
        assert!(error.contains("DATABASE_URL sslrootcert: cannot read /no/such/ca.pem"), "{error}");
        // A mistake in a named file shows even where it would not be used.
        let error =
            PgTarget::parse("postgres://h/db?sslmode=prefer&sslrootcert=/no/such/ca.pem").unwrap_err();
        assert!(error.contains("cannot read"), "{error}");
    }

    #[test]
    fn escaped_paths_are_decoded() {
        assert_eq!(percent_decode("%2Fetc%2Fca%20file.pem"), "/etc/ca file.pem");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
