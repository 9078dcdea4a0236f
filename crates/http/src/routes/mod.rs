//! Handlers: extract, call one service method, map to a response.

pub(crate) mod admin;
pub(crate) mod api_keys;
pub(crate) mod auth;
pub(crate) mod discovery;
pub(crate) mod introspect;
pub(crate) mod mfa;
pub(crate) mod oauth;
pub(crate) mod ops;
pub(crate) mod passwords;
pub(crate) mod projects;
pub(crate) mod sessions;
pub(crate) mod test_auth;
pub(crate) mod verification;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, PRAGMA};
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;

/// A response that must never be cached (it holds a token or personal data).
pub(crate) fn no_store(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponseBuilder::new(status)
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(body)
}

/// Sessions belong to JWTs: an API key has none to list or end.
pub(crate) fn require_jwt(caller: &crate::extract::Authenticated) -> Result<(), crate::error::ApiError> {
    if caller.0.method == portcullis_domain::AuthMethod::Jwt {
        Ok(())
    } else {
        Err(portcullis_domain::DomainError::Forbidden(portcullis_domain::Forbidden::JwtRequired).into())
    }
}
