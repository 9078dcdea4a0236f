//! Abuse limits over a real socket: per client IP, per account, per principal.

use futures_util::future::join_all;
use serde_json::json;
use time::Duration;

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error};

async fn app(limits: &'static str) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, Options { rate_limits: Some(limits), ..Options::default() })
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_21st_login_from_one_address_within_a_minute_is_refused() {
    let app = app("").await;
    app.register("user@example.com").await;
    for expected_remaining in (0..20).rev() {
        let response = app.login("user@example.com", PASSWORD).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit"), Some(20));
        assert_eq!(
            header(&response, "x-ratelimit-remaining"),
            Some(expected_remaining),
            "the budget counts down"
        );
        assert!(header(&response, "x-ratelimit-reset").is_some());
    }
    let refused = app.login("user@example.com", PASSWORD).await;
    assert!(header(&refused, "retry-after").unwrap() >= 1);
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some(0));
    expect_error(refused, 429, "rate_limited").await;
    // Every login route draws from the same budget.
    let form = app
        .client
        .post(app.url("/v1/auth/login"))
        .form(&[("username", "user@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    expect_error(form, 429, "rate_limited").await;
    app.clock.advance(Duration::seconds(60));
    assert_eq!(app.login("user@example.com", PASSWORD).await.status(), 200, "the window passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_failed_login_locks_the_account_whatever_the_answer() {
    let app = app("login=off").await;
    app.register("target@example.com").await;
    for _ in 0..5 {
        expect_error(app.login("target@example.com", "WrongPass123!").await, 401, "invalid_credentials")
            .await;
    }
    let locked = app.login("target@example.com", PASSWORD).await;
    assert!(header(&locked, "retry-after").unwrap() >= 1);
    expect_error(locked, 429, "rate_limited").await;
    expect_error(app.login("  TARGET@Example.com ", PASSWORD).await, 429, "rate_limited").await;
    let form = app
        .client
        .post(app.url("/v1/auth/login"))
        .form(&[("username", "target@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    expect_error(form, 429, "rate_limited").await;

    // An unknown email locks the same way, so the lockout tells nothing.
    for _ in 0..5 {
        expect_error(app.login("ghost@example.com", "WrongPass123!").await, 401, "invalid_credentials").await;
    }
    expect_error(app.login("ghost@example.com", "WrongPass123!").await, 429, "rate_limited").await;

    // Other accounts are not affected; the window passing frees the account.
    app.register("bystander@example.com").await;
    assert_eq!(app.login("bystander@example.com", PASSWORD).await.status(), 200);
    app.clock.advance(Duration::seconds(900));
    assert_eq!(app.login("target@example.com", PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_cannot_slip_past_the_lockout() {
    let app = app("login=off").await;
    app.register("parallel@example.com").await;
    let guesses = (0..20).map(|_| app.login("parallel@example.com", "WrongPass123!"));
    let statuses: Vec<u16> = join_all(guesses).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_forgot_password_have_their_own_budgets() {
    let app = app("").await;
    for i in 0..10 {
        let response = app
            .post_json(
                "/v1/auth/register",
                &json!({"email": format!("n{i}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    let refused =
        app.post_json("/v1/auth/register", &json!({"email": "n10@example.com", "password": PASSWORD})).await;
    expect_error(refused, 429, "rate_limited").await;
    for _ in 0..10 {
        assert_eq!(
            app.post_json("/v1/auth/forgot-password", &json!({"email": "n1@example.com"})).await.status(),
            202
        );
    }
    expect_error(
        app.post_json("/v1/auth/forgot-password", &json!({"email": "n1@example.com"})).await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_requests_are_limited_per_principal() {
    let app = app("authenticated=3/60").await;
    let token = app.token_for("busy@example.com").await;
    let key = app.create_key(&token, &json!({"name": "k"})).await["api_key"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);
    }
    expect_error(app.get_with("/v1/auth/me", &token).await, 429, "rate_limited").await;
    let other = app.token_for("calm@example.com").await;
    assert_eq!(app.get_with("/v1/auth/me", &other).await.status(), 200, "another user has their own budget");
    for _ in 0..3 {
        assert_eq!(
            app.get_with_key("/v1/database/projects", &key).await.status(),
            200,
            "the key has its own budget"
        );
    }
    expect_error(app.get_with_key("/v1/database/projects", &key).await, 429, "rate_limited").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let login = |app: &TestApp, forwarded: &'static str| {
        app.client
            .post(app.url("/v1/auth/login-json"))
            .header("X-Forwarded-For", forwarded)
            .json(&json!({"username": "nobody@example.com", "password": "x"}))
            .send()
    };
    let untrusted = app("login=2/60,failed_login=off").await;
    for forwarded in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(login(&untrusted, forwarded).await.unwrap().status(), 401);
    }
    let spoofed = login(&untrusted, "198.51.100.3").await.unwrap();
    expect_error(spoofed, 429, "rate_limited").await;

    let options = Options {
        rate_limits: Some("login=2/60,failed_login=off"),
        trusted_proxies: Some("127.0.0.1"),
        ..Options::default()
    };
    let behind_proxy = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    for _ in 0..2 {
        assert_eq!(login(&behind_proxy, "198.51.100.1").await.unwrap().status(), 401);
    }
    assert_eq!(
        login(&behind_proxy, "198.51.100.2").await.unwrap().status(),
        401,
        "another client behind the proxy"
    );
    expect_error(login(&behind_proxy, "198.51.100.1").await.unwrap(), 429, "rate_limited").await;
}

/// A run-unique Redis key prefix, so parallel tests never share counters.
fn redis_options(limits: &'static str, url: String) -> Options {
    let prefix = format!("portcullis-e2e:{}:", uuid::Uuid::new_v4().simple());
    Options { rate_limits: Some(limits), redis: Some((url, prefix)), ..Options::default() }
}

fn redis_url() -> Option<String> {
    let url = std::env::var("AUTH_REDIS_URL").ok();
    if url.is_none() {
        portcullis_store_postgres::testing::say_skipped("shared limits need AUTH_REDIS_URL");
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_enforce_one_limit() {
    let Some(url) = redis_url() else { return };
    let options = redis_options("login=4/60,failed_login=off", url);
    let first = TestApp::spawn_with(Backend::Sqlite, options.clone()).await.unwrap();
    let second = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    for app in [&first, &second, &first, &second] {
        expect_error(app.login("nobody@example.com", "x").await, 401, "invalid_credentials").await;
    }
    expect_error(first.login("nobody@example.com", "x").await, 429, "rate_limited").await;
    expect_error(second.login("nobody@example.com", "x").await, 429, "rate_limited").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_instances_keep_answering_and_limiting_on_their_own() {
    let Some(url) = redis_url() else { return };
    let target: std::net::SocketAddr =
        url.trim_start_matches("redis://").trim_end_matches('/').parse().unwrap();
    let switch = crate::outage::Switch::start(target).await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        redis_options("login=2/60,failed_login=off", format!("redis://{}", switch.address)),
    )
    .await
    .unwrap();
    expect_error(app.login("nobody@example.com", "x").await, 401, "invalid_credentials").await;
    switch.down();
    let started = std::time::Instant::now();
    for _ in 0..2 {
        expect_error(app.login("nobody@example.com", "x").await, 401, "invalid_credentials").await;
    }
    expect_error(app.login("nobody@example.com", "x").await, 429, "rate_limited").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "no request waits long on a dead Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_storm_beyond_hashing_capacity_gets_503s_at_once() {
    let options = Options { hashing: Some(("1", "2")), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    app.register("storm@example.com").await;
    let started = std::time::Instant::now();
    let storm = (0..40).map(|_| app.login("storm@example.com", PASSWORD));
    let responses = join_all(storm).await;
    let elapsed = started.elapsed();
    let mut shed = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => {}
            503 => {
                assert_eq!(response.headers()["retry-after"], "5");
                expect_error(response, 503, "service_unavailable").await;
                shed += 1;
            }
            other => panic!("only 200 or 503 are acceptable, got {other}"),
        }
    }
    assert!(shed > 0, "a queue of 2 behind 1 thread cannot take 40 logins at once");
    assert!(elapsed < std::time::Duration::from_secs(20), "refused at once rather than queued: {elapsed:?}");
}
