//! What every response goes through: JSON errors whatever produced them, a
//! body-size guard, the request id header, and a last guard against panics.

use std::panic::AssertUnwindSafe;

use actix_web::ResponseError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, REFERRER_POLICY,
    STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use futures_util::FutureExt;

use crate::error::ApiError;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers every response carries: no MIME sniffing (a JSON error is never
/// run as a script), no framing (no clickjacking of `/docs`), no referrer
/// (a reset link in a page's URL never leaks to another site), and, when the
/// service is reached over HTTPS, HSTS for a year.
pub(crate) fn secure_headers(headers: &mut HeaderMap, hsts: bool) {
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if hsts {
        headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
}

/// Runs the rest of the chain with the guards around it.
///
/// The request is not cloned: actix routes by mutating it and needs it unshared.
/// Handler and extractor errors arrive here as responses already; what comes
/// back as `Err` (a middleware's error, a panic) is left to actix to render,
/// through [`ApiError`]'s `ResponseError`.
pub(crate) fn guard<S, B>(
    req: ServiceRequest,
    srv: &S,
    body_limit: usize,
) -> impl Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    // An oversized body is refused before anything reads it, whatever the route.
    let call = if declared_length(&req).is_some_and(|len| len > body_limit) {
        Err(req.error_response(ApiError::payload_too_large(body_limit)))
    } else {
        Ok(std::panic::catch_unwind(AssertUnwindSafe(|| srv.call(req))))
    };
    async move {
        let response = match call {
            Err(refused) => refused,
            Ok(Ok(future)) => match AssertUnwindSafe(future).catch_unwind().await {
                Ok(result) => result?.map_into_boxed_body(),
                Err(_) => return Err(panicked()),
            },
            Ok(Err(_)) => return Err(panicked()),
        };
        Ok(json_errors(response))
    }
}

fn panicked() -> actix_web::Error {
    tracing::error!("a handler panicked; answered 500");
    ApiError::for_status(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR).into()
}

fn declared_length(req: &ServiceRequest) -> Option<usize> {
    req.headers().get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Gives a `{"detail", "code"}` body to any error response that lacks one
/// (actix's own 404 and 405, a rejected header...), keeping its headers.
fn json_errors(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    // A page (the built-in ones) keeps its own HTML.
    let has_body = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || has_body {
        return response;
    }
    let (request, old) = response.into_parts();
    let mut replacement = ApiError::for_status(status).error_response();
    for (name, value) in old.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            replacement.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(request, replacement)
}
