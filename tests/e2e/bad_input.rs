//! Malformed requests get a 4xx with `{"detail", "code"}` and change nothing.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, expect_error};

both_backends! {
    async fn a_json_body_is_one_whose_media_type_says_json_in_any_case(app: &TestApp) {
        // Read as JSON (an unknown account: 401), or refused before reading (400).
        let cases = [
            ("application/json", 401),
            ("Application/JSON; charset=utf-8", 401),
            ("application/json ;charset=UTF-8", 401),
            ("application/vnd.api+json", 401),
            ("APPLICATION/PROBLEM+JSON; q=1", 401),
            ("text/plain", 400),
            ("application/jsonx", 400),
            ("application/x-www-form-urlencoded", 400),
            ("json", 400),
        ];
        for (i, (content_type, status)) in cases.into_iter().enumerate() {
            let body = format!(r#"{{"username": "nobody-{i}@example.com", "password": "{PASSWORD}"}}"#);
            let response = app
                .client
                .post(app.url("/v1/auth/login-json"))
                .header("Content-Type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let code = if status == 401 { "invalid_credentials" } else { "malformed_body" };
            expect_error(response, status, code).await;
        }
    }

    async fn malformed_bodies_are_refused_and_store_nothing(app: &TestApp) {
        let register = app.url("/v1/auth/register");
        let send = |body: &'static str, content_type: &'static str| {
            app.client.post(&register).header("Content-Type", content_type).body(body).send()
        };
        expect_error(send("{not json", "application/json").await.unwrap(), 400, "malformed_body").await;
        expect_error(send("", "application/json").await.unwrap(), 400, "malformed_body").await;
        expect_error(send(r#"{"email":"a@example.com","password":"SecurePass123!"}"#, "text/plain").await.unwrap(), 400, "malformed_body").await;
        let missing = expect_error(send(r#"{"email":"a@example.com"}"#, "application/json").await.unwrap(), 422, "invalid_field").await;
        assert_eq!(missing["errors"][0]["field"], "password");
        expect_error(send(r#"{"email":42,"password":"SecurePass123!"}"#, "application/json").await.unwrap(), 422, "invalid_field").await;
        expect_error(send(r#"["a@example.com"]"#, "application/json").await.unwrap(), 422, "invalid_field").await;
        let no_body = app.client.post(&register).send().await.unwrap();
        expect_error(no_body, 400, "malformed_body").await;
        // None of it created the account.
        expect_error(app.login("a@example.com", PASSWORD).await, 401, "invalid_credentials").await;
    }

    async fn oversized_bodies_get_413(app: &TestApp) {
        let padding = "x".repeat(70 * 1024);
        let big = json!({"email": "big@example.com", "password": PASSWORD, "full_name": padding});
        expect_error(app.post_json("/v1/auth/register", &big).await, 413, "payload_too_large").await;
        let form = app.client.post(app.url("/v1/auth/login")).form(&[("username", padding.as_str()), ("password", "x")]).send().await.unwrap();
        expect_error(form, 413, "payload_too_large").await;
        // Even where the route reads no body.
        let token = app.token_for("big@example.com").await;
        let logout = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&token).body(padding.clone()).send().await.unwrap();
        expect_error(logout, 413, "payload_too_large").await;
        assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200, "the refused logout did nothing");
    }

    async fn unknown_routes_and_wrong_methods_answer_json(app: &TestApp) {
        expect_error(app.client.get(app.url("/nope")).send().await.unwrap(), 404, "not_found").await;
        expect_error(app.client.get(app.url("/v1/auth/registerx")).send().await.unwrap(), 404, "not_found").await;
        let wrong = app.client.get(app.url("/v1/auth/register")).send().await.unwrap();
        assert_eq!(wrong.headers()["allow"], "POST");
        expect_error(wrong, 405, "method_not_allowed").await;
        expect_error(app.client.delete(app.url("/v1/auth/me")).send().await.unwrap(), 405, "method_not_allowed").await;
    }

    async fn a_malformed_login_form_is_refused(app: &TestApp) {
        let response = app.client.post(app.url("/v1/auth/login")).form(&[("username", "a@example.com")]).send().await.unwrap();
        expect_error(response, 422, "invalid_field").await;
        let json = app.client.post(app.url("/v1/auth/login")).json(&json!({"username": "a", "password": "b"})).send().await.unwrap();
        expect_error(json, 400, "malformed_body").await;
    }

    async fn hostile_header_values_do_not_break_anything(app: &TestApp) {
        for value in ["Bearer \u{7f}", "Bearer a b c", "bearer", "Bearer sk_test_", "Bearer eyJ.eyJ.eyJ.eyJ"] {
            let response = app.client.get(app.url("/v1/auth/me")).header("Authorization", value).send().await;
            if let Ok(response) = response {
                assert_eq!(response.status(), 401, "{value:?}");
            }
        }
        // Bytes beyond visible ASCII (UTF-8 text, and bytes that are not
        // UTF-8): refused as the credential they claim to be.
        let credentials: [(&str, &[u8], &str); 4] = [
            ("Authorization", b"Bearer eyJ\xc3\xa9.eyJ.sig", "invalid_token"),
            ("Authorization", b"Bearer \xff\xfe", "invalid_token"),
            ("X-API-Key", b"sk_live_\xc3\xa9abcdef", "invalid_api_key"),
            ("X-API-Key", b"sk_live_\xffabcdef", "invalid_api_key"),
        ];
        for (name, value, code) in credentials {
            let value = reqwest::header::HeaderValue::from_bytes(value).unwrap();
            let response = app.client.get(app.url("/v1/auth/me")).header(name, value).send().await.unwrap();
            expect_error(response, 401, code).await;
        }
        let huge = format!("Bearer {}", "a".repeat(6000));
        let response = app.client.get(app.url("/v1/auth/me")).header("Authorization", huge).send().await.unwrap();
        assert!(response.status().is_client_error());
        assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200, "still serving");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_and_header_floods_are_refused_cleanly() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await.unwrap();
    // Deep nesting in a typed field is refused at its first bracket; in a
    // field no DTO has, serde_json skips it without recursing. Either way: a
    // clean 4xx, and a server that lives on.
    let deep = format!(
        "{{\"email\": \"deep@example.com\", \"password\": \"x\", \"extra\": {}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let response = app
        .client
        .post(app.url("/v1/auth/register"))
        .header("Content-Type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    assert!(response.json::<serde_json::Value>().await.unwrap()["code"].is_string());
    let typed = format!("{{\"email\": {}1{}, \"password\": \"x\"}}", "[".repeat(5000), "]".repeat(5000));
    let response = app
        .client
        .post(app.url("/v1/auth/register"))
        .header("Content-Type", "application/json")
        .body(typed)
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "invalid_field").await;

    // The server answers a header flood with 431 and `Connection: close`, and
    // closes. A pooled client can race that close and send its next request
    // down the dying connection, so the flood and the check after it each go
    // on a connection of their own: what is tested is the server, not the
    // client's pool.
    let unpooled = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("a client");
    let mut request = unpooled.get(app.url("/healthz"));
    for i in 0..200 {
        request = request.header(format!("x-flood-{i}"), "y");
    }
    if let Ok(response) = request.send().await {
        assert_eq!(response.status(), 431, "too many headers");
    }
    let after = unpooled.get(app.url("/healthz")).send().await.expect("a new connection is served");
    assert_eq!(after.status(), 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_request_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await.unwrap();
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"POST /v1/auth/login-json HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server closes a stalled request within its timeout");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
}
