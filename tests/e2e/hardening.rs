//! The rules of the hardening addendum, each over a real socket: lockouts
//! that a guesser cannot turn against the owner, per-address limits that
//! cannot be stepped around, the response headers, strict bodies, passwords
//! that mean the same on every keyboard, and private files.

use portcullis_domain::{AuditKind, AuditQuery, Password};
use reqwest::Response;
use serde_json::json;

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error};

/// A server behind a trusted proxy on 127.0.0.1, so each request can say
/// which client it comes from in `X-Forwarded-For`.
async fn behind_proxy(backend: Backend, limits: &'static str) -> Option<TestApp> {
    let options =
        Options { rate_limits: Some(limits), trusted_proxies: Some("127.0.0.1"), ..Options::default() };
    TestApp::spawn_with(backend, options).await
}

async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> Response {
    app.client
        .post(app.url("/v1/auth/login-json"))
        .header("X-Forwarded-For", client)
        .json(&json!({"username": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn events(app: &TestApp, kind: AuditKind) -> Vec<Option<String>> {
    let query = AuditQuery { user_id: None, kind: Some(kind), before: None, limit: 100 };
    app.audit.list_events(query).await.unwrap().into_iter().map(|e| e.detail).collect()
}

async fn the_owner_signs_in_from_another_address_while_a_guesser_is_locked(backend: Backend) {
    let Some(app) = behind_proxy(backend, "login=off").await else { return };
    app.register("owner@example.com").await;
    for _ in 0..5 {
        let guess = login_from(&app, "198.51.100.66", "owner@example.com", "WrongPass123!").await;
        expect_error(guess, 401, "invalid_credentials").await;
    }
    let locked = login_from(&app, "198.51.100.66", "owner@example.com", PASSWORD).await;
    expect_error(locked, 429, "rate_limited").await;
    let owner = login_from(&app, "203.0.113.5", "owner@example.com", PASSWORD).await;
    assert_eq!(owner.status(), 200, "the guesser's lockout is the guesser's");
    assert_eq!(events(&app, AuditKind::AccountLocked).await, [Some("failed_logins".to_owned())]);
}

async fn six_failures_from_six_addresses_spend_an_account_wide_budget_of_six(backend: Backend) {
    let Some(app) = behind_proxy(backend, "login=off,failed_login_account=6/900").await else { return };
    app.register("spread@example.com").await;
    for i in 1..=6 {
        let guess = login_from(&app, &format!("198.51.100.{i}"), "spread@example.com", "WrongPass123!").await;
        expect_error(guess, 401, "invalid_credentials").await;
    }
    for client in ["198.51.100.7", "203.0.113.5"] {
        let refused = login_from(&app, client, "spread@example.com", PASSWORD).await;
        assert!(refused.headers().contains_key("retry-after"));
        expect_error(refused, 429, "rate_limited").await;
    }
    assert!(events(&app, AuditKind::AccountLocked).await.contains(&Some("failed_logins_account".to_owned())));
    app.clock.advance(time::Duration::seconds(900));
    assert_eq!(login_from(&app, "203.0.113.5", "spread@example.com", PASSWORD).await.status(), 200);
}

async fn three_wrong_current_passwords_lock_the_pair(backend: Backend) {
    let Some(app) = behind_proxy(backend, "login=off,failed_login=3/900").await else { return };
    let token = app.token_for("changer@example.com").await;
    let change = |current: &'static str| {
        app.client
            .post(app.url("/v1/auth/change-password"))
            .header("X-Forwarded-For", "198.51.100.9")
            .bearer_auth(&token)
            .json(&json!({"current_password": current, "new_password": "NewSecurePass456!"}))
            .send()
    };
    for _ in 0..3 {
        expect_error(change("WrongPass123!").await.unwrap(), 400, "invalid_current_password").await;
    }
    expect_error(change(PASSWORD).await.unwrap(), 429, "rate_limited").await;
    let same_address = login_from(&app, "198.51.100.9", "changer@example.com", PASSWORD).await;
    expect_error(same_address, 429, "rate_limited").await;
    let elsewhere = login_from(&app, "203.0.113.5", "changer@example.com", PASSWORD).await;
    assert_eq!(elsewhere.status(), 200, "only the pair is locked");
}

crate::on_both_backends!(
    the_owner_signs_in_from_another_address_while_a_guesser_is_locked,
    six_failures_from_six_addresses_spend_an_account_wide_budget_of_six,
    three_wrong_current_passwords_lock_the_pair,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_two_logins_from_one_ipv6_64_are_limited_at_twenty() {
    let app = behind_proxy(Backend::Sqlite, "failed_login=off").await.unwrap();
    let mut statuses = Vec::new();
    for i in 1..=22 {
        let client = format!("2001:db8:aa:bb:{i:x}::{i:x}");
        statuses.push(login_from(&app, &client, "nobody@example.com", "x").await.status().as_u16());
    }
    assert_eq!(statuses[..20], [401; 20], "{statuses:?}");
    assert_eq!(statuses[20..], [429, 429], "{statuses:?}");
    let other_64 = login_from(&app, "2001:db8:aa:cc::1", "nobody@example.com", "x").await;
    assert_eq!(other_64.status(), 401, "another /64 has its own budget");
    // An IPv4-mapped address is the IPv4 client.
    for _ in 0..20 {
        login_from(&app, "192.0.2.1", "nobody@example.com", "x").await;
    }
    expect_error(login_from(&app, "::ffff:192.0.2.1", "nobody@example.com", "x").await, 429, "rate_limited")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotating_entry_left_of_unknown_is_limited() {
    let app = behind_proxy(Backend::Sqlite, "login=2/60,failed_login=off").await.unwrap();
    let mut statuses = Vec::new();
    for i in 1..=4 {
        let forwarded = format!("198.51.100.{i}, unknown");
        statuses.push(login_from(&app, &forwarded, "nobody@example.com", "x").await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429, 429], "the client cannot hide behind a malformed hop");
    let with_port = login_from(&app, "198.51.100.50, 203.0.113.9:4711", "nobody@example.com", "x").await;
    expect_error(with_port, 429, "rate_limited").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_test_user_draws_from_the_register_budget() {
    let options = Options { rate_limits: Some("register=3/60"), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let create = |i: u32| {
        let body = json!({"email": format!("t{i}@example.com"), "password": PASSWORD});
        app.client.post(app.url("/v1/test-auth/create-test-user")).json(&body).send()
    };
    for i in 0..2 {
        assert_eq!(create(i).await.unwrap().status(), 201);
    }
    app.register("mixed@example.com").await;
    expect_error(create(9).await.unwrap(), 429, "rate_limited").await;
    let register =
        app.post_json("/v1/auth/register", &json!({"email": "late@example.com", "password": PASSWORD})).await;
    expect_error(register, 429, "rate_limited").await;
}

fn assert_secure_headers(response: &Response, what: &str) {
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{what}");
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{what}");
    assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for path in ["/healthz", "/no/such/route", "/openapi.json", "/docs/"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_secure_headers(&response, path);
        assert!(!response.headers().contains_key("strict-transport-security"), "plain HTTP: no HSTS");
    }
    let error = app.post_json("/v1/auth/login-json", &json!({})).await;
    assert_secure_headers(&error, "an error");

    let options = Options { public_url: Some("https://auth.example.com"), ..Options::default() };
    let https = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let response = https.client.get(https.url("/healthz")).send().await.unwrap();
    assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_successes_carry_the_principals_budget() {
    let options = Options { rate_limits: Some("authenticated=5/60"), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let token = app.token_for("counted@example.com").await;
    let remaining = |response: &Response| -> Option<u64> {
        response.headers().get("x-ratelimit-remaining")?.to_str().ok()?.parse().ok()
    };
    let me = app.get_with("/v1/auth/me", &token).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()["x-ratelimit-limit"], "5");
    assert_eq!(remaining(&me), Some(4));
    assert!(me.headers().contains_key("x-ratelimit-reset"));
    let projects = app.get_with("/v1/database/projects", &token).await;
    assert_eq!(remaining(&projects), Some(3), "one budget for the principal");
    let refreshed = app.post_with("/v1/auth/refresh", &token).await;
    assert_eq!(refreshed.status(), 200);
    assert_eq!(remaining(&refreshed), Some(2), "refresh counts and says so");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_after_the_json_value_is_a_malformed_body() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let send = |body: &'static str| {
        app.client
            .post(app.url("/v1/auth/login-json"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let trailing = send(r#"{"username": "a@example.com", "password": "x"}{"b": 2}"#).await.unwrap();
    expect_error(trailing, 400, "malformed_body").await;
    // Before any field is looked at: a missing password would be a 422.
    expect_error(send(r#"{"a":1}{"b":2}"#).await.unwrap(), 400, "malformed_body").await;
    let echoed = send(r#"{"username": "a@example.com", "password": 12345678901}"#).await.unwrap();
    let body = expect_error(echoed, 422, "invalid_field").await;
    assert_eq!(body["errors"][0]["field"], "password");
    assert!(!body.to_string().contains("12345678901"), "no input echoed: {body}");
    let broken = send(r#"{"username": "SECRET-INPUT"#).await.unwrap();
    let body = expect_error(broken, 400, "malformed_body").await;
    assert!(!body.to_string().contains("SECRET-INPUT"), "{body}");
}

crate::both_backends! {
    async fn the_nfkc_pair_is_one_password(app: &TestApp) {
        // "Ångström" precomposed, and with a combining ring; full-width digits.
        let composed = "\u{c5}ngstr\u{f6}m123!";
        let decomposed = "A\u{30a}ngstro\u{308}m\u{ff11}\u{ff12}\u{ff13}!";
        let response = app
            .post_json("/v1/auth/register", &json!({"email": "nfkc@example.com", "password": composed}))
            .await;
        assert_eq!(response.status(), 201);
        assert_eq!(app.login("nfkc@example.com", decomposed).await.status(), 200);
        assert_eq!(app.login("nfkc@example.com", composed).await.status(), 200);
    }

    async fn a_hash_of_the_typed_form_still_verifies_and_is_made_again(app: &TestApp) {
        use portcullis_domain::ports::Clock;

        app.register("legacy@example.com").await;
        let typed = "Caf\u{65}\u{301}Latte123!";
        let user = app.user("legacy@example.com").await;
        // A hash made before normalisation: of the password exactly as typed.
        let raw = Password::new(typed).as_typed().expect("this password changes when normalised");
        let hasher = portcullis_testkit::cheap_hasher();
        let old = hasher.hash(raw).await.unwrap();
        app.users.set_password(user.id, old.clone(), app.clock.now()).await.unwrap();
        assert_eq!(app.login("legacy@example.com", typed).await.status(), 200);
        let upgraded = app.user("legacy@example.com").await.password_hash.unwrap();
        assert_ne!(upgraded, old, "re-hashed at the login");
        assert_eq!(app.login("legacy@example.com", "Caf\u{e9}Latte123!").await.status(), 200, "now either form");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_private_and_a_readable_secret_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;

    use clap::Parser;

    let dir = std::env::temp_dir().join(format!("portcullis-modes-{}", uuid::Uuid::new_v4()));
    let db = dir.join("data").join("p.db");
    let url = format!("sqlite://{}", db.display());
    let args = ["portcullis", "--database-url", url.as_str(), "--env", "development"];
    let config = portcullis::Cli::try_parse_from(args).unwrap().config;
    let app = portcullis::App::build(&config, std::sync::Arc::new(portcullis_testkit::ManualClock::new()))
        .await
        .unwrap();
    // Writing something makes SQLite create its -wal and -shm files.
    app.services
        .accounts
        .create_user(
            portcullis_domain::Registration {
                email: "modes@example.com".to_owned(),
                password: Password::new(PASSWORD),
                full_name: None,
            },
            portcullis_domain::Role::User,
        )
        .await
        .unwrap();
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    // A development deployment signs with ES256: its generated secret is the key-encryption key.
    let secret = dir.join("data").join("key-encryption-key");
    for file in [db.clone(), dir.join("data/p.db-wal"), dir.join("data/p.db-shm"), secret.clone()] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&dir.join("data")), 0o700);
    drop(app);

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused =
        portcullis::App::build(&config, std::sync::Arc::new(portcullis_testkit::ManualClock::new()))
            .await
            .expect_err("a secret file others can read is refused");
    let message = refused.to_string();
    assert!(message.contains("key-encryption-key") && message.contains("readable by others"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}
