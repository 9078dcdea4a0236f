//! What verifiers fetch: the public signing keys and the metadata that points at them.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::state::AppState;

/// How long verifiers and gateways may keep the JWKS and the metadata. A new
/// key is published at least twice this long before it signs.
pub(crate) const MAX_AGE_SECS: u32 = 300;

/// One public key (RFC 7517; EC keys per RFC 7518, Ed25519 per RFC 8037).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Jwk {
    /// `EC` (ES256) or `OKP` (EdDSA).
    #[schema(example = "EC")]
    pub kty: String,
    /// `P-256` or `Ed25519`.
    #[schema(example = "P-256")]
    pub crv: String,
    pub x: String,
    /// EC keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    pub kid: String,
    /// `ES256` or `EdDSA`.
    #[schema(example = "ES256")]
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub use_: String,
}

/// `200` of `GET /.well-known/jwks.json`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JwksResponse {
    pub keys: Vec<Jwk>,
}

/// `200` of `GET /.well-known/openid-configuration` (RFC 8414 / OpenID Connect Discovery).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderMetadata {
    /// Exactly the `iss` of the tokens.
    pub issuer: String,
    pub jwks_uri: String,
    /// The login (`POST`, form or JSON).
    pub token_endpoint: String,
    /// The logout, which ends the token's session.
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
}

fn cacheable<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok().insert_header((CACHE_CONTROL, format!("public, max-age={MAX_AGE_SECS}"))).json(body)
}

/// The public keys that verify Portcullis tokens: the current key, the next
/// one (published before it signs) and retired ones until their last token
/// expired. Empty under HS256.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The JSON Web Key Set; `Cache-Control: public, max-age=300`", body = JwksResponse)),
)]
#[get("/.well-known/jwks.json")]
pub(crate) async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let keys = state
        .services
        .signing_keys
        .published()
        .iter()
        .filter_map(|jwk| match serde_json::from_str::<Jwk>(jwk) {
            Ok(jwk) => Some(jwk),
            Err(e) => {
                tracing::error!(error = %e, "a stored public key is not a JWK; left out of the JWKS");
                None
            }
        })
        .collect();
    cacheable(&JwksResponse { keys })
}

/// Where verifiers find the keys, and the service's endpoints.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Authorization server metadata; `Cache-Control: public, max-age=300`", body = ProviderMetadata)),
)]
#[get("/.well-known/openid-configuration")]
pub(crate) async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let base = state.settings.public_url.trim_end_matches('/');
    let algorithm = state.services.signing_keys.algorithm().as_str();
    cacheable(&ProviderMetadata {
        issuer: state.settings.issuer.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        token_endpoint: format!("{base}/v1/auth/login"),
        revocation_endpoint: format!("{base}/v1/auth/logout"),
        introspection_endpoint: format!("{base}/v1/auth/introspect"),
        id_token_signing_alg_values_supported: vec![algorithm],
        token_endpoint_auth_signing_alg_values_supported: vec![algorithm],
        grant_types_supported: vec!["password", "refresh_token"],
        response_types_supported: vec!["token"],
        subject_types_supported: vec!["public"],
        claims_supported: vec!["sub", "email", "role", "iss", "aud", "exp", "iat", "auth_time", "jti", "sid"],
    })
}
