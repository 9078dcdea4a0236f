//! `/metrics` after known traffic: the right counters moved by the right amounts.

use std::collections::HashMap;

use serde_json::json;

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error, token_of};

/// Every sample of the exposition, by `name{labels}` as written.
async fn scrape(app: &TestApp, url: &str) -> HashMap<String, f64> {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect()
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, sample: &str) -> f64 {
    let value = |m: &HashMap<String, f64>| m.get(sample).copied().unwrap_or(0.0);
    value(after) - value(before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_known_traffic() {
    let options = Options { rate_limits: Some("register=3/60,failed_login=off"), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let url = app.url("/metrics");
    let before = scrape(&app, &url).await;

    app.register("counted@example.com").await;
    let token = token_of(app.login("counted@example.com", PASSWORD).await).await;
    let second = app.login("counted@example.com", PASSWORD).await;
    assert_eq!(second.status(), 200);
    let second: serde_json::Value = second.json().await.unwrap();
    // A refresh token's rotation writes its event with the rotation itself.
    let rotated = app.post_json("/v1/auth/refresh", &json!({"refresh_token": second["refresh_token"]})).await;
    assert_eq!(rotated.status(), 200);
    expect_error(app.login("counted@example.com", "WrongPass999!").await, 401, "invalid_credentials").await;
    expect_error(app.login("ghost@example.com", PASSWORD).await, 401, "invalid_credentials").await;
    let key = app.create_key(&token, &json!({"name": "metered"})).await;
    assert_eq!(
        app.get_with_key("/v1/database/projects", key["api_key"].as_str().unwrap()).await.status(),
        200
    );
    expect_error(app.get_with_key("/v1/database/projects", "sk_live_nope").await, 401, "invalid_api_key")
        .await;
    assert_eq!(app.post_with("/v1/auth/logout", &token).await.status(), 200);
    // The register budget is 3 per minute: the first went above, two more pass, the next is refused.
    app.register("second@example.com").await;
    app.register("third@example.com").await;
    let refused = app
        .post_json("/v1/auth/register", &json!({"email": "fourth@example.com", "password": PASSWORD}))
        .await;
    expect_error(refused, 429, "rate_limited").await;

    let after = scrape(&app, &url).await;
    let moved = |sample: &str| delta(&before, &after, sample);
    let login = "method=\"POST\",route=\"/v1/auth/login-json\"";
    assert_eq!(moved(&format!("portcullis_http_requests_total{{{login},status=\"200\"}}")), 2.0);
    assert_eq!(moved(&format!("portcullis_http_requests_total{{{login},status=\"401\"}}")), 2.0);
    assert_eq!(moved(&format!("portcullis_http_request_duration_seconds_count{{{login}}}")), 4.0);
    assert_eq!(moved("portcullis_logins_total{outcome=\"success\"}"), 2.0);
    assert_eq!(moved("portcullis_logins_total{outcome=\"bad_password\"}"), 1.0);
    assert_eq!(moved("portcullis_logins_total{outcome=\"unknown_email\"}"), 1.0);
    assert_eq!(moved("portcullis_tokens_issued_total"), 6.0, "3 registrations, 2 logins and a rotation");
    assert_eq!(moved("portcullis_tokens_revoked_total"), 2.0, "the rotation's spent token and the logout");
    assert_eq!(moved("portcullis_audit_events_total{type=\"login_succeeded\"}"), 2.0);
    assert_eq!(moved("portcullis_audit_events_total{type=\"register\"}"), 3.0);
    assert_eq!(moved("portcullis_api_key_authentications_total{outcome=\"success\"}"), 1.0);
    assert_eq!(moved("portcullis_api_key_authentications_total{outcome=\"invalid_api_key\"}"), 1.0);
    assert_eq!(moved("portcullis_rate_limited_total{method=\"POST\",route=\"/v1/auth/register\"}"), 1.0);
    assert_eq!(moved("portcullis_audit_events_total{type=\"api_key_created\"}"), 1.0);
    // 3 registrations and 4 logins hashed or verified on the pool (the unknown email too).
    assert_eq!(moved("portcullis_hash_queue_wait_seconds_count"), 7.0);
    assert_eq!(after["portcullis_hash_queue_depth"], 0.0, "nothing waits once the traffic is over");
    assert!(after["portcullis_db_pool_connections{state=\"max\"}"] >= 1.0);
    assert!(after["portcullis_db_pool_connections{state=\"open\"}"] >= 1.0);
    assert!(after.contains_key("portcullis_outbox_backlog"));

    // The key's first use from this address is written by the usage flush
    // (every 5 s), and counted once written.
    let new_ip = "portcullis_audit_events_total{type=\"api_key_new_ip\"}";
    let mut seen = 0.0;
    for _ in 0..100 {
        seen = delta(&before, &scrape(&app, &url).await, new_ip);
        if seen > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1.0, "the key's new address, counted once written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_limiter_and_the_cache_hold_is_reported() {
    let options = Options {
        rate_limits: Some(
            "login=100/3600,authenticated=1000/3600,failed_login=off,failed_login_account=off,register=off",
        ),
        trusted_proxies: Some("127.0.0.1"),
        cache_ttl_ms: Some("60000"),
        without_redis: true,
        ..Options::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let url = app.url("/metrics");
    app.register("held@example.com").await;
    let token = token_of(app.login("held@example.com", PASSWORD).await).await;
    let key = app.create_key(&token, &json!({"name": "held"})).await;
    let key = key["api_key"].as_str().unwrap();
    let before = scrape(&app, &url).await;
    let keys = |m: &HashMap<String, f64>| m["portcullis_rate_limiter_keys"];
    assert!(keys(&before) >= 2.0, "the login address and the user's budget: {before:?}");

    // Three logins from new client addresses: three new per-address keys.
    for address in ["192.0.2.1", "192.0.2.2", "2001:db8:1::5"] {
        let response = app
            .client
            .post(app.url("/v1/auth/login-json"))
            .header("X-Forwarded-For", address)
            .json(&json!({"username": "held@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // The key's first use: its budget in the limiter, the key in the cache.
    assert_eq!(app.get_with_key("/v1/database/projects", key).await.status(), 200);
    let after = scrape(&app, &url).await;
    assert_eq!(keys(&after) - keys(&before), 4.0, "{after:?}");
    assert_eq!(
        delta(&before, &after, "portcullis_cache_entries{kind=\"api_keys\"}"),
        1.0,
        "the key and its owner are cached: {after:?}"
    );
    assert!(after["portcullis_cache_entries{kind=\"sessions\"}"] >= 1.0, "the token's session: {after:?}");
    assert!(after.contains_key("portcullis_cache_entries{kind=\"projects\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_backlog_is_reported() {
    // No SMTP server answers here, so the email waits in the outbox.
    let options = Options { smtp_url: Some("smtp://127.0.0.1:9".to_owned()), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    app.register("waiting@example.com").await;
    let url = app.url("/metrics");
    assert_eq!(scrape(&app, &url).await["portcullis_outbox_backlog"], 1.0, "the verification email waits");
    let response = app.post_json("/v1/auth/forgot-password", &json!({"email": "waiting@example.com"})).await;
    assert_eq!(response.status(), 202);
    // The worker answers the request within its round (1 s) and the email waits.
    let mut backlog = 0.0;
    for _ in 0..60 {
        backlog = scrape(&app, &url).await["portcullis_outbox_backlog"];
        if backlog > 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(backlog, 2.0, "and the reset email beside it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_address_takes_metrics_off_the_main_port() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = free.local_addr().unwrap();
    drop(free);
    let options = Options { metrics_bind: Some(address.to_string()), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 404);
    app.register("private@example.com").await;
    let mut samples = HashMap::new();
    for _ in 0..50 {
        if let Ok(response) = app.client.get(format!("http://{address}/metrics")).send().await {
            assert_eq!(response.status(), 200);
            samples = scrape(&app, &format!("http://{address}/metrics")).await;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let register =
        "portcullis_http_requests_total{method=\"POST\",route=\"/v1/auth/register\",status=\"201\"}";
    assert_eq!(samples.get(register), Some(&1.0), "the API's traffic is counted on the metrics port");
    let doc: serde_json::Value =
        app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"].get("/metrics").is_none(), "not documented where it is not served");
}
