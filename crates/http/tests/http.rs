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
