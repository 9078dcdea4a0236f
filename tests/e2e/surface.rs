//! Operations endpoints, the OpenAPI document, and the test endpoints.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error, token_of};

both_backends! {
    async fn health_and_readiness_answer(app: &TestApp) {
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        assert!(ready.headers().contains_key("x-request-id"), "every response carries a request id");
    }

    async fn test_endpoints_work_outside_production(app: &TestApp) {
        let created = app.post_json("/v1/test-auth/create-test-user", &json!({"email": "test@example.com", "password": "TestPass123!"})).await;
        assert_eq!(created.status(), 201);
        let user: Value = created.json().await.unwrap();
        assert_eq!(user["email"], "test@example.com");
        assert!(user.get("access_token").is_none());
        let again = app.post_json("/v1/test-auth/create-test-user", &json!({"email": "test@example.com", "password": "TestPass123!"})).await;
        expect_error(again, 409, "email_taken").await;

        let login = app.post_json("/v1/test-auth/test-login", &json!({"email": "test@example.com", "password": "TestPass123!"})).await;
        assert_eq!(login.status(), 200);
        let token = token_of(login).await;
        let wrong = app.post_json("/v1/test-auth/test-login", &json!({"email": "test@example.com", "password": "Nope123!x"})).await;
        expect_error(wrong, 401, "invalid_credentials").await;

        let anonymous: Value = app.client.get(app.url("/v1/test-auth/auth-status")).send().await.unwrap().json().await.unwrap();
        assert_eq!(anonymous, json!({"authenticated": false, "method": null, "user": null}));
        let signed_in: Value = app.get_with("/v1/test-auth/auth-status", &token).await.json().await.unwrap();
        assert_eq!(signed_in["authenticated"], true);
        assert_eq!(signed_in["method"], "jwt");
        assert_eq!(signed_in["user"]["email"], "test@example.com");
        let bad: Value = app.get_with("/v1/test-auth/auth-status", "garbage").await.json().await.unwrap();
        assert_eq!(bad["authenticated"], false);
        assert_eq!(bad["reason"], "invalid_token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_endpoints_are_absent_in_production() {
    let app = TestApp::spawn_with(Backend::Sqlite, Options { production: true, ..Options::default() })
        .await
        .unwrap();
    for (method, path) in [
        ("GET", "/v1/test-auth/auth-status"),
        ("POST", "/v1/test-auth/create-test-user"),
        ("POST", "/v1/test-auth/test-login"),
    ] {
        let request = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .json(&json!({"email": "test@example.com", "password": PASSWORD}));
        expect_error(request.send().await.unwrap(), 404, "not_found").await;
    }
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"].as_object().unwrap().keys().all(|p| !p.starts_with("/v1/test-auth")));
    // The rest of the API is there.
    assert_eq!(
        app.post_json("/v1/auth/register", &json!({"email": "prod@example.com", "password": PASSWORD}))
            .await
            .status(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route() {
    // Providers configured (pointing nowhere: no route below reaches them), so
    // their routes answer rather than 404.
    let nowhere = Some("http://127.0.0.1:9".to_owned());
    let oidc_env = [
        ("AUTH_OIDC_ACME_ISSUER", "http://127.0.0.1:9"),
        ("AUTH_OIDC_ACME_CLIENT_ID", "id"),
        ("AUTH_OIDC_ACME_CLIENT_SECRET", "secret"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let options =
        Options { github_url: nowhere.clone(), linkedin_url: nowhere, oidc_env, ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // (documented path, method, a concrete path to call)
    let expected = [
        ("/v1/auth/register", "post", "/v1/auth/register"),
        ("/v1/auth/login-json", "post", "/v1/auth/login-json"),
        ("/v1/auth/login", "post", "/v1/auth/login"),
        ("/v1/auth/me", "get", "/v1/auth/me"),
        ("/v1/auth/refresh", "post", "/v1/auth/refresh"),
        ("/v1/auth/logout", "post", "/v1/auth/logout"),
        ("/v1/auth/change-password", "post", "/v1/auth/change-password"),
        ("/v1/auth/forgot-password", "post", "/v1/auth/forgot-password"),
        ("/v1/auth/reset-password", "post", "/v1/auth/reset-password"),
        ("/v1/auth/password-policy", "get", "/v1/auth/password-policy"),
        ("/v1/auth/{provider}/authorize", "get", "/v1/auth/github/authorize"),
        ("/v1/auth/github/callback", "post", "/v1/auth/github/callback"),
        ("/v1/auth/linkedin/callback", "post", "/v1/auth/linkedin/callback"),
        ("/v1/auth/{provider}/callback", "post", "/v1/auth/acme/callback"),
        ("/v1/api-keys", "post", "/v1/api-keys"),
        ("/v1/api-keys", "get", "/v1/api-keys"),
        ("/v1/api-keys/{key_id}", "delete", "/v1/api-keys/key_00000000-0000-0000-0000-000000000000"),
        ("/v1/database/projects", "get", "/v1/database/projects"),
        ("/v1/database/projects", "post", "/v1/database/projects"),
        ("/v1/admin/users", "get", "/v1/admin/users"),
        ("/v1/admin/users/{id}", "patch", "/v1/admin/users/00000000-0000-0000-0000-000000000000"),
        ("/v1/admin/audit-events", "get", "/v1/admin/audit-events"),
        ("/v1/auth/me/events", "get", "/v1/auth/me/events"),
        ("/v1/auth/sessions", "get", "/v1/auth/sessions"),
        ("/v1/auth/sessions/{id}", "delete", "/v1/auth/sessions/00000000-0000-0000-0000-000000000000"),
        ("/v1/auth/logout-all", "post", "/v1/auth/logout-all"),
        (
            "/v1/admin/users/{id}/sessions",
            "delete",
            "/v1/admin/users/00000000-0000-0000-0000-000000000000/sessions",
        ),
        ("/v1/auth/introspect", "post", "/v1/auth/introspect"),
        ("/v1/auth/verify-email", "post", "/v1/auth/verify-email"),
        ("/v1/auth/resend-verification", "post", "/v1/auth/resend-verification"),
        ("/v1/auth/mfa/totp/setup", "post", "/v1/auth/mfa/totp/setup"),
        ("/v1/auth/mfa/totp/confirm", "post", "/v1/auth/mfa/totp/confirm"),
        ("/v1/auth/mfa/totp", "delete", "/v1/auth/mfa/totp"),
        ("/v1/auth/mfa/recovery-codes", "post", "/v1/auth/mfa/recovery-codes"),
        ("/v1/auth/mfa/verify", "post", "/v1/auth/mfa/verify"),
        ("/.well-known/jwks.json", "get", "/.well-known/jwks.json"),
        ("/.well-known/openid-configuration", "get", "/.well-known/openid-configuration"),
        ("/healthz", "get", "/healthz"),
        ("/metrics", "get", "/metrics"),
        ("/readyz", "get", "/readyz"),
        ("/v1/test-auth/auth-status", "get", "/v1/test-auth/auth-status"),
        ("/v1/test-auth/create-test-user", "post", "/v1/test-auth/create-test-user"),
        ("/v1/test-auth/test-login", "post", "/v1/test-auth/test-login"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(documented, expected.len(), "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, method, concrete) in expected {
        assert!(paths[path][method].is_object(), "{method} {path} is documented");
        // And it is really served: a documented route never answers 404 (unauthenticated
        // requests stop at 401 first) or 405.
        let status = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(concrete))
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            status != 404 && status != 405 && !status.is_server_error(),
            "{method} {path} answered {status}"
        );
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer_jwt"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");

    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger"), "the interactive page is served locally");
    assert!(!html.contains("cdn.") && !html.contains("unpkg"), "no download from a CDN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_the_configured_origins_only() {
    let options = Options { cors_origins: Some("https://app.example.com"), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/auth/login-json"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    assert!(allowed.headers().get("access-control-allow-credentials").is_none(), "no credentials");
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let simple =
        app.client.get(app.url("/healthz")).header("Origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(simple.headers()["access-control-allow-origin"], "https://app.example.com");
    let exposed = simple.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("x-request-id") && exposed.contains("retry-after"), "{exposed}");

    // Without configuration, no origin is allowed.
    let closed = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let response = closed
        .client
        .get(closed.url("/healthz"))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

/// The served document against the OpenAPI 3.1 schema, with
/// openapi-spec-validator from PyPI (`.ci/run` installs it; elsewhere the test
/// says it was skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_openapi_3_1() {
    let validator =
        std::process::Command::new("python3").args(["-c", "import openapi_spec_validator"]).output();
    if !validator.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have openapi-spec-validator (pip install openapi-spec-validator)"
        );
        eprintln!("skipped: pip install openapi-spec-validator to validate the OpenAPI document");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc = app.client.get(app.url("/openapi.json")).send().await.unwrap().text().await.unwrap();
    let file = std::env::temp_dir().join(format!("portcullis-openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, &doc).unwrap();
    let script = "import json, sys\nfrom openapi_spec_validator import OpenAPIV31SpecValidator\n\
        spec = json.load(open(sys.argv[1]))\nerrors = list(OpenAPIV31SpecValidator(spec).iter_errors())\n\
        [print(e.message, list(e.path)) for e in errors]\nsys.exit(1 if errors else 0)";
    let out = std::process::Command::new("python3").args(["-c", script]).arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "not valid OpenAPI 3.1: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
