//! Tokens other services verify with published keys: ES256/EdDSA signing keys
//! in the database (sealed under AUTH_KEY_ENCRYPTION_KEY), the JWKS and the
//! discovery metadata, rotation by the CLI and on schedule, standard
//! verifiers (PyJWT, jose), and the upgrade from HS256.

use std::process::Command;
use std::time::{Duration as StdDuration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_crypto::KeyEncryptionKey;
use serde_json::{Value, json};
use time::Duration;

use crate::helpers::{Backend, Options, PASSWORD, SECRET, TestApp, expect_error};
use crate::on_both_backends;
use crate::sessions::payload_of;

const KEK: &str = "e2e-key-encryption-key-e2e-key-encryption-key";
const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn es256() -> Options {
    Options {
        jwt_algorithm: Some("ES256"),
        key_encryption_key: Some(KEK),
        without_jwt_secret: true,
        public_url: Some("https://auth.example.test"),
        ..Options::default()
    }
}

async fn spawn(backend: Backend, options: Options) -> Option<TestApp> {
    let app = TestApp::spawn_with(backend, options).await;
    if app.is_none() {
        eprintln!("skipped: TEST_DATABASE_URL is unset");
    }
    app
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

async fn jwks(app: &TestApp) -> (reqwest::header::HeaderMap, Vec<Value>) {
    let response = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    (headers, body["keys"].as_array().unwrap().clone())
}

fn kids(keys: &[Value]) -> Vec<String> {
    keys.iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn sign_in(app: &TestApp, email: &str) -> String {
    app.register(email).await;
    let response = app.login(email, PASSWORD).await;
    assert_eq!(response.status(), 200);
    crate::helpers::token_of(response).await
}

async fn jwks_and_discovery_describe_the_signing_key(backend: Backend) {
    let Some(app) = spawn(backend, es256()).await else { return };
    let (headers, keys) = jwks(&app).await;
    assert_eq!(headers["cache-control"], "public, max-age=300");
    assert_eq!(keys.len(), 1, "the first start made one current key: {keys:?}");
    let key = &keys[0];
    assert_eq!((key["kty"].as_str(), key["crv"].as_str()), (Some("EC"), Some("P-256")));
    assert_eq!((key["alg"].as_str(), key["use"].as_str()), (Some("ES256"), Some("sig")));
    for coordinate in ["x", "y"] {
        assert_eq!(B64.decode(key[coordinate].as_str().unwrap()).unwrap().len(), 32);
    }
    assert!(key.get("d").is_none(), "never the private part");

    let token = sign_in(&app, "jwks@example.com").await;
    let header = header_of(&token);
    assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("ES256"), key["kid"].as_str()));
    let claims = payload_of(&token);
    assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some("portcullis"), Some("portcullis")));
    assert_eq!(claims["auth_time"], claims["iat"]);
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);

    let response = app.client.get(app.url("/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let metadata: Value = response.json().await.unwrap();
    let base = "https://auth.example.test";
    assert_eq!(metadata["issuer"], "portcullis");
    assert_eq!(metadata["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(metadata["token_endpoint"], format!("{base}/v1/auth/login"));
    assert_eq!(metadata["revocation_endpoint"], format!("{base}/v1/auth/logout"));
    assert_eq!(metadata["introspection_endpoint"], format!("{base}/v1/auth/introspect"));
    assert_eq!(metadata["id_token_signing_alg_values_supported"], json!(["ES256"]));
    assert!(metadata["grant_types_supported"].as_array().unwrap().contains(&json!("refresh_token")));

    // A flood of JWKS requests is answered from memory, every one alike.
    let flood = (0..400).map(|_| app.client.get(app.url("/.well-known/jwks.json")).send());
    for response in futures_util::future::join_all(flood).await {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(kids(response.json::<Value>().await.unwrap()["keys"].as_array().unwrap()), kids(&keys));
    }
}

/// Runs a verification example from docs/examples; its stdout, or its stderr on failure.
fn run_example(program: &str, script: &str, args: &[&str]) -> Result<Value, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples");
    let output = Command::new(program).current_dir(path).arg(script).args(args).output();
    let output = match output {
        Ok(output) => output,
        Err(e) => return Err(format!("{program} cannot run: {e}")),
    };
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Whether the example's dependencies are installed; in CI they must be.
fn examples_can_run() -> bool {
    let python =
        Command::new("python3").args(["-c", "import jwt, cryptography"]).status().is_ok_and(|s| s.success());
    let node =
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/node_modules/jose"))
            .exists();
    if std::env::var_os("CI").is_some() {
        assert!(python && node, "CI installs PyJWT[crypto] and docs/examples' jose (see .ci/run)");
    }
    if !(python && node) {
        eprintln!(
            "skipped: needs `pip install pyjwt[crypto]` and `npm ci --prefix docs/examples` (python {python}, node {node})"
        );
    }
    python && node
}

async fn standard_verifiers_accept_the_tokens_with_audience_and_issuer(backend: Backend) {
    if !examples_can_run() {
        return;
    }
    let options = Options {
        audience: Some("orders-api,portcullis"),
        issuer: Some("https://auth.example.test"),
        ..es256()
    };
    let Some(app) = spawn(backend, options).await else { return };
    let token = sign_in(&app, "verifiers@example.com").await;
    assert_eq!(payload_of(&token)["aud"], json!(["orders-api", "portcullis"]));
    let issuer = "https://auth.example.test";
    for (program, script) in [("python3", "verify_token.py"), ("node", "verify_token.mjs")] {
        let base = app.base.clone();
        let args = [base.as_str(), token.as_str(), "orders-api", issuer];
        let claims = tokio::task::block_in_place(|| run_example(program, script, &args))
            .unwrap_or_else(|why| panic!("{script} refused a good token: {why}"));
        assert_eq!(claims["email"], "verifiers@example.com", "{script}");
        for wrong in [
            [base.as_str(), token.as_str(), "billing-api", issuer],
            [base.as_str(), token.as_str(), "orders-api", "https://evil.example"],
        ] {
            let verdict = tokio::task::block_in_place(|| run_example(program, script, &wrong));
            assert!(verdict.is_err(), "{script} accepted {wrong:?}");
        }
        let mut forged = token.clone();
        forged.push('A');
        let verdict = tokio::task::block_in_place(|| {
            run_example(program, script, &[&base, &forged, "orders-api", issuer])
        });
        assert!(verdict.is_err(), "{script} accepted a changed signature");
    }
}

/// `portcullis keys <action>` on the test server's database, as an operator runs it.
fn keys_command(app: &TestApp, action: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["keys", action, "--database-url", &app.database_url, "--env", "test"])
        .env("AUTH_KEY_ENCRYPTION_KEY", KEK)
        .env("AUTH_JWT_ALGORITHM", "ES256")
        .env_remove("AUTH_JWT_SECRET")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

async fn the_cli_rotation_is_published_before_it_signs(backend: Backend) {
    let Some(app) = spawn(backend, es256()).await else { return };
    let old_token = sign_in(&app, "rotate-cli@example.com").await;
    let (_, before) = jwks(&app).await;
    let first = kids(&before)[0].clone();

    let output = keys_command(&app, "rotate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("added "), "{stdout}");

    // The running instance publishes it within 10 s, by its own refresh.
    let deadline = Instant::now() + StdDuration::from_secs(10);
    let published = loop {
        let (_, keys) = jwks(&app).await;
        if keys.len() == 2 {
            break kids(&keys);
        }
        assert!(Instant::now() < deadline, "the CLI's key was not published within 10 s: {keys:?}");
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    };
    let next = published.iter().find(|kid| **kid != first).unwrap().clone();
    // Published, not signing: new tokens still name the first key.
    let during = sign_in(&app, "rotate-cli-2@example.com").await;
    assert_eq!(header_of(&during)["kid"].as_str(), Some(first.as_str()));

    let listed = keys_command(&app, "list");
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(listing.contains(&format!("{first}  ES256  current")), "{listing}");
    assert!(listing.contains(&format!("{next}  ES256  next")), "{listing}");
    assert!(!listing.contains("BEGIN") && !listing.contains("\"d\""), "never a private key: {listing}");

    // After AUTH_KEY_PUBLISH_SECS the next key signs; tokens of the first still verify.
    // (The CLI stamped its key with the system clock, a few seconds after this
    // server's clock started: 620 s covers that.)
    app.clock.advance(Duration::seconds(620));
    let after = sign_in(&app, "rotate-cli-3@example.com").await;
    assert_eq!(header_of(&after)["kid"].as_str(), Some(next.as_str()));
    assert_eq!(app.get_with("/v1/auth/me", &after).await.status(), 200);
    assert_eq!(
        app.get_with("/v1/auth/me", &during).await.status(),
        200,
        "old tokens valid until they expire"
    );
    assert_eq!(kids(&jwks(&app).await.1).len(), 2, "the retired key stays published");

    // Once every token it signed has expired, the retired key leaves the JWKS.
    app.clock.advance(Duration::seconds(28_800 + 5));
    let (_, keys) = jwks(&app).await;
    assert_eq!(kids(&keys), vec![next.clone()]);
    expect_error(app.get_with("/v1/auth/me", &old_token).await, 401, "token_expired").await;
}

async fn keys_rotate_on_schedule_and_one_instance_adds_the_key(backend: Backend) {
    let Some(app) = spawn(backend, es256()).await else { return };
    let Some(second) =
        spawn(backend, Options { database_url: Some(app.database_url.clone()), ..es256() }).await
    else {
        return;
    };
    let (_, keys) = jwks(&app).await;
    assert_eq!(kids(&jwks(&second).await.1), kids(&keys), "the second instance uses the stored key");
    let first = kids(&keys)[0].clone();
    // Not due yet: nothing is added.
    assert_eq!(app.services.signing_keys.refresh().await.unwrap(), None);

    for clock in [&app.clock, &second.clock] {
        clock.advance(Duration::days(90) + Duration::seconds(1));
    }
    // Both instances find the rotation due at the same instant (their
    // background refreshes may join in): one key is added.
    let (a, b) = tokio::join!(app.services.signing_keys.refresh(), second.services.signing_keys.refresh());
    let added: Vec<String> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert!(added.len() <= 1, "two instances rotated: {added:?}");
    let listed = app.services.signing_keys.list().await.unwrap();
    assert_eq!(listed.len(), 2, "exactly one key was added: {listed:?}");
    let next = listed.iter().find(|s| s.key.kid != first).unwrap().key.kid.clone();
    assert_eq!(listed.iter().find(|s| s.key.kid == next).unwrap().state, portcullis_domain::KeyState::Next);
    app.services.signing_keys.refresh().await.unwrap();
    second.services.signing_keys.refresh().await.unwrap();
    assert_eq!(kids(&jwks(&second).await.1).len(), 2, "both publish it");

    // The key signs AUTH_KEY_PUBLISH_SECS after the instance that added it
    // saw the rotation due; the two test clocks started a moment apart.
    for clock in [&app.clock, &second.clock] {
        clock.advance(Duration::seconds(605));
    }
    let token = sign_in(&app, "scheduled@example.com").await;
    assert_eq!(header_of(&token)["kid"].as_str(), Some(next.as_str()));
    assert_eq!(second.get_with("/v1/auth/me", &token).await.status(), 200, "the other instance verifies it");
}

/// Algorithm confusion over HTTP: the key a token names decides the algorithm.
async fn confused_and_unknown_keys_are_refused(backend: Backend) {
    let Some(app) = spawn(backend, Options { without_jwt_secret: false, ..es256() }).await else { return };
    let token = sign_in(&app, "confusion@example.com").await;
    let (_, keys) = jwks(&app).await;
    let key = &keys[0];
    let kid = key["kid"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let signature = token.split('.').nth(2).unwrap();
    let with_header = |header: Value| format!("{}.{payload}.{signature}", B64.encode(header.to_string()));
    let hs256 = |header: Value, secret: &[u8]| {
        use hmac::{KeyInit, Mac};
        let signed = format!("{}.{payload}", B64.encode(header.to_string()));
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let point = [
        &[4u8][..],
        &B64.decode(key["x"].as_str().unwrap()).unwrap(),
        &B64.decode(key["y"].as_str().unwrap()).unwrap(),
    ]
    .concat();
    let jwk_text = key.to_string();
    for forged in [
        hs256(json!({"alg": "HS256", "kid": kid, "typ": "JWT"}), &point),
        hs256(json!({"alg": "HS256", "kid": kid, "typ": "JWT"}), jwk_text.as_bytes()),
        hs256(json!({"alg": "HS256", "typ": "JWT"}), &point),
        with_header(json!({"alg": "ES256", "kid": "no-such-key", "typ": "JWT"})),
        with_header(json!({"alg": "EdDSA", "kid": kid, "typ": "JWT"})),
        with_header(json!({"alg": "HS256", "kid": kid, "typ": "JWT"})),
        with_header(json!({"alg": "none", "kid": kid})),
        format!("{}.{payload}.", B64.encode(json!({"alg": "none"}).to_string())),
    ] {
        expect_error(app.get_with("/v1/auth/me", &forged).await, 401, "invalid_token").await;
    }
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200, "the real token still works");
}

/// The private key bytes, found in a sealed key's PKCS#8 document: the
/// 32-byte OCTET STRING (the P-256 scalar).
fn private_scalar(pkcs8: &[u8]) -> Vec<u8> {
    let at = pkcs8.windows(2).position(|w| w == [0x04, 0x20]).expect("an OCTET STRING of 32 bytes");
    pkcs8[at + 2..at + 34].to_vec()
}

/// Every byte the database keeps, as its own tools would read it.
fn database_bytes(url: &str) -> Vec<u8> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal"] {
            if let Ok(content) = std::fs::read(format!("{path}{suffix}")) {
                bytes.extend(content);
            }
        }
        return bytes;
    }
    // A binary COPY of the table, through psql: what a dump would hold.
    let output = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-At",
            "-c",
            "SELECT encode(sealed_private, 'hex') || ' ' || public_jwk FROM signing_keys",
        ])
        .output()
        .expect("psql runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut bytes = text.clone().into_bytes();
    for line in text.lines() {
        let hex = line.split(' ').next().unwrap();
        bytes.extend((0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()));
    }
    bytes
}

async fn private_keys_are_sealed_and_a_wrong_kek_stops_the_start(backend: Backend) {
    let Some(app) = spawn(backend, es256()).await else { return };
    sign_in(&app, "at-rest@example.com").await;
    let stored = app.services.signing_keys.list().await.unwrap();
    assert_eq!(stored.len(), 1);
    let key = &stored[0].key;
    let pkcs8 = KeyEncryptionKey::parse(KEK).unwrap().open(&key.kid, &key.sealed_private).unwrap();
    let scalar = private_scalar(&pkcs8);
    let bytes = tokio::task::block_in_place(|| database_bytes(&app.database_url));
    assert!(bytes.windows(8).any(|w| w == &key.sealed_private[20..28]), "the sealed key is in what was read");
    for window in scalar.windows(8) {
        assert!(!bytes.windows(8).any(|w| w == window), "private key bytes in clear in the database");
    }

    // Another key-encryption key: the start stops, naming it, and replaces nothing.
    let wrong = Options {
        key_encryption_key: Some("not-the-key-not-the-key-not-the-key-not"),
        database_url: Some(app.database_url.clone()),
        ..es256()
    };
    let cli = TestApp::cli(&app.database_url, &wrong);
    let error =
        portcullis::App::build(&cli.config, std::sync::Arc::new(portcullis_testkit::ManualClock::new()))
            .await
            .expect_err("a start with the wrong key-encryption key fails");
    let message = error.to_string();
    assert!(
        message.contains("AUTH_KEY_ENCRYPTION_KEY") && message.contains("cannot be decrypted"),
        "{message}"
    );
    let after = app.services.signing_keys.list().await.unwrap();
    assert_eq!(after.iter().map(|s| &s.key).collect::<Vec<_>>(), vec![key], "no key was replaced or added");

    // Production without the key refuses to start, naming it.
    let production = Options { production: true, key_encryption_key: None, ..es256() };
    let cli = TestApp::cli(&app.database_url, &production);
    let error =
        portcullis::App::build(&cli.config, std::sync::Arc::new(portcullis_testkit::ManualClock::new()))
            .await
            .expect_err("production needs the key");
    assert!(error.to_string().contains("AUTH_KEY_ENCRYPTION_KEY"), "{error}");
}

/// An HS256 deployment upgrades and then switches to ES256 without signing anyone out.
async fn hs256_upgrades_and_switches_without_sign_outs(backend: Backend) {
    let Some(hs) = spawn(backend, Options::default()).await else { return };
    let (_, keys) = jwks(&hs).await;
    assert!(keys.is_empty(), "nothing to publish under HS256");
    let token = sign_in(&hs, "upgrade@example.com").await;
    let header = header_of(&token);
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].as_str().unwrap().starts_with("hs256-"), "{header}");
    // A token from before keys had ids (no kid, no aud) still verifies.
    let mut legacy = payload_of(&token);
    legacy.as_object_mut().unwrap().remove("aud");
    portcullis_crypto::install_jwt_provider();
    let legacy = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &legacy,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(hs.get_with("/v1/auth/me", &legacy).await.status(), 200);

    // The same database, now ES256, AUTH_JWT_SECRET still set: the HS256 tokens verify.
    let switched = Options {
        database_url: Some(hs.database_url.clone()),
        without_jwt_secret: false,
        public_url: None,
        ..es256()
    };
    let Some(es) = spawn(backend, switched).await else { return };
    assert_eq!(es.get_with("/v1/auth/me", &token).await.status(), 200);
    assert_eq!(es.get_with("/v1/auth/me", &legacy).await.status(), 200);
    let fresh = crate::helpers::token_of(es.login("upgrade@example.com", PASSWORD).await).await;
    assert_eq!(header_of(&fresh)["alg"], "ES256");
    assert_eq!(jwks(&es).await.1.len(), 1);
    // The HS256 instance verifies ES256 tokens too once it has read the keys.
    hs.services.signing_keys.refresh().await.unwrap();
    assert_eq!(hs.get_with("/v1/auth/me", &fresh).await.status(), 200);
}

on_both_backends!(
    jwks_and_discovery_describe_the_signing_key,
    standard_verifiers_accept_the_tokens_with_audience_and_issuer,
    the_cli_rotation_is_published_before_it_signs,
    keys_rotate_on_schedule_and_one_instance_adds_the_key,
    confused_and_unknown_keys_are_refused,
    private_keys_are_sealed_and_a_wrong_kek_stops_the_start,
    hs256_upgrades_and_switches_without_sign_outs,
);

async fn introspect(app: &TestApp, caller: &str, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/introspect"))
        .bearer_auth(caller)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn verdict(app: &TestApp, caller: &str, token: &str) -> Value {
    let response = introspect(app, caller, token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// RFC 7662 over every kind of token, for administrators only.
async fn introspection_answers_for_every_kind_of_token(backend: Backend) {
    let Some(app) = spawn(backend, es256()).await else { return };
    let admin = app.admin_token("introspector@example.com").await;
    app.register("subject@example.com").await;
    let signed_in: Value = app.login("subject@example.com", PASSWORD).await.json().await.unwrap();
    let access = signed_in["access_token"].as_str().unwrap().to_owned();
    let refresh = signed_in["refresh_token"].as_str().unwrap().to_owned();
    let key = app.create_key(&access, &json!({"name": "ci", "environment": "test"})).await;
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    let user = app.user("subject@example.com").await;

    let a = verdict(&app, &admin, &access).await;
    let claims = payload_of(&access);
    assert_eq!(a["active"], true);
    assert_eq!(a["token_type"], "access_token");
    assert_eq!(a["sub"], user.id.as_uuid().to_string());
    assert_eq!(a["email"], "subject@example.com");
    assert_eq!(a["role"], "USER");
    assert_eq!((&a["exp"], &a["iat"], &a["sid"]), (&claims["exp"], &claims["iat"], &claims["sid"]));
    assert_eq!(
        (a["iss"].as_str(), a["aud"].as_str(), a["environment"].as_str()),
        (Some("portcullis"), Some("portcullis"), Some("live"))
    );

    let r = verdict(&app, &admin, &refresh).await;
    assert_eq!((r["active"].as_bool(), r["token_type"].as_str()), (Some(true), Some("refresh_token")));
    assert_eq!((&r["sub"], &r["sid"]), (&a["sub"], &a["sid"]));

    let k = verdict(&app, &admin, &api_key).await;
    assert_eq!((k["active"].as_bool(), k["token_type"].as_str()), (Some(true), Some("api_key")));
    assert_eq!((k["environment"].as_str(), k["email"].as_str()), (Some("test"), Some("subject@example.com")));

    // An introspected key is not a use: its count stays 0 after a flush.
    app.services.api_keys.flush_usage().await.unwrap();
    let listed: Value = app.get_with("/v1/api-keys", &access).await.json().await.unwrap();
    assert_eq!(listed[0]["usage_count"], 0, "{listed}");

    // JSON works too, and an API key of an administrator may ask.
    let admin_key = app.create_key(&admin, &json!({"name": "introspection"})).await;
    let by_key: Value = app
        .client
        .post(app.url("/v1/auth/introspect"))
        .header("X-API-Key", admin_key["api_key"].as_str().unwrap())
        .json(&json!({"token": access}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_key["active"], true);

    // Garbage of every shape: inactive, and nothing else said.
    for garbage in [
        "",
        "garbage",
        "rt_short",
        "rt_0000000000000000000000000000000000000000000000000",
        "pk_live_nope",
        "a.b.c",
        &"x".repeat(4000),
    ] {
        assert_eq!(verdict(&app, &admin, garbage).await, json!({"active": false}), "{garbage:.40}");
    }

    // Revoked, ended, spent: inactive.
    let revoked = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{}", key["id"].as_str().unwrap())))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(verdict(&app, &admin, &api_key).await, json!({"active": false}));
    let rotated: Value =
        app.post_json("/v1/auth/refresh", &json!({"refresh_token": refresh})).await.json().await.unwrap();
    assert_eq!(verdict(&app, &admin, &refresh).await, json!({"active": false}), "a spent refresh token");
    let next_refresh = rotated["refresh_token"].as_str().unwrap();
    assert_eq!(verdict(&app, &admin, next_refresh).await["active"], true);
    assert_eq!(
        app.post_with("/v1/auth/logout", rotated["access_token"].as_str().unwrap()).await.status(),
        200
    );
    assert_eq!(verdict(&app, &admin, &access).await, json!({"active": false}), "the session ended");
    assert_eq!(verdict(&app, &admin, next_refresh).await, json!({"active": false}));

    // Not an administrator: 403; nobody: 401; no token field: 422; too big: 413.
    let other = sign_in(&app, "nosy@example.com").await;
    expect_error(introspect(&app, &other, &admin).await, 403, "insufficient_permissions").await;
    let anonymous =
        app.client.post(app.url("/v1/auth/introspect")).form(&[("token", &admin)]).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let missing = app
        .client
        .post(app.url("/v1/auth/introspect"))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 422);
    let huge = app
        .client
        .post(app.url("/v1/auth/introspect"))
        .bearer_auth(&admin)
        .json(&json!({"token": "x".repeat(70 * 1024)}))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
}

on_both_backends!(introspection_answers_for_every_kind_of_token);
