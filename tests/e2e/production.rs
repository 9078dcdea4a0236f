//! The production kit, through the real binary: secrets from files,
//! `healthcheck`, `backup` / `restore` under load, completions, and the binary
//! run the way the container image runs it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::binary::{body_of, http, json_request, portcullis, scratch, start_with, stop};

const PASSWORD: &str = "SecurePass123!";

/// A server process that is killed if the test fails before stopping it.
struct Server(std::process::Child);

impl Server {
    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        assert!(Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().unwrap().success());
        self.0.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn register(port: u16, email: &str) -> String {
    let body = format!(r#"{{"email": "{email}", "password": "{PASSWORD}"}}"#);
    http(port, &json_request("POST", "/v1/auth/register", None, &body))
}

fn login(port: u16, email: &str) -> String {
    let body = format!(r#"{{"username": "{email}", "password": "{PASSWORD}"}}"#);
    http(port, &json_request("POST", "/v1/auth/login-json", None, &body))
}

/// `portcullis keys list` in `dir` with `envs`: wires everything, then exits.
fn wire(dir: &Path, envs: &[(&str, &str)]) -> Output {
    portcullis(dir).args(["keys", "list"]).envs(envs.iter().copied()).output().unwrap()
}

#[test]
fn secrets_are_read_from_files_once_each_and_trailing_newlines_are_ignored() {
    let dir = scratch();
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let secret = "file-secret-file-secret-file-secret-0123456789";
    std::fs::write(secrets.join("jwt"), format!("{secret}\n\n")).unwrap();
    std::fs::write(secrets.join("db"), format!("sqlite://{}/from-file.db\r\n", dir.display())).unwrap();
    let jwt_file = secrets.join("jwt");
    let db_file = secrets.join("db");
    let files = [
        ("AUTH_JWT_SECRET_FILE", jwt_file.to_str().unwrap()),
        ("DATABASE_URL_FILE", db_file.to_str().unwrap()),
    ];

    // Served with both: the database is where the file says, and tokens are
    // signed with the file's secret, newlines left out.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = portcullis(&dir)
        .env("AUTH_BIND", format!("127.0.0.1:{port}"))
        .envs(files)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Server)
        .unwrap();
    let started = Instant::now();
    let answer = loop {
        let answer = std::net::TcpStream::connect(("127.0.0.1", port))
            .map(|_| register(port, "files@example.com"))
            .unwrap_or_default();
        if !answer.is_empty() || started.elapsed() > Duration::from_secs(20) {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let token = body_of(&answer)["access_token"].as_str().unwrap().to_owned();
    portcullis_crypto::install_jwt_provider();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .expect("signed with the file's secret, without its newlines");
    assert!(dir.join("from-file.db").exists(), "DATABASE_URL came from its file");
    child.stop();

    // Both forms of one secret: refused, naming both, exit 2.
    let both = wire(&dir, &[("AUTH_JWT_SECRET", secret), files[0]]);
    assert_eq!(both.status.code(), Some(2));
    assert!(
        stderr(&both).contains("AUTH_JWT_SECRET and AUTH_JWT_SECRET_FILE are both set"),
        "{}",
        stderr(&both)
    );
    let both = wire(&dir, &[("DATABASE_URL", "sqlite://x.db"), files[1]]);
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr(&both).contains("DATABASE_URL and DATABASE_URL_FILE are both set"), "{}", stderr(&both));

    // Files that cannot serve, each named with its reason; the value never printed.
    std::fs::write(secrets.join("short"), "too-short\n").unwrap();
    std::fs::write(secrets.join("empty"), "\n").unwrap();
    let cases = [
        (secrets.join("missing"), "cannot be read"),
        (secrets.clone(), "is a directory"),
        (secrets.join("empty"), "is empty"),
        (secrets.join("short"), "must be at least 32 bytes"),
    ];
    for (path, reason) in cases {
        let output = wire(&dir, &[("AUTH_JWT_SECRET_FILE", path.to_str().unwrap())]);
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{said}");
        assert!(said.contains("AUTH_JWT_SECRET_FILE") && said.contains(reason), "{reason}: {said}");
        assert!(!said.contains("too-short"), "the value is not printed: {said}");
    }
    // An unreadable file (as a user who may not read it).
    if crate::tls::is_root_user() {
        let private = secrets.join("private");
        std::fs::write(&private, format!("{secret}\n")).unwrap();
        crate::tls::set_mode(&private, 0o600);
        crate::tls::set_mode(&dir, 0o755);
        crate::tls::set_mode(&secrets, 0o755);
        let output = portcullis(&dir)
            .args(["keys", "list"])
            .env("AUTH_JWT_SECRET_FILE", &private)
            .env("DATABASE_URL", "sqlite:///nonexistent/never.db")
            .uid(65_534)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains("Permission denied"), "{}", stderr(&output));
    }

    // Every other secret has its file form too.
    let help = String::from_utf8(portcullis(&dir).arg("--help").output().unwrap().stdout).unwrap();
    for variable in [
        "AUTH_JWT_SECRET_FILE",
        "AUTH_JWT_PREVIOUS_SECRET_FILE",
        "AUTH_KEY_ENCRYPTION_KEY_FILE",
        "AUTH_GITHUB_CLIENT_SECRET_FILE",
        "AUTH_LINKEDIN_CLIENT_SECRET_FILE",
        "AUTH_GOOGLE_CLIENT_SECRET_FILE",
        "DATABASE_URL_FILE",
        "AUTH_SMTP_URL_FILE",
        "AUTH_REDIS_URL_FILE",
    ] {
        assert!(help.contains(&format!("[env: {variable}=")), "--help lists {variable}");
    }
}

#[test]
fn healthcheck_exits_zero_only_while_the_service_is_healthy() {
    let dir = scratch();
    let (child, port) = start_with(&dir, &[]);
    for bind in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let output = portcullis(&dir).arg("healthcheck").env("AUTH_BIND", &bind).output().unwrap();
        assert!(output.status.success(), "{bind}: {}", stderr(&output));
    }
    stop(child);
    let output =
        portcullis(&dir).arg("healthcheck").env("AUTH_BIND", format!("127.0.0.1:{port}")).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unhealthy"), "{}", stderr(&output));
}

/// What `sql` selects from the SQLite file at `db`, one line per row, read by
/// another program (Python's sqlite3), as anyone opening a backup would.
fn sqlite_strings(db: &Path, sql: &str) -> Vec<String> {
    let script = "import sqlite3, sys\n\
                  rows = sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchall()\n\
                  print('\\n'.join(str(row[0]) for row in rows))";
    let output = Command::new("python3").args(["-c", script]).arg(db).arg(sql).output().unwrap();
    assert!(output.status.success(), "python3 sqlite3: {}", stderr(&output));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn a_backup_taken_under_load_is_consistent_and_restore_waits_for_the_instance_to_stop() {
    let dir = scratch();
    let db = dir.join("data/portcullis.db");
    let (child, port) = start_with(&dir, &[("AUTH_RATE_LIMITS", "off")]);

    // Eight clients register without pause; each 201 is noted with its time.
    let acknowledged: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(true));
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (acknowledged, running, next) =
                (Arc::clone(&acknowledged), Arc::clone(&running), Arc::clone(&next));
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    let email = format!("load{}@example.com", next.fetch_add(1, Ordering::Relaxed));
                    if register(port, &email).starts_with("HTTP/1.1 201") {
                        acknowledged.lock().unwrap().push((Instant::now(), email));
                    }
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < 8 {
        std::thread::sleep(Duration::from_millis(50));
    }

    let backup = dir.join("backups/first.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let backup_started = Instant::now();
    let output = portcullis(&dir).args(["backup", "--to", backup.to_str().unwrap()]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // The load goes on a little after the copy.
    std::thread::sleep(Duration::from_millis(300));
    running.store(false, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }

    assert_eq!(mode(&backup), 0o600, "the backup is private");
    assert_eq!(
        sqlite_strings(&backup, "SELECT integrity_check AS value FROM pragma_integrity_check"),
        ["ok"]
    );
    let in_backup = sqlite_strings(&backup, "SELECT email AS value FROM users");
    let before: Vec<String> = acknowledged
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at < backup_started)
        .map(|(_, email)| email.clone())
        .collect();
    assert!(!before.is_empty());
    for email in &before {
        assert!(in_backup.contains(email), "{email} was acknowledged before the backup began");
    }
    let leftovers: Vec<_> = std::fs::read_dir(backup.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["first.db"], "nothing but the backup is left beside it");

    // A backup never overwrites.
    let again = portcullis(&dir).args(["backup", "--to", backup.to_str().unwrap()]).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("exists already"), "{}", stderr(&again));

    // A user registered after the backup, to see the restore take it away.
    assert!(register(port, "after@example.com").starts_with("HTTP/1.1 201"));

    // Restoring under the running instance is refused, and changes nothing.
    let refused = portcullis(&dir).args(["restore", "--from", backup.to_str().unwrap()]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("an instance is using"), "{}", stderr(&refused));
    assert!(login(port, "after@example.com").starts_with("HTTP/1.1 200"));
    stop(child);

    // Stopped: the restore goes through, and the restored service has the
    // backup's users and not the later one.
    let restored = portcullis(&dir).args(["restore", "--from", backup.to_str().unwrap()]).output().unwrap();
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert!(!PathBuf::from(format!("{}-wal", db.display())).exists(), "the old log went with the old file");
    let (child, port) = start_with(&dir, &[]);
    assert!(login(port, before.first().unwrap()).starts_with("HTTP/1.1 200"));
    assert!(login(port, "after@example.com").starts_with("HTTP/1.1 401"));
    stop(child);

    // Not a Portcullis database: refused.
    let junk = dir.join("junk.db");
    std::fs::write(&junk, "not a database").unwrap();
    let refused = portcullis(&dir).args(["restore", "--from", junk.to_str().unwrap()]).output().unwrap();
    assert_ne!(refused.status.code(), Some(0));
    // On PostgreSQL, the commands point at PostgreSQL's own tools.
    let output = portcullis(&dir)
        .args(["backup", "--to", "x.db"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("pg_dump"), "{}", stderr(&output));
}

#[test]
fn a_backup_onto_a_full_disk_fails_cleanly() {
    let dir = scratch();
    let (child, port) = start_with(&dir, &[("AUTH_RATE_LIMITS", "off")]);
    for i in 0..4 {
        assert!(register(port, &format!("full{i}@example.com")).starts_with("HTTP/1.1 201"));
    }
    let small = dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"]).arg(&small).status();
    if !mounted.is_ok_and(|s| s.success()) {
        crate::tls::skip("a full disk needs a small tmpfs, and mount is not permitted here");
        stop(child);
        return;
    }
    let target = small.join("backup.db");
    let output = portcullis(&dir).args(["backup", "--to", target.to_str().unwrap()]).output().unwrap();
    let left: Vec<_> = std::fs::read_dir(&small).unwrap().collect();
    let _ = Command::new("umount").arg(&small).status();
    stop(child);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("full"), "{}", stderr(&output));
    assert!(left.is_empty(), "nothing half-written is left: {left:?}");
}

#[test]
fn completion_scripts_know_the_commands() {
    let dir = scratch();
    for (shell, marker) in
        [("bash", "_portcullis()"), ("zsh", "#compdef portcullis"), ("fish", "complete -c portcullis")]
    {
        let output = portcullis(&dir).args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains(marker), "{shell}");
        for command in ["healthcheck", "backup", "restore", "create-admin", "migrate"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
}

/// The binary as the image runs it: an unprivileged user, a working folder it
/// cannot write, a data folder it owns, every interface, secrets from files.
#[test]
fn the_binary_runs_as_the_image_runs_it() {
    if !crate::tls::is_root_user() {
        crate::tls::skip("running as another user needs root");
        return;
    }
    let root = scratch();
    crate::tls::set_mode(&root, 0o755);
    let (work, data, secrets) = (root.join("app"), root.join("data"), root.join("run-secrets"));
    for folder in [&work, &data, &secrets] {
        std::fs::create_dir_all(folder).unwrap();
        crate::tls::set_mode(folder, 0o755);
    }
    let nobody = 65_534;
    std::os::unix::fs::chown(&data, Some(nobody), Some(nobody)).unwrap();
    crate::tls::set_mode(&data, 0o700);
    let jwt = secrets.join("jwt_secret");
    std::fs::write(&jwt, "image-secret-image-secret-image-secret-42\n").unwrap();
    std::os::unix::fs::chown(&jwt, Some(nobody), Some(nobody)).unwrap();
    crate::tls::set_mode(&jwt, 0o400);

    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let envs = [
        ("AUTH_BIND", format!("0.0.0.0:{port}")),
        ("AUTH_ENV", "production".to_owned()),
        ("AUTH_PUBLIC_URL", format!("http://localhost:{port}")),
        ("DATABASE_URL", format!("sqlite://{}/portcullis.db", data.display())),
        ("AUTH_JWT_SECRET_FILE", jwt.display().to_string()),
        ("AUTH_JWT_ALGORITHM", "HS256".to_owned()),
    ];
    let mut command = portcullis(&work);
    command
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .uid(nobody)
        .gid(nobody)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().map(Server).unwrap();
    let started = Instant::now();
    let healthy = loop {
        let check = portcullis(&work)
            .arg("healthcheck")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .uid(nobody)
            .output()
            .unwrap();
        if check.status.success() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(healthy, "portcullis healthcheck passes as the image's HEALTHCHECK runs it");
    assert!(register(port, "image@example.com").starts_with("HTTP/1.1 201"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.split_whitespace().skip(1).all(|uid| uid == "65534"), "{uid_line}");
    assert!(child.stop().success(), "stops gracefully");
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0, "nothing is written outside the data folder");
    assert!(data.join("portcullis.db").exists());
    assert_eq!(mode(&data.join("portcullis.db")), 0o600);
}
