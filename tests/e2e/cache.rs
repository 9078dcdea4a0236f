//! The auth cache (`AUTH_CACHE_TTL_MS`): what this instance changes applies at
//! once; what changes behind its back (another instance) applies within the TTL.

use serde_json::json;

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error, token_of};

async fn spawn(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, Options { cache_ttl_ms: Some("1000"), ..Options::default() }).await
}

async fn changes_made_here_apply_at_once(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let admin = app.admin_token("cache-admin@example.com").await;

    // Logout and refresh revoke a cached token at once.
    let token = app.token_for("cached@example.com").await;
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);
    assert_eq!(app.post_with("/v1/auth/logout", &token).await.status(), 200);
    expect_error(app.get_with("/v1/auth/me", &token).await, 401, "token_revoked").await;
    let token = token_of(app.login("cached@example.com", PASSWORD).await).await;
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);
    let rotated = token_of(app.post_with("/v1/auth/refresh", &token).await).await;
    expect_error(app.get_with("/v1/auth/me", &token).await, 401, "token_revoked").await;

    // A password change ends every cached session of the user.
    let other = token_of(app.login("cached@example.com", PASSWORD).await).await;
    assert_eq!(app.get_with("/v1/auth/me", &other).await.status(), 200);
    let changed = app
        .client
        .post(app.url("/v1/auth/change-password"))
        .bearer_auth(&rotated)
        .json(&json!({"current_password": PASSWORD, "new_password": "NewSecurePass456!"}))
        .send()
        .await
        .unwrap();
    let fresh = token_of(changed).await;
    expect_error(app.get_with("/v1/auth/me", &other).await, 401, "session_ended").await;

    // A revoked key, and a disabled owner, are refused at once.
    let key = app.create_key(&fresh, &json!({"name": "cached key"})).await;
    let (key_id, secret) = (key["id"].as_str().unwrap(), key["api_key"].as_str().unwrap());
    assert_eq!(app.get_with_key("/v1/database/projects", secret).await.status(), 200);
    let revoke = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{key_id}")))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    expect_error(app.get_with_key("/v1/database/projects", secret).await, 401, "api_key_revoked").await;
    let second = app.create_key(&fresh, &json!({"name": "second key"})).await;
    let second = second["api_key"].as_str().unwrap();
    let empty: serde_json::Value =
        app.get_with_key("/v1/database/projects", second).await.json().await.unwrap();
    assert_eq!(empty, json!([]));
    let created = app
        .client
        .post(app.url("/v1/database/projects"))
        .header("X-API-Key", second)
        .json(&json!({"name": "Fresh project"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let listed: serde_json::Value =
        app.get_with_key("/v1/database/projects", second).await.json().await.unwrap();
    assert_eq!(listed[0]["name"], "Fresh project", "a new project shows at once: {listed}");
    assert_eq!(app.get_with("/v1/auth/me", &fresh).await.status(), 200);
    let id = app.user("cached@example.com").await.id;
    let disable = app.client.patch(app.url(&format!("/v1/admin/users/{id}"))).bearer_auth(&admin);
    assert_eq!(disable.json(&json!({"is_active": false})).send().await.unwrap().status(), 200);
    expect_error(app.get_with("/v1/auth/me", &fresh).await, 401, "account_disabled").await;
    expect_error(app.get_with_key("/v1/database/projects", second).await, 401, "account_disabled").await;
}

async fn changes_made_elsewhere_apply_within_the_ttl(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let token = app.token_for("elsewhere@example.com").await;
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);
    // Another instance disables the user: this one trusts what it read for up to a second.
    let user = app.user("elsewhere@example.com").await;
    app.users.set_active(user.id, false, time::OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200, "within the TTL");
    app.clock.advance(time::Duration::milliseconds(1_001));
    expect_error(app.get_with("/v1/auth/me", &token).await, 401, "account_disabled").await;
}

async fn a_token_in_steady_use_sees_changes_made_elsewhere_after_half_the_ttl(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let token = app.token_for("steady@example.com").await;
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);
    let user = app.user("steady@example.com").await;
    app.users.set_active(user.id, false, time::OffsetDateTime::now_utc()).await.unwrap();
    app.clock.advance(time::Duration::milliseconds(400));
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200, "first half: the cached session");
    app.clock.advance(time::Duration::milliseconds(200));
    // The first request in the second half has the session read again in
    // the background, and is served the cached one meanwhile (no request
    // waits on the store for a token in steady use); once that read lands,
    // before the first read's TTL ends (the test's clock stands still), the
    // change applies.
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200, "served while read again");
    let mut status = 200;
    for _ in 0..100 {
        status = app.get_with("/v1/auth/me", &token).await.status().as_u16();
        if status != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, 401, "the session read in the background applies");
    expect_error(app.get_with("/v1/auth/me", &token).await, 401, "account_disabled").await;
}

crate::on_both_backends!(
    changes_made_here_apply_at_once,
    changes_made_elsewhere_apply_within_the_ttl,
    a_token_in_steady_use_sees_changes_made_elsewhere_after_half_the_ttl
);
