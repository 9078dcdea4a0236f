//! `TestApp::spawn`: the server on port 0 with a fresh database and a clock
//! the test moves.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use portcullis::{App, Cli};
use portcullis_domain::ports::{AuditLog, UserRepository};
use portcullis_domain::{Email, User};
use portcullis_store_postgres::testing::TestDatabase;
use portcullis_testkit::ManualClock;
use reqwest::{Client, Response};
use serde_json::{Value, json};

/// The signing key of every test server, so tests can forge tokens with it.
pub const SECRET: &str = "e2e-test-secret-e2e-test-secret-e2e-test-secret";
pub const PASSWORD: &str = "SecurePass123!";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Extra settings for one test server.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub production: bool,
    /// Route PostgreSQL through this address instead of the server's own.
    pub postgres_via: Option<SocketAddr>,
    /// Send email through this SMTP server (else the log mailer).
    pub smtp_url: Option<String>,
    /// A fake GitHub (authorize, token and API under this base URL).
    pub github_url: Option<String>,
    /// A fake LinkedIn (authorize, token and userinfo under this base URL).
    pub linkedin_url: Option<String>,
    pub oauth_require_state: bool,
    /// `AUTH_PASSWORD_RULES=nist`.
    pub nist_passwords: bool,
    /// `AUTH_RATE_LIMITS`; tests run with limits off unless they set this.
    pub rate_limits: Option<&'static str>,
    /// `AUTH_TRUSTED_PROXIES`.
    pub trusted_proxies: Option<&'static str>,
    /// `AUTH_REDIS_URL` and `AUTH_REDIS_PREFIX`.
    pub redis: Option<(String, String)>,
    /// `AUTH_HASH_THREADS` and `AUTH_HASH_QUEUE`.
    pub hashing: Option<(&'static str, &'static str)>,
    /// `AUTH_CORS_ORIGINS`.
    pub cors_origins: Option<&'static str>,
    /// `AUTH_METRICS_BIND`.
    pub metrics_bind: Option<String>,
    /// `AUTH_CACHE_TTL_MS`; tests read the database on every request unless they set this.
    pub cache_ttl_ms: Option<&'static str>,
    /// `AUTH_PUBLIC_URL`.
    pub public_url: Option<&'static str>,
    /// Google's settings: `AUTH_GOOGLE_ISSUER`, `_CLIENT_ID`, `_CLIENT_SECRET`.
    pub google: Option<(String, String, String)>,
    /// Environment variables read as `main` reads them: `AUTH_OIDC_<NAME>_*`.
    pub oidc_env: Vec<(String, String)>,
    /// `AUTH_JWT_ALGORITHM`.
    pub jwt_algorithm: Option<&'static str>,
    /// `AUTH_KEY_ENCRYPTION_KEY`.
    pub key_encryption_key: Option<&'static str>,
    /// Leave `AUTH_JWT_SECRET` unset (a deployment that never had one).
    pub without_jwt_secret: bool,
    /// `AUTH_JWT_AUDIENCE` and `AUTH_ISSUER`.
    pub audience: Option<&'static str>,
    pub issuer: Option<&'static str>,
    /// Run on this database (another test server's) instead of a new one.
    pub database_url: Option<String>,
    /// Ignore an `AUTH_REDIS_URL` of the environment (CI sets one).
    pub without_redis: bool,
    /// `AUTH_REQUIRE_VERIFIED_EMAIL=true`.
    pub require_verified_email: bool,
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub clock: Arc<ManualClock>,
    pub users: Arc<dyn UserRepository>,
    pub services: portcullis_domain::Services,
    /// The store's audit log, read directly (not through HTTP).
    pub audit: Arc<dyn portcullis_domain::ports::AuditLog>,
    /// Its `DATABASE_URL`.
    pub database_url: String,
    _database: Database,
}

enum Database {
    Sqlite(PathBuf),
    Postgres(#[allow(dead_code)] TestDatabase),
    /// Another test server's, which outlives this one.
    Borrowed,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Self::Sqlite(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl TestApp {
    /// `None` (after a line on stderr) for PostgreSQL without `TEST_DATABASE_URL`.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> Option<Self> {
        let (url, database) = match (&options.database_url, backend) {
            (Some(url), _) => (url.clone(), Database::Borrowed),
            (None, backend) => Self::new_database(backend, &options).await?,
        };
        let cli = Self::cli(&url, &options);
        let clock = Arc::new(ManualClock::new());
        let app = App::build(&cli.config, clock.clone()).await.unwrap();
        let users: Arc<dyn UserRepository> = app.store.clone();
        let audit: Arc<dyn AuditLog> = app.store.clone();
        let services = app.services.clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(app.serve(listener).unwrap().run());
        Some(Self {
            base,
            // Idle connections are dropped before the server's 5 s
            // keep-alive ends them: reusing one the server is closing at
            // that moment fails the request (`IncompleteMessage`), a race
            // every HTTP client has to avoid, and one a slow test run hit.
            client: Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("a client with no special settings builds"),
            clock,
            users,
            services,
            audit,
            database_url: url,
            _database: database,
        })
    }

    async fn new_database(backend: Backend, options: &Options) -> Option<(String, Database)> {
        Some(match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("portcullis-e2e-{}", uuid::Uuid::new_v4()));
                (format!("sqlite://{}", dir.join("test.db").display()), Database::Sqlite(dir))
            }
            Backend::Postgres => {
                let db = TestDatabase::create("this end-to-end test on PostgreSQL").await?;
                let url = match options.postgres_via {
                    Some(via) => with_address(db.url(), via),
                    None => db.url().to_owned(),
                };
                (url, Database::Postgres(db))
            }
        })
    }

    /// The command line of a test server on `url` with `options`.
    pub fn cli(url: &str, options: &Options) -> Cli {
        let env = if options.production { "production" } else { "test" };
        let mut args = vec!["portcullis", "--database-url", url, "--env", env];
        if !options.without_jwt_secret {
            args.extend(["--jwt-secret", SECRET]);
        }
        if let Some(algorithm) = options.jwt_algorithm {
            args.extend(["--jwt-algorithm", algorithm]);
        }
        if let Some(kek) = options.key_encryption_key {
            args.extend(["--key-encryption-key", kek]);
        }
        if let Some(audience) = options.audience {
            args.extend(["--jwt-audience", audience]);
        }
        if let Some(issuer) = options.issuer {
            args.extend(["--issuer", issuer]);
        }
        args.extend(["--workers", "1", "--db-max-connections", "8"]);
        if let Some(smtp) = &options.smtp_url {
            args.extend(["--smtp-url", smtp]);
        }
        let github = options.github_url.as_deref().map(|base| {
            [
                format!("{base}/login/oauth/authorize"),
                format!("{base}/login/oauth/access_token"),
                base.to_owned(),
            ]
        });
        if let Some([authorize, token, api]) = &github {
            args.extend([
                "--github-client-id",
                "gh-client-id",
                "--github-client-secret",
                "gh-client-secret-value",
            ]);
            args.extend([
                "--github-authorize-url",
                authorize,
                "--github-token-url",
                token,
                "--github-api-url",
                api,
            ]);
        }
        let linkedin = options.linkedin_url.as_deref().map(|base| {
            [
                format!("{base}/oauth/v2/authorization"),
                format!("{base}/oauth/v2/accessToken"),
                format!("{base}/v2/userinfo"),
            ]
        });
        if let Some([authorize, token, userinfo]) = &linkedin {
            args.extend([
                "--linkedin-client-id",
                "li-client-id",
                "--linkedin-client-secret",
                "li-client-secret-value",
            ]);
            args.extend(["--linkedin-authorize-url", authorize, "--linkedin-token-url", token]);
            args.extend(["--linkedin-userinfo-url", userinfo]);
        }
        if options.oauth_require_state {
            args.extend(["--oauth-require-state", "true"]);
        }
        args.extend(["--oauth-timeout-secs", "1"]);
        if options.require_verified_email {
            args.extend(["--require-verified-email", "true"]);
        }
        if options.nist_passwords {
            args.extend(["--password-rules", "nist"]);
        }
        args.extend(["--rate-limits", options.rate_limits.unwrap_or("off")]);
        if let Some(trusted) = options.trusted_proxies {
            args.extend(["--trusted-proxies", trusted]);
        }
        // A prefix of its own even without `redis`: CI sets AUTH_REDIS_URL, which
        // every test server then uses, and counters must not cross tests.
        let own_prefix = format!("portcullis-e2e:{}:", uuid::Uuid::new_v4().simple());
        match &options.redis {
            Some((url, prefix)) => args.extend(["--redis-url", url, "--redis-prefix", prefix]),
            None => args.extend(["--redis-prefix", &own_prefix]),
        }
        args.extend(["--cache-ttl-ms", options.cache_ttl_ms.unwrap_or("0")]);
        if let Some(address) = &options.metrics_bind {
            args.extend(["--metrics-bind", address]);
        }
        if let Some(public_url) = options.public_url {
            args.extend(["--public-url", public_url]);
        }
        if let Some(origins) = options.cors_origins {
            args.extend(["--cors-origins", origins]);
        }
        if let Some((threads, queue)) = options.hashing {
            args.extend(["--hash-threads", threads, "--hash-queue", queue]);
        }
        if let Some((issuer, id, secret)) = &options.google {
            args.extend([
                "--google-issuer",
                issuer,
                "--google-client-id",
                id,
                "--google-client-secret",
                secret,
            ]);
        }
        let mut cli = Cli::try_parse_from(args).unwrap();
        cli.config.read_oidc_providers(options.oidc_env.clone()).unwrap();
        if options.without_redis {
            cli.config.limits.redis_url = None;
        }
        cli
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn get_with(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub async fn post_with(&self, path: &str, token: &str) -> Response {
        self.client.post(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    /// Registers `email` with [`PASSWORD`] and returns the body (with its token).
    pub async fn register(&self, email: &str) -> Value {
        let response =
            self.post_json("/v1/auth/register", &json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(response.status(), 201, "registering {email}");
        response.json().await.unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json("/v1/auth/login-json", &json!({"username": email, "password": password})).await
    }

    /// Registers `email` and returns a token from login.
    pub async fn token_for(&self, email: &str) -> String {
        self.register(email).await;
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        token_of(response).await
    }

    /// Registers `email` as an administrator and returns a token from login.
    pub async fn admin_token(&self, email: &str) -> String {
        self.register(email).await;
        self.services.accounts.ensure_admin(email, None).await.unwrap();
        token_of(self.login(email, PASSWORD).await).await
    }

    /// Creates an API key with `token` and returns the create response.
    pub async fn create_key(&self, token: &str, body: &Value) -> Value {
        let response =
            self.client.post(self.url("/v1/api-keys")).bearer_auth(token).json(body).send().await.unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn get_with_key(&self, path: &str, key: &str) -> Response {
        self.client.get(self.url(path)).header("X-API-Key", key).send().await.unwrap()
    }

    pub async fn user(&self, email: &str) -> User {
        self.users.find_by_email(&Email::parse(email).unwrap()).await.unwrap().unwrap()
    }
}

pub async fn token_of(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Asserts the status and the error `code`, and returns the body.
pub async fn expect_error(response: Response, status: u16, code: &str) -> Value {
    let got = response.status().as_u16();
    let body: Value =
        response.json().await.unwrap_or_else(|e| panic!("{status} {code}: body is not JSON: {e}"));
    assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    assert!(body["detail"].is_string(), "every error has a detail: {body}");
    body
}

/// `url` pointed at `address` (host and port), keeping user, database and query.
pub fn with_address(url: &str, address: SocketAddr) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map_or(0, |i| i + 1);
    let host_end = rest[host_start..].find('/').map_or(rest.len(), |i| host_start + i);
    format!("{}{}{address}{}", &url[..scheme_end], &rest[..host_start], &rest[host_end..])
}

/// Defines `$name` once per backend, as `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($app:ident: &TestApp) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn scenario($app: &TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await.unwrap();
                    scenario(&app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await else { return };
                    scenario(&app).await;
                }
            }
        )*
    };
}

/// Runs each `async fn $name(backend: Backend)` of the invoking module once per
/// backend, as `$name::sqlite` and `$name::postgres`: for scenarios that spawn
/// their own server (with options) rather than take one.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            }
        )*
    };
}
