//! The built-in pages the emailed links open: served as HTML with a strict
//! policy, and used in a real headless Chromium (Debian's, driven by
//! Playwright: `tests/browser/pages.mjs`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error};
use crate::smtp::SmtpServer;

const WAIT: Duration = Duration::from_secs(10);

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// Whether Chromium and the driver are installed: skipped locally without
/// them, a failure in CI (`CI` set), which installs both.
fn browser_available() -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let ok = std::path::Path::new(&chromium).exists()
        && browser_dir().join("node_modules/playwright-core").exists()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser tests need chromium and `npm ci --prefix tests/browser` in CI"
        );
        portcullis_store_postgres::testing::say_skipped(
            "the browser test needs /usr/bin/chromium and `npm ci --prefix tests/browser`",
        );
    }
    ok
}

/// The link of an email, pointed at this server (the emails carry the
/// configured public URL).
fn local(app: &TestApp, link: &str) -> String {
    let path = &link[link.find("://").map_or(0, |i| i + 3)..];
    let path = &path[path.find('/').unwrap_or(path.len())..];
    format!("{}{path}", app.base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emailed_links_work_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let smtp = SmtpServer::start().await;
    let options = Options { smtp_url: Some(smtp.url()), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let registered = app.register("browser@example.com").await;
    let access = registered["access_token"].as_str().unwrap().to_owned();
    let verify = smtp.wait_for_verification("browser@example.com", 0, WAIT).await.unwrap().link().unwrap();
    app.post_json("/v1/auth/forgot-password", &json!({"email": "browser@example.com"})).await;
    let reset = smtp.wait_for_reset("browser@example.com", WAIT).await.unwrap().link().unwrap();
    assert!(verify.contains("/verify-email?token=pev_") && reset.contains("/reset-password?token=prt_"));

    let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts/pages");
    let (base, verify, reset) = (app.base.clone(), local(&app, &verify), local(&app, &reset));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(browser_dir().join("pages.mjs"))
            .env("PORTCULLIS_URL", base)
            .env("VERIFY_LINK", verify)
            .env("RESET_LINK", reset)
            .env("ACCESS_TOKEN", access)
            .env("WEAK_PASSWORD", "password")
            .env("NEW_PASSWORD", "Sturdy-Gate-2026!")
            .env("SCREENSHOTS", &screenshots)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "pages.mjs failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The password typed into the page is the one that signs in now.
    expect_error(app.login("browser@example.com", PASSWORD).await, 401, "invalid_credentials").await;
    assert_eq!(app.login("browser@example.com", "Sturdy-Gate-2026!").await.status(), 200);
    assert!(app.user("browser@example.com").await.email_verified);
}

/// The pages as HTTP sees them: headers, the token kept out of the HTML,
/// and bad links answered with a page, never an error from the server.
async fn pages_over_http(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let token = format!("pev_{}", "A".repeat(49));
    for (path, marker) in [("/verify-email", "id=\"verify\""), ("/reset-password", "id=\"reset-form\"")] {
        let prefix = if path == "/verify-email" { "pev_" } else { "prt_" };
        let token = token.replacen("pev_", prefix, 1);
        let response = app.client.get(app.url(&format!("{path}?token={token}"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in
            ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]
        {
            assert!(csp.contains(directive), "{csp}");
        }
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let html = response.text().await.unwrap();
        assert!(html.contains(marker), "{html}");
        assert!(!html.contains(&token), "the token is not written into the page");
        assert!(!html.contains("<script>") && !html.contains("style="), "nothing inline");

        for bad in [
            String::new(),
            "?token=".to_owned(),
            format!("?token={}", "x".repeat(10_000)),
            "?token=%3Cscript%3E".to_owned(),
        ] {
            let response = app.client.get(app.url(&format!("{path}{bad}"))).send().await.unwrap();
            assert_eq!(response.status(), 400, "{path}{}", &bad[..bad.len().min(40)]);
            let html = response.text().await.unwrap();
            assert!(html.contains("incomplete") && !html.contains(marker), "{html}");
        }
    }
    for (asset, kind) in
        [("/assets/portcullis-pages.js", "text/javascript"), ("/assets/portcullis-pages.css", "text/css")]
    {
        let response = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(kind));
    }
}

crate::on_both_backends!(pages_over_http);
