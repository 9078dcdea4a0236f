//! Configuration from the environment (and `.env`), parsed by clap so that
//! `--help` lists every variable, and an invalid value stops the start with one
//! message naming it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use portcullis_domain::{Quota, RateLimits};
use portcullis_http::TrustedProxies;

/// Portcullis: authentication service (accounts, JWT sessions, API keys, OAuth2 login).
#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Portcullis: authentication service (accounts, JWT sessions, API keys, password reset, GitHub, LinkedIn, Google and OpenID Connect login) on SQLite or PostgreSQL.",
    after_help = "Every option can also be set through the environment variable shown beside it, or in a .env file in the working directory (the real environment wins).\n\nAny OpenID Connect provider is added by environment variables alone, NAME being A-Z, 0-9 and _ (routes under /v1/auth/<name>/, lowercased):\n  AUTH_OIDC_<NAME>_ISSUER         its issuer URL (the discovery document is <issuer>/.well-known/openid-configuration)\n  AUTH_OIDC_<NAME>_CLIENT_ID      the client id registered with it\n  AUTH_OIDC_<NAME>_CLIENT_SECRET  the client secret (or AUTH_OIDC_<NAME>_CLIENT_SECRET_FILE: a file holding it)\n  AUTH_OIDC_<NAME>_SCOPES         optional; space-separated, default \"openid email profile\""
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

impl Cli {
    /// The command line and the environment (`.env` loaded first), with every
    /// `_FILE` secret read. Exits (code 2, clap's message) on a value clap
    /// refuses, and prints help or the version when asked.
    ///
    /// # Errors
    /// A secret given twice, or a secret file that cannot serve.
    pub fn from_env() -> Result<Self, crate::StartError> {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().get_matches();
        let mut cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let database_url_given = matches
            .value_source("database_url")
            .is_some_and(|source| source != clap::parser::ValueSource::DefaultValue);
        cli.config.read_secret_files(database_url_given)?;
        Ok(cli)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// The signing keys of ES256 / EdDSA tokens.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Exit 0 when GET /healthz on AUTH_BIND answers 200, 1 otherwise (for a
    /// container HEALTHCHECK or a load balancer's script).
    Healthcheck {
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
        timeout: u64,
    },
    /// Write a consistent copy of the SQLite database while the service runs
    /// (file mode 0600; never overwrites). On PostgreSQL, use pg_dump.
    Backup {
        /// Where to write the copy: a file that does not exist yet.
        #[arg(long, value_name = "PATH")]
        to: PathBuf,
    },
    /// Replace the SQLite database with a backup. Refused while any instance
    /// uses the database.
    Restore {
        /// The backup to restore (made by `portcullis backup`).
        #[arg(long, value_name = "PATH")]
        from: PathBuf,
    },
    /// Print a shell completion script: portcullis completions bash > /etc/bash_completion.d/portcullis
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Create an ADMIN user, or promote an existing user to ADMIN.
    CreateAdmin {
        /// The administrator's email.
        #[arg(long)]
        email: String,
        /// The password of a new administrator; prompted for when omitted and
        /// stdin is a terminal. Not needed to promote an existing user.
        #[arg(long)]
        password: Option<String>,
    },
}

/// `portcullis keys ...`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum KeysCommand {
    /// Print every key's kid, algorithm, state and dates (never a private key).
    List,
    /// Add a next key now: published at once, it starts signing after
    /// AUTH_KEY_PUBLISH_SECS; every running instance picks it up within 10 s.
    Rotate,
}

/// `AUTH_JWT_ALGORITHM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JwtAlgorithmArg {
    #[value(name = "HS256")]
    Hs256,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "EdDSA")]
    EdDsa,
}

/// Where the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Test,
    Production,
}

/// `AUTH_PASSWORD_RULES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PasswordRulesArg {
    Composition,
    Nist,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting, in sections; each has an environment variable of the same
/// meaning, and `--help` lists them under their section's heading.
#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub tokens: TokenConfig,
    #[command(flatten)]
    pub passwords: PasswordConfig,
    #[command(flatten)]
    pub mail: MailConfig,
    #[command(flatten)]
    pub providers: ProvidersConfig,
    #[command(flatten)]
    pub limits: LimitsConfig,
    #[command(flatten)]
    pub cache: CacheConfig,
    #[command(flatten)]
    pub audit: AuditConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

impl Config {
    /// `AUTH_OAUTH_REQUIRE_STATE`, or its default for the environment.
    #[must_use]
    pub fn oauth_require_state(&self) -> bool {
        self.providers.oauth_require_state.unwrap_or(self.server.environment == Environment::Production)
    }

    /// `AUTH_PUBLIC_URL`, or `http://<AUTH_BIND>`.
    #[must_use]
    pub fn public_url(&self) -> String {
        self.server.public_url.clone().unwrap_or_else(|| format!("http://{}", self.server.bind))
    }

    /// `AUTH_EMAIL_VERIFY_URL`, or the built-in page under the public URL.
    #[must_use]
    pub fn email_verify_url(&self) -> String {
        self.mail.email_verify_url.clone().unwrap_or_else(|| self.built_in_page("verify-email"))
    }

    /// `AUTH_PASSWORD_RESET_URL`, or the built-in page under the public URL.
    #[must_use]
    pub fn password_reset_url(&self) -> String {
        self.mail.password_reset_url.clone().unwrap_or_else(|| self.built_in_page("reset-password"))
    }

    fn built_in_page(&self, name: &str) -> String {
        format!("{}/{name}", self.public_url().trim_end_matches('/'))
    }
}

/// A setting that must never reach a log line: `Debug` and `Display` print
/// `[REDACTED]`; [`expose`](Self::expose) is the one way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn parse(raw: &str) -> Result<Self, String> {
        Ok(Self(raw.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Where and how the service listens, and whom it believes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerConfig {
    /// Listen address.
    #[arg(
        long,
        global = true,
        env = "AUTH_BIND",
        value_name = "AUTH_BIND",
        default_value = "127.0.0.1:8000"
    )]
    pub bind: SocketAddr,

    /// The URL clients reach the service at, e.g. https://auth.example.com
    /// (behind a proxy, the proxy's). With https://, every response carries
    /// Strict-Transport-Security. Unset: http://<AUTH_BIND>.
    #[arg(long, global = true, env = "AUTH_PUBLIC_URL", value_name = "AUTH_PUBLIC_URL", value_parser = parse_http_url)]
    pub public_url: Option<String>,

    /// development, test or production. Production refuses to start without
    /// its signing secrets (AUTH_JWT_SECRET for HS256, AUTH_KEY_ENCRYPTION_KEY
    /// for ES256/EdDSA) and hides the /v1/test-auth endpoints.
    #[arg(
        long = "env",
        global = true,
        env = "AUTH_ENV",
        value_name = "AUTH_ENV",
        default_value = "development",
        value_enum
    )]
    pub environment: Environment,

    /// HTTP worker threads; 0 means one per core.
    #[arg(long, global = true, env = "AUTH_WORKERS", value_name = "AUTH_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Comma-separated proxy addresses or CIDRs whose X-Forwarded-For is believed
    /// (e.g. `10.0.0.0/8,127.0.0.1`); empty: the socket's peer is the client.
    #[arg(long, global = true, env = "AUTH_TRUSTED_PROXIES", value_name = "AUTH_TRUSTED_PROXIES", default_value = "", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,

    /// Comma-separated browser origins allowed to call the API (exact, e.g.
    /// `https://app.example.com`); empty: no cross-origin access.
    #[arg(long, global = true, env = "AUTH_CORS_ORIGINS", value_name = "AUTH_CORS_ORIGINS", default_value = "", value_parser = parse_origins)]
    pub cors_origins: Origins,

    /// Serve `/metrics` on this address of its own (e.g. `127.0.0.1:9100`)
    /// instead of the main port; unset: on the main port.
    #[arg(long, global = true, env = "AUTH_METRICS_BIND", value_name = "AUTH_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
}

/// The database.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseConfig {
    /// sqlite://PATH (embedded, created on first start) or postgres://user:pass@host/db.
    /// PostgreSQL over TLS as libpq reads it: ?sslmode=disable|prefer|require|verify-ca|verify-full
    /// (default prefer) and &sslrootcert=/path/to/ca.pem (default: the platform's roots).
    #[arg(long, global = true, env = "DATABASE_URL", value_name = "DATABASE_URL", default_value = "sqlite://data/portcullis.db", value_parser = DatabaseUrl::parse, hide_env_values = true)]
    pub database_url: DatabaseUrl,

    /// A file holding DATABASE_URL (Docker and Kubernetes secrets); trailing newlines
    /// are ignored. Not together with DATABASE_URL.
    #[arg(long, global = true, env = "DATABASE_URL_FILE", value_name = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

    /// Most database connections this instance opens (1 to 1000).
    #[arg(long, global = true, env = "AUTH_DB_MAX_CONNECTIONS", value_name = "AUTH_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub db_max_connections: u16,
}

/// Access tokens and API keys.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens and keys")]
pub struct TokenConfig {
    /// HS256, ES256 or EdDSA. Default: HS256 when AUTH_JWT_SECRET is set (so
    /// an upgrade changes nothing for verifiers holding it), else ES256 with
    /// keys published at /.well-known/jwks.json.
    #[arg(
        long,
        global = true,
        env = "AUTH_JWT_ALGORITHM",
        value_name = "AUTH_JWT_ALGORITHM",
        value_enum,
        ignore_case = true
    )]
    pub jwt_algorithm: Option<JwtAlgorithmArg>,

    /// Encrypts the stored ES256/EdDSA private keys: 32+ bytes, raw or base64.
    /// Required in production with ES256/EdDSA; elsewhere one is generated
    /// once and kept in `key-encryption-key` beside the SQLite file (mode 0600).
    #[arg(long, global = true, env = "AUTH_KEY_ENCRYPTION_KEY", value_name = "AUTH_KEY_ENCRYPTION_KEY", hide_env_values = true, value_parser = Secret::parse)]
    pub key_encryption_key: Option<Secret>,

    /// A file holding AUTH_KEY_ENCRYPTION_KEY (Docker and Kubernetes secrets); trailing newlines
    /// are ignored. Not together with AUTH_KEY_ENCRYPTION_KEY.
    #[arg(
        long,
        global = true,
        env = "AUTH_KEY_ENCRYPTION_KEY_FILE",
        value_name = "AUTH_KEY_ENCRYPTION_KEY_FILE"
    )]
    pub key_encryption_key_file: Option<PathBuf>,

    /// Seconds a new signing key is published before it signs: at least 600
    /// (twice the JWKS max-age), so no verifier meets a kid it has not fetched.
    #[arg(long, global = true, env = "AUTH_KEY_PUBLISH_SECS", value_name = "AUTH_KEY_PUBLISH_SECS", default_value_t = 600, value_parser = clap::value_parser!(i64).range(600..=31_536_000))]
    pub key_publish_secs: i64,

    /// Days between automatic signing-key rotations (one instance does it); 0: never.
    #[arg(long, global = true, env = "AUTH_KEY_ROTATION_DAYS", value_name = "AUTH_KEY_ROTATION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(i64).range(0..=3650))]
    pub key_rotation_days: i64,

    /// The tokens' `iss`, and the metadata's `issuer`.
    #[arg(long, global = true, env = "AUTH_ISSUER", value_name = "AUTH_ISSUER", default_value = "portcullis", value_parser = parse_non_empty)]
    pub issuer: String,

    /// The tokens' `aud`: comma-separated; a token Portcullis accepts must name one of them.
    #[arg(long, global = true, env = "AUTH_JWT_AUDIENCE", value_name = "AUTH_JWT_AUDIENCE", default_value = "portcullis", value_parser = parse_audience)]
    pub jwt_audience: Audiences,

    /// HS256 signing key, at least 32 bytes. Unset outside production: one is
    /// generated once and kept in `jwt-secret` beside the SQLite file (mode 0600).
    #[arg(long, global = true, env = "AUTH_JWT_SECRET", value_name = "AUTH_JWT_SECRET", hide_env_values = true, value_parser = Secret::parse)]
    pub jwt_secret: Option<Secret>,

    /// A file holding AUTH_JWT_SECRET (Docker and Kubernetes secrets); trailing newlines
    /// are ignored. Not together with AUTH_JWT_SECRET.
    #[arg(long, global = true, env = "AUTH_JWT_SECRET_FILE", value_name = "AUTH_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// During a key rotation, the previous AUTH_JWT_SECRET: tokens signed with
    /// it are still accepted (until they expire); new ones are signed with
    /// AUTH_JWT_SECRET only. Remove it once AUTH_TOKEN_TTL_SECS has passed.
    #[arg(long, global = true, env = "AUTH_JWT_PREVIOUS_SECRET", value_name = "AUTH_JWT_PREVIOUS_SECRET", hide_env_values = true, value_parser = Secret::parse)]
    pub jwt_previous_secret: Option<Secret>,

    /// A file holding AUTH_JWT_PREVIOUS_SECRET (Docker and Kubernetes secrets); trailing newlines
    /// are ignored. Not together with AUTH_JWT_PREVIOUS_SECRET.
    #[arg(
        long,
        global = true,
        env = "AUTH_JWT_PREVIOUS_SECRET_FILE",
        value_name = "AUTH_JWT_PREVIOUS_SECRET_FILE"
    )]
    pub jwt_previous_secret_file: Option<PathBuf>,

    /// Access-token lifetime in seconds (60 to 31536000).
    #[arg(long, global = true, env = "AUTH_TOKEN_TTL_SECS", value_name = "AUTH_TOKEN_TTL_SECS", default_value_t = 28_800, value_parser = clap::value_parser!(i64).range(60..=31_536_000))]
    pub token_ttl_secs: i64,

    /// Lifetime in days of an API key created without `expires_in_days` (1 to 365).
    #[arg(long, global = true, env = "AUTH_API_KEY_DEFAULT_DAYS", value_name = "AUTH_API_KEY_DEFAULT_DAYS", default_value_t = 90, value_parser = clap::value_parser!(i64).range(1..=365))]
    pub api_key_default_days: i64,

    /// A session's absolute lifetime in seconds (at least 60): no refresh
    /// extends a session past it. Default 30 days.
    #[arg(long, global = true, env = "AUTH_SESSION_MAX_AGE_SECS", value_name = "AUTH_SESSION_MAX_AGE_SECS", default_value_t = 2_592_000, value_parser = clap::value_parser!(i64).range(60..=315_360_000))]
    pub session_max_age_secs: i64,

    /// How long a session may go without a refresh before it ends, in seconds
    /// (at least 60). Default 7 days.
    #[arg(long, global = true, env = "AUTH_SESSION_IDLE_SECS", value_name = "AUTH_SESSION_IDLE_SECS", default_value_t = 604_800, value_parser = clap::value_parser!(i64).range(60..=315_360_000))]
    pub session_idle_secs: i64,

    /// Seconds after a refresh token is spent during which presenting it
    /// again is refused without ending the session (two tabs racing); later,
    /// a reuse ends the session. 0 to 300.
    #[arg(long, global = true, env = "AUTH_REFRESH_REUSE_GRACE_SECS", value_name = "AUTH_REFRESH_REUSE_GRACE_SECS", default_value_t = 10, value_parser = clap::value_parser!(i64).range(0..=300))]
    pub refresh_reuse_grace_secs: i64,
}

/// Password rules and hashing.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Passwords")]
pub struct PasswordConfig {
    /// composition (the seed's: 8+ characters, upper, lower, digit, special) or nist
    /// (NIST SP 800-63B rev. 4: 15+ characters, no composition rules).
    #[arg(
        long,
        global = true,
        env = "AUTH_PASSWORD_RULES",
        value_name = "AUTH_PASSWORD_RULES",
        default_value = "composition",
        value_enum
    )]
    pub password_rules: PasswordRulesArg,

    /// Threads that hash passwords (argon2id); 0 means one per core.
    #[arg(
        long,
        global = true,
        env = "AUTH_HASH_THREADS",
        value_name = "AUTH_HASH_THREADS",
        default_value_t = 0
    )]
    pub hash_threads: usize,

    /// Password hashes that may wait for a thread; beyond that, login and register
    /// answer 503 with Retry-After at once. 0 means 64 per thread.
    #[arg(long, global = true, env = "AUTH_HASH_QUEUE", value_name = "AUTH_HASH_QUEUE", default_value_t = 0)]
    pub hash_queue: usize,
}

/// Outgoing email.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Email")]
pub struct MailConfig {
    /// SMTP server for outgoing email: smtp://host:25, smtp://user:pass@host:587?tls=required
    /// (STARTTLS) or smtps://user:pass@host:465. Unset: emails are written to the log
    /// (outside production, with their links).
    #[arg(long, global = true, env = "AUTH_SMTP_URL", value_name = "AUTH_SMTP_URL", hide_env_values = true, value_parser = Secret::parse)]
    pub smtp_url: Option<Secret>,

    /// A file holding AUTH_SMTP_URL (Docker and Kubernetes secrets); trailing newlines
    /// are ignored. Not together with AUTH_SMTP_URL.
    #[arg(long, global = true, env = "AUTH_SMTP_URL_FILE", value_name = "AUTH_SMTP_URL_FILE")]
    pub smtp_url_file: Option<PathBuf>,

    /// Sender of outgoing email.
    #[arg(
        long,
        global = true,
        env = "AUTH_MAIL_FROM",
        value_name = "AUTH_MAIL_FROM",
        default_value = "Portcullis <no-reply@localhost>"
    )]
    pub mail_from: String,

    /// The page that sets a new password with a reset token; the emailed link
    /// is this with `?token=...` appended. Default: the built-in page,
    /// `<AUTH_PUBLIC_URL>/reset-password`.
    #[arg(long, global = true, env = "AUTH_PASSWORD_RESET_URL", value_name = "AUTH_PASSWORD_RESET_URL", value_parser = parse_http_url)]
    pub password_reset_url: Option<String>,

    /// The page that verifies an email address; the emailed link is this with
    /// `?token=...` appended. Default: the built-in page, `<AUTH_PUBLIC_URL>/verify-email`.
    #[arg(long, global = true, env = "AUTH_EMAIL_VERIFY_URL", value_name = "AUTH_EMAIL_VERIFY_URL", value_parser = parse_http_url)]
    pub email_verify_url: Option<String>,

    /// Password accounts sign in only once their address is verified:
    /// registration then answers without tokens, and the right password of an
    /// unverified account gets 403 `email_not_verified`.
    #[arg(long, global = true, env = "AUTH_REQUIRE_VERIFIED_EMAIL", value_name = "AUTH_REQUIRE_VERIFIED_EMAIL", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_verified_email: bool,
}

/// Social login.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Login providers")]
pub struct ProvidersConfig {
    #[command(flatten)]
    pub github: GithubConfig,
    #[command(flatten)]
    pub linkedin: LinkedinConfig,
    #[command(flatten)]
    pub google: GoogleConfig,
    /// The OpenID Connect providers of `AUTH_OIDC_<NAME>_*` variables: read by
    /// [`Config::read_oidc_providers`], since clap knows fixed names only.
    #[arg(skip)]
    pub oidc: Vec<OidcSection>,

    /// Refuse OAuth callbacks that lack the `state` and `code_verifier` from
    /// /authorize. Default: true in production, false elsewhere.
    #[arg(long, global = true, env = "AUTH_OAUTH_REQUIRE_STATE", value_name = "AUTH_OAUTH_REQUIRE_STATE", action = clap::ArgAction::Set)]
    pub oauth_require_state: Option<bool>,

    /// Timeout in seconds for each call to a login provider (1 to 60).
    #[arg(long, global = true, env = "AUTH_OAUTH_TIMEOUT_SECS", value_name = "AUTH_OAUTH_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub oauth_timeout_secs: u64,
}

/// GitHub login: on when the client id and secret are both set.
#[derive(Debug, Clone, Args)]
pub struct GithubConfig {
    /// GitHub OAuth app client id; GitHub login is on when this and the secret are set.
    #[arg(
        id = "github_client_id",
        long = "github-client-id",
        global = true,
        env = "AUTH_GITHUB_CLIENT_ID",
        value_name = "AUTH_GITHUB_CLIENT_ID"
    )]
    pub client_id: Option<String>,

    /// GitHub OAuth app client secret.
    #[arg(id = "github_client_secret", long = "github-client-secret", global = true, env = "AUTH_GITHUB_CLIENT_SECRET", value_name = "AUTH_GITHUB_CLIENT_SECRET", hide_env_values = true, value_parser = Secret::parse)]
    pub client_secret: Option<Secret>,

    /// A file holding AUTH_GITHUB_CLIENT_SECRET (Docker and Kubernetes secrets); trailing newlines
    /// are ignored. Not together with AUTH_GITHUB_CLIENT_SECRET.
    #[arg(
        id = "github_client_secret_file",
        long = "github-client-secret-file",
        global = true,
        env = "AUTH_GITHUB_CLIENT_SECRET_FILE",
        value_name = "AUTH_GITHUB_CLIENT_SECRET_FILE"
    )]
    pub client_secret_file: Option<PathBuf>,

    /// GitHub's authorization endpoint (tests point it at a fake).
    #[arg(id = "github_authorize_url", long = "github-authorize-url", global = true, env = "AUTH_GITHUB_AUTHORIZE_URL", value_name = "AUTH_GITHUB_AUTHORIZE_URL", default_value = "https://github.com/login/oauth/authorize", value_parser = parse_http_url)]
    pub authorize_url: String,

    /// GitHub's token endpoint.
    #[arg(id = "github_token_url", long = "github-token-url", global = true, env = "AUTH_GITHUB_TOKEN_URL", value_name = "AUTH_GITHUB_TOKEN_URL", default_value = "https://github.com/login/oauth/access_token", value_parser = parse_http_url)]
    pub token_url: String,

    /// GitHub's REST API base.
    #[arg(id = "github_api_url", long = "github-api-url", global = true, env = "AUTH_GITHUB_API_URL", value_name = "AUTH_GITHUB_API_URL", default_value = "https://api.github.com", value_parser = parse_http_url)]
    pub api_url: String,
}

/// LinkedIn login: on when the client id and secret are both set.
#[derive(Debug, Clone, Args)]
pub struct LinkedinConfig {
    /// LinkedIn app client id; LinkedIn login is on when this and the secret are set.
    #[arg(
        id = "linkedin_client_id",
        long = "linkedin-client-id",
        global = true,
        env = "AUTH_LINKEDIN_CLIENT_ID",
        value_name = "AUTH_LINKEDIN_CLIENT_ID"
    )]
    pub client_id: Option<String>,

    /// LinkedIn app client secret.
    #[arg(id = "linkedin_client_secret", long = "linkedin-client-secret", global = true, env = "AUTH_LINKEDIN_CLIENT_SECRET", value_name = "AUTH_LINKEDIN_CLIENT_SECRET", hide_env_values = true, value_parser = Secret::parse)]
    pub client_secret: Option<Secret>,

    /// A file holding AUTH_LINKEDIN_CLIENT_SECRET (Docker and Kubernetes secrets); trailing newlines
    /// are ignored. Not together with AUTH_LINKEDIN_CLIENT_SECRET.
    #[arg(
        id = "linkedin_client_secret_file",
        long = "linkedin-client-secret-file",
        global = true,
        env = "AUTH_LINKEDIN_CLIENT_SECRET_FILE",
        value_name = "AUTH_LINKEDIN_CLIENT_SECRET_FILE"
    )]
    pub client_secret_file: Option<PathBuf>,

    /// LinkedIn's authorization endpoint.
    #[arg(id = "linkedin_authorize_url", long = "linkedin-authorize-url", global = true, env = "AUTH_LINKEDIN_AUTHORIZE_URL", value_name = "AUTH_LINKEDIN_AUTHORIZE_URL", default_value = "https://www.linkedin.com/oauth/v2/authorization", value_parser = parse_http_url)]
    pub authorize_url: String,

    /// LinkedIn's token endpoint.
    #[arg(id = "linkedin_token_url", long = "linkedin-token-url", global = true, env = "AUTH_LINKEDIN_TOKEN_URL", value_name = "AUTH_LINKEDIN_TOKEN_URL", default_value = "https://www.linkedin.com/oauth/v2/accessToken", value_parser = parse_http_url)]
    pub token_url: String,

    /// LinkedIn's OpenID Connect userinfo endpoint.
    #[arg(id = "linkedin_userinfo_url", long = "linkedin-userinfo-url", global = true, env = "AUTH_LINKEDIN_USERINFO_URL", value_name = "AUTH_LINKEDIN_USERINFO_URL", default_value = "https://api.linkedin.com/v2/userinfo", value_parser = parse_http_url)]
    pub userinfo_url: String,
}

/// Google sign-in, through the generic OpenID Connect provider: on when the
/// client id and secret are both set.
#[derive(Debug, Clone, Args)]
pub struct GoogleConfig {
    /// Google OAuth client id; Google login is on when this and the secret are set.
    #[arg(
        id = "google_client_id",
        long = "google-client-id",
        global = true,
        env = "AUTH_GOOGLE_CLIENT_ID",
        value_name = "AUTH_GOOGLE_CLIENT_ID"
    )]
    pub client_id: Option<String>,

    /// Google OAuth client secret.
    #[arg(id = "google_client_secret", long = "google-client-secret", global = true, env = "AUTH_GOOGLE_CLIENT_SECRET", value_name = "AUTH_GOOGLE_CLIENT_SECRET", hide_env_values = true, value_parser = Secret::parse)]
    pub client_secret: Option<Secret>,

    /// A file holding AUTH_GOOGLE_CLIENT_SECRET (Docker and Kubernetes secrets); trailing newlines
    /// are ignored. Not together with AUTH_GOOGLE_CLIENT_SECRET.
    #[arg(
        id = "google_client_secret_file",
        long = "google-client-secret-file",
        global = true,
        env = "AUTH_GOOGLE_CLIENT_SECRET_FILE",
        value_name = "AUTH_GOOGLE_CLIENT_SECRET_FILE"
    )]
    pub client_secret_file: Option<PathBuf>,

    /// Google's OpenID Connect issuer; its discovery document gives every endpoint.
    #[arg(id = "google_issuer", long = "google-issuer", global = true, env = "AUTH_GOOGLE_ISSUER", value_name = "AUTH_GOOGLE_ISSUER", default_value = "https://accounts.google.com", value_parser = parse_http_url)]
    pub issuer: String,
}

/// One OpenID Connect provider added by configuration alone:
/// `AUTH_OIDC_<NAME>_ISSUER`, `_CLIENT_ID`, `_CLIENT_SECRET` and, optionally,
/// `_SCOPES` (space-separated; default `openid email profile`). Its routes
/// are `/v1/auth/<name>/...`, the name lowercased.
#[derive(Debug, Clone)]
pub struct OidcSection {
    pub name: portcullis_domain::ProviderName,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
}

/// What each `AUTH_OIDC_<NAME>_` variable may end with.
const OIDC_SUFFIXES: [&str; 5] =
    ["_ISSUER", "_CLIENT_ID", "_CLIENT_SECRET_FILE", "_CLIENT_SECRET", "_SCOPES"];

impl Config {
    /// Reads the `AUTH_OIDC_<NAME>_*` variables among `vars` (the process
    /// environment, `.env` included, in `main`) into `providers.oidc`.
    ///
    /// # Errors
    /// A message naming the variable: an unknown suffix, a name that is not
    /// `A-Z`, `0-9` and `_`, a provider without its issuer, client id or secret,
    /// or an issuer that is not a URL.
    pub fn read_oidc_providers(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), crate::StartError> {
        use std::collections::BTreeMap;
        let mut found: BTreeMap<String, BTreeMap<&'static str, String>> = BTreeMap::new();
        for (variable, value) in vars {
            let Some(rest) = variable.strip_prefix("AUTH_OIDC_") else { continue };
            let Some((name, suffix)) =
                OIDC_SUFFIXES.iter().find_map(|suffix| rest.strip_suffix(suffix).map(|name| (name, *suffix)))
            else {
                return Err(crate::StartError::config(
                    variable,
                    "an OpenID Connect setting ends with _ISSUER, _CLIENT_ID, _CLIENT_SECRET, _CLIENT_SECRET_FILE or _SCOPES",
                ));
            };
            if name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(crate::StartError::config(variable, "the provider's NAME is A-Z, 0-9 and _"));
            }
            found.entry(name.to_owned()).or_default().insert(suffix, value);
        }
        for (name, mut settings) in found {
            let variable = |suffix: &str| format!("AUTH_OIDC_{name}{suffix}");
            let from_file = match settings.remove("_CLIENT_SECRET_FILE") {
                Some(path) => {
                    let given = settings.contains_key("_CLIENT_SECRET");
                    secret_file(&variable("_CLIENT_SECRET"), given, Some(std::path::Path::new(&path)))?
                        .map(Secret::new)
                }
                None => None,
            };
            let mut take = |suffix: &'static str| {
                settings.remove(suffix).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                    crate::StartError::config(
                        variable(suffix),
                        "is required for this OpenID Connect provider",
                    )
                })
            };
            let issuer = parse_http_url(&take("_ISSUER")?)
                .map_err(|why| crate::StartError::config(variable("_ISSUER"), why))?;
            let client_id = take("_CLIENT_ID")?;
            let client_secret = match from_file {
                Some(secret) => secret,
                None => Secret::new(take("_CLIENT_SECRET")?),
            };
            let scopes = settings.remove("_SCOPES").map_or_else(
                || vec!["openid".to_owned(), "email".to_owned(), "profile".to_owned()],
                |raw| raw.split_whitespace().map(str::to_owned).collect(),
            );
            let lower = name.to_ascii_lowercase();
            let name = portcullis_domain::ProviderName::parse(&lower)
                .map_err(|why| crate::StartError::config(variable("_ISSUER"), format!("the NAME {why}")))?;
            self.providers.oidc.push(OidcSection { name, issuer, client_id, client_secret, scopes });
        }
        Ok(())
    }
}

impl Config {
    /// Reads every `<VARIABLE>_FILE` secret into its setting: the one place a
    /// secret's file form is resolved. `database_url_given` says whether
    /// DATABASE_URL was set (rather than defaulted).
    ///
    /// # Errors
    /// Both forms of one secret set; a file that is missing, a directory,
    /// unreadable, not UTF-8 or empty; a value its setting refuses. The
    /// message names the variables, never the value.
    pub fn read_secret_files(&mut self, database_url_given: bool) -> Result<(), crate::StartError> {
        let given = |slot: &Option<Secret>| slot.is_some();
        let t = &mut self.tokens;
        // Checked here rather than by clap, whose error would quote the value.
        let check = |var: &str, slot: &Option<Secret>, parse: fn(&str) -> Result<Secret, String>| match slot {
            Some(value) => parse(value.expose()).map(drop).map_err(|why| crate::StartError::config(var, why)),
            None => Ok(()),
        };
        check("AUTH_JWT_SECRET", &t.jwt_secret, parse_jwt_secret)?;
        check("AUTH_JWT_PREVIOUS_SECRET", &t.jwt_previous_secret, parse_jwt_secret)?;
        check("AUTH_KEY_ENCRYPTION_KEY", &t.key_encryption_key, parse_kek)?;
        let from = |var: &str, given: bool, file: &Option<PathBuf>| secret_file(var, given, file.as_deref());
        if let Some(raw) = from("AUTH_JWT_SECRET", given(&t.jwt_secret), &t.jwt_secret_file)? {
            t.jwt_secret = Some(checked("AUTH_JWT_SECRET_FILE", parse_jwt_secret(&raw))?);
        }
        if let Some(raw) =
            from("AUTH_JWT_PREVIOUS_SECRET", given(&t.jwt_previous_secret), &t.jwt_previous_secret_file)?
        {
            t.jwt_previous_secret = Some(checked("AUTH_JWT_PREVIOUS_SECRET_FILE", parse_jwt_secret(&raw))?);
        }
        if let Some(raw) =
            from("AUTH_KEY_ENCRYPTION_KEY", given(&t.key_encryption_key), &t.key_encryption_key_file)?
        {
            t.key_encryption_key = Some(checked("AUTH_KEY_ENCRYPTION_KEY_FILE", parse_kek(&raw))?);
        }
        let d = &mut self.database;
        if let Some(raw) = from("DATABASE_URL", database_url_given, &d.database_url_file)? {
            d.database_url = checked("DATABASE_URL_FILE", DatabaseUrl::parse(&raw))?;
        }
        let m = &mut self.mail;
        if let Some(raw) = from("AUTH_SMTP_URL", given(&m.smtp_url), &m.smtp_url_file)? {
            m.smtp_url = Some(Secret::new(raw));
        }
        let l = &mut self.limits;
        if let Some(raw) = from("AUTH_REDIS_URL", given(&l.redis_url), &l.redis_url_file)? {
            l.redis_url = Some(Secret::new(raw));
        }
        let p = &mut self.providers;
        for (var, slot, file) in [
            ("AUTH_GITHUB_CLIENT_SECRET", &mut p.github.client_secret, &p.github.client_secret_file),
            ("AUTH_LINKEDIN_CLIENT_SECRET", &mut p.linkedin.client_secret, &p.linkedin.client_secret_file),
            ("AUTH_GOOGLE_CLIENT_SECRET", &mut p.google.client_secret, &p.google.client_secret_file),
        ] {
            if let Some(raw) = from(var, slot.is_some(), file)? {
                *slot = Some(Secret::new(raw));
            }
        }
        Ok(())
    }
}

/// A value parsed from `file_var`'s file, or the parser's reason under that
/// name (the reason never quotes the value).
fn checked<T>(file_var: &str, parsed: Result<T, String>) -> Result<T, crate::StartError> {
    parsed.map_err(|why| crate::StartError::config(file_var, why))
}

/// The content of `<var>_FILE` when it is set, without trailing newlines.
///
/// # Errors
/// Both forms set, or a file that cannot serve (named with the reason).
pub(crate) fn secret_file(
    var: &str,
    given: bool,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, crate::StartError> {
    let Some(path) = file else { return Ok(None) };
    let file_var = format!("{var}_FILE");
    if given {
        return Err(crate::StartError::Settings(format!(
            "{var} and {file_var} are both set: set one of them"
        )));
    }
    let fail =
        |why: String| crate::StartError::config(file_var.clone(), format!("{}: {why}", path.display()));
    if path.is_dir() {
        return Err(fail("is a directory, not a file".to_owned()));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text".to_owned()))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(fail("is empty".to_owned()));
    }
    Ok(Some(value.to_owned()))
}

/// Rate limits, and where their counters live.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rate limits")]
pub struct LimitsConfig {
    /// Rate limits: `off`, or overrides of the defaults
    /// `login=20/60,register=10/60,failed_login=5/900,failed_login_account=50/900,authenticated=600/60`
    /// (requests / seconds; `name=off` turns one off). Counters live in Redis when AUTH_REDIS_URL is set.
    #[arg(long, global = true, env = "AUTH_RATE_LIMITS", value_name = "AUTH_RATE_LIMITS", default_value = "", value_parser = parse_rate_limits)]
    pub rate_limits: RateLimits,

    /// Redis for rate-limit counters shared by every instance, e.g. redis://127.0.0.1:6379.
    /// Unset: counters are in process. While Redis cannot be reached, each instance
    /// limits on its own.
    #[arg(long, global = true, env = "AUTH_REDIS_URL", value_name = "AUTH_REDIS_URL", hide_env_values = true, value_parser = Secret::parse)]
    pub redis_url: Option<Secret>,

    /// A file holding AUTH_REDIS_URL (Docker and Kubernetes secrets); trailing newlines
    /// are ignored. Not together with AUTH_REDIS_URL.
    #[arg(long, global = true, env = "AUTH_REDIS_URL_FILE", value_name = "AUTH_REDIS_URL_FILE")]
    pub redis_url_file: Option<PathBuf>,

    /// PEM file of the CA that signed the Redis server's certificate, for a
    /// rediss:// AUTH_REDIS_URL with a private CA. Unset: the platform's roots.
    #[arg(long, global = true, env = "AUTH_REDIS_CA_FILE", value_name = "AUTH_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// true: GET /readyz answers 503 while Redis cannot be reached, so a load
    /// balancer takes instances out rather than let each limit on its own.
    /// false (default): Redis down only weakens limits to per-instance ones.
    #[arg(long, global = true, env = "AUTH_REDIS_REQUIRED", value_name = "AUTH_REDIS_REQUIRED", default_value_t = false, action = clap::ArgAction::Set)]
    pub redis_required: bool,

    /// Prefix of every Redis key Portcullis writes (for a Redis shared with other software).
    #[arg(
        long,
        global = true,
        env = "AUTH_REDIS_PREFIX",
        value_name = "AUTH_REDIS_PREFIX",
        default_value = "portcullis:"
    )]
    pub redis_prefix: String,
}

/// The authentication cache.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cache")]
pub struct CacheConfig {
    /// How long (ms) a token's session or an API key's owner, once read, is
    /// trusted without asking the database again; 0 turns the cache off.
    /// Changes made through this instance apply at once whatever the value;
    /// changes made through another instance apply within it.
    #[arg(long, global = true, env = "AUTH_CACHE_TTL_MS", value_name = "AUTH_CACHE_TTL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub cache_ttl_ms: u64,
}

/// The audit log.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Audit log")]
pub struct AuditConfig {
    /// Days audit events are kept before they are deleted (1 to 3650).
    #[arg(long, global = true, env = "AUTH_AUDIT_RETENTION_DAYS", value_name = "AUTH_AUDIT_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub audit_retention_days: u32,
}

/// Logs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logs")]
pub struct TelemetryConfig {
    /// Log filter (tracing-subscriber's EnvFilter syntax), e.g. `info,portcullis=debug`.
    #[arg(long = "log", global = true, env = "RUST_LOG", value_name = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// text (for people) or json (one JSON object per line).
    #[arg(
        long,
        global = true,
        env = "AUTH_LOG_FORMAT",
        value_name = "AUTH_LOG_FORMAT",
        default_value = "text",
        value_enum
    )]
    pub log_format: LogFormat,
}

/// Parsed `AUTH_CORS_ORIGINS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

fn parse_origins(raw: &str) -> Result<Origins, String> {
    let mut origins = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        let valid = rest.is_some_and(|r| !r.is_empty() && !r.contains('/') && !r.contains('*'));
        if !valid {
            return Err(format!(
                "{origin:?} is not an origin like https://app.example.com (no path, no wildcard)"
            ));
        }
        origins.push(origin.to_owned());
    }
    Ok(Origins(origins))
}

fn parse_rate_limits(raw: &str) -> Result<RateLimits, String> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("off") {
        return Ok(RateLimits::off());
    }
    let mut limits = RateLimits::default();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, value) =
            entry.split_once('=').ok_or_else(|| format!("{entry:?} is not name=limit/seconds"))?;
        let quota = if value.trim().eq_ignore_ascii_case("off") {
            None
        } else {
            let (limit, period) =
                value.split_once('/').ok_or_else(|| format!("{entry:?} is not name=limit/seconds"))?;
            let limit: u32 = limit
                .trim()
                .parse()
                .ok()
                .filter(|l| *l > 0)
                .ok_or_else(|| format!("{entry:?}: bad limit"))?;
            let period: u32 = period
                .trim()
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{entry:?}: bad period"))?;
            Some(Quota::new(limit, period))
        };
        match name.trim() {
            "login" => limits.login = quota,
            "register" => limits.register = quota,
            "failed_login" => limits.failed_login = quota,
            "failed_login_account" => limits.failed_login_account = quota,
            "authenticated" => limits.authenticated = quota,
            other => {
                return Err(format!(
                    "unknown limit {other:?} (login, register, failed_login, failed_login_account, authenticated)"
                ));
            }
        }
    }
    Ok(limits)
}

fn parse_http_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    let valid = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(url.to_owned()) } else { Err("must be an http:// or https:// URL".to_owned()) }
}

/// `AUTH_JWT_AUDIENCE`: one or more names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audiences(pub Vec<String>);

fn parse_audience(raw: &str) -> Result<Audiences, String> {
    let names: Vec<String> =
        raw.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
    if names.is_empty() {
        return Err("names no audience".to_owned());
    }
    Ok(Audiences(names))
}

fn parse_non_empty(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() { Err("is empty".to_owned()) } else { Ok(trimmed.to_owned()) }
}

fn parse_kek(raw: &str) -> Result<Secret, String> {
    portcullis_crypto::KeyEncryptionKey::parse(raw)?;
    Ok(Secret::new(raw))
}

fn parse_jwt_secret(raw: &str) -> Result<Secret, String> {
    if raw.len() < portcullis_crypto::MIN_SECRET_LEN {
        return Err(format!(
            "must be at least {} bytes, got {}",
            portcullis_crypto::MIN_SECRET_LEN,
            raw.len()
        ));
    }
    Ok(Secret::new(raw))
}

/// A parsed `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// # Errors
    /// A message for anything but `sqlite://PATH`, `sqlite:PATH` or `postgres(ql)://...`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        if let Some(path) = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")) {
            if path.is_empty() || path.contains('?') || path == ":memory:" {
                return Err("expected sqlite://PATH to a file (no query string, no :memory:)".to_owned());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err("expected sqlite://PATH or postgres://user:pass@host/db".to_owned())
    }

    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            // May carry a password.
            Self::Postgres(_) => f.write_str("postgres://[REDACTED]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(DatabaseUrl::parse("sqlite://data/p.db"), Ok(DatabaseUrl::Sqlite("data/p.db".into())));
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/p.db"),
            Ok(DatabaseUrl::Sqlite("/var/lib/p.db".into()))
        );
        assert_eq!(DatabaseUrl::parse("sqlite:p.db"), Ok(DatabaseUrl::Sqlite("p.db".into())));
        assert!(matches!(DatabaseUrl::parse("postgres://u:p@h/db"), Ok(DatabaseUrl::Postgres(_))));
        assert!(matches!(DatabaseUrl::parse("postgresql://u@h/db"), Ok(DatabaseUrl::Postgres(_))));
        for bad in ["", "mysql://x", "sqlite://", "sqlite://:memory:", "data/p.db"] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limits() {
        assert_eq!(parse_rate_limits("").unwrap(), RateLimits::default());
        assert_eq!(parse_rate_limits("off").unwrap(), RateLimits::off());
        let custom = parse_rate_limits("login=3/10, failed_login=off, failed_login_account=6/900").unwrap();
        assert_eq!(custom.login, Some(Quota::new(3, 10)));
        assert_eq!(custom.failed_login, None);
        assert_eq!(custom.failed_login_account, Some(Quota::new(6, 900)));
        assert_eq!(custom.register, RateLimits::default().register);
        for bad in ["login", "login=3", "login=0/60", "login=3/x", "logins=3/60"] {
            assert!(parse_rate_limits(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn openid_connect_providers_come_from_their_variables_alone() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let read = |pairs: &[(&str, &str)]| {
            let mut config = Cli::try_parse_from(["portcullis"]).unwrap().config;
            config.read_oidc_providers(vars(pairs)).map(|()| config.providers.oidc)
        };
        let oidc = read(&[
            ("PATH", "/usr/bin"),
            ("AUTH_OIDC_MY_IDP_ISSUER", "https://idp.example.com/"),
            ("AUTH_OIDC_MY_IDP_CLIENT_ID", "client"),
            ("AUTH_OIDC_MY_IDP_CLIENT_SECRET", "s3cret"),
            ("AUTH_OIDC_MY_IDP_SCOPES", "openid email groups"),
            ("AUTH_OIDC_OKTA_ISSUER", "https://example.okta.com"),
            ("AUTH_OIDC_OKTA_CLIENT_ID", "okta-client"),
            ("AUTH_OIDC_OKTA_CLIENT_SECRET", "okta-secret"),
        ])
        .unwrap();
        let names: Vec<&str> = oidc.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["my_idp", "okta"]);
        assert_eq!(oidc[0].scopes, ["openid", "email", "groups"]);
        assert_eq!(oidc[1].scopes, ["openid", "email", "profile"]);
        assert_eq!(oidc[1].client_secret.expose(), "okta-secret");
        assert!(!format!("{oidc:?}").contains("okta-secret"), "the secret is redacted");
        assert!(read(&[]).unwrap().is_empty());

        let refused = |pairs: &[(&str, &str)], variable: &str| {
            let error = read(pairs).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{variable}:")), "{error}");
        };
        refused(
            &[("AUTH_OIDC_OKTA_ISSUER", "https://example.okta.com"), ("AUTH_OIDC_OKTA_CLIENT_ID", "id")],
            "AUTH_OIDC_OKTA_CLIENT_SECRET",
        );
        refused(
            &[("AUTH_OIDC_OKTA_CLIENT_ID", "id"), ("AUTH_OIDC_OKTA_CLIENT_SECRET", "s")],
            "AUTH_OIDC_OKTA_ISSUER",
        );
        refused(&[("AUTH_OIDC_OKTA_ISUER", "https://typo.example")], "AUTH_OIDC_OKTA_ISUER");
        refused(&[("AUTH_OIDC_ok-ta_ISSUER", "https://x.example")], "AUTH_OIDC_ok-ta_ISSUER");
        refused(
            &[
                ("AUTH_OIDC_OKTA_ISSUER", "ftp://example.okta.com"),
                ("AUTH_OIDC_OKTA_CLIENT_ID", "id"),
                ("AUTH_OIDC_OKTA_CLIENT_SECRET", "s"),
            ],
            "AUTH_OIDC_OKTA_ISSUER",
        );
    }

    #[test]
    fn an_openid_connect_secret_may_come_from_a_file_but_not_twice() {
        let dir = std::env::temp_dir().join(format!("portcullis-oidc-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("okta");
        std::fs::write(&file, "okta-from-file\n").unwrap();
        let path = file.to_str().unwrap().to_owned();
        let read = |with_variable: bool| {
            let mut config = Cli::try_parse_from(["portcullis"]).unwrap().config;
            let mut vars = vec![
                ("AUTH_OIDC_OKTA_ISSUER".to_owned(), "https://example.okta.com".to_owned()),
                ("AUTH_OIDC_OKTA_CLIENT_ID".to_owned(), "okta-client".to_owned()),
                ("AUTH_OIDC_OKTA_CLIENT_SECRET_FILE".to_owned(), path.clone()),
            ];
            if with_variable {
                vars.push(("AUTH_OIDC_OKTA_CLIENT_SECRET".to_owned(), "other".to_owned()));
            }
            config.read_oidc_providers(vars).map(|()| config.providers.oidc)
        };
        assert_eq!(read(false).unwrap()[0].client_secret.expose(), "okta-from-file");
        let error = read(true).unwrap_err().to_string();
        assert!(
            error.contains("AUTH_OIDC_OKTA_CLIENT_SECRET and AUTH_OIDC_OKTA_CLIENT_SECRET_FILE are both set"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn production_requires_the_oauth_state_unless_told_otherwise() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["portcullis"], args].concat()).unwrap().config;
        assert!(!parse(&[]).oauth_require_state());
        assert!(parse(&["--env", "production"]).oauth_require_state());
        assert!(!parse(&["--env", "production", "--oauth-require-state", "false"]).oauth_require_state());
        assert!(parse(&["--oauth-require-state", "true"]).oauth_require_state());
    }

    #[test]
    fn debug_hides_secrets() {
        let cli = Cli::try_parse_from([
            "portcullis",
            "--jwt-secret",
            "x".repeat(40).as_str(),
            "--smtp-url",
            "smtp://user:smtp-password@mail:587",
            "--github-client-secret",
            "github-secret",
            "--redis-url",
            "redis://:redis-password@cache:6379",
            "--database-url",
            "postgres://u:db-password@db/portcullis",
        ])
        .unwrap();
        let shown = format!("{:?}", cli.config);
        for secret in ["xxxx", "smtp-password", "github-secret", "redis-password", "db-password"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("token_ttl_secs: 28800"), "the rest is shown: {shown}");
    }

    #[test]
    fn help_lists_every_variable_under_its_section() {
        // Which variables exist is pinned against the reference by the
        // binary's e2e test; here: each sits under a section heading.
        use clap::CommandFactory;
        let command = Cli::command();
        let help = command.clone().render_long_help().to_string();
        let mut variables = 0;
        for arg in command.get_arguments() {
            let Some(variable) = arg.get_env().and_then(|v| v.to_str()) else { continue };
            variables += 1;
            assert!(help.contains(&format!("[env: {variable}")), "{variable} missing from --help");
            assert!(arg.get_help_heading().is_some(), "{variable} is under no section heading");
        }
        assert!(variables >= 38, "{variables} variables");
        for heading in [
            "Server:",
            "Database:",
            "Tokens and keys:",
            "Passwords:",
            "Email:",
            "Login providers:",
            "Rate limits:",
        ] {
            assert!(help.contains(heading), "{heading} missing from --help");
        }
    }
}
