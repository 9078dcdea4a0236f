//! The seed's client examples, as our own Python (requests) and JavaScript
//! (fetch on node) programs in `tests/clients/`, run against a live server.

use std::path::PathBuf;
use std::process::Command;

use crate::both_backends;
use crate::helpers::TestApp;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

/// Whether `program --version` runs, and for Python whether `requests` imports.
/// Missing tools skip the test locally, but fail it in CI (`CI` set).
fn available(program: &str, check: &[&str]) -> bool {
    let ok = Command::new(program).args(check).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{program} is required in CI for the client tests");
        portcullis_store_postgres::testing::say_skipped(&format!(
            "{program} (with what the client test needs) is not installed"
        ));
    }
    ok
}

fn run(program: &str, script: &str, app: &TestApp, email: &str) {
    let output = Command::new(program)
        .arg(clients_dir().join(script))
        .env("PORTCULLIS_URL", &app.base)
        .env("PORTCULLIS_EMAIL", email)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

both_backends! {
    async fn the_python_client_works_unchanged(app: &TestApp) {
        if available("python3", &["-c", "import requests"]) {
            let app_ref = app;
            tokio::task::block_in_place(|| run("python3", "seed_client.py", app_ref, "py-user@example.com"));
        }
    }

    async fn the_python_api_key_client_works_unchanged(app: &TestApp) {
        if available("python3", &["-c", "import requests"]) {
            let app_ref = app;
            tokio::task::block_in_place(|| run("python3", "seed_api_keys.py", app_ref, "py-keys@example.com"));
        }
    }

    async fn the_javascript_client_works_unchanged(app: &TestApp) {
        if available("node", &["-e", "if (typeof fetch !== 'function') process.exit(1)"]) {
            let app_ref = app;
            tokio::task::block_in_place(|| run("node", "seed_client.mjs", app_ref, "js-user@example.com"));
        }
    }
}
