//! Sessions with an absolute and an idle end, rotating refresh tokens with
//! reuse detection (RFC 9700), and the endpoints that list and end sessions.

use serde_json::{Value, json};
use time::Duration;

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, expect_error};

use crate::sessions::payload_of as claims_of;

/// Signs in with a password: the whole token response.
async fn sign_in(app: &TestApp, email: &str) -> Value {
    let response = app.login(email, PASSWORD).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn refresh_with(app: &TestApp, refresh_token: &Value) -> reqwest::Response {
    app.post_json("/v1/auth/refresh", &json!({"refresh_token": refresh_token})).await
}

fn access(body: &Value) -> &str {
    body["access_token"].as_str().unwrap()
}

both_backends! {
    async fn every_sign_in_starts_a_session_with_a_refresh_token(app: &TestApp) {
        let registered = app.register("session-start@example.com").await;
        let signed_in = sign_in(app, "session-start@example.com").await;
        let form: Value = app
            .client
            .post(app.url("/v1/auth/login"))
            .form(&[("username", "session-start@example.com"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut sessions = Vec::new();
        for body in [&registered, &signed_in, &form] {
            let refresh = body["refresh_token"].as_str().expect("a refresh token");
            assert!(refresh.starts_with("rt_") && refresh.len() == 52, "{refresh}");
            assert_eq!(body["refresh_expires_in"], 2_592_000);
            assert_eq!(body["expires_in"], 28_800, "the seed's lifetime");
            let claims = claims_of(access(body));
            assert!(uuid::Uuid::parse_str(claims["sid"].as_str().unwrap()).is_ok());
            assert_eq!(claims["auth_time"], claims["iat"]);
            sessions.push(claims["sid"].clone());
        }
        sessions.dedup();
        assert_eq!(sessions.len(), 3, "one session per sign-in");
    }

    async fn a_refresh_token_rotates_and_its_reuse_ends_the_session(app: &TestApp) {
        app.register("rotate@example.com").await;
        let first = sign_in(app, "rotate@example.com").await;
        let second = refresh_with(app, &first["refresh_token"]).await;
        assert_eq!(second.status(), 200);
        assert_eq!(second.headers()["cache-control"], "no-store");
        let second: Value = second.json().await.unwrap();
        assert_ne!(second["refresh_token"], first["refresh_token"]);
        assert_eq!(claims_of(access(&second))["sid"], claims_of(access(&first))["sid"], "the same session");
        assert_eq!(claims_of(access(&second))["auth_time"], claims_of(access(&first))["auth_time"]);
        assert_eq!(app.get_with("/v1/auth/me", access(&second)).await.status(), 200);

        // Within the grace period: refused, the session left alone (two tabs racing).
        app.clock.advance(Duration::seconds(5));
        expect_error(refresh_with(app, &first["refresh_token"]).await, 401, "refresh_token_reused").await;
        assert_eq!(app.get_with("/v1/auth/me", access(&second)).await.status(), 200);

        // After it: a copy is in other hands; the whole session ends.
        app.clock.advance(Duration::seconds(10));
        expect_error(refresh_with(app, &first["refresh_token"]).await, 401, "refresh_token_reused").await;
        expect_error(app.get_with("/v1/auth/me", access(&second)).await, 401, "session_ended").await;
        expect_error(refresh_with(app, &second["refresh_token"]).await, 401, "invalid_refresh_token").await;
        let kinds = crate::audit::own_event_types(app, access(&sign_in(app, "rotate@example.com").await)).await;
        assert!(kinds.contains(&"refresh_token_reused".to_owned()), "{kinds:?}");
    }

    async fn of_eight_concurrent_refreshes_one_succeeds(app: &TestApp) {
        app.register("race@example.com").await;
        let body = sign_in(app, "race@example.com").await;
        let answers = futures_util::future::join_all((0..8).map(|_| refresh_with(app, &body["refresh_token"]))).await;
        let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "{statuses:?}");
        assert_eq!(app.get_with("/v1/auth/me", access(&body)).await.status(), 200, "a race ends nothing");
    }

    async fn a_session_ends_when_idle_and_at_its_absolute_end(app: &TestApp) {
        app.register("lifetimes@example.com").await;
        let mut body = sign_in(app, "lifetimes@example.com").await;
        // Refreshed every six days: the idle end (7 days) never comes...
        for _ in 0..4 {
            app.clock.advance(Duration::days(6));
            let next = refresh_with(app, &body["refresh_token"]).await;
            assert_eq!(next.status(), 200);
            body = next.json().await.unwrap();
        }
        // ...but the absolute one (30 days) does: 24 days in, 6 remain.
        assert_eq!(body["refresh_expires_in"], 6 * 86_400);
        app.clock.advance(Duration::days(6));
        expect_error(refresh_with(app, &body["refresh_token"]).await, 401, "invalid_refresh_token").await;

        let idle = sign_in(app, "lifetimes@example.com").await;
        app.clock.advance(Duration::days(7));
        expect_error(refresh_with(app, &idle["refresh_token"]).await, 401, "invalid_refresh_token").await;
    }

    async fn an_access_token_never_outlives_its_session(app: &TestApp) {
        app.register("short@example.com").await;
        let mut body = sign_in(app, "short@example.com").await;
        for _ in 0..4 {
            app.clock.advance(Duration::days(6));
            body = refresh_with(app, &body["refresh_token"]).await.json().await.unwrap();
        }
        // One hour before the absolute end (30 days): the new token lives an hour, not eight.
        app.clock.advance(Duration::days(6) - Duration::hours(1));
        let last: Value = refresh_with(app, &body["refresh_token"]).await.json().await.unwrap();
        assert_eq!(last["refresh_expires_in"], 3600);
        assert_eq!(last["expires_in"], 3600);
        let claims = claims_of(access(&last));
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
        app.clock.advance(Duration::hours(1) + Duration::seconds(6));
        expect_error(app.get_with("/v1/auth/me", access(&last)).await, 401, "token_expired").await;
    }

    async fn the_seeds_refresh_returns_the_sessions_new_refresh_token(app: &TestApp) {
        app.register("seed-refresh@example.com").await;
        let first = sign_in(app, "seed-refresh@example.com").await;
        let by_access = app.post_with("/v1/auth/refresh", access(&first)).await;
        assert_eq!(by_access.status(), 200);
        let by_access: Value = by_access.json().await.unwrap();
        assert!(by_access["refresh_token"].as_str().unwrap().starts_with("rt_"));
        assert_eq!(claims_of(access(&by_access))["sid"], claims_of(access(&first))["sid"]);
        // The session's earlier refresh token was spent by that.
        expect_error(refresh_with(app, &first["refresh_token"]).await, 401, "refresh_token_reused").await;
        assert_eq!(refresh_with(app, &by_access["refresh_token"]).await.status(), 200);
    }

    async fn refresh_bodies_are_checked(app: &TestApp) {
        app.register("shapes@example.com").await;
        let body = sign_in(app, "shapes@example.com").await;
        let token = body["refresh_token"].as_str().unwrap();
        let mut typo = token.to_owned();
        typo.replace_range(5..6, if &typo[5..6] == "a" { "b" } else { "a" });
        for bad in [json!("rt_short"), json!(typo), json!(format!("{token}x")), json!("x".repeat(10_000)), json!("")] {
            expect_error(refresh_with(app, &bad).await, 401, "invalid_refresh_token").await;
        }
        expect_error(app.post_json("/v1/auth/refresh", &json!({"refresh_token": 5})).await, 422, "invalid_field").await;
        expect_error(app.post_json("/v1/auth/refresh", &json!({})).await, 422, "invalid_field").await;
        let both = app
            .client
            .post(app.url("/v1/auth/refresh"))
            .bearer_auth(access(&body))
            .json(&json!({"refresh_token": token}))
            .send()
            .await
            .unwrap();
        expect_error(both, 422, "invalid_field").await;
        let text = app.client.post(app.url("/v1/auth/refresh")).body(format!("refresh_token={token}")).send().await.unwrap();
        expect_error(text, 400, "malformed_body").await;
        assert_eq!(refresh_with(app, &body["refresh_token"]).await.status(), 200, "none of that spent it");
    }

    async fn the_caller_lists_and_ends_their_sessions(app: &TestApp) {
        app.register("many@example.com").await;
        let first = sign_in(app, "many@example.com").await;
        app.clock.advance(Duration::seconds(30));
        let second = sign_in(app, "many@example.com").await;
        let stranger = app.token_for("stranger@example.com").await;
        let list: Value = app.get_with("/v1/auth/sessions", access(&second)).await.json().await.unwrap();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 3, "the registration's, and two logins: {list:?}");
        assert_eq!(list[0]["id"], claims_of(access(&second))["sid"], "newest first");
        assert_eq!((list[0]["current"].clone(), list[1]["current"].clone()), (json!(true), json!(false)));
        assert_eq!(list[0]["method"], "password");
        assert_eq!(list[0]["mfa"], false);
        for field in ["created_at", "last_used_at", "expires_at"] {
            assert!(list[0][field].as_str().unwrap().ends_with('Z'), "{field}");
        }
        assert!(list[0].as_object().unwrap().contains_key("ip") && list[0].as_object().unwrap().contains_key("user_agent"));

        let first_sid = claims_of(access(&first))["sid"].as_str().unwrap().to_owned();
        let delete = |token: String, id: String| async move {
            app.client.delete(app.url(&format!("/v1/auth/sessions/{id}"))).bearer_auth(token).send().await.unwrap()
        };
        expect_error(delete(stranger.clone(), first_sid.clone()).await, 404, "not_found").await;
        expect_error(delete(access(&second).to_owned(), uuid::Uuid::new_v4().to_string()).await, 404, "not_found").await;
        expect_error(delete(access(&second).to_owned(), "not-a-uuid".to_owned()).await, 404, "not_found").await;
        let ended = delete(access(&second).to_owned(), first_sid.clone()).await;
        assert_eq!(ended.status(), 200);
        expect_error(app.get_with("/v1/auth/me", access(&first)).await, 401, "session_ended").await;
        expect_error(refresh_with(app, &first["refresh_token"]).await, 401, "invalid_refresh_token").await;
        expect_error(delete(access(&second).to_owned(), first_sid).await, 404, "not_found").await;

        let all = app.post_with("/v1/auth/logout-all", access(&second)).await;
        assert_eq!(all.status(), 200);
        assert_eq!(all.json::<Value>().await.unwrap(), json!({"message": "Signed out of every session", "sessions_ended": 2}));
        expect_error(app.get_with("/v1/auth/me", access(&second)).await, 401, "token_revoked").await;
        expect_error(refresh_with(app, &second["refresh_token"]).await, 401, "invalid_refresh_token").await;
        assert_eq!(app.get_with("/v1/auth/me", &stranger).await.status(), 200, "another user's sessions live on");

        let key = app.create_key(&stranger, &json!({"name": "no sessions"})).await;
        let by_key = app.client.get(app.url("/v1/auth/sessions")).header("X-API-Key", key["api_key"].as_str().unwrap()).send().await.unwrap();
        expect_error(by_key, 403, "jwt_required").await;
    }

    async fn logout_ends_the_whole_session(app: &TestApp) {
        app.register("bye@example.com").await;
        let body = sign_in(app, "bye@example.com").await;
        let renewed: Value = app.post_with("/v1/auth/refresh", access(&body)).await.json().await.unwrap();
        assert_eq!(app.post_with("/v1/auth/logout", access(&renewed)).await.status(), 200);
        expect_error(refresh_with(app, &renewed["refresh_token"]).await, 401, "invalid_refresh_token").await;
    }

    async fn a_password_change_ends_the_other_sessions_and_keeps_this_one(app: &TestApp) {
        app.register("changer@example.com").await;
        let here = sign_in(app, "changer@example.com").await;
        let elsewhere = sign_in(app, "changer@example.com").await;
        let new_password = "An0ther-Passw0rd!";
        let changed = app
            .client
            .post(app.url("/v1/auth/change-password"))
            .bearer_auth(access(&here))
            .json(&json!({"current_password": PASSWORD, "new_password": new_password}))
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), 200);
        let changed: Value = changed.json().await.unwrap();
        let token = changed["access_token"].as_str().unwrap();
        assert_eq!(claims_of(token)["sid"], claims_of(access(&here))["sid"], "the same session");
        assert_eq!(app.get_with("/v1/auth/me", token).await.status(), 200);
        expect_error(app.get_with("/v1/auth/me", access(&elsewhere)).await, 401, "session_ended").await;
        expect_error(refresh_with(app, &elsewhere["refresh_token"]).await, 401, "invalid_refresh_token").await;
        let renewed = refresh_with(app, &here["refresh_token"]).await;
        assert_eq!(renewed.status(), 200, "this session's refresh token still works");
        let renewed: Value = renewed.json().await.unwrap();
        assert_eq!(app.get_with("/v1/auth/me", access(&renewed)).await.status(), 200, "under the new session version");
    }

    async fn an_admin_signs_a_user_out_everywhere_and_disabling_does_too(app: &TestApp) {
        let admin = app.admin_token("session-admin@example.com").await;
        app.register("watched@example.com").await;
        let one = sign_in(app, "watched@example.com").await;
        let two = sign_in(app, "watched@example.com").await;
        let id = app.user("watched@example.com").await.id.to_string();
        let path = format!("/v1/admin/users/{id}/sessions");
        let user_tries = app.client.delete(app.url(&path)).bearer_auth(access(&one)).send().await.unwrap();
        expect_error(user_tries, 403, "insufficient_permissions").await;
        let ended = app.client.delete(app.url(&path)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(ended.status(), 200);
        assert_eq!(ended.json::<Value>().await.unwrap(), json!({"sessions_ended": 3}));
        for body in [&one, &two] {
            expect_error(app.get_with("/v1/auth/me", access(body)).await, 401, "session_ended").await;
        }
        let unknown = format!("/v1/admin/users/{}/sessions", uuid::Uuid::new_v4());
        expect_error(app.client.delete(app.url(&unknown)).bearer_auth(&admin).send().await.unwrap(), 404, "not_found").await;

        let three = sign_in(app, "watched@example.com").await;
        let disable = app.client.patch(app.url(&format!("/v1/admin/users/{id}"))).bearer_auth(&admin).json(&json!({"is_active": false})).send().await.unwrap();
        assert_eq!(disable.status(), 200);
        let enable = app.client.patch(app.url(&format!("/v1/admin/users/{id}"))).bearer_auth(&admin).json(&json!({"is_active": true})).send().await.unwrap();
        assert_eq!(enable.status(), 200);
        expect_error(app.get_with("/v1/auth/me", access(&three)).await, 401, "session_ended").await;
        expect_error(refresh_with(app, &three["refresh_token"]).await, 401, "invalid_refresh_token").await;
    }
}
