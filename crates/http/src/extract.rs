//! Authentication, done once, in extractors. Handlers that take
//! [`Authenticated`] never see an unauthenticated request.

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use portcullis_domain::{AuthError, DomainError, Principal};

use crate::error::ApiError;
use crate::limits::PrincipalBudget;
use crate::state::AppState;

/// API keys are recognised by their prefix wherever a bearer token may stand.
const API_KEY_PREFIXES: [&str; 2] = ["sk_live_", "sk_test_"];

/// A credential as presented, before anyone checked it. `Debug` hides it.
pub(crate) enum Credential {
    Jwt(String),
    /// Recognised by its prefix.
    ApiKey(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Jwt(_) => "Credential::Jwt([REDACTED])",
            Self::ApiKey(_) => "Credential::ApiKey([REDACTED])",
        })
    }
}

/// Parsed once: a `&str` name would be parsed and checked on every request.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

impl Credential {
    /// `X-API-Key` first, then `Authorization: Bearer` (a JWT, or an API key by
    /// its prefix). `Ok(None)`: nothing was presented.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        if let Some(key) = headers.get(X_API_KEY) {
            let key = text(key).ok_or_else(|| invalid(AuthError::InvalidApiKey))?.trim();
            return Ok(Some(Self::ApiKey(key.to_owned())));
        }
        let Some(authorization) = headers.get(AUTHORIZATION) else { return Ok(None) };
        let value = text(authorization).ok_or_else(|| invalid(AuthError::InvalidToken))?.trim();
        let Some((scheme, token)) = value.split_once(' ') else {
            // "Bearer" alone, or another scheme with no parameter.
            return if value.eq_ignore_ascii_case("bearer") {
                Err(invalid(AuthError::InvalidToken))
            } else {
                Ok(None)
            };
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(None);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(invalid(AuthError::InvalidToken));
        }
        if API_KEY_PREFIXES.iter().any(|p| token.starts_with(p)) {
            Ok(Some(Self::ApiKey(token.to_owned())))
        } else {
            Ok(Some(Self::Jwt(token.to_owned())))
        }
    }
}

/// A credential header as text. Not `HeaderValue::to_str`, which checks
/// every byte one at a time (a tenth of a `/me`, for a 560-byte token):
/// UTF-8 validation runs over ASCII a word at a time, and what it lets
/// through that `to_str` would not (non-ASCII text) matches no key and
/// decodes as no token, so it is refused all the same.
fn text(value: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

fn invalid(error: AuthError) -> ApiError {
    DomainError::Unauthenticated(error).into()
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| DomainError::Unavailable("application state is not registered".to_owned()).into())
}

/// Verifies whatever credential the request carries; `Ok(None)` when it carries none.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    verify(state, Credential::from_headers(headers)?).await
}

/// Verifies `credential`; `Ok(None)` when there is none.
async fn verify(state: &AppState, credential: Option<Credential>) -> Result<Option<Principal>, ApiError> {
    let principal = match credential {
        None => return Ok(None),
        Some(Credential::Jwt(token)) => state.services.sessions.authenticate(&token).await?,
        Some(Credential::ApiKey(key)) => api_key(state, &key).await?,
    };
    let span = tracing::Span::current();
    match principal.api_key {
        Some(key) => span.record("principal", tracing::field::display(format_args!("key:{key}"))),
        None => span.record("principal", tracing::field::display(format_args!("user:{}", principal.user.id))),
    };
    Ok(Some(principal))
}

/// Verifies an API key, counting the outcome.
async fn api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let outcome = state.services.api_keys.authenticate(key).await.map_err(ApiError::from);
    state.metrics.observe_api_key(outcome.as_ref().map_or_else(ApiError::code, |_| "success"));
    outcome
}

/// Counts an authenticated request in its principal's budget, and leaves the
/// budget where the response will find it (for `X-RateLimit-*`).
async fn count(state: &AppState, req: &HttpRequest, principal: &Principal) -> Result<(), ApiError> {
    if let Some(decision) = state.services.limits.hit_principal(principal).await? {
        req.extensions_mut().insert(PrincipalBudget(decision));
    }
    Ok(())
}

/// The authenticated caller, by JWT or API key.
#[derive(Debug)]
pub(crate) struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Read now, so the future owns the token rather than a copy of every header.
        let credential = Credential::from_headers(req.headers());
        let state = state(req);
        let req = req.clone();
        Box::pin(async move {
            let state = state?;
            match verify(&state, credential?).await? {
                Some(principal) => {
                    count(&state, &req, &principal).await?;
                    Ok(Self(principal))
                }
                None => Err(invalid(AuthError::NotAuthenticated)),
            }
        })
    }
}

/// The raw bearer JWT, for endpoints that act on the token itself (refresh,
/// logout); the service verifies it.
pub(crate) struct BearerJwt(pub String);

impl std::fmt::Debug for BearerJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerJwt([REDACTED])")
    }
}

impl FromRequest for BearerJwt {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let credential = Credential::from_headers(req.headers());
        let state = state(req);
        let req = req.clone();
        Box::pin(async move {
            match credential? {
                Some(Credential::Jwt(token)) => {
                    // The service verifies the token again as it acts on it;
                    // this check only puts the request in its principal's budget.
                    let state = state?;
                    let principal = state.services.sessions.authenticate(&token).await?;
                    count(&state, &req, &principal).await?;
                    Ok(Self(token))
                }
                // A valid key is still the wrong kind of credential here.
                Some(Credential::ApiKey(key)) => {
                    api_key(&*state?, &key).await?;
                    Err(DomainError::Forbidden(portcullis_domain::Forbidden::JwtRequired).into())
                }
                None => Err(invalid(AuthError::NotAuthenticated)),
            }
        })
    }
}
