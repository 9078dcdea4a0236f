//! The HTTP layer alone: actix's test harness over the memory store.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use portcullis_domain::ports::{MockStoreHealth, StoreHealth, SystemClock};
use portcullis_domain::{AuthSettings, Services, StoreError};
use portcullis_http::{AppState, HttpSettings, configure};
use portcullis_store_memory::MemoryStore;
use serde_json::{Value, json};

fn state(health: Option<Arc<dyn StoreHealth>>) -> AppState {
    let store = Arc::new(MemoryStore::new());
    let ports = portcullis_testkit::memory_ports(store.clone(), Arc::new(SystemClock));
    AppState {
        services: Services::new(ports, AuthSettings::default()),
        health: health.unwrap_or(store),
        settings: HttpSettings::default(),
        metrics: Arc::new(portcullis_http::Metrics::default()),
    }
}

#[actix_web::test]
async fn x_api_key_is_checked_before_the_bearer_token() {
    let app = test::init_service(configure(state(None))).await;
    let register = TestRequest::post()
        .uri("/v1/auth/register")
        .set_json(json!({"email": "user@example.com", "password": "SecurePass123!"}))
        .to_request();
    let body: Value = test::call_and_read_body_json(&app, register).await;
    let token = body["access_token"].as_str().unwrap();

    let both = TestRequest::get()
        .uri("/v1/auth/me")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("X-API-Key", "sk_live_not_a_key"))
        .to_request();
    let response = test::call_service(&app, both).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["code"], "invalid_api_key");

    let bearer_key = TestRequest::get()
        .uri("/v1/auth/me")
        .insert_header(("Authorization", "Bearer sk_test_abc"))
        .to_request();
    let body: Value = test::read_body_json(test::call_service(&app, bearer_key).await).await;
    assert_eq!(body["code"], "invalid_api_key", "a bearer with a key prefix is read as a key");
}

#[actix_web::test]
async fn readiness_follows_the_store() {
    let mut failing = MockStoreHealth::new();
    failing
        .expect_ping()
        .returning(|| Err(StoreError::Unavailable("connection refused to 10.0.0.5".to_owned())));
    let app = test::init_service(configure(state(Some(Arc::new(failing))))).await;
    let response = test::call_service(&app, TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers().get("retry-after").unwrap(), "5");
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["code"], "service_unavailable");
    assert!(!body.to_string().contains("10.0.0.5"), "the cause stays in the log: {body}");

    let live = test::call_service(&app, TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(live.status(), StatusCode::OK, "liveness does not depend on the store");
}

#[actix_web::test]
async fn every_error_is_json_and_uncacheable() {
    let app = test::init_service(configure(state(None))).await;
    for request in [
        TestRequest::get().uri("/missing").to_request(),
        TestRequest::put().uri("/v1/auth/me").to_request(),
        TestRequest::post()
            .uri("/v1/auth/login-json")
            .set_payload("{")
            .insert_header(("content-type", "application/json"))
            .to_request(),
        TestRequest::get().uri("/v1/auth/me").to_request(),
    ] {
        let response = test::call_service(&app, request).await;
        assert!(response.status().is_client_error());
        assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
        assert!(
            response.headers().get("content-type").unwrap().to_str().unwrap().starts_with("application/json")
        );
        let body: Value = test::read_body_json(response).await;
        assert!(body["code"].is_string() && body["detail"].is_string(), "{body}");
    }
}

#[actix_web::test]
async fn test_endpoints_follow_the_setting() {
    let mut production = state(None);
    production.settings.test_endpoints = false;
    let app = test::init_service(configure(production)).await;
    let response =
        test::call_service(&app, TestRequest::get().uri("/v1/test-auth/auth-status").to_request()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// Every operation of `/openapi.json` is answered by a handler of the running
/// app, not by the fallback for unknown routes; and the routes that declare a
/// per-address limit family are the ones that count in it.
#[actix_web::test]
async fn every_documented_operation_is_served_and_limited_routes_say_so() {
    let app = test::init_service(configure(state(None))).await;
    let document: Value =
        test::call_and_read_body_json(&app, TestRequest::get().uri("/openapi.json").to_request()).await;
    let unrouted = test::call_service(&app, TestRequest::get().uri("/no/such/route").to_request()).await;
    assert_eq!(unrouted.status(), StatusCode::NOT_FOUND);
    let unrouted: Value = test::read_body_json(unrouted).await;
    let mut operations = 0;
    let mut limited = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        // Placeholders a handler accepts: a provider name, a UUID.
        let uuid = "0193a0c4-0000-7000-8000-000000000000";
        let uri = path.replace("{provider}", "github").replace("{key_id}", uuid).replace("{id}", uuid);
        assert!(!uri.contains('{'), "a placeholder to fill in {path}");
        for (method, operation) in item.as_object().unwrap() {
            let request = match method.as_str() {
                "get" => TestRequest::get(),
                "post" => TestRequest::post(),
                "patch" => TestRequest::patch(),
                "delete" => TestRequest::delete(),
                other => panic!("{other} {path}"),
            };
            let response = test::call_service(&app, request.uri(&uri).to_request()).await;
            let status = response.status();
            let body = test::read_body(response).await;
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && body != unrouted,
                "{method} {path} is documented but not served: {status} {body}"
            );
            operations += 1;
            if let Some(family) = operation.get("x-rate-limit-family") {
                limited.push(format!("{method} {path} {}", family.as_str().unwrap()));
                assert!(operation["responses"].get("429").is_some(), "{path} documents its 429");
            }
        }
    }
    assert!(operations > 25, "{operations}");
    limited.sort();
    assert_eq!(
        limited,
        [
            "delete /v1/auth/mfa/totp login",
            "post /v1/auth/forgot-password forgot_password",
            "post /v1/auth/github/callback login",
            "post /v1/auth/linkedin/callback login",
            "post /v1/auth/login login",
            "post /v1/auth/login-json login",
            "post /v1/auth/mfa/verify login",
            "post /v1/auth/register register",
            "post /v1/auth/resend-verification forgot_password",
            "post /v1/auth/{provider}/callback login",
            "post /v1/test-auth/create-test-user register",
            "post /v1/test-auth/test-login login",
        ]
    );
}
