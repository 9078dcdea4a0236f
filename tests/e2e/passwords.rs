//! Forgotten passwords: reset links by email through a real SMTP server.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error, token_of};
use crate::smtp::SmtpServer;

const FORGOT_ANSWER: &str = "If that email is registered, a reset link has been sent";

async fn app_with_smtp(backend: Backend, smtp: &SmtpServer) -> Option<TestApp> {
    TestApp::spawn_with(backend, Options { smtp_url: Some(smtp.url()), ..Options::default() }).await
}

async fn forgot(app: &TestApp, email: &str) -> Value {
    let response = app.post_json("/v1/auth/forgot-password", &json!({"email": email})).await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json("/v1/auth/reset-password", &json!({"token": token, "new_password": password})).await
}

/// Asks for a reset link for `email` and returns the token from the email.
async fn emailed_token(app: &TestApp, smtp: &SmtpServer, email: &str) -> String {
    let before = smtp.resets().len();
    forgot(app, email).await;
    for _ in 0..100 {
        if let Some(message) = smtp
            .resets()
            .get(before..)
            .and_then(|new| new.iter().find(|m| m.recipients.iter().any(|r| r.contains(email))))
        {
            return message.reset_token().expect("the email holds a reset link");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no reset email for {email}");
}

macro_rules! with_smtp {
    ($(async fn $name:ident($app:ident: &TestApp, $smtp:ident: &mut SmtpServer) $body:block)*) => {
        $(
            mod $name {
                use super::*;

                async fn scenario($app: &TestApp, $smtp: &mut SmtpServer) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let mut smtp = SmtpServer::start().await;
                    let app = app_with_smtp(Backend::Sqlite, &smtp).await.unwrap();
                    scenario(&app, &mut smtp).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let mut smtp = SmtpServer::start().await;
                    let Some(app) = app_with_smtp(Backend::Postgres, &smtp).await else { return };
                    scenario(&app, &mut smtp).await;
                }
            }
        )*
    };
}

with_smtp! {
    async fn the_emailed_link_resets_the_password_and_ends_every_session(app: &TestApp, smtp: &mut SmtpServer) {
        let old = app.token_for("forgetful@example.com").await;
        let body = forgot(app, "  Forgetful@Example.com ").await;
        assert_eq!(body, json!({"message": FORGOT_ANSWER}));
        let email = smtp.wait_for_reset("forgetful@example.com", Duration::from_secs(5)).await.expect("the email arrives");
        assert!(email.data.contains("Subject: Reset your password"), "{}", email.data);
        assert!(email.data.contains("multipart/alternative"));
        assert!(email.data.contains("text/plain") && email.data.contains("text/html"));
        let text = email.text();
        assert!(text.contains("/reset-password?token=prt_"), "the built-in page by default: {text}");
        let token = email.reset_token().unwrap();

        let response = reset(app, &token, "NewSecurePass456!").await;
        assert_eq!(response.status(), 200);
        assert!(response.json::<Value>().await.unwrap()["message"].is_string());

        // The reset ends every session: whoever knew the old password may hold one.
        expect_error(app.get_with("/v1/auth/me", &old).await, 401, "session_ended").await;
        expect_error(app.login("forgetful@example.com", PASSWORD).await, 401, "invalid_credentials").await;
        let fresh = token_of(app.login("forgetful@example.com", "NewSecurePass456!").await).await;
        assert_eq!(app.get_with("/v1/auth/me", &fresh).await.status(), 200);

        expect_error(reset(app, &token, "AnotherPass789!").await, 400, "invalid_reset_token").await;
        let kinds = crate::audit::own_event_types(app, &fresh).await;
        assert_eq!(kinds[..4], ["login_succeeded", "login_failed", "password_reset", "password_reset_requested"], "{kinds:?}");
        crate::audit::assert_no_secret(app, &[&token, &old, &fresh, "NewSecurePass456!", PASSWORD]).await;
    }

    async fn an_unknown_email_gets_the_same_answer_and_no_email(app: &TestApp, smtp: &mut SmtpServer) {
        app.register("known@example.com").await;
        let known = forgot(app, "known@example.com").await;
        let unknown = forgot(app, "nobody@example.com").await;
        assert_eq!(known, unknown);
        smtp.wait_for_reset("known@example.com", Duration::from_secs(5)).await.expect("the known user's email");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(smtp.resets().iter().all(|m| m.recipients.iter().all(|r| !r.contains("nobody"))), "no email to an unknown address");
        assert_eq!(smtp.resets().len(), 1);
    }

    async fn an_expired_link_is_refused(app: &TestApp, smtp: &mut SmtpServer) {
        app.register("slow@example.com").await;
        let token = emailed_token(app, smtp, "slow@example.com").await;
        app.clock.advance(time::Duration::hours(1) + time::Duration::seconds(1));
        expect_error(reset(app, &token, "NewSecurePass456!").await, 400, "invalid_reset_token").await;
        assert_eq!(app.login("slow@example.com", PASSWORD).await.status(), 200, "the password did not change");
    }

    async fn a_weak_password_leaves_the_token_usable(app: &TestApp, smtp: &mut SmtpServer) {
        app.register("weakling@example.com").await;
        let token = emailed_token(app, smtp, "weakling@example.com").await;
        let weak = expect_error(reset(app, &token, "weak").await, 422, "weak_password").await;
        assert_eq!(weak["errors"][0]["field"], "new_password");
        assert_eq!(reset(app, &token, "StrongerPass456!").await.status(), 200);
    }

    async fn a_newer_link_replaces_the_older_one(app: &TestApp, smtp: &mut SmtpServer) {
        app.register("twice@example.com").await;
        let first = emailed_token(app, smtp, "twice@example.com").await;
        let second = emailed_token(app, smtp, "twice@example.com").await;
        assert_ne!(first, second);
        expect_error(reset(app, &first, "NewSecurePass456!").await, 400, "invalid_reset_token").await;
        assert_eq!(reset(app, &second, "NewSecurePass456!").await.status(), 200);
    }

    async fn ten_concurrent_resets_with_one_token_succeed_once(app: &TestApp, smtp: &mut SmtpServer) {
        app.register("racer@example.com").await;
        let token = emailed_token(app, smtp, "racer@example.com").await;
        let attempts = (0..10).map(|i| {
            let body = json!({"token": token, "new_password": format!("RacePass{i}!x")});
            app.client.post(app.url("/v1/auth/reset-password")).json(&body).send()
        });
        let statuses: Vec<u16> = join_all(attempts).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 9, "{statuses:?}");
    }

    async fn malformed_requests_are_refused(app: &TestApp, smtp: &mut SmtpServer) {
        let _ = smtp;
        for token in ["", "abc", "prt_short", "prt_0000000000000000000000000000000000000000000000000"] {
            expect_error(reset(app, token, "NewSecurePass456!").await, 400, "invalid_reset_token").await;
        }
        expect_error(app.post_json("/v1/auth/reset-password", &json!({"token": "x"})).await, 422, "invalid_field").await;
        expect_error(app.post_json("/v1/auth/reset-password", &json!({"token": 5, "new_password": "x"})).await, 422, "invalid_field").await;
        expect_error(app.post_json("/v1/auth/forgot-password", &json!({})).await, 422, "invalid_field").await;
        expect_error(app.post_json("/v1/auth/forgot-password", &json!({"email": ["a@example.com"]})).await, 422, "invalid_field").await;
        expect_error(app.post_json("/v1/auth/forgot-password", &json!({"email": "not an email"})).await, 422, "invalid_email").await;
    }

    async fn five_forgot_requests_send_three_emails(app: &TestApp, smtp: &mut SmtpServer) {
        app.register("insistent@example.com").await;
        for _ in 0..5 {
            let body = forgot(app, "insistent@example.com").await;
            assert_eq!(body, json!({"message": FORGOT_ANSWER}), "the same answer every time");
        }
        let to_them = || smtp.resets().iter().filter(|m| m.recipients.iter().any(|r| r.contains("insistent"))).count();
        for _ in 0..100 {
            if to_them() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Give the two extra requests time to be (not) answered.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(to_them(), 3, "at most 3 reset emails an hour");
        app.clock.advance(time::Duration::minutes(61));
        forgot(app, "insistent@example.com").await;
        let mut fourth = false;
        for _ in 0..100 {
            if to_them() == 4 {
                fourth = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(fourth, "an hour later the budget is back");
    }

    async fn a_reset_link_dies_with_a_password_change(app: &TestApp, smtp: &mut SmtpServer) {
        let token = app.token_for("changed-mind@example.com").await;
        let link = emailed_token(app, smtp, "changed-mind@example.com").await;
        let change = app
            .client
            .post(app.url("/v1/auth/change-password"))
            .bearer_auth(&token)
            .json(&json!({"current_password": PASSWORD, "new_password": "NewSecurePass456!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(change.status(), 200);
        expect_error(reset(app, &link, "AttackerPass789!").await, 400, "invalid_reset_token").await;
        assert_eq!(app.login("changed-mind@example.com", "NewSecurePass456!").await.status(), 200);
    }

    async fn an_email_waits_for_the_mail_server(app: &TestApp, smtp: &mut SmtpServer) {
        app.register("patient@example.com").await;
        smtp.stop();
        forgot(app, "patient@example.com").await;
        // The first attempt fails and is scheduled again 5 s later (test clock).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(smtp.resets().is_empty());
        smtp.restart().await;
        app.clock.advance(time::Duration::seconds(6));
        let email = smtp.wait_for_reset("patient@example.com", Duration::from_secs(5)).await;
        assert!(email.is_some(), "delivered once the server is back, without another request");
        let token = email.unwrap().reset_token().unwrap();
        assert_eq!(reset(app, &token, "NewSecurePass456!").await.status(), 200);
    }
}

async fn a_successful_reset_clears_both_failed_login_budgets(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let options = Options {
        smtp_url: Some(smtp.url()),
        rate_limits: Some("login=off,failed_login=3/900,failed_login_account=4/900"),
        trusted_proxies: Some("127.0.0.1"),
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else { return };
    app.register("locked-out@example.com").await;
    let login_from = |client: &'static str, password: &'static str| {
        app.client
            .post(app.url("/v1/auth/login-json"))
            .header("X-Forwarded-For", client)
            .json(&json!({"username": "locked-out@example.com", "password": password}))
            .send()
    };
    for _ in 0..3 {
        expect_error(login_from("198.51.100.1", "WrongPass123!").await.unwrap(), 401, "invalid_credentials")
            .await;
    }
    expect_error(login_from("198.51.100.2", "WrongPass123!").await.unwrap(), 401, "invalid_credentials")
        .await;
    expect_error(login_from("198.51.100.1", PASSWORD).await.unwrap(), 429, "rate_limited").await;
    expect_error(login_from("203.0.113.3", PASSWORD).await.unwrap(), 429, "rate_limited").await;
    let token = emailed_token(&app, &smtp, "locked-out@example.com").await;
    assert_eq!(reset(&app, &token, "NewSecurePass456!").await.status(), 200);
    for client in ["198.51.100.1", "203.0.113.3"] {
        assert_eq!(login_from(client, "NewSecurePass456!").await.unwrap().status(), 200, "{client}");
    }
}

crate::on_both_backends!(a_successful_reset_clears_both_failed_login_budgets);
