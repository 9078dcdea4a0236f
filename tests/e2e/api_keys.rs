//! API keys and the example resource over a real socket.

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, expect_error, token_of};

fn at(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().unwrap(), &Rfc3339).unwrap()
}

/// A key that passes the format and checksum checks but was never issued.
fn unissued_key() -> String {
    portcullis_domain::ApiKeySecret::from_random(portcullis_domain::Environment::Live, [9u8; 32])
        .expose()
        .to_owned()
}

both_backends! {
    async fn a_created_key_is_shown_once_and_expires_as_asked(app: &TestApp) {
        let token = app.token_for("keys@example.com").await;
        let now = portcullis_domain::ports::Clock::now(&*app.clock);
        let response = app
            .client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&token)
            .json(&json!({"name": "  Production Server Key ", "expires_in_days": 30}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let key: Value = response.json().await.unwrap();
        assert!(key["id"].as_str().unwrap().starts_with("key_"));
        assert!(uuid::Uuid::parse_str(&key["id"].as_str().unwrap()[4..]).is_ok());
        let secret = key["api_key"].as_str().unwrap();
        assert!(secret.starts_with("sk_live_") && secret.len() == 8 + 49, "{secret}");
        assert_eq!(key["prefix"], "sk_live");
        assert_eq!(key["name"], "Production Server Key");
        let expires = at(&key["expires_at"]) - at(&key["created_at"]);
        assert_eq!(expires.whole_days(), 30);
        assert!((at(&key["created_at"]) - now).abs() < Duration::seconds(2));

        let default = app.create_key(&token, &json!({"name": "default"})).await;
        assert_eq!((at(&default["expires_at"]) - at(&default["created_at"])).whole_days(), 90);
        let test = app.create_key(&token, &json!({"name": "sandbox", "environment": "test"})).await;
        assert!(test["api_key"].as_str().unwrap().starts_with("sk_test_"));
        assert_eq!(test["prefix"], "sk_test");

        // The secret is nowhere else: not in the listing, not on /me.
        let listing = app.get_with("/v1/api-keys", &token).await.text().await.unwrap();
        assert!(!listing.contains(secret) && !listing.contains(&secret[8..20]), "{listing}");
    }

    async fn key_creation_validates_its_fields(app: &TestApp) {
        let token = app.token_for("keyfields@example.com").await;
        let create = |body: Value| app.client.post(app.url("/v1/api-keys")).bearer_auth(&token).json(&body).send();
        for days in [json!(0), json!(366), json!(-1), json!("30"), json!(1.5)] {
            let response = create(json!({"name": "k", "expires_in_days": days})).await.unwrap();
            expect_error(response, 422, "invalid_field").await;
        }
        for name in [json!(""), json!("   "), json!("x".repeat(101)), json!(null), json!(5)] {
            let response = create(json!({"name": name})).await.unwrap();
            expect_error(response, 422, "invalid_field").await;
        }
        expect_error(create(json!({"name": "k", "environment": "prod"})).await.unwrap(), 422, "invalid_field").await;
        assert!(app.create_key(&token, &json!({"name": "x".repeat(100), "expires_in_days": 365})).await["id"].is_string());
        let listed: Value = app.get_with("/v1/api-keys", &token).await.json().await.unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 1, "nothing invalid was stored");
    }

    async fn the_listing_is_newest_first_without_secrets(app: &TestApp) {
        let token = app.token_for("listing@example.com").await;
        let first = app.create_key(&token, &json!({"name": "first"})).await;
        app.clock.advance(Duration::seconds(1));
        let second = app.create_key(&token, &json!({"name": "second"})).await;
        let revoke = app.client.delete(app.url(&format!("/v1/api-keys/{}", first["id"].as_str().unwrap()))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(revoke.status(), 200);
        assert_eq!(revoke.json::<Value>().await.unwrap(), json!({"message": "API key revoked successfully"}));

        let listed: Value = app.get_with("/v1/api-keys", &token).await.json().await.unwrap();
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["id"], second["id"], "newest first");
        assert_eq!(listed[0]["is_active"], true);
        assert_eq!(listed[1]["id"], first["id"]);
        assert_eq!(listed[1]["is_active"], false, "revoked keys stay listed");
        let mut fields: Vec<&str> = listed[0].as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["created_at", "environment", "expires_at", "id", "is_active", "last_used_at", "name", "prefix", "usage_count"]);
        assert_eq!(listed[0]["usage_count"], 0);
        assert_eq!(listed[0]["last_used_at"], Value::Null);
    }

    async fn a_revoked_key_fails_at_once(app: &TestApp) {
        let token = app.token_for("revoker@example.com").await;
        let key = app.create_key(&token, &json!({"name": "ci"})).await;
        let secret = key["api_key"].as_str().unwrap();
        assert_eq!(app.get_with_key("/v1/auth/me", secret).await.status(), 200);
        let id = key["id"].as_str().unwrap();
        assert_eq!(app.client.delete(app.url(&format!("/v1/api-keys/{id}"))).bearer_auth(&token).send().await.unwrap().status(), 200);
        let refused = app.get_with_key("/v1/auth/me", secret).await;
        assert_eq!(refused.headers()["www-authenticate"], r#"Bearer realm="portcullis", error="invalid_token""#);
        expect_error(refused, 401, "api_key_revoked").await;
        expect_error(app.get_with("/v1/database/projects", secret).await, 401, "api_key_revoked").await;
        // Revoking again is harmless.
        assert_eq!(app.client.delete(app.url(&format!("/v1/api-keys/{id}"))).bearer_auth(&token).send().await.unwrap().status(), 200);
    }

    async fn another_users_key_is_not_found(app: &TestApp) {
        let alice = app.token_for("alice@example.com").await;
        let bob = app.token_for("bob@example.com").await;
        let key = app.create_key(&alice, &json!({"name": "alice's"})).await;
        let id = key["id"].as_str().unwrap();
        let delete = app.client.delete(app.url(&format!("/v1/api-keys/{id}"))).bearer_auth(&bob).send().await.unwrap();
        expect_error(delete, 404, "not_found").await;
        let bobs: Value = app.get_with("/v1/api-keys", &bob).await.json().await.unwrap();
        assert_eq!(bobs, json!([]));
        assert_eq!(app.get_with_key("/v1/auth/me", key["api_key"].as_str().unwrap()).await.status(), 200, "still alive");
        for bad in ["abc", "key_", "key_123", "550e8400-e29b-41d4-a716-446655440000", "key_00000000-0000-0000-0000-000000000000"] {
            let response = app.client.delete(app.url(&format!("/v1/api-keys/{bad}"))).bearer_auth(&alice).send().await.unwrap();
            expect_error(response, 404, "not_found").await;
        }
    }

    async fn an_expired_key_is_refused(app: &TestApp) {
        let token = app.token_for("expiring@example.com").await;
        let key = app.create_key(&token, &json!({"name": "short", "expires_in_days": 1})).await;
        let secret = key["api_key"].as_str().unwrap();
        app.clock.advance(Duration::days(1) - Duration::seconds(5));
        assert_eq!(app.get_with_key("/v1/auth/me", secret).await.status(), 200);
        app.clock.advance(Duration::seconds(10));
        expect_error(app.get_with_key("/v1/auth/me", secret).await, 401, "api_key_expired").await;
        let listed: Value = app.get_with_key("/v1/auth/me", secret).await.json().await.unwrap();
        assert_eq!(listed["code"], "api_key_expired");
    }

    async fn unknown_and_mistyped_keys_are_refused(app: &TestApp) {
        let token = app.token_for("typo@example.com").await;
        let key = app.create_key(&token, &json!({"name": "real"})).await;
        let secret = key["api_key"].as_str().unwrap().to_owned();
        let mut mistyped = secret.clone().into_bytes();
        let position = 20;
        mistyped[position] = if mistyped[position] == b'a' { b'b' } else { b'a' };
        let mistyped = String::from_utf8(mistyped).unwrap();
        for bad in [unissued_key(), mistyped, "sk_live_short".to_owned(), format!("{secret}x")] {
            expect_error(app.get_with_key("/v1/auth/me", &bad).await, 401, "invalid_api_key").await;
            expect_error(app.get_with("/v1/auth/me", &bad).await, 401, "invalid_api_key").await;
        }
        // Keys are read from headers only, never from the URL (it ends up in logs).
        for query in ["api_key", "key", "access_token", "x-api-key"] {
            let response = app.client.get(app.url(&format!("/v1/auth/me?{query}={secret}"))).send().await.unwrap();
            expect_error(response, 401, "not_authenticated").await;
        }
    }

    async fn a_key_works_as_x_api_key_and_as_bearer(app: &TestApp) {
        let token = app.token_for("both@example.com").await;
        let key = app.create_key(&token, &json!({"name": "both"})).await;
        let secret = key["api_key"].as_str().unwrap();
        for response in [app.get_with_key("/v1/auth/me", secret).await, app.get_with("/v1/auth/me", secret).await] {
            assert_eq!(response.status(), 200);
            assert_eq!(response.json::<Value>().await.unwrap()["email"], "both@example.com");
        }
        let status: Value = app.get_with_key("/v1/test-auth/auth-status", secret).await.json().await.unwrap();
        assert_eq!(status["method"], "api_key");
        let created = app.client.post(app.url("/v1/database/projects")).bearer_auth(secret).json(&json!({"name": "p"})).send().await.unwrap();
        assert_eq!(created.status(), 201);
        let listed: Value = app.get_with_key("/v1/database/projects", secret).await.json().await.unwrap();
        assert_eq!(listed[0]["name"], "p");
    }

    async fn key_management_needs_a_jwt(app: &TestApp) {
        let token = app.token_for("jwtonly@example.com").await;
        let key = app.create_key(&token, &json!({"name": "k"})).await;
        let secret = key["api_key"].as_str().unwrap();
        let id = key["id"].as_str().unwrap();
        expect_error(app.get_with_key("/v1/api-keys", secret).await, 403, "jwt_required").await;
        let create = app.client.post(app.url("/v1/api-keys")).header("X-API-Key", secret).json(&json!({"name": "x"})).send().await.unwrap();
        expect_error(create, 403, "jwt_required").await;
        let delete = app.client.delete(app.url(&format!("/v1/api-keys/{id}"))).bearer_auth(secret).send().await.unwrap();
        expect_error(delete, 403, "jwt_required").await;
        expect_error(app.post_with("/v1/auth/refresh", secret).await, 403, "jwt_required").await;
        expect_error(app.post_with("/v1/auth/logout", secret).await, 403, "jwt_required").await;
        assert_eq!(app.get_with_key("/v1/auth/me", secret).await.status(), 200, "the key was not revoked");
    }

    async fn usage_is_counted_without_writing_on_the_request_path(app: &TestApp) {
        let token = app.token_for("usage@example.com").await;
        let key = app.create_key(&token, &json!({"name": "busy"})).await;
        let secret = key["api_key"].as_str().unwrap();
        for _ in 0..7 {
            assert_eq!(app.get_with_key("/v1/database/projects", secret).await.status(), 200);
        }
        app.services.api_keys.flush_usage().await.unwrap();
        let listed: Value = app.get_with("/v1/api-keys", &token).await.json().await.unwrap();
        assert_eq!(listed[0]["usage_count"], 7);
        assert!(listed[0]["last_used_at"].is_string());
        for _ in 0..3 {
            app.get_with("/v1/auth/me", secret).await;
        }
        app.get_with_key("/v1/auth/me", &unissued_key()).await;
        app.services.api_keys.flush_usage().await.unwrap();
        let listed: Value = app.get_with("/v1/api-keys", &token).await.json().await.unwrap();
        assert_eq!(listed[0]["usage_count"], 10, "flushes add up; refused keys count nothing");
    }

    async fn projects_are_scoped_to_the_callers_environment(app: &TestApp) {
        let token = app.token_for("envs@example.com").await;
        let live = app.create_key(&token, &json!({"name": "live"})).await["api_key"].as_str().unwrap().to_owned();
        let test = app.create_key(&token, &json!({"name": "test", "environment": "test"})).await["api_key"].as_str().unwrap().to_owned();
        let create = |credential: String, name: &'static str| {
            app.client.post(app.url("/v1/database/projects")).bearer_auth(credential).json(&json!({"name": name})).send()
        };
        let jwt_project: Value = create(token.clone(), "from jwt").await.unwrap().json().await.unwrap();
        assert_eq!(jwt_project["environment"], "live");
        let test_project: Value = create(test.clone(), "from test key").await.unwrap().json().await.unwrap();
        assert_eq!(test_project["environment"], "test");
        let live_project: Value = create(live.clone(), "from live key").await.unwrap().json().await.unwrap();

        let names = |list: Value| list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        let from_jwt = names(app.get_with("/v1/database/projects", &token).await.json().await.unwrap());
        let from_live = names(app.get_with_key("/v1/database/projects", &live).await.json().await.unwrap());
        let from_test = names(app.get_with_key("/v1/database/projects", &test).await.json().await.unwrap());
        assert_eq!(from_jwt, ["from live key", "from jwt"]);
        assert_eq!(from_live, from_jwt);
        assert_eq!(from_test, ["from test key"]);
        assert!(uuid::Uuid::parse_str(live_project["id"].as_str().unwrap()).is_ok());

        // Another user sees none of them.
        let other = app.token_for("other-envs@example.com").await;
        assert_eq!(app.get_with("/v1/database/projects", &other).await.json::<Value>().await.unwrap(), json!([]));
        expect_error(create(token.clone(), "").await.unwrap(), 422, "invalid_field").await;
    }

    async fn disabling_a_user_stops_their_tokens_and_keys(app: &TestApp) {
        let admin = app.admin_token("root@example.com").await;
        let token = app.token_for("victim@example.com").await;
        let key = app.create_key(&token, &json!({"name": "k"})).await["api_key"].as_str().unwrap().to_owned();
        let id = app.user("victim@example.com").await.id.to_string();
        let patch = app.client.patch(app.url(&format!("/v1/admin/users/{id}"))).bearer_auth(&admin).json(&json!({"is_active": false})).send().await.unwrap();
        assert_eq!(patch.status(), 200);
        assert_eq!(patch.json::<Value>().await.unwrap()["is_active"], false);

        expect_error(app.get_with("/v1/auth/me", &token).await, 401, "account_disabled").await;
        expect_error(app.get_with_key("/v1/database/projects", &key).await, 401, "account_disabled").await;
        expect_error(app.login("victim@example.com", PASSWORD).await, 403, "account_disabled").await;

        let enable = app.client.patch(app.url(&format!("/v1/admin/users/{id}"))).bearer_auth(&admin).json(&json!({"is_active": true})).send().await.unwrap();
        assert_eq!(enable.status(), 200);
        expect_error(app.get_with("/v1/auth/me", &token).await, 401, "session_ended").await;
        assert_eq!(app.get_with_key("/v1/auth/me", &key).await.status(), 200, "keys are long-lived credentials: they come back");
        let fresh = token_of(app.login("victim@example.com", PASSWORD).await).await;
        assert_eq!(app.get_with("/v1/auth/me", &fresh).await.status(), 200);
    }
}
