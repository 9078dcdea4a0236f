//! GitHub and LinkedIn login against fake providers served on 127.0.0.1.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error};

pub(crate) const REDIRECT: &str = "https://app.example.com/callback";
pub(crate) const GITHUB_TOKEN: &str = "gho_provider_access_token_123";
const LINKEDIN_TOKEN: &str = "li_provider_access_token_456";

/// What the fake GitHub says about its user.
pub(crate) struct GithubAccount {
    id: u64,
    email: Option<&'static str>,
    emails: Value,
}

pub(crate) fn octocat(email: &'static str) -> GithubAccount {
    GithubAccount {
        id: 583_231,
        email: Some(email),
        emails: json!([{"email": email, "primary": true, "verified": true}]),
    }
}

pub(crate) async fn fake_github(account: GithubAccount) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .and(body_string_contains("code=good-code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": GITHUB_TOKEN, "token_type": "bearer", "scope": "user:email"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .and(header("authorization", format!("Bearer {GITHUB_TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": account.id, "login": "octocat", "name": "The Octocat", "email": account.email,
            "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/user/emails"))
        .and(header("authorization", format!("Bearer {GITHUB_TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(account.emails))
        .mount(&server)
        .await;
    server
}

async fn fake_linkedin(email: &str, verified: bool) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/v2/accessToken"))
        .and(body_string_contains("code=good-code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": LINKEDIN_TOKEN, "token_type": "Bearer", "expires_in": 5184000}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/v2/accessToken"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "invalid_grant", "error_description": "bad code"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/userinfo"))
        .and(header("authorization", format!("Bearer {LINKEDIN_TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sub": "782bbtaQ", "name": "John Doe", "given_name": "John", "family_name": "Doe",
            "email": email, "email_verified": verified, "picture": "https://media.licdn.com/dms/image/abc"
        })))
        .mount(&server)
        .await;
    server
}

async fn app_with(
    backend: Backend,
    github: Option<&MockServer>,
    linkedin: Option<&MockServer>,
) -> Option<TestApp> {
    let options = Options {
        github_url: github.map(MockServer::uri),
        linkedin_url: linkedin.map(MockServer::uri),
        ..Options::default()
    };
    TestApp::spawn_with(backend, options).await
}

pub(crate) async fn authorize(app: &TestApp, provider: &str) -> Value {
    let response = app
        .client
        .get(app.url(&format!("/v1/auth/{provider}/authorize")))
        .query(&[("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn callback(app: &TestApp, provider: &str, body: &Value) -> reqwest::Response {
    app.post_json(&format!("/v1/auth/{provider}/callback"), body).await
}

pub(crate) async fn github_login(app: &TestApp) -> Value {
    let state = authorize(app, "github").await["state"].as_str().unwrap().to_owned();
    let response =
        callback(app, "github", &json!({"code": "good-code", "redirect_uri": REDIRECT, "state": state}))
            .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub(crate) fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

macro_rules! with_providers {
    ($(async fn $name:ident($backend:ident: Backend) $body:block)*) => {
        $(
            mod $name {
                use super::*;

                async fn scenario($backend: Backend) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    scenario(Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if std::env::var_os("TEST_DATABASE_URL").is_none() {
                        portcullis_store_postgres::testing::say_skipped("OAuth on PostgreSQL needs TEST_DATABASE_URL");
                        return;
                    }
                    scenario(Backend::Postgres).await;
                }
            }
        )*
    };
}

with_providers! {
    async fn a_first_github_login_creates_the_user_and_the_next_finds_them(backend: Backend) {
        let github = fake_github(octocat("octocat@example.com")).await;
        let app = app_with(backend, Some(&github), None).await.unwrap();
        let first = github_login(&app).await;
        assert_eq!(first["token_type"], "bearer");
        assert_eq!(first["expires_in"], 28800);
        assert_eq!(first["user"]["email"], "octocat@example.com");
        assert_eq!(first["user"]["name"], "The Octocat");
        assert_eq!(first["user"]["avatar_url"], "https://avatars.githubusercontent.com/u/583231?v=4");
        assert!(uuid::Uuid::parse_str(first["user"]["id"].as_str().unwrap()).is_ok(), "our user id, not GitHub's");
        let text = first.to_string();
        assert!(!text.contains(GITHUB_TOKEN) && !text.contains("gh-client-secret") && !text.contains("good-code"));

        let me: Value = app.get_with("/v1/auth/me", first["access_token"].as_str().unwrap()).await.json().await.unwrap();
        assert_eq!(me["providers"], json!(["github"]), "no password for a user made by OAuth");
        let second = github_login(&app).await;
        assert_eq!(second["user"]["id"], first["user"]["id"]);
        // A user made by OAuth can set a password through the reset flow: no password login until then.
        expect_error(app.login("octocat@example.com", PASSWORD).await, 401, "invalid_credentials").await;
    }

    async fn a_linkedin_login_has_the_seed_shape(backend: Backend) {
        let linkedin = fake_linkedin("john@example.com", true).await;
        let app = app_with(backend, None, Some(&linkedin)).await.unwrap();
        let state = authorize(&app, "linkedin").await["state"].as_str().unwrap().to_owned();
        let response = callback(&app, "linkedin", &json!({"code": "good-code", "redirect_uri": REDIRECT, "state": state})).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["expires_in"], 28800);
        assert_eq!(body["user"]["email"], "john@example.com");
        assert_eq!(body["user"]["name"], "John Doe");
        assert_eq!(body["user"]["picture"], "https://media.licdn.com/dms/image/abc");
        let again: Value = callback(&app, "linkedin", &json!({"code": "good-code", "redirect_uri": REDIRECT})).await.json().await.unwrap();
        assert_eq!(again["user"]["id"], body["user"]["id"]);
    }

    async fn an_unverified_email_never_links_and_creates_nothing(backend: Backend) {
        let account = GithubAccount {
            id: 99,
            email: Some("member@example.com"),
            emails: json!([{"email": "member@example.com", "primary": true, "verified": false}]),
        };
        let github = fake_github(account).await;
        let linkedin = fake_linkedin("stranger@example.com", false).await;
        let app = app_with(backend, Some(&github), Some(&linkedin)).await.unwrap();
        app.register("member@example.com").await;
        let refused = callback(&app, "github", &json!({"code": "good-code", "redirect_uri": REDIRECT})).await;
        expect_error(refused, 409, "oauth_email_unverified").await;
        let token = crate::helpers::token_of(app.login("member@example.com", PASSWORD).await).await;
        let me: Value = app.get_with("/v1/auth/me", &token).await.json().await.unwrap();
        assert_eq!(me["providers"], json!(["password"]), "not linked");
        let refused = callback(&app, "linkedin", &json!({"code": "good-code", "redirect_uri": REDIRECT})).await;
        expect_error(refused, 409, "oauth_email_unverified").await;
        assert!(app.users.find_by_email(&portcullis_domain::Email::parse("stranger@example.com").unwrap()).await.unwrap().is_none());
    }

    async fn a_github_user_without_a_public_email_uses_the_primary_verified_one(backend: Backend) {
        let account = GithubAccount {
            id: 7,
            email: None,
            emails: json!([
                {"email": "old@example.com", "primary": false, "verified": false},
                {"email": "private@example.com", "primary": true, "verified": true}
            ]),
        };
        let github = fake_github(account).await;
        let app = app_with(backend, Some(&github), None).await.unwrap();
        let login = github_login(&app).await;
        assert_eq!(login["user"]["email"], "private@example.com");
    }
}

async fn default_github_app() -> (MockServer, TestApp) {
    let github = fake_github(octocat("octocat@example.com")).await;
    let app = app_with(Backend::Sqlite, Some(&github), None).await.unwrap();
    (github, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_url_carries_client_scope_state_and_pkce() {
    let (github, app) = default_github_app().await;
    let authorization = authorize(&app, "github").await;
    let url = authorization["authorization_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/login/oauth/authorize?", github.uri())), "{url}");
    let query = query_of(url);
    assert_eq!(param(&query, "client_id"), Some("gh-client-id"));
    assert_eq!(param(&query, "redirect_uri"), Some(REDIRECT));
    assert_eq!(param(&query, "scope"), Some("user:email"));
    assert_eq!(param(&query, "state"), authorization["state"].as_str());
    assert_eq!(param(&query, "response_type"), Some("code"));
    assert_eq!(param(&query, "code_challenge_method"), Some("S256"));
    let challenge = param(&query, "code_challenge").unwrap().to_owned();

    // A callback without the verifier (an application of an earlier version,
    // outside production) still sends the matching verifier to the token endpoint.
    let state = authorization["state"].as_str().unwrap();
    let response =
        callback(&app, "github", &json!({"code": "good-code", "redirect_uri": REDIRECT, "state": state}))
            .await;
    assert_eq!(response.status(), 200);
    let requests = github.received_requests().await.unwrap();
    let token_request = requests.iter().find(|r| r.url.path() == "/login/oauth/access_token").unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token_request.body).into_owned().collect();
    let verifier = param(&form, "code_verifier").expect("PKCE verifier sent");
    assert_eq!(B64.encode(Sha256::digest(verifier.as_bytes())), challenge);
    assert_eq!(param(&form, "redirect_uri"), Some(REDIRECT));

    let linkedin = fake_linkedin("x@example.com", true).await;
    let app = app_with(Backend::Sqlite, None, Some(&linkedin)).await.unwrap();
    let url = authorize(&app, "linkedin").await["authorization_url"].as_str().unwrap().to_owned();
    let query = query_of(&url);
    assert_eq!(param(&query, "scope"), Some("openid profile email"));
    assert_eq!(param(&query, "client_id"), Some("li-client-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_code_is_a_400_and_a_broken_provider_a_502() {
    let (_github, app) = default_github_app().await;
    expect_error(
        callback(&app, "github", &json!({"code": "wrong-code", "redirect_uri": REDIRECT})).await,
        400,
        "oauth_exchange_failed",
    )
    .await;
    let linkedin = fake_linkedin("x@example.com", true).await;
    let app = app_with(Backend::Sqlite, None, Some(&linkedin)).await.unwrap();
    expect_error(
        callback(&app, "linkedin", &json!({"code": "wrong-code", "redirect_uri": REDIRECT})).await,
        400,
        "oauth_exchange_failed",
    )
    .await;

    for broken in [
        ResponseTemplate::new(500).set_body_string("<html>oops</html>"),
        ResponseTemplate::new(200).set_body_string("{not json"),
        ResponseTemplate::new(200).set_body_json(json!({"unexpected": true})),
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": GITHUB_TOKEN, "token_type": "bearer"}))
            .set_delay(Duration::from_secs(3)),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/login/oauth/access_token"))
            .respond_with(broken)
            .mount(&server)
            .await;
        let app = app_with(Backend::Sqlite, Some(&server), None).await.unwrap();
        let response =
            callback(&app, "github", &json!({"code": "good-code", "redirect_uri": REDIRECT})).await;
        let body = expect_error(response, 502, "provider_error").await;
        assert!(!body.to_string().contains("oops"), "no provider text in our answer");
    }

    // The token is fine but the profile call fails, answers garbage, or hangs.
    for broken in [
        ResponseTemplate::new(503),
        ResponseTemplate::new(200).set_body_string("garbage"),
        ResponseTemplate::new(200).set_body_json(json!({"id": "not-a-number"})),
        ResponseTemplate::new(200)
            .set_body_json(json!({"id": 1, "login": "x"}))
            .set_delay(Duration::from_secs(3)),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/login/oauth/access_token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": GITHUB_TOKEN, "token_type": "bearer"})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET")).and(path("/user")).respond_with(broken).mount(&server).await;
        let app = app_with(Backend::Sqlite, Some(&server), None).await.unwrap();
        let response =
            callback(&app, "github", &json!({"code": "good-code", "redirect_uri": REDIRECT})).await;
        expect_error(response, 502, "provider_error").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_state_is_refused() {
    let (_github, app) = default_github_app().await;
    let state = authorize(&app, "github").await["state"].as_str().unwrap().to_owned();
    let mut tampered = state.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (what, body) in [
        ("tampered", json!({"code": "good-code", "redirect_uri": REDIRECT, "state": tampered})),
        (
            "another redirect",
            json!({"code": "good-code", "redirect_uri": "https://evil.example.com/cb", "state": state}),
        ),
        ("garbage", json!({"code": "good-code", "redirect_uri": REDIRECT, "state": "garbage"})),
    ] {
        let response = callback(&app, "github", &body).await;
        assert_eq!(response.status(), 400, "{what}");
        expect_error(response, 400, "invalid_oauth_state").await;
    }
    // A LinkedIn state is no GitHub state.
    let linkedin = fake_linkedin("x@example.com", true).await;
    let both = app_with(Backend::Sqlite, Some(&_github), Some(&linkedin)).await.unwrap();
    let linkedin_state = authorize(&both, "linkedin").await["state"].as_str().unwrap().to_owned();
    let crossed = callback(
        &both,
        "github",
        &json!({"code": "good-code", "redirect_uri": REDIRECT, "state": linkedin_state}),
    )
    .await;
    expect_error(crossed, 400, "invalid_oauth_state").await;

    app.clock.advance(time::Duration::minutes(11));
    let expired =
        callback(&app, "github", &json!({"code": "good-code", "redirect_uri": REDIRECT, "state": state}))
            .await;
    expect_error(expired, 400, "invalid_oauth_state").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_state_must_be_there_with_its_verifier() {
    let github = fake_github(octocat("octocat@example.com")).await;
    let options = Options { github_url: Some(github.uri()), oauth_require_state: true, ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    expect_error(
        callback(&app, "github", &json!({"code": "good-code", "redirect_uri": REDIRECT})).await,
        400,
        "invalid_oauth_state",
    )
    .await;
    let authorization = authorize(&app, "github").await;
    let state = authorization["state"].as_str().unwrap();
    let without_verifier =
        callback(&app, "github", &json!({"code": "good-code", "redirect_uri": REDIRECT, "state": state}))
            .await;
    let body = expect_error(without_verifier, 422, "invalid_field").await;
    assert_eq!(body["errors"][0]["field"], "code_verifier");
    let verifier = authorization["code_verifier"].as_str().unwrap();
    let body =
        json!({"code": "good-code", "redirect_uri": REDIRECT, "state": state, "code_verifier": verifier});
    assert_eq!(callback(&app, "github", &body).await.status(), 200, "the refusal did not spend the state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_from_authorize_reaches_the_provider_and_a_state_is_accepted_once() {
    let (github, app) = default_github_app().await;
    let authorization = authorize(&app, "github").await;
    let verifier = authorization["code_verifier"].as_str().unwrap().to_owned();
    assert!((43..=128).contains(&verifier.len()), "{verifier}");
    let state = authorization["state"].as_str().unwrap().to_owned();
    assert!(!state.contains(&verifier), "the verifier does not travel in the state");
    let query = query_of(authorization["authorization_url"].as_str().unwrap());
    assert_eq!(
        param(&query, "code_challenge"),
        Some(B64.encode(Sha256::digest(verifier.as_bytes())).as_str())
    );
    let body =
        json!({"code": "good-code", "redirect_uri": REDIRECT, "state": state, "code_verifier": verifier});
    assert_eq!(callback(&app, "github", &body).await.status(), 200);
    let requests = github.received_requests().await.unwrap();
    let token_request = requests.iter().find(|r| r.url.path() == "/login/oauth/access_token").unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token_request.body).into_owned().collect();
    assert_eq!(param(&form, "code_verifier"), Some(verifier.as_str()), "the application's verifier, as sent");

    let replayed = callback(&app, "github", &body).await;
    expect_error(replayed, 400, "invalid_oauth_state").await;

    // Of concurrent callbacks with one state, one wins (a unique insert in the
    // database, so the same holds across instances sharing it).
    let other = authorize(&app, "github").await;
    let body = json!({"code": "good-code", "redirect_uri": REDIRECT, "state": other["state"], "code_verifier": other["code_verifier"]});
    let racing = futures_util::future::join_all((0..4).map(|_| callback(&app, "github", &body))).await;
    let statuses: Vec<u16> = racing.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 3, "{statuses:?}");

    let bad = json!({"code": "good-code", "redirect_uri": REDIRECT, "code_verifier": "short"});
    let body = expect_error(callback(&app, "github", &bad).await, 422, "invalid_field").await;
    assert_eq!(body["errors"][0]["field"], "code_verifier");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_providers_and_bad_input() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for provider in ["github", "linkedin", "facebook"] {
        let response = app
            .client
            .get(app.url(&format!("/v1/auth/{provider}/authorize")))
            .query(&[("redirect_uri", REDIRECT)])
            .send()
            .await
            .unwrap();
        expect_error(response, 404, "not_found").await;
    }
    expect_error(
        callback(&app, "github", &json!({"code": "c", "redirect_uri": REDIRECT})).await,
        404,
        "not_found",
    )
    .await;

    let (_github, app) = default_github_app().await;
    expect_error(callback(&app, "github", &json!({"redirect_uri": REDIRECT})).await, 422, "invalid_field")
        .await;
    expect_error(callback(&app, "github", &json!({"code": "good-code"})).await, 422, "invalid_field").await;
    expect_error(
        callback(&app, "github", &json!({"code": "", "redirect_uri": REDIRECT})).await,
        422,
        "invalid_field",
    )
    .await;
    for redirect in ["/callback", "ftp://x/y", "callback", "https://", "javascript:alert(1)"] {
        expect_error(
            callback(&app, "github", &json!({"code": "good-code", "redirect_uri": redirect})).await,
            422,
            "invalid_field",
        )
        .await;
        let response = app
            .client
            .get(app.url("/v1/auth/github/authorize"))
            .query(&[("redirect_uri", redirect)])
            .send()
            .await
            .unwrap();
        expect_error(response, 422, "invalid_field").await;
    }
    expect_error(
        app.client.get(app.url("/v1/auth/github/authorize")).send().await.unwrap(),
        422,
        "invalid_field",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_created_by_oauth_can_set_a_password_by_reset() {
    let github = fake_github(octocat("social@example.com")).await;
    let smtp = crate::smtp::SmtpServer::start().await;
    let options =
        Options { github_url: Some(github.uri()), smtp_url: Some(smtp.url()), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let login = github_login(&app).await;
    let forgot = app.post_json("/v1/auth/forgot-password", &json!({"email": "social@example.com"})).await;
    assert_eq!(forgot.status(), 202);
    let email =
        smtp.wait_for_reset("social@example.com", Duration::from_secs(5)).await.expect("a reset email");
    let token = email.reset_token().unwrap();
    let reset =
        app.post_json("/v1/auth/reset-password", &json!({"token": token, "new_password": PASSWORD})).await;
    assert_eq!(reset.status(), 200);
    let by_password = crate::helpers::token_of(app.login("social@example.com", PASSWORD).await).await;
    let me: Value = app.get_with("/v1/auth/me", &by_password).await.json().await.unwrap();
    assert_eq!(me["id"], login["user"]["id"]);
    assert_eq!(me["providers"], json!(["password", "github"]));
    expect_error(
        app.get_with("/v1/auth/me", login["access_token"].as_str().unwrap()).await,
        401,
        "session_ended",
    )
    .await;
}
