//! The audit log over HTTP, on both databases: every security event with its
//! fields, the admin and self endpoints, and no secret anywhere in it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error, token_of};

const AGENT: &str = "audit-test/1.0";
const CLIENT_IP: &str = "203.0.113.9";

/// The types of the caller's own events, newest first.
pub(crate) async fn own_event_types(app: &TestApp, token: &str) -> Vec<String> {
    let page: Value = app.get_with("/v1/auth/me/events?limit=200", token).await.json().await.unwrap();
    page["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

/// Reads every event through the store and fails if any holds one of `secrets`.
pub(crate) async fn assert_no_secret(app: &TestApp, secrets: &[&str]) {
    let query = portcullis_domain::AuditQuery { user_id: None, kind: None, before: None, limit: 10_000 };
    let events = app.audit.list_events(query).await.unwrap();
    assert!(!events.is_empty());
    let text = format!("{events:?}");
    for secret in secrets {
        assert!(!secret.is_empty() && !text.contains(secret), "an audit event holds a secret: {secret}");
    }
}

async fn spawn(backend: Backend) -> Option<TestApp> {
    let options = Options {
        rate_limits: Some("failed_login=3/900"),
        trusted_proxies: Some("127.0.0.1"),
        ..Options::default()
    };
    TestApp::spawn_with(backend, options).await
}

/// A request as a browser behind our proxy sends it.
fn proxied(app: &TestApp, method: reqwest::Method, path: &str, request_id: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("User-Agent", AGENT)
        .header("X-Forwarded-For", CLIENT_IP)
        .header("X-Request-Id", request_id)
}

async fn events(app: &TestApp, admin: &str, query: &str) -> Value {
    let response = app.get_with(&format!("/v1/admin/audit-events?{query}"), admin).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn types(page: &Value) -> Vec<&str> {
    page["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect()
}

async fn every_event_is_written_with_its_fields(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let admin = app.admin_token("auditor@example.com").await;
    let post = reqwest::Method::POST;

    let registered = proxied(&app, post.clone(), "/v1/auth/register", "req-register")
        .json(&json!({"email": "audited@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let user_id = registered.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let login = |password: &'static str, id: &'static str| {
        proxied(&app, post.clone(), "/v1/auth/login-json", id)
            .json(&json!({"username": "audited@example.com", "password": password}))
            .send()
    };
    let signed_in: Value = login(PASSWORD, "req-login").await.unwrap().json().await.unwrap();
    let token = signed_in["access_token"].as_str().unwrap().to_owned();
    expect_error(login("WrongPass999!", "req-bad").await.unwrap(), 401, "invalid_credentials").await;
    // The refresh-token exchange writes its event in the rotation's own
    // commit (one statement on PostgreSQL): it carries the request's context too.
    let refresh_token = signed_in["refresh_token"].as_str().unwrap();
    let rotated = proxied(&app, post.clone(), "/v1/auth/refresh", "req-rotate")
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let next_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = token_of(
        proxied(&app, post.clone(), "/v1/auth/refresh", "req-refresh")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let changed = proxied(&app, post.clone(), "/v1/auth/change-password", "req-change")
        .bearer_auth(&refreshed)
        .json(&json!({"current_password": PASSWORD, "new_password": "NewSecurePass456!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let token = token_of(changed).await;
    let created = app.create_key(&token, &json!({"name": "audited key"})).await;
    let (key_id, secret) = (created["id"].as_str().unwrap(), created["api_key"].as_str().unwrap());
    let used = proxied(&app, reqwest::Method::GET, "/v1/auth/me", "req-key").header("X-API-Key", secret);
    assert_eq!(used.send().await.unwrap().status(), 200);
    let revoked = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{key_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let patch = app.client.patch(app.url(&format!("/v1/admin/users/{user_id}"))).bearer_auth(&admin);
    assert_eq!(patch.json(&json!({"role": "ADMIN"})).send().await.unwrap().status(), 200);
    let out = proxied(&app, post.clone(), "/v1/auth/logout", "req-logout")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    expect_error(app.login("nobody@example.com", PASSWORD).await, 401, "invalid_credentials").await;
    // Three failures from one address lock the account there (the password
    // change above started its budgets afresh): the third is the lockout,
    // the fourth is refused as locked.
    for _ in 0..3 {
        expect_error(app.login("audited@example.com", "WrongPass999!").await, 401, "invalid_credentials")
            .await;
    }
    expect_error(app.login("audited@example.com", "NewSecurePass456!").await, 429, "rate_limited").await;

    // The key's new address is written with the usage flush (every 5 s).
    let mut page = Value::Null;
    for _ in 0..80 {
        page = events(&app, &admin, &format!("user_id={user_id}&limit=200")).await;
        if types(&page).contains(&"api_key_new_ip") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut kinds = types(&page);
    kinds.sort_unstable();
    let mut expected = vec![
        "register",
        "email_verification_requested",
        "login_succeeded",
        "login_failed",
        "token_refreshed",
        "token_refreshed",
        "password_changed",
        "api_key_created",
        "api_key_new_ip",
        "api_key_revoked",
        "admin_user_updated",
        "logout",
        "login_failed",
        "login_failed",
        "login_failed",
        "account_locked",
        "login_failed",
    ];
    expected.sort_unstable();
    assert_eq!(kinds, expected, "{page:#}");

    let items = page["items"].as_array().unwrap();
    let by_request = |id: &str, kind: &str| {
        items
            .iter()
            .find(|e| e["request_id"] == id && e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event of {id}: {page:#}"))
    };
    for (request_id, kind) in [
        ("req-register", "register"),
        ("req-login", "login_succeeded"),
        ("req-bad", "login_failed"),
        ("req-refresh", "token_refreshed"),
        ("req-rotate", "token_refreshed"),
        ("req-change", "password_changed"),
        ("req-logout", "logout"),
    ] {
        let event = by_request(request_id, kind);
        assert_eq!(event["type"], kind);
        assert_eq!(event["user_id"], user_id.as_str());
        assert_eq!(event["ip"], CLIENT_IP, "the client behind the trusted proxy");
        assert_eq!(event["user_agent"], AGENT);
        assert!(
            time::OffsetDateTime::parse(
                event["at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );
    }
    assert_eq!(by_request("req-bad", "login_failed")["detail"], "bad_password");
    // Registration's verification email is written with the registration's request.
    assert_eq!(by_request("req-register", "email_verification_requested")["user_id"], user_id.as_str());
    let new_ip = items.iter().find(|e| e["type"] == "api_key_new_ip").unwrap();
    assert_eq!((new_ip["ip"].as_str(), new_ip["request_id"].as_str()), (Some(CLIENT_IP), Some("req-key")));
    assert_eq!(new_ip["detail"], format!("key_id={key_id}"));
    let updated = items.iter().find(|e| e["type"] == "admin_user_updated").unwrap();
    let admin_id = app.user("auditor@example.com").await.id;
    assert_eq!(updated["detail"], format!("role=ADMIN by={admin_id}"));
    // Filtered by the contract's name, and by the name releases before
    // 2026-12-05 wrote and documented.
    for name in ["admin_user_updated", "user_updated"] {
        let filtered = events(&app, &admin, &format!("type={name}&user_id={user_id}")).await;
        assert_eq!(types(&filtered), ["admin_user_updated"], "type={name}: {filtered:#}");
    }
    let reasons: Vec<&str> =
        items.iter().filter(|e| e["type"] == "login_failed").map(|e| e["detail"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["locked", "bad_password", "bad_password", "bad_password", "bad_password"]);
    let unknown = events(&app, &admin, "type=login_failed&limit=200").await;
    assert!(
        unknown["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"] == "unknown_email" && e["user_id"].is_null())
    );
    // Without a trusted proxy's header the request id is ours, and it is returned.
    let response = app.login("auditor@example.com", PASSWORD).await;
    let returned = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let own = events(&app, &admin, &format!("user_id={admin_id}&type=login_succeeded&limit=1")).await;
    assert_eq!(own["items"][0]["request_id"], returned);
    assert_eq!(own["items"][0]["ip"], "127.0.0.1");

    assert_no_secret(
        &app,
        &[
            PASSWORD,
            "NewSecurePass456!",
            "WrongPass999!",
            &token,
            &refreshed,
            &admin,
            secret,
            refresh_token,
            &next_refresh,
        ],
    )
    .await;
}

async fn the_endpoints_filter_page_and_guard(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let admin = app.admin_token("pager@example.com").await;
    let user = app.token_for("paged@example.com").await;
    for _ in 0..4 {
        assert_eq!(app.login("paged@example.com", PASSWORD).await.status(), 200);
    }
    let id = app.user("paged@example.com").await.id;

    let first = events(&app, &admin, &format!("user_id={id}&type=login_succeeded&limit=2")).await;
    assert_eq!(types(&first), ["login_succeeded", "login_succeeded"]);
    let before = first["next_before"].as_str().unwrap();
    let second =
        events(&app, &admin, &format!("user_id={id}&type=login_succeeded&limit=2&before={before}")).await;
    assert_eq!(types(&second).len(), 2);
    let third = events(
        &app,
        &admin,
        &format!(
            "user_id={id}&type=login_succeeded&limit=2&before={}",
            second["next_before"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(types(&third), ["login_succeeded"], "5 logins in all: token_for logged in once");
    assert!(third["next_before"].is_null(), "the last page says so");
    let ids: Vec<&str> = [&first, &second, &third]
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(ids, sorted, "newest first, no overlap");
    let registers = events(&app, &admin, "type=register").await;
    assert_eq!(types(&registers), ["register", "register"]);

    let mine: Value = app.get_with("/v1/auth/me/events?limit=3", &user).await.json().await.unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 3);
    assert!(mine["items"].as_array().unwrap().iter().all(|e| e["user_id"] == id.to_string()));
    let own_types = own_event_types(&app, &user).await;
    assert_eq!(own_types.last().map(String::as_str), Some("register"));
    assert!(!own_types.is_empty() && own_types.len() == 7, "{own_types:?}");

    expect_error(app.get_with("/v1/admin/audit-events", &user).await, 403, "insufficient_permissions").await;
    expect_error(
        app.client.get(app.url("/v1/admin/audit-events")).send().await.unwrap(),
        401,
        "not_authenticated",
    )
    .await;
    expect_error(
        app.client.get(app.url("/v1/auth/me/events")).send().await.unwrap(),
        401,
        "not_authenticated",
    )
    .await;
    for bad in ["limit=0", "limit=201", "type=nonsense", "user_id=not-a-uuid", "before=42"] {
        expect_error(
            app.get_with(&format!("/v1/admin/audit-events?{bad}"), &admin).await,
            422,
            "invalid_field",
        )
        .await;
    }
    expect_error(app.get_with("/v1/auth/me/events?limit=500", &user).await, 422, "invalid_field").await;
}

crate::on_both_backends!(every_event_is_written_with_its_fields, the_endpoints_filter_page_and_guard);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_are_pruned_after_the_retention() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let token = app.token_for("old-timer@example.com").await;
    app.clock.advance(time::Duration::days(91));
    assert_eq!(app.login("old-timer@example.com", PASSWORD).await.status(), 200);
    let pruned = app.services.audit.prune(90).await.unwrap();
    assert_eq!(pruned, 3, "register, its verification email and the first login are past 90 days");
    let fresh = token_of(app.login("old-timer@example.com", PASSWORD).await).await;
    assert_eq!(own_event_types(&app, &fresh).await, ["login_succeeded", "login_succeeded"]);
    drop(token);
}

/// A backlog larger than one pruning write goes in several: everything past
/// the retention is deleted, nothing newer.
async fn a_backlog_is_pruned_in_batches_to_the_last_event(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let user = portcullis_domain::UserId::new();
    let start = portcullis_domain::ports::Clock::now(app.clock.as_ref());
    let batch = 2_345;
    for i in 0..batch {
        let at = start - time::Duration::days(100) + time::Duration::seconds(i);
        app.audit
            .append(portcullis_domain::AuditEvent {
                id: uuid::Uuid::now_v7(),
                at,
                kind: portcullis_domain::AuditKind::LoginFailed,
                user_id: Some(user),
                detail: None,
                ip: None,
                user_agent: None,
                request_id: None,
            })
            .await
            .unwrap();
    }
    let token = app.token_for("recent@example.com").await;
    let pruned = app.services.audit.prune(90).await.unwrap();
    // The app's own hourly prune job may take some of them at start, so the
    // count is not exact; what must hold is that none is left.
    assert!(pruned <= 2_345);
    assert_eq!(app.services.audit.prune(90).await.unwrap(), 0);
    let mine = portcullis_domain::AuditQuery { user_id: Some(user), kind: None, before: None, limit: 10 };
    assert!(app.audit.list_events(mine).await.unwrap().is_empty());
    assert!(!own_event_types(&app, &token).await.is_empty(), "recent events stay");
}

crate::on_both_backends!(a_backlog_is_pruned_in_batches_to_the_last_event);
