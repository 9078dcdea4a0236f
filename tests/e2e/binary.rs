//! The real `portcullis` binary: configuration, commands and start-up.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Every variable the configuration reference documents.
const VARIABLES: [&str; 61] = [
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "AUTH_JWT_SECRET_FILE",
    "AUTH_JWT_PREVIOUS_SECRET_FILE",
    "AUTH_KEY_ENCRYPTION_KEY_FILE",
    "AUTH_SMTP_URL_FILE",
    "AUTH_REDIS_URL_FILE",
    "AUTH_REDIS_CA_FILE",
    "AUTH_REDIS_REQUIRED",
    "AUTH_GITHUB_CLIENT_SECRET_FILE",
    "AUTH_LINKEDIN_CLIENT_SECRET_FILE",
    "AUTH_GOOGLE_CLIENT_SECRET_FILE",
    "AUTH_PUBLIC_URL",
    "AUTH_BIND",
    "AUTH_ENV",
    "AUTH_JWT_SECRET",
    "AUTH_JWT_PREVIOUS_SECRET",
    "AUTH_JWT_ALGORITHM",
    "AUTH_KEY_ENCRYPTION_KEY",
    "AUTH_KEY_PUBLISH_SECS",
    "AUTH_KEY_ROTATION_DAYS",
    "AUTH_ISSUER",
    "AUTH_JWT_AUDIENCE",
    "AUTH_TOKEN_TTL_SECS",
    "AUTH_API_KEY_DEFAULT_DAYS",
    "AUTH_SESSION_MAX_AGE_SECS",
    "AUTH_SESSION_IDLE_SECS",
    "AUTH_REFRESH_REUSE_GRACE_SECS",
    "AUTH_SMTP_URL",
    "AUTH_MAIL_FROM",
    "AUTH_PASSWORD_RESET_URL",
    "AUTH_GITHUB_CLIENT_ID",
    "AUTH_GITHUB_CLIENT_SECRET",
    "AUTH_GITHUB_AUTHORIZE_URL",
    "AUTH_GITHUB_TOKEN_URL",
    "AUTH_GITHUB_API_URL",
    "AUTH_GOOGLE_CLIENT_ID",
    "AUTH_GOOGLE_CLIENT_SECRET",
    "AUTH_GOOGLE_ISSUER",
    "AUTH_LINKEDIN_CLIENT_ID",
    "AUTH_LINKEDIN_CLIENT_SECRET",
    "AUTH_LINKEDIN_AUTHORIZE_URL",
    "AUTH_LINKEDIN_TOKEN_URL",
    "AUTH_LINKEDIN_USERINFO_URL",
    "AUTH_OAUTH_REQUIRE_STATE",
    "AUTH_OAUTH_TIMEOUT_SECS",
    "AUTH_PASSWORD_RULES",
    "AUTH_RATE_LIMITS",
    "AUTH_TRUSTED_PROXIES",
    "AUTH_REDIS_URL",
    "AUTH_REDIS_PREFIX",
    "AUTH_CORS_ORIGINS",
    "AUTH_METRICS_BIND",
    "AUTH_AUDIT_RETENTION_DAYS",
    "AUTH_CACHE_TTL_MS",
    "AUTH_HASH_THREADS",
    "AUTH_HASH_QUEUE",
    "AUTH_DB_MAX_CONNECTIONS",
    "AUTH_WORKERS",
    "RUST_LOG",
    "AUTH_LOG_FORMAT",
];

/// The binary in an empty folder with a clean environment.
pub(crate) fn portcullis(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

pub(crate) fn scratch() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn help_lists_every_variable_and_the_reference_documents_them() {
    let output = portcullis(&scratch()).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for command in
        ["serve", "migrate", "create-admin", "keys", "healthcheck", "backup", "restore", "completions"]
    {
        assert!(help.contains(command), "--help lists {command}");
    }
    let reference =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"))
            .unwrap();
    for variable in VARIABLES {
        assert!(help.contains(&format!("[env: {variable}")), "--help lists {variable}");
        assert!(reference.contains(&format!("`{variable}`")), "docs/configuration.md documents {variable}");
    }
}

#[test]
fn an_invalid_value_stops_the_start_naming_the_variable() {
    let dir = scratch();
    for (variable, value) in [
        ("AUTH_TOKEN_TTL_SECS", "soon"),
        ("AUTH_BIND", "not-an-address"),
        ("AUTH_ENV", "staging"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("AUTH_JWT_SECRET", "tiny-secret-value"),
        ("AUTH_JWT_PREVIOUS_SECRET", "tiny-secret-value"),
        ("AUTH_CACHE_TTL_MS", "-1"),
        ("AUTH_LOG_FORMAT", "xml"),
        ("AUTH_JWT_ALGORITHM", "RS256"),
        ("AUTH_KEY_ENCRYPTION_KEY", "tiny-secret-value"),
        ("AUTH_KEY_PUBLISH_SECS", "60"),
        ("AUTH_KEY_ROTATION_DAYS", "-1"),
        ("AUTH_JWT_AUDIENCE", " , "),
        ("AUTH_ISSUER", " "),
    ] {
        let output = portcullis(&dir).arg("migrate").env(variable, value).output().unwrap();
        assert!(!output.status.success(), "{variable}={value} must stop the start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "the message names {variable}: {stderr}");
        assert_eq!(output.status.code(), Some(2), "a configuration error exits 2: {stderr}");
        assert!(!stderr.contains("tiny-secret-value"), "a secret is never echoed: {stderr}");
    }
}

#[test]
fn production_refuses_to_start_without_a_secret() {
    let dir = scratch();
    let output = portcullis(&dir).arg("migrate").env("AUTH_ENV", "production").output().unwrap();
    // `migrate` needs no key; `serve` does.
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output =
        portcullis(&dir).env("AUTH_ENV", "production").env("AUTH_BIND", "127.0.0.1:0").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A new deployment signs with ES256: its key-encryption key is what is missing.
    assert!(stderr.contains("AUTH_KEY_ENCRYPTION_KEY") && stderr.contains("production"), "{stderr}");
    let output = portcullis(&dir)
        .env("AUTH_ENV", "production")
        .env("AUTH_JWT_ALGORITHM", "HS256")
        .env("AUTH_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AUTH_JWT_SECRET") && stderr.contains("production"), "{stderr}");
}

#[test]
fn the_development_keys_are_generated_once_and_private() {
    let dir = scratch();
    let run = |algorithm: &str| {
        let output = portcullis(&dir)
            .args(["create-admin", "--email", "admin@example.com", "--password", "ChiefPass123!"])
            .env("AUTH_JWT_ALGORITHM", algorithm)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let private = |path: &Path| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600, "{path:?}");
        }
        std::fs::read(path).unwrap()
    };
    // A new deployment signs with ES256: its key-encryption key is generated, no HS256 key.
    assert!(run("ES256").contains("created administrator"));
    let kek = dir.join("data/key-encryption-key");
    let first_kek = private(&kek);
    assert!(first_kek.len() >= 32);
    assert!(!dir.join("data/jwt-secret").exists(), "no HS256 key is made for ES256");
    assert!(dir.join("data/portcullis.db").exists(), "the default database lives in data/");
    // Under HS256 the development secret is generated the same way.
    assert!(run("HS256").contains("already an administrator"));
    let key = dir.join("data/jwt-secret");
    let first = private(&key);
    assert!(first.len() >= 32);
    assert!(run("HS256").contains("already an administrator"));
    assert!(run("ES256").contains("already an administrator"));
    assert_eq!(std::fs::read(&key).unwrap(), first, "the key is kept across starts");
    assert_eq!(std::fs::read(&kek).unwrap(), first_kek, "and so is the key-encryption key");
}

#[test]
fn create_admin_refuses_a_weak_password_and_needs_one_for_a_new_user() {
    let dir = scratch();
    let weak = portcullis(&dir)
        .args(["create-admin", "--email", "admin@example.com", "--password", "weak"])
        .output()
        .unwrap();
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    let none = portcullis(&dir)
        .args(["create-admin", "--email", "admin@example.com"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!none.status.success(), "no password and no terminal to ask on");
}

#[test]
fn create_admin_promotes_an_existing_user_on_postgres() {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        portcullis_store_postgres::testing::say_skipped("create-admin on PostgreSQL needs TEST_DATABASE_URL");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let database =
        runtime.block_on(portcullis_store_postgres::testing::TestDatabase::create("create-admin")).unwrap();
    let _ = admin_url;
    let dir = scratch();
    let run = |args: &[&str]| {
        portcullis(&dir)
            .args(args)
            .env("DATABASE_URL", database.url())
            .env("AUTH_JWT_SECRET", crate::helpers::SECRET)
            .output()
            .unwrap()
    };
    assert!(run(&["migrate"]).status.success());
    let created = run(&["create-admin", "--email", "boss@example.com", "--password", "BossPass123!"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let again = run(&["create-admin", "--email", "BOSS@example.com"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already an administrator"));
    drop(runtime);
}

#[test]
fn serve_answers_and_stops_gracefully_on_sigterm() {
    let dir = scratch();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let mut child = portcullis(&dir)
        .env("AUTH_BIND", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = false;
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                ready = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready, "serves /readyz within 20 s");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a graceful stop exits 0: {status}");
}

/// A minimal HTTP/1.1 client over std, so the test needs no runtime.
pub(crate) fn http(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

pub(crate) fn json_request(method: &str, path: &str, auth: Option<&str>, body: &str) -> String {
    let auth = auth.map(|a| format!("{a}\r\n")).unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub(crate) fn body_of(answer: &str) -> serde_json::Value {
    serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap_or(serde_json::Value::Null)
}

/// Starts `portcullis serve` in `dir` on a free port and waits for /readyz.
/// Its log goes to `dir/log-<port>`.
fn start(dir: &Path) -> (std::process::Child, u16) {
    start_with(dir, &[])
}

pub(crate) fn start_with(dir: &Path, envs: &[(&str, &str)]) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.join(format!("log-{port}"))).unwrap();
    start_on(dir, port, envs, log.into())
}

/// As [`start_with`] on `port`, its log (stderr) going to `log`.
fn start_on(dir: &Path, port: u16, envs: &[(&str, &str)], log: Stdio) -> (std::process::Child, u16) {
    let mut child = portcullis(dir)
        .env("AUTH_BIND", format!("127.0.0.1:{port}"))
        .env("AUTH_JWT_SECRET", crate::helpers::SECRET)
        .env("RUST_LOG", "debug")
        .envs(envs.iter().copied())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .starts_with("HTTP/1.1 200")
        {
            return (child, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("portcullis did not become ready");
}

pub(crate) fn stop(mut child: std::process::Child) {
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success(), "a graceful stop exits 0");
}

/// `count` requests for `path` on one keep-alive connection; panics naming
/// the request that got no answer within 5 s.
fn keep_alive_gets(port: u16, path: &str, count: usize) {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    for sent in 0..count {
        writer.write_all(request.as_bytes()).unwrap();
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader.read_line(&mut line);
            assert!(
                read.as_ref().is_ok_and(|n| *n > 0),
                "request {sent} of {count} got no answer in 5 s: {read:?}"
            );
            if line.starts_with("HTTP/1.1 ") {
                assert!(line.starts_with("HTTP/1.1 200"), "request {sent}: {line}");
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
    }
}

#[test]
fn a_log_reader_that_stops_reading_slows_no_request_and_the_dropped_lines_are_counted() {
    let dir = scratch();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // stderr is a pipe nobody reads until the end: once its 64 KiB are
    // full, a write to it blocks (as with a log collector that stalls).
    let (mut child, port) = start_on(&dir, port, &[("RUST_LOG", "info")], Stdio::piped());
    let mut stderr = child.stderr.take().unwrap();
    // One line per request: far more than the pipe and the writer's queue
    // (16 384 lines) hold, so some lines must be dropped.
    let answered = std::panic::catch_unwind(|| keep_alive_gets(port, "/healthz", 20_000));
    // Read the log from here on (a service stuck on its stderr comes back to
    // answer, so the test fails instead of hanging), and the count goes on.
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
        log
    });
    let metrics = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stop(child);
    let log = reader.join().unwrap();
    assert!(answered.is_ok(), "every request was answered while stderr was not read");
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("the count of dropped lines is a metric: {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(metrics.contains("# TYPE portcullis_log_lines_dropped counter"), "{metrics}");
    let written = log.lines().filter(|l| l.contains("/healthz")).count();
    assert!(dropped > 0, "lines beyond the queue were dropped and counted");
    assert!(written > 16_000, "what was queued reached stderr once it was read: {written} lines");
    assert!(
        u64::try_from(written).unwrap() + dropped >= 20_000,
        "every request's line was either written or counted: {written} written, {dropped} dropped"
    );
}

#[test]
fn key_usage_counted_before_a_graceful_stop_survives_the_restart() {
    usage_survives_a_graceful_stop(&[]);
}

/// On PostgreSQL a connection opened on an HTTP worker's runtime stops with
/// that worker, before the count is flushed: the flush must get one that
/// still works (the pool's part is pinned without timing by the store's
/// `tests/runtimes.rs`; here, the whole stop through the binary).
#[test]
fn key_usage_counted_before_a_graceful_stop_survives_the_restart_on_postgres() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        portcullis_store_postgres::testing::say_skipped(
            "the usage flush on PostgreSQL needs TEST_DATABASE_URL",
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let database =
        runtime.block_on(portcullis_store_postgres::testing::TestDatabase::create("usage flush")).unwrap();
    usage_survives_a_graceful_stop(&[("DATABASE_URL", database.url())]);
    drop(database);
    drop(runtime);
}

fn usage_survives_a_graceful_stop(envs: &[(&str, &str)]) {
    let dir = scratch();
    let (child, port) = start_with(&dir, envs);
    let credentials = r#"{"email": "ops@example.com", "password": "SecurePass123!"}"#;
    let registered = body_of(&http(port, &json_request("POST", "/v1/auth/register", None, credentials)));
    let token = registered["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Authorization: Bearer {token}");
    let created =
        body_of(&http(port, &json_request("POST", "/v1/api-keys", Some(&bearer), r#"{"name": "worker"}"#)));
    let key = created["api_key"].as_str().unwrap().to_owned();
    for _ in 0..9 {
        let answer = http(
            port,
            &format!(
                "GET /v1/database/projects HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: {key}\r\n\r\n"
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // A key pasted into the URL by mistake is refused, and logged nowhere.
    let leaked = http(
        port,
        &format!("GET /v1/auth/me?api_key={key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert!(leaked.starts_with("HTTP/1.1 401"), "{leaked}");
    // Stopped within the flush interval: the count is written at shutdown.
    stop(child);
    let log = std::fs::read_to_string(dir.join(format!("log-{port}"))).unwrap();
    assert!(log.contains("/v1/database/projects"), "requests are logged");
    for secret in [&key[..], &key[8..30], &token[..], "SecurePass123!"] {
        assert!(!log.contains(secret), "a secret reached the log");
    }

    let (child, port) = start_with(&dir, envs);
    let listed = body_of(&http(
        port,
        &format!("GET /v1/api-keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{bearer}\r\n\r\n"),
    ));
    assert_eq!(listed[0]["usage_count"], 9, "{listed}");
    assert!(listed[0]["last_used_at"].is_string());
    stop(child);
}

fn register_and_forget(port: u16, email: &str) {
    let credentials = format!(r#"{{"email": "{email}", "password": "SecurePass123!"}}"#);
    assert!(
        http(port, &json_request("POST", "/v1/auth/register", None, &credentials))
            .starts_with("HTTP/1.1 201")
    );
    let forgot = format!(r#"{{"email": "{email}"}}"#);
    assert!(
        http(port, &json_request("POST", "/v1/auth/forgot-password", None, &forgot))
            .starts_with("HTTP/1.1 202")
    );
}

#[test]
fn a_queued_email_survives_a_restart_while_the_mail_server_is_down() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut smtp = runtime.block_on(crate::smtp::SmtpServer::start());
    smtp.stop();
    let url = smtp.url();
    let dir = scratch();
    let (child, port) = start_with(&dir, &[("AUTH_SMTP_URL", &url)]);
    register_and_forget(port, "restart@example.com");
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);
    assert!(smtp.resets().is_empty());

    runtime.block_on(smtp.restart());
    let (child, _) = start_with(&dir, &[("AUTH_SMTP_URL", &url)]);
    let email = runtime.block_on(smtp.wait_for_reset("restart@example.com", Duration::from_secs(20)));
    stop(child);
    let email = email.expect("the email queued before the restart is delivered by the new process");
    assert!(email.reset_token().is_some());
}

#[test]
fn the_log_mailer_shows_the_link_in_development_only() {
    let dir = scratch();
    let (child, port) = start(&dir);
    register_and_forget(port, "dev@example.com");
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);
    let log = std::fs::read_to_string(dir.join(format!("log-{port}"))).unwrap();
    let link = format!("http://127.0.0.1:{port}/reset-password?token=prt_");
    assert!(log.contains(&link), "development logs the link to the built-in page");
    assert!(
        log.contains(&format!("http://127.0.0.1:{port}/verify-email?token=pev_")),
        "and the verification link"
    );

    let dir = scratch();
    let (child, port) = start_with(&dir, &[("AUTH_ENV", "production")]);
    register_and_forget(port, "prod@example.com");
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);
    let log = std::fs::read_to_string(dir.join(format!("log-{port}"))).unwrap();
    assert!(log.contains("email dropped"), "production says the email was not sent");
    assert!(!log.contains("prt_"), "production never logs a reset link");
}

#[test]
fn no_provider_token_secret_or_code_reaches_the_log() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let github = runtime.block_on(crate::oauth::fake_github(crate::oauth::octocat("logs@example.com")));
    let base = github.uri();
    let (authorize, token) =
        (format!("{base}/login/oauth/authorize"), format!("{base}/login/oauth/access_token"));
    let dir = scratch();
    let envs = [
        ("AUTH_GITHUB_CLIENT_ID", "gh-client-id"),
        ("AUTH_GITHUB_CLIENT_SECRET", "gh-client-secret-value"),
        ("AUTH_GITHUB_AUTHORIZE_URL", authorize.as_str()),
        ("AUTH_GITHUB_TOKEN_URL", token.as_str()),
        ("AUTH_GITHUB_API_URL", base.as_str()),
    ];
    let (child, port) = start_with(&dir, &envs);
    let redirect = crate::oauth::REDIRECT;
    let good = format!(r#"{{"code": "good-code", "redirect_uri": "{redirect}"}}"#);
    let answer = http(port, &json_request("POST", "/v1/auth/github/callback", None, &good));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let bad = format!(r#"{{"code": "wrong-code-value", "redirect_uri": "{redirect}"}}"#);
    assert!(
        http(port, &json_request("POST", "/v1/auth/github/callback", None, &bad)).starts_with("HTTP/1.1 400")
    );
    stop(child);
    let log = std::fs::read_to_string(dir.join(format!("log-{port}"))).unwrap();
    assert!(log.contains("/v1/auth/github/callback"), "the requests were logged");
    for secret in [crate::oauth::GITHUB_TOKEN, "gh-client-secret-value", "good-code", "wrong-code-value"] {
        assert!(!log.contains(secret), "{secret} reached the log");
    }
}

#[test]
fn each_request_is_one_json_log_line_with_its_route_status_latency_ids_and_principal() {
    let dir = scratch();
    let (child, port) = start_with(&dir, &[("AUTH_LOG_FORMAT", "json"), ("RUST_LOG", "info")]);
    let credentials = r#"{"email": "logged@example.com", "password": "SecurePass123!"}"#;
    let registered = body_of(&http(port, &json_request("POST", "/v1/auth/register", None, credentials)));
    let (token, user_id) = (registered["access_token"].as_str().unwrap(), registered["id"].as_str().unwrap());
    let me = http(
        port,
        &format!(
            "GET /v1/auth/me?api_key=pasted-by-mistake HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
        ),
    );
    assert!(me.starts_with("HTTP/1.1 200"), "{me}");
    let request_id = me
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("every response carries X-Request-Id")
        .trim()
        .to_owned();
    stop(child);

    let log = std::fs::read_to_string(dir.join(format!("log-{port}"))).unwrap();
    // The request's span closes once, as one line; its fields are under "span".
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["span"]["route"] == "/v1/auth/me")
        .collect();
    assert_eq!(lines.len(), 1, "one line for the request: {log}");
    let line = &lines[0]["span"];
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["request_id"], request_id.as_str());
    assert_eq!(line["principal"], format!("user:{user_id}"));
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
    assert_eq!(line["path"], "/v1/auth/me", "the path is logged without its query string");
    assert!(!log.contains(token), "the token never reaches the log");
    assert!(!log.contains("pasted-by-mistake"), "nor does a query string");
}

#[test]
fn a_key_rotation_keeps_earlier_tokens_working_until_the_previous_key_is_removed() {
    const OLD: &str = "rotation-old-key-rotation-old-key-rotation-old";
    const NEW: &str = "rotation-new-key-rotation-new-key-rotation-new";
    let me = |port: u16, token: &str| {
        http(
            port,
            &format!(
                "GET /v1/auth/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
            ),
        )
    };
    let dir = scratch();
    let (child, port) = start_with(&dir, &[("AUTH_JWT_SECRET", OLD)]);
    let credentials = r#"{"email": "rotated@example.com", "password": "SecurePass123!"}"#;
    let registered = body_of(&http(port, &json_request("POST", "/v1/auth/register", None, credentials)));
    let before = registered["access_token"].as_str().unwrap().to_owned();
    stop(child);

    // Rotating: the new key signs, the old one still verifies.
    let (child, port) = start_with(&dir, &[("AUTH_JWT_SECRET", NEW), ("AUTH_JWT_PREVIOUS_SECRET", OLD)]);
    assert!(me(port, &before).starts_with("HTTP/1.1 200"), "a token from before the rotation still works");
    let login = r#"{"username": "rotated@example.com", "password": "SecurePass123!"}"#;
    let during =
        body_of(&http(port, &json_request("POST", "/v1/auth/login-json", None, login)))["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
    stop(child);

    // Once the previous key is removed, only tokens signed with the new one work.
    let (child, port) = start_with(&dir, &[("AUTH_JWT_SECRET", NEW)]);
    assert!(
        me(port, &during).starts_with("HTTP/1.1 200"),
        "tokens from the rotation window are signed with the new key"
    );
    let refused = me(port, &before);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.contains("invalid_token"), "{refused}");
    stop(child);
}
