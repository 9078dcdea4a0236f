//! Roles and administration.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, expect_error};

both_backends! {
    async fn admins_page_through_users(app: &TestApp) {
        let admin = app.admin_token("admin@example.com").await;
        for i in 0..4 {
            app.register(&format!("member{i}@example.com")).await;
        }
        let page: Value = app.get_with("/v1/admin/users?limit=2&offset=1", &admin).await.json().await.unwrap();
        assert_eq!(page["total"], 5);
        let emails: Vec<&str> = page["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
        assert_eq!(emails, ["member0@example.com", "member1@example.com"]);
        assert!(page["items"][0].get("password_hash").is_none());
        let all: Value = app.get_with("/v1/admin/users", &admin).await.json().await.unwrap();
        assert_eq!(all["items"].as_array().unwrap().len(), 5);
        assert_eq!(all["items"][0]["role"], "ADMIN");
        let beyond: Value = app.get_with("/v1/admin/users?offset=50", &admin).await.json().await.unwrap();
        assert_eq!(beyond, json!({"items": [], "total": 5, "next_after": null}));
        for bad in ["limit=0", "limit=101", "limit=abc", "offset=-1", "limit=1.5"] {
            expect_error(app.get_with(&format!("/v1/admin/users?{bad}"), &admin).await, 422, "invalid_field").await;
        }
    }

    async fn admins_page_through_users_after_a_cursor(app: &TestApp) {
        let admin = app.admin_token("admin@example.com").await;
        for i in 0..4 {
            app.register(&format!("member{i}@example.com")).await;
        }
        let mut seen = Vec::new();
        let mut path = "/v1/admin/users?limit=2".to_owned();
        loop {
            let page: Value = app.get_with(&path, &admin).await.json().await.unwrap();
            assert_eq!(page["total"], 5);
            let items = page["items"].as_array().unwrap();
            seen.extend(items.iter().map(|u| u["email"].as_str().unwrap().to_owned()));
            match page["next_after"].as_str() {
                Some(after) => {
                    assert_eq!(after, items.last().unwrap()["id"], "the cursor is the page's last user");
                    path = format!("/v1/admin/users?limit=2&after={after}");
                }
                None => break,
            }
        }
        let expected = ["admin@example.com", "member0@example.com", "member1@example.com", "member2@example.com"];
        assert_eq!(seen[..4], expected);
        assert_eq!(seen.len(), 5, "every user once: {seen:?}");
        // A page that ends exactly at the last user says so: no empty page after it.
        let whole: Value = app.get_with("/v1/admin/users?limit=5", &admin).await.json().await.unwrap();
        assert_eq!(whole["next_after"], Value::Null);
        let first = whole["items"][0]["id"].as_str().unwrap().to_owned();
        for bad in [
            format!("after={}", uuid::Uuid::new_v4()),
            "after=not-a-uuid".to_owned(),
            format!("after={first}&offset=1"),
        ] {
            expect_error(app.get_with(&format!("/v1/admin/users?{bad}"), &admin).await, 422, "invalid_field").await;
        }
    }

    async fn only_admins_administer(app: &TestApp) {
        let admin = app.admin_token("boss@example.com").await;
        let user = app.token_for("worker@example.com").await;
        expect_error(app.get_with("/v1/admin/users", &user).await, 403, "insufficient_permissions").await;
        let id = app.user("boss@example.com").await.id.to_string();
        let patch = app.client.patch(app.url(&format!("/v1/admin/users/{id}"))).bearer_auth(&user).json(&json!({"role": "USER"})).send().await.unwrap();
        expect_error(patch, 403, "insufficient_permissions").await;
        expect_error(app.client.get(app.url("/v1/admin/users")).send().await.unwrap(), 401, "not_authenticated").await;
        // An admin's API key is not enough: administration is interactive.
        let key = app.create_key(&admin, &json!({"name": "admin key"})).await;
        expect_error(app.get_with_key("/v1/admin/users", key["api_key"].as_str().unwrap()).await, 403, "jwt_required").await;
        let worker_key = app.create_key(&user, &json!({"name": "worker key"})).await;
        expect_error(app.get_with_key("/v1/admin/users", worker_key["api_key"].as_str().unwrap()).await, 403, "insufficient_permissions").await;
    }

    async fn a_role_change_applies_to_tokens_issued_before_it(app: &TestApp) {
        let admin = app.admin_token("chief@example.com").await;
        let user = app.token_for("rising@example.com").await;
        let id = app.user("rising@example.com").await.id.to_string();
        expect_error(app.get_with("/v1/admin/users", &user).await, 403, "insufficient_permissions").await;
        let promote = app.client.patch(app.url(&format!("/v1/admin/users/{id}"))).bearer_auth(&admin).json(&json!({"role": "ADMIN"})).send().await.unwrap();
        assert_eq!(promote.json::<Value>().await.unwrap()["role"], "ADMIN");
        assert_eq!(app.get_with("/v1/admin/users", &user).await.status(), 200, "the stored role counts, not the token's claim");
        let demote = app.client.patch(app.url(&format!("/v1/admin/users/{id}"))).bearer_auth(&admin).json(&json!({"role": "USER"})).send().await.unwrap();
        assert_eq!(demote.status(), 200);
        expect_error(app.get_with("/v1/admin/users", &user).await, 403, "insufficient_permissions").await;
    }

    async fn bad_updates_are_refused(app: &TestApp) {
        let admin = app.admin_token("careful-admin@example.com").await;
        app.register("target@example.com").await;
        let id = app.user("target@example.com").await.id.to_string();
        let patch = |path: String, body: Value| app.client.patch(app.url(&path)).bearer_auth(&admin).json(&body).send();
        expect_error(patch(format!("/v1/admin/users/{id}"), json!({"role": "ROOT"})).await.unwrap(), 422, "invalid_field").await;
        expect_error(patch(format!("/v1/admin/users/{id}"), json!({"is_active": "no"})).await.unwrap(), 422, "invalid_field").await;
        expect_error(patch("/v1/admin/users/not-a-uuid".to_owned(), json!({"is_active": false})).await.unwrap(), 404, "not_found").await;
        expect_error(patch(format!("/v1/admin/users/{}", uuid::Uuid::new_v4()), json!({"is_active": false})).await.unwrap(), 404, "not_found").await;
        let me = app.user("careful-admin@example.com").await.id.to_string();
        expect_error(patch(format!("/v1/admin/users/{me}"), json!({"is_active": false})).await.unwrap(), 422, "invalid_field").await;
        expect_error(patch(format!("/v1/admin/users/{me}"), json!({"role": "USER"})).await.unwrap(), 422, "invalid_field").await;
        let unchanged: Value = patch(format!("/v1/admin/users/{id}"), json!({})).await.unwrap().json().await.unwrap();
        assert_eq!((unchanged["role"].as_str(), unchanged["is_active"].as_bool()), (Some("USER"), Some(true)));
    }
}
