//! Token verification, refresh, logout, expiry and forgery.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::Duration;

use crate::both_backends;
use crate::helpers::{SECRET, TestApp, expect_error, token_of};

pub(crate) fn payload_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn sign(payload: &Value, alg: Algorithm, key: &[u8]) -> String {
    portcullis_crypto::install_jwt_provider();
    jsonwebtoken::encode(&Header::new(alg), payload, &EncodingKey::from_secret(key)).unwrap()
}

both_backends! {
    async fn tokens_carry_the_documented_claims(app: &TestApp) {
        let body = app.register("claims@example.com").await;
        let claims = payload_of(body["access_token"].as_str().unwrap());
        assert_eq!(claims["sub"], body["id"]);
        assert_eq!(claims["email"], "claims@example.com");
        assert_eq!(claims["role"], "USER");
        assert_eq!(claims["iss"], "portcullis");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 28800);
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        let header: Value = serde_json::from_slice(&B64.decode(body["access_token"].as_str().unwrap().split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "HS256");
    }

    async fn a_missing_or_malformed_credential_is_refused(app: &TestApp) {
        let none = app.client.get(app.url("/v1/auth/me")).send().await.unwrap();
        assert_eq!(none.headers()["www-authenticate"], r#"Bearer realm="portcullis""#);
        expect_error(none, 401, "not_authenticated").await;

        let basic = app.client.get(app.url("/v1/auth/me")).header("Authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
        expect_error(basic, 401, "not_authenticated").await;

        for garbage in ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
            let response = app.get_with("/v1/auth/me", garbage).await;
            assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="portcullis", error="invalid_token""#);
            expect_error(response, 401, "invalid_token").await;
        }
        let empty = app.client.get(app.url("/v1/auth/me")).header("Authorization", "Bearer ").send().await.unwrap();
        expect_error(empty, 401, "invalid_token").await;
        let key = app.client.get(app.url("/v1/auth/me")).header("X-API-Key", "sk_live_unknown").send().await.unwrap();
        expect_error(key, 401, "invalid_api_key").await;
    }

    async fn forged_tokens_are_refused(app: &TestApp) {
        let token = app.token_for("forge@example.com").await;
        let claims = payload_of(&token);

        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = B64.encode(serde_json::to_vec(&claims).unwrap());
        let alg_none = format!("{none_header}.{body}.");

        let hs512 = sign(&claims, Algorithm::HS512, SECRET.as_bytes());
        let hs384 = sign(&claims, Algorithm::HS384, SECRET.as_bytes());
        let wrong_key = sign(&claims, Algorithm::HS256, b"not-the-server-secret-not-the-server-secret");

        let mut admin = claims.clone();
        admin["role"] = json!("ADMIN");
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], B64.encode(serde_json::to_vec(&admin).unwrap()), parts[2]);

        let mut signature = parts[2].to_owned();
        let last = if signature.ends_with('A') { 'B' } else { 'A' };
        signature.pop();
        signature.push(last);
        let bad_signature = format!("{}.{}.{signature}", parts[0], parts[1]);

        let mut foreign = claims.clone();
        foreign["iss"] = json!("someone-else");
        let foreign_issuer = sign(&foreign, Algorithm::HS256, SECRET.as_bytes());

        let mut string_exp = claims.clone();
        string_exp["exp"] = json!(claims["exp"].to_string());
        let mistyped = sign(&string_exp, Algorithm::HS256, SECRET.as_bytes());

        for (what, forged) in [
            ("alg none", alg_none), ("HS512", hs512), ("HS384", hs384), ("wrong key", wrong_key),
            ("tampered payload", tampered), ("wrong signature", bad_signature),
            ("foreign issuer", foreign_issuer), ("string exp", mistyped),
        ] {
            let response = app.get_with("/v1/auth/me", &forged).await;
            assert_eq!(response.status(), 401, "{what}");
            expect_error(response, 401, "invalid_token").await;
        }
        assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200, "the genuine token still works");
    }

    async fn a_token_expires_with_at_most_five_seconds_of_leeway(app: &TestApp) {
        let token = app.token_for("expiry@example.com").await;
        app.clock.advance(Duration::seconds(28_800 + 4));
        assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200, "within the leeway");
        app.clock.advance(Duration::seconds(2));
        let expired = app.get_with("/v1/auth/me", &token).await;
        assert_eq!(expired.headers()["www-authenticate"], r#"Bearer realm="portcullis", error="invalid_token""#);
        expect_error(expired, 401, "token_expired").await;
        expect_error(app.post_with("/v1/auth/refresh", &token).await, 401, "token_expired").await;
        expect_error(app.post_with("/v1/auth/logout", &token).await, 401, "token_expired").await;
    }

    async fn a_token_from_the_future_is_refused(app: &TestApp) {
        let token = app.token_for("future@example.com").await;
        app.clock.advance(Duration::seconds(-60));
        expect_error(app.get_with("/v1/auth/me", &token).await, 401, "invalid_token").await;
    }

    async fn refresh_revokes_the_presented_token(app: &TestApp) {
        let old = app.token_for("refresh@example.com").await;
        let response = app.post_with("/v1/auth/refresh", &old).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 28800);
        let new = body["access_token"].as_str().unwrap();
        assert_ne!(new, old);

        assert_eq!(app.get_with("/v1/auth/me", new).await.status(), 200);
        expect_error(app.get_with("/v1/auth/me", &old).await, 401, "token_revoked").await;
        expect_error(app.post_with("/v1/auth/refresh", &old).await, 401, "token_revoked").await;
        expect_error(app.client.post(app.url("/v1/auth/refresh")).send().await.unwrap(), 401, "not_authenticated").await;
    }

    async fn logout_revokes_the_token_at_once(app: &TestApp) {
        let token = app.token_for("logout@example.com").await;
        let other = token_of(app.login("logout@example.com", crate::helpers::PASSWORD).await).await;
        let response = app.post_with("/v1/auth/logout", &token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"message": "Successfully logged out"}));
        // Same second as the token's issue (the test clock is frozen).
        expect_error(app.get_with("/v1/auth/me", &token).await, 401, "token_revoked").await;
        expect_error(app.post_with("/v1/auth/logout", &token).await, 401, "token_revoked").await;
        expect_error(app.post_with("/v1/auth/refresh", &token).await, 401, "token_revoked").await;
        assert_eq!(app.get_with("/v1/auth/me", &other).await.status(), 200, "other sessions live on");
    }
}
