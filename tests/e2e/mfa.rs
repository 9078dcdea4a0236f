//! Two-factor sign-in over the socket: TOTP set-up, confirmation, the login
//! step, replays, recovery codes, the guess limit, and turning it off. The
//! codes come from an implementation the product does not use: Python's
//! `pyotp`, run as a separate program.

use std::process::Command;

use portcullis_domain::ports::Clock;
use serde_json::{Value, json};

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error, token_of};
use crate::oauth::{fake_github, github_login, octocat};

/// Whether `pyotp` imports: skipped locally without it, a failure in CI
/// (`.ci/run` installs it).
fn pyotp_available() -> bool {
    let ok = Command::new("python3").args(["-c", "import pyotp"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "pyotp is required in CI for the MFA tests");
        portcullis_store_postgres::testing::say_skipped("the MFA tests need pyotp (pip install pyotp)");
    }
    ok
}

/// The code of `secret` (base32) at the server's current time, by pyotp.
fn code(app: &TestApp, secret: &str) -> String {
    code_at(secret, app.clock.now().unix_timestamp())
}

fn code_at(secret: &str, unix: i64) -> String {
    let output = Command::new("python3")
        .args([
            "-c",
            "import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &unix.to_string(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(token).json(body).send().await.unwrap()
}

async fn disable(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.client.delete(app.url("/v1/auth/mfa/totp")).bearer_auth(token).json(body).send().await.unwrap()
}

/// Sets TOTP up for the holder of `token` and confirms it; the secret and the recovery codes.
async fn enable(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let response = post(app, "/v1/auth/mfa/totp/setup", token, &json!({})).await;
    assert_eq!(response.status(), 200);
    let setup: Value = response.json().await.unwrap();
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let response = post(app, "/v1/auth/mfa/totp/confirm", token, &json!({"code": code(app, &secret)})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let codes =
        body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (secret, codes)
}

/// A password login that must stop at the second step; its `mfa_token`.
async fn first_step(app: &TestApp, email: &str) -> String {
    let response = app.login(email, PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("access_token").is_none(), "no session before the second step: {body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(app: &TestApp, mfa_token: &str, code: &str) -> reqwest::Response {
    app.post_json("/v1/auth/mfa/verify", &json!({"mfa_token": mfa_token, "code": code})).await
}

async fn totp_is_set_up_confirmed_and_asked_for_at_sign_in(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    if !pyotp_available() {
        return;
    }
    let email = "second@example.com";
    let token = app.token_for(email).await;
    let other = token_of(app.login(email, PASSWORD).await).await;
    let response = post(&app, "/v1/auth/mfa/totp/setup", &token, &json!({})).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let setup: Value = response.json().await.unwrap();
    let secret = setup["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/portcullis%3Asecond%40example.com?secret="), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=portcullis"), "{uri}");
    let svg = setup["qr_svg"].as_str().unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{}", &svg[..svg.len().min(80)]);
    let me: Value = app.get_with("/v1/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], false, "not on until confirmed");
    let one_step: Value = app.login(email, PASSWORD).await.json().await.unwrap();
    assert!(one_step["access_token"].is_string(), "sign-in is still one step: {one_step}");

    expect_error(
        post(&app, "/v1/auth/mfa/totp/confirm", &token, &json!({"code": "000000"})).await,
        400,
        "invalid_mfa_code",
    )
    .await;
    let now = app.clock.now().unix_timestamp();
    let response =
        post(&app, "/v1/auth/mfa/totp/confirm", &token, &json!({"code": code_at(secret, now)})).await;
    assert_eq!(response.status(), 200);
    let codes: Value = response.json().await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
    let me: Value = app.get_with("/v1/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], true);
    expect_error(app.get_with("/v1/auth/me", &other).await, 401, "session_ended").await;
    expect_error(post(&app, "/v1/auth/mfa/totp/setup", &token, &json!({})).await, 409, "mfa_already_enabled")
        .await;

    // The sign-in now stops at the second step; the confirming code is spent.
    let mfa_token = first_step(&app, email).await;
    expect_error(second_step(&app, &mfa_token, &code_at(secret, now)).await, 401, "invalid_mfa_code").await;
    app.clock.advance(time::Duration::seconds(30));
    let fresh = code(&app, secret);
    let response = second_step(&app, &mfa_token, &fresh).await;
    assert_eq!(response.status(), 200);
    let signed_in = token_of(response).await;
    let sessions: Value = app.get_with("/v1/auth/sessions", &signed_in).await.json().await.unwrap();
    let current = sessions.as_array().unwrap().iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(current["mfa"], true, "{current}");
    // The same code again, on a new sign-in: refused (a replay).
    let again = first_step(&app, email).await;
    expect_error(second_step(&app, &again, &fresh).await, 401, "invalid_mfa_code").await;
    // A used mfa_token is dead.
    expect_error(second_step(&app, &mfa_token, &code(&app, secret)).await, 401, "invalid_mfa_token").await;

    let kinds = crate::audit::own_event_types(&app, &signed_in).await;
    assert!(kinds.contains(&"mfa_enabled".to_owned()), "{kinds:?}");
    crate::audit::assert_no_secret(&app, &[secret, &mfa_token, &fresh]).await;
}

async fn recovery_codes_work_once_and_end_the_other_sessions(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    if !pyotp_available() {
        return;
    }
    let email = "lost-phone@example.com";
    let token = app.token_for(email).await;
    let (secret, codes) = enable(&app, &token).await;
    let mfa_token = first_step(&app, email).await;
    let response = second_step(&app, &mfa_token, &codes[0].to_uppercase()).await;
    assert_eq!(response.status(), 200, "a recovery code stands in for the app (any case)");
    let signed_in = token_of(response).await;
    expect_error(app.get_with("/v1/auth/me", &token).await, 401, "session_ended").await;
    let again = first_step(&app, email).await;
    expect_error(second_step(&app, &again, &codes[0]).await, 401, "invalid_mfa_code").await;
    let kinds = crate::audit::own_event_types(&app, &signed_in).await;
    assert!(kinds.contains(&"recovery_code_used".to_owned()), "{kinds:?}");

    // A fresh set voids the old one.
    app.clock.advance(time::Duration::seconds(30));
    let response =
        post(&app, "/v1/auth/mfa/recovery-codes", &signed_in, &json!({"code": code(&app, &secret)})).await;
    assert_eq!(response.status(), 200);
    let fresh: Value = response.json().await.unwrap();
    let fresh = fresh["recovery_codes"][0].as_str().unwrap().to_owned();
    expect_error(second_step(&app, &again, &codes[1]).await, 401, "invalid_mfa_code").await;
    assert_eq!(second_step(&app, &again, &fresh).await.status(), 200);
    crate::audit::assert_no_secret(&app, &[&codes[0], &codes[1], &fresh]).await;
}

async fn five_wrong_codes_kill_the_mfa_token_and_count_as_failed_logins(backend: Backend) {
    let options =
        Options { rate_limits: Some("failed_login=8/900,failed_login_account=50/900"), ..Options::default() };
    let Some(app) = TestApp::spawn_with(backend, options).await else { return };
    if !pyotp_available() {
        return;
    }
    let email = "guessed@example.com";
    let token = app.token_for(email).await;
    let (secret, _) = enable(&app, &token).await;
    app.clock.advance(time::Duration::seconds(30));
    let mfa_token = first_step(&app, email).await;
    let right = code(&app, &secret);
    let wrong = if right == "123456" { "654321" } else { "123456" };
    for _ in 0..5 {
        expect_error(second_step(&app, &mfa_token, wrong).await, 401, "invalid_mfa_code").await;
    }
    expect_error(second_step(&app, &mfa_token, &right).await, 401, "invalid_mfa_token").await;
    // Five failed logins of eight: three more (wrong passwords) and the account is locked here.
    for _ in 0..3 {
        expect_error(app.login(email, "WrongPass999!").await, 401, "invalid_credentials").await;
    }
    expect_error(app.login(email, PASSWORD).await, 429, "rate_limited").await;
}

async fn disabling_needs_the_password_and_a_code(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    if !pyotp_available() {
        return;
    }
    let email = "done-with-it@example.com";
    let token = app.token_for(email).await;
    let (secret, _) = enable(&app, &token).await;
    app.clock.advance(time::Duration::seconds(30));
    let current = code(&app, &secret);
    expect_error(disable(&app, &token, &json!({"code": current})).await, 400, "invalid_current_password")
        .await;
    expect_error(
        disable(&app, &token, &json!({"password": "WrongPass999!", "code": current})).await,
        400,
        "invalid_current_password",
    )
    .await;
    expect_error(
        disable(&app, &token, &json!({"password": PASSWORD, "code": "000000"})).await,
        400,
        "invalid_mfa_code",
    )
    .await;
    expect_error(
        disable(&app, &token, &json!({"password": PASSWORD, "code": "12345"})).await,
        400,
        "invalid_mfa_code",
    )
    .await;
    expect_error(disable(&app, &token, &json!({"password": PASSWORD})).await, 422, "invalid_field").await;
    // A code spent at a sign-in is refused for disabling too (the same step).
    let mfa_token = first_step(&app, email).await;
    let response = second_step(&app, &mfa_token, &current).await;
    assert_eq!(response.status(), 200);
    let elsewhere = token_of(response).await;
    expect_error(
        disable(&app, &token, &json!({"password": PASSWORD, "code": current})).await,
        400,
        "invalid_mfa_code",
    )
    .await;
    app.clock.advance(time::Duration::seconds(30));
    let current = code(&app, &secret);
    let response = disable(&app, &token, &json!({"password": PASSWORD, "code": current})).await;
    assert_eq!(response.status(), 200);
    expect_error(app.get_with("/v1/auth/me", &elsewhere).await, 401, "session_ended").await;
    let me: Value = app.get_with("/v1/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], false);
    let login: Value = app.login(email, PASSWORD).await.json().await.unwrap();
    assert!(login["access_token"].is_string(), "one step again: {login}");
    let kinds = crate::audit::own_event_types(&app, &token).await;
    assert!(kinds.contains(&"mfa_disabled".to_owned()), "{kinds:?}");
}

async fn every_sign_in_asks_for_the_second_factor(backend: Backend) {
    let github = fake_github(octocat("both-ways@example.com")).await;
    let options = Options { github_url: Some(github.uri()), ..Options::default() };
    let Some(app) = TestApp::spawn_with(backend, options).await else { return };
    if !pyotp_available() {
        return;
    }
    let first = github_login(&app).await;
    let token = first["access_token"].as_str().unwrap().to_owned();
    let (secret, _) = enable(&app, &token).await;
    app.clock.advance(time::Duration::seconds(30));
    // OAuth: no password needed to turn it off later, but the sign-in asks for a code.
    let body = github_login(&app).await;
    assert_eq!(body["mfa_required"], true, "{body}");
    let response = second_step(&app, body["mfa_token"].as_str().unwrap(), &code(&app, &secret)).await;
    assert_eq!(response.status(), 200);
    let signed_in = token_of(response).await;
    let sessions: Value = app.get_with("/v1/auth/sessions", &signed_in).await.json().await.unwrap();
    let current = sessions.as_array().unwrap().iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(
        (current["method"].as_str(), current["mfa"].as_bool()),
        (Some("github"), Some(true)),
        "{current}"
    );

    // test-login too.
    let created = app
        .post_json(
            "/v1/test-auth/create-test-user",
            &json!({"email": "tester@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let tester = token_of(app.login("tester@example.com", PASSWORD).await).await;
    enable(&app, &tester).await;
    let login: Value = app
        .post_json("/v1/test-auth/test-login", &json!({"email": "tester@example.com", "password": PASSWORD}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(login["mfa_required"], true, "{login}");
    // Turning it off without a password (an OAuth-only account): a code alone.
    app.clock.advance(time::Duration::seconds(30));
    let current = code(&app, &secret);
    assert_eq!(disable(&app, &signed_in, &json!({"code": current})).await.status(), 200);
}

async fn bad_second_factor_input_gets_the_contracts_errors(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    if !pyotp_available() {
        return;
    }
    let (ada, bob) = ("ada-mfa@example.com", "bob-mfa@example.com");
    let ada_token = app.token_for(ada).await;
    let bob_token = app.token_for(bob).await;
    // A second set-up racing a confirm: the code of the replaced secret fails.
    let first: Value =
        post(&app, "/v1/auth/mfa/totp/setup", &ada_token, &json!({})).await.json().await.unwrap();
    post(&app, "/v1/auth/mfa/totp/setup", &ada_token, &json!({})).await;
    let stale = code(&app, first["secret"].as_str().unwrap());
    expect_error(
        post(&app, "/v1/auth/mfa/totp/confirm", &ada_token, &json!({"code": stale})).await,
        400,
        "invalid_mfa_code",
    )
    .await;
    expect_error(
        post(&app, "/v1/auth/mfa/totp/confirm", &bob_token, &json!({"code": "123456"})).await,
        400,
        "invalid_mfa_code",
    )
    .await;
    expect_error(
        post(&app, "/v1/auth/mfa/recovery-codes", &bob_token, &json!({"code": "123456"})).await,
        400,
        "invalid_mfa_code",
    )
    .await;

    let (ada_secret, _) = enable(&app, &ada_token).await;
    let (bob_secret, _) = enable(&app, &bob_token).await;
    app.clock.advance(time::Duration::seconds(30));
    let mfa_token = first_step(&app, ada).await;
    for bad in ["12345", "1234567", "12a456", "١٢٣٤٥٦", &"9".repeat(10_000)] {
        expect_error(second_step(&app, &mfa_token, bad).await, 401, "invalid_mfa_code").await;
    }
    // Five wrong codes above: the token is dead.
    expect_error(second_step(&app, &mfa_token, &code(&app, &ada_secret)).await, 401, "invalid_mfa_token")
        .await;
    // Bob's code on Ada's sign-in is a wrong code.
    let mfa_token = first_step(&app, ada).await;
    expect_error(second_step(&app, &mfa_token, &code(&app, &bob_secret)).await, 401, "invalid_mfa_code")
        .await;
    for garbage in ["", "mfa_", "mfa_nope", "rt_0000", &"x".repeat(5000)] {
        expect_error(second_step(&app, garbage, "123456").await, 401, "invalid_mfa_token").await;
    }
    // Five minutes later the sign-in is gone.
    app.clock.advance(time::Duration::seconds(301));
    expect_error(second_step(&app, &mfa_token, &code(&app, &ada_secret)).await, 401, "invalid_mfa_token")
        .await;
    expect_error(
        app.post_json("/v1/auth/mfa/verify", &json!({"mfa_token": mfa_token})).await,
        422,
        "invalid_field",
    )
    .await;
    // Set-up needs a JWT.
    let key =
        app.create_key(&bob_token, &json!({"name": "ci"})).await["api_key"].as_str().unwrap().to_owned();
    let by_key =
        app.client.post(app.url("/v1/auth/mfa/totp/setup")).header("X-API-Key", &key).send().await.unwrap();
    expect_error(by_key, 403, "jwt_required").await;
}

async fn a_claimed_account_loses_the_registrants_second_factor(backend: Backend) {
    let github = fake_github(octocat("squatted@example.com")).await;
    let options = Options { github_url: Some(github.uri()), ..Options::default() };
    let Some(app) = TestApp::spawn_with(backend, options).await else { return };
    if !pyotp_available() {
        return;
    }
    // Someone registers the owner's address (never verified) and locks it with their own TOTP.
    let squatter = app.token_for("squatted@example.com").await;
    enable(&app, &squatter).await;
    let owner = github_login(&app).await;
    assert!(owner["access_token"].is_string(), "the owner is not asked for the squatter's codes: {owner}");
    let me: Value =
        app.get_with("/v1/auth/me", owner["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!((me["mfa_enabled"].as_bool(), me["email_verified"].as_bool()), (Some(false), Some(true)));
    let again = github_login(&app).await;
    assert!(again["access_token"].is_string(), "{again}");
    let login: Value = app.login("squatted@example.com", PASSWORD).await.json().await.unwrap();
    assert_eq!(login["code"], "invalid_credentials", "{login}");
}

crate::on_both_backends!(
    a_claimed_account_loses_the_registrants_second_factor,
    totp_is_set_up_confirmed_and_asked_for_at_sign_in,
    recovery_codes_work_once_and_end_the_other_sessions,
    five_wrong_codes_kill_the_mfa_token_and_count_as_failed_logins,
    disabling_needs_the_password_and_a_code,
    every_sign_in_asks_for_the_second_factor,
    bad_second_factor_input_gets_the_contracts_errors,
);
