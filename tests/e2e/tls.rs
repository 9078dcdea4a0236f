//! TLS to PostgreSQL and Redis, against real servers these tests start
//! themselves: a PostgreSQL cluster of their own (`initdb`/`pg_ctl` from the
//! machine's PostgreSQL, as the `postgres` user, `hostssl` only) and a
//! `redis-server --tls-port`, both with a certificate from a test CA made here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::binary::{body_of, http, json_request, portcullis, scratch, start_with, stop};

/// A certificate authority and the certificates it signs, as PEM files in `dir`.
pub(crate) struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub(crate) ca_file: PathBuf,
    dir: PathBuf,
}

impl TestCa {
    pub(crate) fn new(dir: &Path) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "Portcullis test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, certificate.pem()).unwrap();
        Self { issuer: rcgen::Issuer::new(params, key), ca_file, dir: dir.to_owned() }
    }

    /// A server certificate for `names`, valid now (or expired), written as
    /// `<stem>.crt` and `<stem>.key`.
    pub(crate) fn server(&self, stem: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "portcullis test server");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let (crt, key_file) = (self.dir.join(format!("{stem}.crt")), self.dir.join(format!("{stem}.key")));
        std::fs::write(&crt, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        set_mode(&key_file, 0o600);
        (crt, key_file)
    }
}

/// Says why a test cannot run here; under CI (`CI` set, as `.ci/run` does),
/// where every tool is installed, a missing one is a failure instead.
pub(crate) fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI must run this test, but: {why}");
    eprintln!("skipped: {why}");
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL cluster of the tests' own, TLS only, on a free port.
struct OwnPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl OwnPostgres {
    /// `None` (said on stderr) where the machine has no PostgreSQL server
    /// binaries or the tests cannot act as the `postgres` user.
    fn start(dir: &Path, ca: &TestCa) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .find(|bin| bin.join("initdb").exists());
        let uid = Command::new("id").args(["-u", "postgres"]).output().ok().filter(|o| o.status.success());
        let (Some(bin), Some(uid), true) = (bin, uid, is_root_user()) else {
            skip("PostgreSQL TLS needs the machine's initdb/pg_ctl and root to run them as `postgres`");
            return None;
        };
        let uid: u32 = String::from_utf8_lossy(&uid.stdout).trim().parse().unwrap();
        let gid: u32 =
            String::from_utf8_lossy(&Command::new("id").args(["-g", "postgres"]).output().unwrap().stdout)
                .trim()
                .parse()
                .unwrap();
        let dir = dir.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        let (crt, key) = ca.server("pg-server", &["localhost"], false);
        for file in [&crt, &key] {
            std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
        }
        for path in [dir.clone(), dir.join("pg-server.crt"), dir.join("pg-server.key")] {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
        // The test's scratch folder must be passable for `postgres`.
        set_mode(dir.parent().unwrap(), 0o755);
        run(Command::new("runuser").args(["-u", "postgres", "--"]).arg(bin.join("initdb")).args([
            "-D",
            dir.join("data").to_str().unwrap(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ]));
        let port = free_port();
        let conf = format!(
            "port = {port}\nlisten_addresses = 'localhost'\nunix_socket_directories = '{dir}'\nssl = on\n\
             ssl_cert_file = '{dir}/pg-server.crt'\nssl_key_file = '{dir}/pg-server.key'\nfsync = off\n",
            dir = dir.display()
        );
        append(&dir.join("data/postgresql.conf"), &conf);
        std::fs::write(
            dir.join("data/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .unwrap();
        let cluster = Self { dir, bin, port };
        cluster.pg_ctl(&["-w", "-t", "60", "-l", cluster.dir.join("log").to_str().unwrap(), "start"]);
        Some(cluster)
    }

    fn pg_ctl(&self, args: &[&str]) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.dir.join("data").to_str().unwrap()])
            .args(args));
    }

    fn stop(&self) {
        self.pg_ctl(&["-w", "-m", "fast", "stop"]);
    }

    fn restart(&self) {
        self.pg_ctl(&["-w", "-t", "60", "-l", self.dir.join("log").to_str().unwrap(), "start"]);
    }

    /// Serves `crt`/`key` from now on (a reload re-reads them).
    fn use_certificate(&self, crt: &Path, key: &Path) {
        std::fs::copy(crt, self.dir.join("pg-server.crt")).unwrap();
        std::fs::copy(key, self.dir.join("pg-server.key")).unwrap();
        self.pg_ctl(&["reload"]);
        std::thread::sleep(Duration::from_millis(500));
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    /// Connections of others that use TLS, as PostgreSQL counts them.
    fn tls_connections(&self) -> i64 {
        let output = Command::new("psql")
            .args([
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-At",
                "-c",
            ])
            .arg(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE s.ssl AND a.pid <> pg_backend_pid() AND a.datname = 'postgres'",
            )
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(-1)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.dir.join("data").to_str().unwrap(), "-w", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn is_root_user() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// `portcullis migrate` against `url`: its exit code and what it printed.
fn migrate(dir: &Path, url: &str) -> (i32, String) {
    let output = portcullis(dir)
        .arg("migrate")
        .env("DATABASE_URL", url)
        .env("AUTH_JWT_SECRET", crate::helpers::SECRET)
        .output()
        .unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn readyz(port: u16) -> String {
    http(port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

/// Waits until `/readyz` starts with `status` (say `HTTP/1.1 503`).
fn wait_ready(port: u16, status: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let answer = readyz(port);
        if answer.starts_with(status) {
            return;
        }
        assert!(started.elapsed() < within, "/readyz did not turn {status} within {within:?}: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn register(port: u16, email: &str) -> String {
    let body = format!(r#"{{"email": "{email}", "password": "SecurePass123!"}}"#);
    http(port, &json_request("POST", "/v1/auth/register", None, &body))
}

#[test]
fn postgres_over_tls_verify_full_works_and_wrong_names_plain_text_and_expired_certificates_are_refused() {
    let dir = scratch();
    let ca = TestCa::new(&dir);
    let Some(pg) = OwnPostgres::start(&dir, &ca) else { return };
    let root = format!("sslrootcert={}", ca.ca_file.display());

    // The server's certificate names `localhost`: verify-full to it works.
    let good = pg.url("localhost", &format!("sslmode=verify-full&{root}"));
    let (code, log) = migrate(&dir, &good);
    assert_eq!(code, 0, "verify-full against the right name migrates: {log}");

    // Another name for the same server: refused at start, saying why.
    let (code, log) = migrate(&dir, &pg.url("127.0.0.1", &format!("sslmode=verify-full&{root}")));
    assert_ne!(code, 0);
    assert!(log.contains("sslmode=verify-full") && log.contains("not valid for name"), "{log}");
    // verify-ca checks the chain only, so the same address is accepted.
    let (code, log) = migrate(&dir, &pg.url("127.0.0.1", &format!("sslmode=verify-ca&{root}")));
    assert_eq!(code, 0, "verify-ca ignores the name: {log}");
    // A CA that did not sign the server's certificate is refused.
    let stranger = TestCa::new(&scratch());
    let (code, log) = migrate(
        &dir,
        &pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={}", stranger.ca_file.display())),
    );
    assert_ne!(code, 0);
    assert!(log.contains("invalid peer certificate"), "{log}");

    // Plain text against a hostssl-only server: the server's refusal, quoted.
    let (code, log) = migrate(&dir, &pg.url("localhost", "sslmode=disable"));
    assert_ne!(code, 0);
    assert!(log.contains("sslmode=disable") && log.contains("no encryption"), "{log}");

    // An expired certificate is refused with that reason.
    let (expired_crt, expired_key) = ca.server("expired", &["localhost"], true);
    let (fresh_crt, fresh_key) = ca.server("fresh", &["localhost"], false);
    pg.use_certificate(&expired_crt, &expired_key);
    let (code, log) = migrate(&dir, &good);
    assert_ne!(code, 0);
    assert!(log.contains("expired"), "{log}");
    pg.use_certificate(&fresh_crt, &fresh_key);

    // The service over verify-full: serves, its connections are TLS, and
    // /readyz follows the server down and back up.
    let (child, port) = start_with(&dir, &[("DATABASE_URL", good.as_str())]);
    assert!(register(port, "tls@example.com").starts_with("HTTP/1.1 201"));
    assert!(pg.tls_connections() >= 1, "the pool's connections use TLS");
    pg.stop();
    wait_ready(port, "HTTP/1.1 503", Duration::from_secs(15));
    pg.restart();
    wait_ready(port, "HTTP/1.1 200", Duration::from_secs(15));
    let login = http(
        port,
        &json_request(
            "POST",
            "/v1/auth/login-json",
            None,
            r#"{"username": "tls@example.com", "password": "SecurePass123!"}"#,
        ),
    );
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    assert!(body_of(&login)["access_token"].is_string());
    stop(child);
}

#[test]
fn the_tls_settings_are_checked_before_anything_connects() {
    let dir = scratch();
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "this is not a certificate\n").unwrap();
    let cases = [
        (
            format!("postgres://postgres@localhost:1/db?sslmode=verify-full&sslrootcert={}", junk.display()),
            None,
            "DATABASE_URL sslrootcert",
        ),
        (
            "postgres://postgres@localhost:1/db?sslmode=verify_full".to_owned(),
            None,
            "sslmode=verify_full is not one of",
        ),
        ("sqlite://data/p.db".to_owned(), Some(junk), "AUTH_REDIS_CA_FILE"),
    ];
    for (url, redis_ca, expected) in cases {
        let mut command = portcullis(&dir);
        // `keys list` wires everything (the store and the limiter) and exits.
        command
            .args(["keys", "list"])
            .env("DATABASE_URL", &url)
            .env("AUTH_JWT_SECRET", crate::helpers::SECRET);
        if let Some(ca) = &redis_ca {
            command.env("AUTH_REDIS_URL", "rediss://localhost:1").env("AUTH_REDIS_CA_FILE", ca);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{url}: a configuration error exits 2: {stderr}");
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains("postgres@"), "the URL is not echoed: {stderr}");
    }
}

/// `redis-server --tls-port` of the test's own.
struct OwnRedis {
    child: Child,
    port: u16,
    crt: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl OwnRedis {
    fn start(ca: &TestCa) -> Option<Self> {
        let (crt, key) = ca.server("redis-server", &["localhost"], false);
        let port = free_port();
        let mut redis = Self {
            child: spawn_redis(port, &crt, &key, &ca.ca_file)?,
            port,
            crt,
            key,
            ca: ca.ca_file.clone(),
        };
        redis.wait();
        Some(redis)
    }

    fn wait(&mut self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.child = spawn_redis(self.port, &self.crt, &self.key, &self.ca).unwrap();
        self.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_redis(port: u16, crt: &Path, key: &Path, ca: &Path) -> Option<Child> {
    let spawned = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "-::1"])
        .arg("--tls-cert-file")
        .arg(crt)
        .arg("--tls-key-file")
        .arg(key)
        .arg("--tls-ca-cert-file")
        .arg(ca)
        .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => Some(child),
        Err(e) => {
            crate::tls::skip(&format!("redis-server cannot be started: {e}"));
            None
        }
    }
}

#[test]
fn redis_over_tls_shares_limits_and_readiness_follows_it_when_required() {
    let dir = scratch();
    let ca = TestCa::new(&dir);
    let Some(mut redis) = OwnRedis::start(&ca) else { return };
    let url = format!("rediss://localhost:{}", redis.port);
    let prefix = format!("tls-{}:", uuid::Uuid::new_v4().simple());
    let ca_file = ca.ca_file.to_str().unwrap();
    let shared = [
        ("AUTH_REDIS_URL", url.as_str()),
        ("AUTH_REDIS_CA_FILE", ca_file),
        ("AUTH_REDIS_PREFIX", prefix.as_str()),
        ("AUTH_RATE_LIMITS", "login=4/60"),
    ];
    let (dir_a, dir_b) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let required = [shared.as_slice(), &[("AUTH_REDIS_REQUIRED", "true")]].concat();
    let (a, port_a) = start_with(&dir_a, &required);
    let (b, port_b) = start_with(&dir_b, &shared);

    // Four logins from one address across the two instances spend one
    // budget: the fifth is refused on either.
    let login = || {
        json_request(
            "POST",
            "/v1/auth/login-json",
            None,
            r#"{"username": "n@example.com", "password": "wrong-password-1"}"#,
        )
    };
    for port in [port_a, port_b, port_a, port_b] {
        let answer = http(port, &login());
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    let fifth = http(port_a, &login());
    assert!(fifth.starts_with("HTTP/1.1 429"), "the budget is shared through Redis over TLS: {fifth}");

    // Readiness follows Redis where it is required; elsewhere Redis down only
    // weakens the limits.
    redis.stop();
    wait_ready(port_a, "HTTP/1.1 503", Duration::from_secs(10));
    assert!(readyz(port_b).starts_with("HTTP/1.1 200"), "without AUTH_REDIS_REQUIRED, still ready");
    redis.restart();
    wait_ready(port_a, "HTTP/1.1 200", Duration::from_secs(15));
    stop(a);
    stop(b);

    // A server whose certificate the CA did not sign is not trusted.
    let stranger = TestCa::new(&dir.join("a"));
    let (c, port_c) = start_with(
        &dir_a,
        &[("AUTH_REDIS_URL", url.as_str()), ("AUTH_REDIS_CA_FILE", stranger.ca_file.to_str().unwrap())],
    );
    let log = std::fs::read_to_string(dir_a.join(format!("log-{port_c}"))).unwrap();
    assert!(log.contains("Redis rate limiter unavailable"), "an untrusted server is not used");
    stop(c);
}
