//! Registration, login and profile.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, expect_error, token_of};

both_backends! {
    async fn register_returns_the_user_and_a_working_token(app: &TestApp) {
        let response = app
            .post_json("/v1/auth/register", &json!({"email": "user@example.com", "password": "SecurePass123!", "full_name": "John Doe"}))
            .await;
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["email"], "user@example.com");
        assert_eq!(body["full_name"], "John Doe");
        assert_eq!(body["role"], "USER");
        assert_eq!(body["is_active"], true);
        assert_eq!(body["providers"], json!(["password"]));
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 28800);
        assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
        assert!(time::OffsetDateTime::parse(body["created_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).is_ok());
        let text = body.to_string();
        assert!(!text.contains("SecurePass123!") && !text.contains("argon2"), "no password or hash in {text}");

        let me = app.get_with("/v1/auth/me", body["access_token"].as_str().unwrap()).await;
        assert_eq!(me.status(), 200);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["id"], body["id"]);
        assert_eq!(me["email"], "user@example.com");
    }

    async fn emails_are_trimmed_and_lower_cased(app: &TestApp) {
        let body = app.register("  John.Doe@Example.COM ").await;
        assert_eq!(body["email"], "john.doe@example.com");
        for spelling in ["john.doe@example.com", "JOHN.DOE@EXAMPLE.COM", " John.Doe@example.com\t"] {
            assert_eq!(app.login(spelling, PASSWORD).await.status(), 200, "login as {spelling:?}");
        }
        let again = app.post_json("/v1/auth/register", &json!({"email": "JOHN.doe@example.com ", "password": PASSWORD})).await;
        expect_error(again, 409, "email_taken").await;
    }

    async fn a_taken_email_is_a_conflict(app: &TestApp) {
        app.register("taken@example.com").await;
        let again = app.post_json("/v1/auth/register", &json!({"email": "taken@example.com", "password": "OtherPass456!"})).await;
        expect_error(again, 409, "email_taken").await;
    }

    async fn an_invalid_email_is_refused(app: &TestApp) {
        for email in ["", "not-an-email", "a@b", "two@@example.com", "spa ce@example.com"] {
            let response = app.post_json("/v1/auth/register", &json!({"email": email, "password": PASSWORD})).await;
            let body = expect_error(response, 422, "invalid_email").await;
            assert_eq!(body["errors"][0]["field"], "email");
        }
    }

    async fn every_failed_password_rule_is_listed(app: &TestApp) {
        let cases: [(&str, &[&str]); 7] = [
            ("Sh0rt!", &["password_too_short"]),
            ("securepass123!", &["password_missing_uppercase"]),
            ("SECUREPASS123!", &["password_missing_lowercase"]),
            ("SecurePass!!!", &["password_missing_digit"]),
            ("SecurePass123", &["password_missing_special"]),
            ("abc", &["password_too_short", "password_missing_uppercase", "password_missing_digit", "password_missing_special"]),
            ("", &["password_too_short", "password_missing_uppercase", "password_missing_lowercase", "password_missing_digit", "password_missing_special"]),
        ];
        for (password, rules) in cases {
            let response = app.post_json("/v1/auth/register", &json!({"email": "weak@example.com", "password": password})).await;
            let body = expect_error(response, 422, "weak_password").await;
            let listed: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
            assert_eq!(listed, rules, "{password:?}");
            assert!(body["errors"].as_array().unwrap().iter().all(|e| e["field"] == "password" && e["message"].is_string()));
        }
        let long = format!("Aa1!{}", "x".repeat(125));
        let response = app.post_json("/v1/auth/register", &json!({"email": "weak@example.com", "password": long})).await;
        let body = expect_error(response, 422, "weak_password").await;
        assert_eq!(body["errors"][0]["code"], "password_too_long");
        // Nothing was stored by any of these.
        expect_error(app.login("weak@example.com", PASSWORD).await, 401, "invalid_credentials").await;
    }

    async fn a_password_may_not_contain_the_email_name(app: &TestApp) {
        let response = app.post_json("/v1/auth/register", &json!({"email": "johnny@example.com", "password": "Johnny2024!x"})).await;
        let body = expect_error(response, 422, "weak_password").await;
        assert_eq!(body["errors"][0]["code"], "password_contains_email");
        // The seed's own examples stay valid: their local parts are under 5 characters.
        assert_eq!(app.post_json("/v1/auth/register", &json!({"email": "user@example.com", "password": "SecurePass123!"})).await.status(), 201);
        assert_eq!(app.post_json("/v1/auth/register", &json!({"email": "test@example.com", "password": "TestPass123!"})).await.status(), 201);
    }

    async fn a_common_password_is_refused_though_it_meets_the_rules(app: &TestApp) {
        let response = app.post_json("/v1/auth/register", &json!({"email": "common@example.com", "password": "Password123!"})).await;
        let body = expect_error(response, 422, "weak_password").await;
        let codes: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["password_too_common"]);
        for (i, seed) in ["SecurePass123!", "TestPass123!", "NewSecurePass456!", "OldPass123!", "NewPass456!"].iter().enumerate() {
            let email = format!("seed{i}@example.org");
            let response = app.post_json("/v1/auth/register", &json!({"email": email, "password": seed})).await;
            assert_eq!(response.status(), 201, "the seed's {seed} stays valid");
        }
    }

    async fn an_invalid_full_name_is_refused(app: &TestApp) {
        let response = app
            .post_json("/v1/auth/register", &json!({"email": "name@example.com", "password": PASSWORD, "full_name": "x".repeat(201)}))
            .await;
        let body = expect_error(response, 422, "invalid_field").await;
        assert_eq!(body["errors"][0]["field"], "full_name");
    }

    async fn login_json_and_form_both_issue_tokens(app: &TestApp) {
        app.register("user@example.com").await;
        let json_login = app.login("user@example.com", PASSWORD).await;
        assert_eq!(json_login.status(), 200);
        assert_eq!(json_login.headers()["cache-control"], "no-store");
        let body: Value = json_login.json().await.unwrap();
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 28800);
        let mut fields: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["access_token", "expires_in", "refresh_expires_in", "refresh_token", "token_type"],
            "exactly the TokenResponse: {body}"
        );

        let form = app
            .client
            .post(app.url("/v1/auth/login"))
            .form(&[("username", "user@example.com"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 200);
        assert_eq!(form.headers()["cache-control"], "no-store");
        let token = token_of(form).await;
        assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);
    }

    async fn wrong_password_and_unknown_email_look_the_same(app: &TestApp) {
        app.register("user@example.com").await;
        let wrong = app.login("user@example.com", "WrongPass123!").await;
        assert_eq!(wrong.headers()["www-authenticate"], r#"Bearer realm="portcullis""#);
        let wrong = expect_error(wrong, 401, "invalid_credentials").await;
        let unknown = expect_error(app.login("nobody@example.com", "WrongPass123!").await, 401, "invalid_credentials").await;
        let not_email = expect_error(app.login("not an email", "x").await, 401, "invalid_credentials").await;
        assert_eq!(wrong, unknown);
        assert_eq!(wrong, not_email);
        let form = app
            .client
            .post(app.url("/v1/auth/login"))
            .form(&[("username", "user@example.com"), ("password", "WrongPass123!")])
            .send()
            .await
            .unwrap();
        assert_eq!(expect_error(form, 401, "invalid_credentials").await, wrong);
    }

    async fn a_disabled_account_is_told_only_with_the_right_password(app: &TestApp) {
        let token = app.token_for("disabled@example.com").await;
        let user = app.user("disabled@example.com").await;
        app.users.set_active(user.id, false, time::OffsetDateTime::now_utc()).await.unwrap();

        expect_error(app.login("disabled@example.com", PASSWORD).await, 403, "account_disabled").await;
        expect_error(app.login("disabled@example.com", "WrongPass123!").await, 401, "invalid_credentials").await;
        let me = app.get_with("/v1/auth/me", &token).await;
        assert_eq!(me.headers()["www-authenticate"], r#"Bearer realm="portcullis", error="invalid_token""#);
        expect_error(me, 401, "account_disabled").await;
        expect_error(app.post_with("/v1/auth/refresh", &token).await, 401, "account_disabled").await;
    }

    async fn change_password_rejects_old_tokens_in_the_same_second(app: &TestApp) {
        // The test clock does not move: every token here has the same `iat`.
        let old = app.token_for("changer@example.com").await;
        let other_session = token_of(app.login("changer@example.com", PASSWORD).await).await;
        let response = app
            .client
            .post(app.url("/v1/auth/change-password"))
            .bearer_auth(&old)
            .json(&json!({"current_password": PASSWORD, "new_password": "NewSecurePass456!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].is_string());
        let new = body["access_token"].as_str().unwrap();

        expect_error(app.get_with("/v1/auth/me", &old).await, 401, "token_revoked").await;
        expect_error(app.get_with("/v1/auth/me", &other_session).await, 401, "session_ended").await;
        assert_eq!(app.get_with("/v1/auth/me", new).await.status(), 200);
        expect_error(app.login("changer@example.com", PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(app.login("changer@example.com", "NewSecurePass456!").await.status(), 200);
    }

    async fn change_password_checks_both_passwords(app: &TestApp) {
        let token = app.token_for("careful@example.com").await;
        let change = |current: &'static str, new: &'static str| {
            app.client
                .post(app.url("/v1/auth/change-password"))
                .bearer_auth(&token)
                .json(&json!({"current_password": current, "new_password": new}))
                .send()
        };
        expect_error(change("WrongPass123!", "NewSecurePass456!").await.unwrap(), 400, "invalid_current_password").await;
        let weak = expect_error(change(PASSWORD, "weak").await.unwrap(), 422, "weak_password").await;
        assert_eq!(weak["errors"][0]["field"], "new_password");
        // Neither attempt changed anything.
        assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);
        assert_eq!(app.login("careful@example.com", PASSWORD).await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_policy_is_published() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await.unwrap();
    let policy: Value =
        app.client.get(app.url("/v1/auth/password-policy")).send().await.unwrap().json().await.unwrap();
    assert_eq!(policy["mode"], "composition");
    assert_eq!((policy["min_length"].as_u64(), policy["max_length"].as_u64()), (Some(8), Some(128)));
    assert_eq!(policy["email_local_part_min"], 5);
    let codes: Vec<&str> =
        policy["rules"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "password_too_short",
            "password_too_long",
            "password_missing_uppercase",
            "password_missing_lowercase",
            "password_missing_digit",
            "password_missing_special",
            "password_contains_email",
            "password_too_common",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nist_rules_want_length_not_classes() {
    let options = crate::helpers::Options { nist_passwords: true, ..Default::default() };
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, options).await.unwrap();
    let policy: Value =
        app.client.get(app.url("/v1/auth/password-policy")).send().await.unwrap().json().await.unwrap();
    assert_eq!((policy["mode"].as_str(), policy["min_length"].as_u64()), (Some("nist"), Some(15)));
    let passphrase = app
        .post_json(
            "/v1/auth/register",
            &json!({"email": "nist@example.com", "password": "correct horse battery staple"}),
        )
        .await;
    assert_eq!(passphrase.status(), 201);
    let short = app
        .post_json("/v1/auth/register", &json!({"email": "nist2@example.com", "password": "SecurePass123!"}))
        .await;
    let body = expect_error(short, 422, "weak_password").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(body["errors"][0]["code"], "password_too_short");
}
