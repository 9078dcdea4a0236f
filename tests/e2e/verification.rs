//! Email verification over the socket with a real SMTP server (the tests'
//! own), and the claiming of unverified accounts by a provider-verified login.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error, token_of};
use crate::oauth::{fake_github, github_login, octocat};
use crate::smtp::SmtpServer;

const WAIT: Duration = Duration::from_secs(10);

async fn spawn(backend: Backend, smtp: &SmtpServer, extra: Options) -> Option<TestApp> {
    let options = Options { smtp_url: Some(smtp.url()), ..extra };
    TestApp::spawn_with(backend, options).await
}

/// The token of the `nth` (from 0) verification email to `email`.
async fn emailed(smtp: &SmtpServer, email: &str, nth: usize) -> String {
    let message = smtp.wait_for_verification(email, nth, WAIT).await.expect("the verification email arrives");
    message.verification_token().expect("the email holds a verification link")
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/v1/auth/verify-email", &json!({ "token": token })).await
}

async fn me(app: &TestApp, token: &str) -> Value {
    let response = app.get_with("/v1/auth/me", token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn the_emailed_link_verifies_the_address_once(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let options = Options { public_url: Some("https://auth.example.com"), ..Options::default() };
    let Some(app) = spawn(backend, &smtp, options).await else { return };
    let registered = app.register("verify-me@example.com").await;
    assert_eq!(registered["email_verified"], false);
    let access = registered["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &access).await["email_verified"], false);

    let message = smtp.wait_for_verification("verify-me@example.com", 0, WAIT).await.unwrap();
    assert!(message.data.contains("multipart/alternative"), "{}", message.data);
    let link = message.link().unwrap();
    assert!(
        link.starts_with("https://auth.example.com/verify-email?token=pev_"),
        "the built-in page by default: {link}"
    );
    let token = message.verification_token().unwrap();

    let response = verify(&app, &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].is_string());
    assert_eq!(body["user"]["email"], "verify-me@example.com");
    assert_eq!(body["user"]["email_verified"], true);
    assert_eq!(me(&app, &access).await["email_verified"], true, "the session goes on, verified");

    expect_error(verify(&app, &token).await, 400, "invalid_verification_token").await;
    let kinds = crate::audit::own_event_types(&app, &access).await;
    assert_eq!(kinds, ["email_verified", "email_verification_requested", "register"]);
    crate::audit::assert_no_secret(&app, &[&token, &access]).await;
}

async fn a_new_link_voids_the_older_one_and_a_verified_address_gets_none(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = spawn(backend, &smtp, Options::default()).await.unwrap();
    let access = app.register("resend@example.com").await["access_token"].as_str().unwrap().to_owned();
    let first = emailed(&smtp, "resend@example.com", 0).await;
    let response = app.post_with("/v1/auth/resend-verification", &access).await;
    assert_eq!(response.status(), 202);
    assert!(response.json::<Value>().await.unwrap()["message"].is_string());
    let second = emailed(&smtp, "resend@example.com", 1).await;
    assert_ne!(first, second);
    expect_error(verify(&app, &first).await, 400, "invalid_verification_token").await;
    assert_eq!(verify(&app, &second).await.status(), 200);

    let response = app.post_with("/v1/auth/resend-verification", &access).await;
    assert_eq!(response.status(), 200, "verified already");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.verifications().len(), 2, "no email for a verified address");
}

async fn an_account_gets_three_verification_emails_an_hour(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = spawn(backend, &smtp, Options::default()).await.unwrap();
    let access = app.register("eager@example.com").await["access_token"].as_str().unwrap().to_owned();
    for _ in 0..4 {
        assert_eq!(
            app.post_with("/v1/auth/resend-verification", &access).await.status(),
            202,
            "the same answer"
        );
    }
    emailed(&smtp, "eager@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(smtp.verifications().len(), 3, "registration's and two more");
    let kinds = crate::audit::own_event_types(&app, &access).await;
    assert_eq!(kinds.iter().filter(|k| *k == "email_verification_requested").count(), 5);
    app.clock.advance(time::Duration::minutes(61));
    assert_eq!(app.post_with("/v1/auth/resend-verification", &access).await.status(), 202);
    let fourth = emailed(&smtp, "eager@example.com", 3).await;
    assert_eq!(verify(&app, &fourth).await.status(), 200, "the newest link works");
}

async fn a_password_reset_proves_the_address(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = spawn(backend, &smtp, Options::default()).await.unwrap();
    app.register("resetter@example.com").await;
    let link = emailed(&smtp, "resetter@example.com", 0).await;
    app.post_json("/v1/auth/forgot-password", &json!({"email": "resetter@example.com"})).await;
    let reset = smtp.wait_for_reset("resetter@example.com", WAIT).await.unwrap().reset_token().unwrap();
    let response = app
        .post_json("/v1/auth/reset-password", &json!({"token": reset, "new_password": "NewSecurePass456!"}))
        .await;
    assert_eq!(response.status(), 200);
    let access = token_of(app.login("resetter@example.com", "NewSecurePass456!").await).await;
    assert_eq!(me(&app, &access).await["email_verified"], true);
    // The link still works once, harmlessly: it proves the same thing.
    assert_eq!(verify(&app, &link).await.status(), 200);
}

async fn required_verification_holds_back_tokens_until_the_link_is_followed(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let options = Options { require_verified_email: true, ..Options::default() };
    let Some(app) = spawn(backend, &smtp, options).await else { return };
    let response = app
        .post_json("/v1/auth/register", &json!({"email": "strict@example.com", "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], "strict@example.com");
    assert_eq!(body["email_verified"], false);
    for field in ["access_token", "refresh_token", "token_type", "expires_in"] {
        assert!(body.get(field).is_none(), "no {field} before verification: {body}");
    }
    expect_error(app.login("strict@example.com", "WrongPass999!").await, 401, "invalid_credentials").await;
    expect_error(app.login("strict@example.com", PASSWORD).await, 403, "email_not_verified").await;
    let form = app
        .client
        .post(app.url("/v1/auth/login"))
        .form(&[("username", "strict@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    expect_error(form, 403, "email_not_verified").await;

    let token = emailed(&smtp, "strict@example.com", 0).await;
    assert_eq!(verify(&app, &token).await.status(), 200);
    let access = token_of(app.login("strict@example.com", PASSWORD).await).await;
    assert_eq!(me(&app, &access).await["email_verified"], true);
}

async fn required_verification_refuses_refreshes_of_an_unverified_account(backend: Backend) {
    let smtp = SmtpServer::start().await;
    // Signed in before the operator turned the requirement on.
    let before = spawn(backend, &smtp, Options::default()).await.unwrap();
    let body = before.register("early@example.com").await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let options = Options {
        require_verified_email: true,
        database_url: Some(before.database_url.clone()),
        ..Options::default()
    };
    let after = spawn(backend, &smtp, options).await.unwrap();
    let rotated = after.post_json("/v1/auth/refresh", &json!({ "refresh_token": refresh })).await;
    expect_error(rotated, 403, "email_not_verified").await;
    expect_error(after.post_with("/v1/auth/refresh", &access).await, 403, "email_not_verified").await;
    // Refused, not spent: once verified, the same refresh token works.
    let token = emailed(&smtp, "early@example.com", 0).await;
    assert_eq!(verify(&after, &token).await.status(), 200);
    let rotated = after.post_json("/v1/auth/refresh", &json!({ "refresh_token": refresh })).await;
    assert_eq!(rotated.status(), 200);
}

async fn a_registrant_who_never_verified_loses_the_account_to_its_owner(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let github = fake_github(octocat("victim@example.com")).await;
    let options = Options { github_url: Some(github.uri()), ..Options::default() };
    let Some(app) = spawn(backend, &smtp, options).await else { return };
    // Someone registers the victim's address first and arms the account.
    let registered = app.register("victim@example.com").await;
    let access = registered["access_token"].as_str().unwrap().to_owned();
    let refresh = registered["refresh_token"].as_str().unwrap().to_owned();
    let key = app.create_key(&access, &json!({"name": "squatter key"})).await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = app
        .client
        .post(app.url("/v1/database/projects"))
        .bearer_auth(&access)
        .json(&json!({"name": "Squatter project"}))
        .send()
        .await
        .unwrap();
    assert_eq!(project.status(), 201);
    let link = emailed(&smtp, "victim@example.com", 0).await;

    // The owner signs in with GitHub, which verified the address.
    let login = github_login(&app).await;
    assert_eq!(login["user"]["id"], registered["id"], "the same account");
    let owner = login["access_token"].as_str().unwrap();
    let profile = me(&app, owner).await;
    assert_eq!(profile["providers"], json!(["github"]), "the registrant's password is gone");
    assert_eq!(profile["email_verified"], true);

    // Nothing the registrant held works any more.
    expect_error(app.login("victim@example.com", PASSWORD).await, 401, "invalid_credentials").await;
    let refused = app.get_with("/v1/auth/me", &access).await;
    assert_eq!(refused.status(), 401);
    let rotated = app.post_json("/v1/auth/refresh", &json!({ "refresh_token": refresh })).await;
    expect_error(rotated, 401, "invalid_refresh_token").await;
    expect_error(app.get_with_key("/v1/database/projects", &key).await, 401, "api_key_revoked").await;
    expect_error(verify(&app, &link).await, 400, "invalid_verification_token").await;
    // What the registrant created stays with the account.
    let projects: Value = app.get_with("/v1/database/projects", owner).await.json().await.unwrap();
    assert_eq!(projects[0]["name"], "Squatter project");

    let kinds = crate::audit::own_event_types(&app, owner).await;
    // Newest first: the refused password login above, then the sign-in that claimed.
    assert_eq!(kinds[..4], ["login_failed", "oauth_login", "oauth_linked", "account_claimed"], "{kinds:?}");
    crate::audit::assert_no_secret(&app, &[&access, &refresh, &key, &link, owner]).await;
}

async fn a_verified_account_links_and_keeps_its_password(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let github = fake_github(octocat("member@example.com")).await;
    let options = Options { github_url: Some(github.uri()), ..Options::default() };
    let Some(app) = spawn(backend, &smtp, options).await else { return };
    let registered = app.register("member@example.com").await;
    let access = registered["access_token"].as_str().unwrap().to_owned();
    let token = emailed(&smtp, "member@example.com", 0).await;
    assert_eq!(verify(&app, &token).await.status(), 200);
    let login = github_login(&app).await;
    assert_eq!(login["user"]["id"], registered["id"]);
    assert_eq!(
        me(&app, &access).await["providers"],
        json!(["password", "github"]),
        "the old session goes on"
    );
    assert_eq!(app.login("member@example.com", PASSWORD).await.status(), 200);
    let kinds = crate::audit::own_event_types(&app, &access).await;
    assert_eq!(kinds[..3], ["login_succeeded", "oauth_login", "oauth_linked"], "{kinds:?}");
    assert!(!kinds.iter().any(|k| k == "account_claimed"), "{kinds:?}");
    github_login(&app).await;
    let kinds = crate::audit::own_event_types(&app, &access).await;
    assert_eq!(kinds.iter().filter(|k| *k == "oauth_linked").count(), 1, "linked once only: {kinds:?}");
    crate::audit::assert_no_secret(
        &app,
        &[crate::oauth::GITHUB_TOKEN, "good-code", "gh-client-secret", &token],
    )
    .await;
}

async fn bad_verification_input_gets_the_contracts_errors(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = spawn(backend, &smtp, Options::default()).await.unwrap();
    let reset_shaped = "prt_".to_owned() + &"a".repeat(49);
    for token in ["", "pev_", "pev_short", &"9".repeat(10_000), &reset_shaped, "pev_🙂"] {
        expect_error(verify(&app, token).await, 400, "invalid_verification_token").await;
    }
    expect_error(app.post_json("/v1/auth/verify-email", &json!({})).await, 422, "invalid_field").await;
    expect_error(app.post_json("/v1/auth/verify-email", &json!({"token": 7})).await, 422, "invalid_field")
        .await;
    let garbage = app
        .client
        .post(app.url("/v1/auth/verify-email"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    expect_error(
        app.client.post(app.url("/v1/auth/resend-verification")).send().await.unwrap(),
        401,
        "not_authenticated",
    )
    .await;
    let access = app.register("keyholder@example.com").await["access_token"].as_str().unwrap().to_owned();
    let key = app.create_key(&access, &json!({"name": "ci"})).await["api_key"].as_str().unwrap().to_owned();
    let by_key = app
        .client
        .post(app.url("/v1/auth/resend-verification"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    expect_error(by_key, 403, "jwt_required").await;
}

crate::on_both_backends!(
    the_emailed_link_verifies_the_address_once,
    a_new_link_voids_the_older_one_and_a_verified_address_gets_none,
    an_account_gets_three_verification_emails_an_hour,
    a_password_reset_proves_the_address,
    required_verification_holds_back_tokens_until_the_link_is_followed,
    required_verification_refuses_refreshes_of_an_unverified_account,
    a_registrant_who_never_verified_loses_the_account_to_its_owner,
    a_verified_account_links_and_keeps_its_password,
    bad_verification_input_gets_the_contracts_errors,
);
