//! The crypto adapters against the behaviour their ports promise.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_crypto::{Argon2Hasher, HashingConfig, JwtCodec, JwtSecret, KeyEncryptionKey, OsSecrets};
use portcullis_domain::ports::{PasswordHasher, SecretGenerator, TokenCodec};
use portcullis_domain::{
    AuthError, Claims, DomainError, KeyState, KeyStatus, Password, PasswordHash, Role, SigningAlgorithm,
    SigningKey,
};
use serde_json::json;
use uuid::Uuid;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-key";

fn codec() -> JwtCodec {
    JwtCodec::new(&JwtSecret::new(SECRET).unwrap(), "portcullis")
}

fn claims() -> Claims {
    Claims {
        sub: Uuid::new_v4(),
        email: "user@example.com".to_owned(),
        role: Role::User,
        exp: 4_102_444_800,
        iat: 1_700_000_000,
        jti: Uuid::new_v4(),
        iss: "portcullis".to_owned(),
        sv: 0,
        sid: None,
        auth_time: None,
        aud: portcullis_domain::Audience::new(vec!["portcullis".to_owned()]),
    }
}

fn hmac_token(
    header: &serde_json::Value,
    payload: &serde_json::Value,
    key: &[u8],
    alg: jsonwebtoken::Algorithm,
) -> String {
    portcullis_crypto::install_jwt_provider();
    let mut head = jsonwebtoken::Header::new(alg);
    if let Some(typ) = header.get("typ").and_then(|t| t.as_str()) {
        head.typ = Some(typ.to_owned());
    }
    jsonwebtoken::encode(&head, payload, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap()
}

fn assert_invalid(result: Result<Claims, DomainError>) {
    assert_eq!(result, Err(DomainError::Unauthenticated(AuthError::InvalidToken)));
}

#[test]
fn a_token_round_trips() {
    let claims = claims();
    let token = codec().encode(&claims).unwrap();
    assert_eq!(codec().decode(token.as_str()).unwrap(), claims);
}

#[test]
fn the_header_names_hs256() {
    let token = codec().encode(&claims()).unwrap();
    let header = jsonwebtoken::decode_header(token.as_str()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
}

#[test]
fn a_short_secret_is_refused() {
    assert!(JwtSecret::new(b"too short".to_vec()).is_err());
    assert!(format!("{:?}", JwtSecret::new(SECRET).unwrap()).contains("REDACTED"));
}

#[test]
fn alg_none_is_refused() {
    let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = B64.encode(serde_json::to_vec(&claims()).unwrap());
    assert_invalid(codec().decode(&format!("{header}.{payload}.")));
    assert_invalid(codec().decode(&format!("{header}.{payload}")));
}

#[test]
fn another_hmac_algorithm_with_the_same_key_is_refused() {
    let payload = serde_json::to_value(claims()).unwrap();
    for alg in [jsonwebtoken::Algorithm::HS384, jsonwebtoken::Algorithm::HS512] {
        assert_invalid(codec().decode(&hmac_token(&json!({}), &payload, SECRET, alg)));
    }
}

#[test]
fn a_tampered_payload_is_refused() {
    let token = codec().encode(&claims()).unwrap();
    let mut parts: Vec<String> = token.as_str().split('.').map(str::to_owned).collect();
    let mut forged = claims();
    forged.role = Role::Admin;
    parts[1] = B64.encode(serde_json::to_vec(&forged).unwrap());
    assert_invalid(codec().decode(&parts.join(".")));
}

#[test]
fn a_wrong_signature_is_refused() {
    let payload = serde_json::to_value(claims()).unwrap();
    let token = hmac_token(
        &json!({}),
        &payload,
        b"another-secret-another-secret-another",
        jsonwebtoken::Algorithm::HS256,
    );
    assert_invalid(codec().decode(&token));
}

#[test]
fn a_wrong_issuer_is_refused() {
    let mut claims = claims();
    claims.iss = "someone-else".to_owned();
    let token = hmac_token(
        &json!({}),
        &serde_json::to_value(&claims).unwrap(),
        SECRET,
        jsonwebtoken::Algorithm::HS256,
    );
    assert_invalid(codec().decode(&token));
}

#[test]
fn missing_or_mistyped_claims_are_refused() {
    let full = serde_json::to_value(claims()).unwrap();
    for claim in ["exp", "iat", "jti", "sub", "iss", "sv"] {
        let mut payload = full.clone();
        payload.as_object_mut().unwrap().remove(claim);
        let token = hmac_token(&json!({}), &payload, SECRET, jsonwebtoken::Algorithm::HS256);
        assert_invalid(codec().decode(&token));
    }
    // CVE-2026-25537: a string `exp` must not slip past the expiry check.
    let mut payload = full;
    payload["exp"] = json!("4102444800");
    let token = hmac_token(&json!({}), &payload, SECRET, jsonwebtoken::Algorithm::HS256);
    assert_invalid(codec().decode(&token));
}

#[test]
fn during_a_rotation_both_keys_verify_and_only_the_new_one_signs() {
    let old = JwtSecret::new(b"old-key-old-key-old-key-old-key-old-key!".to_vec()).unwrap();
    let new = JwtSecret::new(b"new-key-new-key-new-key-new-key-new-key!".to_vec()).unwrap();
    let before = JwtCodec::new(&old, "portcullis");
    let rotating = JwtCodec::new(&new, "portcullis").also_accepting(&old);
    let after = JwtCodec::new(&new, "portcullis");
    let claims = claims();

    let issued_before = before.encode(&claims).unwrap();
    assert_eq!(rotating.decode(issued_before.as_str()).unwrap(), claims, "old tokens still work");
    let issued_during = rotating.encode(&claims).unwrap();
    assert_eq!(after.decode(issued_during.as_str()).unwrap(), claims, "new tokens use the new key");
    assert_invalid(before.decode(issued_during.as_str()));
    assert_invalid(after.decode(issued_before.as_str()));
    // The second key widens nothing else: a foreign key or issuer is still refused.
    let stranger = JwtSecret::new(b"stranger-stranger-stranger-stranger-key!".to_vec()).unwrap();
    assert_invalid(rotating.decode(JwtCodec::new(&stranger, "portcullis").encode(&claims).unwrap().as_str()));
    let foreign = Claims { iss: "someone-else".to_owned(), ..claims };
    assert_invalid(rotating.decode(before.encode(&foreign).unwrap().as_str()));
}

/// An ES256 codec with one installed key, and that key.
fn es256_codec() -> (JwtCodec, KeyStatus) {
    let codec = JwtCodec::with_algorithm(SigningAlgorithm::Es256, "portcullis")
        .with_key_encryption(KeyEncryptionKey::parse("0123456789abcdef0123456789abcdef").unwrap())
        .also_accepting(&JwtSecret::new(SECRET).unwrap());
    let generated = codec.generate_key(SigningAlgorithm::Es256).unwrap();
    let at = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
    let key = KeyStatus {
        key: SigningKey {
            kid: generated.kid,
            algorithm: SigningAlgorithm::Es256,
            generation: 1,
            public_jwk: generated.public_jwk,
            sealed_private: generated.sealed_private,
            created_at: at,
            activates_at: at,
        },
        state: KeyState::Current,
        retired_at: None,
        published_until: None,
    };
    codec.install_keys(std::slice::from_ref(&key)).unwrap();
    (codec, key)
}

fn token_with(header: &serde_json::Value, claims: &Claims, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let signed =
        format!("{}.{}", B64.encode(header.to_string()), B64.encode(serde_json::to_vec(claims).unwrap()));
    let signature = sign(signed.as_bytes());
    format!("{signed}.{}", B64.encode(signature))
}

fn hs256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The classic confusion: HS256 "signed" with the published public key, under its kid.
#[test]
fn an_hs256_token_signed_with_the_public_key_is_refused() {
    let (codec, key) = es256_codec();
    let jwk: serde_json::Value = serde_json::from_str(&key.key.public_jwk).unwrap();
    let x = B64.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = B64.decode(jwk["y"].as_str().unwrap()).unwrap();
    let point = [&[4u8][..], &x, &y].concat();
    for secret in
        [point, key.key.public_jwk.as_bytes().to_vec(), jwk["x"].as_str().unwrap().as_bytes().to_vec()]
    {
        for header in
            [json!({"alg": "HS256", "kid": key.key.kid, "typ": "JWT"}), json!({"alg": "HS256", "typ": "JWT"})]
        {
            assert_invalid(codec.decode(&token_with(&header, &claims(), |m| hs256(&secret, m))));
        }
    }
}

#[test]
fn a_kid_that_names_no_key_is_refused() {
    let (codec, _) = es256_codec();
    let header = json!({"alg": "HS256", "kid": "no-such-key", "typ": "JWT"});
    assert_invalid(codec.decode(&token_with(&header, &claims(), |m| hs256(SECRET, m))));
    // The secret's own kid with its own signature is fine: HS256 tokens from before a switch.
    let kid = JwtSecret::new(SECRET).unwrap().kid();
    let header = json!({"alg": "HS256", "kid": kid, "typ": "JWT"});
    let claims = claims();
    assert_eq!(codec.decode(&token_with(&header, &claims, |m| hs256(SECRET, m))), Ok(claims));
}

#[test]
fn an_alg_that_is_not_the_keys_is_refused() {
    let (codec, key) = es256_codec();
    let claims = claims();
    let token = codec.encode(&claims).unwrap();
    assert_eq!(codec.decode(token.as_str()), Ok(claims));
    let (_, rest) = token.as_str().split_once('.').unwrap();
    for alg in ["EdDSA", "ES384", "HS256", "none", "RS256"] {
        let header = B64.encode(json!({"alg": alg, "kid": key.key.kid, "typ": "JWT"}).to_string());
        assert_invalid(codec.decode(&format!("{header}.{rest}")));
    }
    // The HS256 secret's kid on an ES256 signature: the kid decides the key, and it is HMAC.
    let header =
        B64.encode(json!({"alg": "ES256", "kid": JwtSecret::new(SECRET).unwrap().kid()}).to_string());
    assert_invalid(codec.decode(&format!("{header}.{rest}")));
    // A critical extension we do not know.
    let header = B64.encode(json!({"alg": "ES256", "kid": key.key.kid, "crit": ["exp"]}).to_string());
    assert_invalid(codec.decode(&format!("{header}.{rest}")));
}

#[test]
fn garbage_is_refused() {
    for garbage in ["", "abc", "a.b.c", "....", "eyJ.eyJ.sig", "Bearer x"] {
        assert_invalid(codec().decode(garbage));
    }
}

fn hasher() -> Argon2Hasher {
    Argon2Hasher::new(&HashingConfig { threads: 2, queue: 16, ..HashingConfig::default() }).unwrap()
}

#[tokio::test]
async fn a_hash_verifies_its_password_only() {
    let hasher = hasher();
    let hash = hasher.hash(Password::new("SecurePass123!")).await.unwrap();
    assert!(
        hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "OWASP parameters in the PHC string"
    );
    assert!(hasher.verify(Password::new("SecurePass123!"), hash.clone()).await.unwrap());
    assert!(!hasher.verify(Password::new("SecurePass123?"), hash).await.unwrap());
}

#[tokio::test]
async fn two_hashes_of_one_password_differ() {
    let hasher = hasher();
    let a = hasher.hash(Password::new("SecurePass123!")).await.unwrap();
    let b = hasher.hash(Password::new("SecurePass123!")).await.unwrap();
    assert_ne!(a, b, "every hash has its own salt");
}

#[tokio::test]
async fn an_unparsable_hash_never_matches() {
    let hasher = hasher();
    for garbage in ["", "plain", "$argon2id$v=19$m=1,t=1,p=1$xx$yy"] {
        assert!(!hasher.verify(Password::new("SecurePass123!"), PasswordHash::new(garbage)).await.unwrap());
    }
}

#[tokio::test]
async fn the_dummy_verification_succeeds_without_a_user() {
    hasher().verify_dummy(Password::new("anything")).await.unwrap();
}

#[test]
fn secrets_are_random() {
    assert_ne!(OsSecrets.token_id(), OsSecrets.token_id());
    assert_ne!(OsSecrets.secret_bytes(), OsSecrets.secret_bytes());
    assert_eq!(OsSecrets.token_id().get_version_num(), 4);
}

#[tokio::test]
async fn weaker_or_foreign_hashes_need_a_rehash() {
    let current = hasher();
    let weak =
        Argon2Hasher::new(&HashingConfig { memory_kib: 64, iterations: 1, ..HashingConfig::default() })
            .unwrap();
    let old = weak.hash(Password::new("SecurePass123!")).await.unwrap();
    assert!(current.needs_rehash(&old), "m=64,t=1 is weaker than the configured parameters");
    assert!(
        current.verify(Password::new("SecurePass123!"), old).await.unwrap(),
        "and still verifies meanwhile"
    );
    let fresh = current.hash(Password::new("SecurePass123!")).await.unwrap();
    assert!(!current.needs_rehash(&fresh));
    let argon2i = PasswordHash::new(
        "$argon2i$v=19$m=19456,t=2,p=1$c3Nzc3Nzc3Nzc3Nzc3Nzcw$aGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGg",
    );
    assert!(current.needs_rehash(&argon2i), "another variant is replaced too");
    assert!(!current.needs_rehash(&PasswordHash::new("garbage")), "nothing to upgrade from");
}
