//! The request in flight, as the domain's audit log sees it: client address,
//! user agent and request id, set by the outermost middleware for the whole
//! of the request's future and read through [`HttpRequestContext`].

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, USER_AGENT};
use actix_web::{HttpMessage, web};
use portcullis_domain::RequestContext;
use portcullis_domain::ports::RequestContextSource;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::middleware::REQUEST_ID;
use crate::state::AppState;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Reads the context of the request whose future is running; empty outside one.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRequestContext;

impl RequestContextSource for HttpRequestContext {
    fn current(&self) -> RequestContext {
        CURRENT.try_with(Clone::clone).unwrap_or_default()
    }
}

/// The client's address of a request that went through [`observe`].
pub(crate) fn client_ip(req: &ServiceRequest) -> Option<String> {
    req.extensions().get::<RequestContext>().and_then(|c| c.ip.clone())
}

/// Longest `X-Request-Id` accepted from a proxy.
const MAX_REQUEST_ID: usize = 128;

/// Builds the request's context and span, runs the rest of the chain inside
/// both, sets `X-Request-Id` on the response and counts the request.
pub(crate) fn observe<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let hsts = state.as_ref().is_some_and(|s| s.settings.hsts);
    let context = state.as_ref().map(|s| context_of(&req, s)).unwrap_or_default();
    let method = req.method().as_str().to_owned();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    req.extensions_mut().insert(context.clone());
    let request_id = context.request_id.clone();
    let span = request_span(&req, &method, &route, &context);
    // Inner middlewares do part of their work in `call`: inside the span too.
    let call = span.in_scope(|| srv.call(req));
    let call = CURRENT.scope(context, call).instrument(span.clone());
    async move {
        let result = call.await;
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        let elapsed = started.elapsed();
        span.record("status", status.as_u16());
        span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
        // The span closes here, which writes the request's log line.
        drop(span);
        if let Some(state) = state {
            state.metrics.observe_request(&method, &route, status.as_u16(), elapsed);
        }
        let mut response = result?;
        if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        crate::middleware::secure_headers(response.headers_mut(), hsts);
        Ok(response)
    }
}

/// The span of one request, closed (and logged) once its response is ready.
/// Fields: `method`, `route` (the template, e.g. `/v1/api-keys/{key_id}`),
/// `path` (without its query string), `client_ip` (through trusted proxies),
/// `request_id`, `principal` (`user:<id>` or `key:<id>`, recorded by the
/// authentication extractor) and, on completion, `status` and `latency_ms`.
/// No header is recorded: a credential never reaches a log line, nor does a
/// key pasted into a query string by mistake.
///
/// When the level filter leaves request spans out, this costs a check: the
/// field values are not even formatted.
fn request_span(req: &ServiceRequest, method: &str, route: &str, context: &RequestContext) -> Span {
    tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        path = %req.path(),
        client_ip = %context.ip.as_deref().unwrap_or_default(),
        request_id = %context.request_id.as_deref().unwrap_or_default(),
        principal = Empty,
        status = Empty,
        latency_ms = Empty,
    )
}

fn context_of(req: &ServiceRequest, state: &AppState) -> RequestContext {
    let proxies = &state.settings.trusted_proxies;
    let peer = req.peer_addr().map(|a| a.ip());
    let forwarded: Vec<&str> =
        req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
    let ip = proxies.client_ip(peer, &forwarded).map(|ip| {
        let mut text = String::with_capacity(39);
        portcullis_domain::model::push_ip(&mut text, ip);
        text
    });
    // A proxy we trust may pass on the id it logged; anyone else gets a fresh one.
    let passed_on = peer
        .filter(|p| proxies.trusts(*p))
        .and_then(|_| req.headers().get(REQUEST_ID))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| valid_request_id(id))
        .map(str::to_owned);
    let request_id = passed_on.unwrap_or_else(fresh_request_id);
    let user_agent = req.headers().get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    RequestContext { ip, user_agent, request_id: Some(request_id) }
}

/// A random (version 4) UUID from the thread's generator, seeded from the
/// kernel. `Uuid::new_v4` asks the kernel for every id: a system call on
/// every request, 5 % of a `/me` request's CPU when measured.
fn fresh_request_id() -> String {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned()
}

/// Printable ASCII without spaces, 1 to 128 characters: safe in a header and a log line.
fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{fresh_request_id, valid_request_id};

    #[test]
    fn fresh_request_ids_are_distinct_random_uuids() {
        let ids: HashSet<String> = (0..1000).map(|_| fresh_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random));
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            assert!(valid_request_id(id));
        }
    }

    #[test]
    fn request_ids_from_proxies_are_checked() {
        assert!(valid_request_id("f3a9c1d2-trace"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("has space"));
        assert!(!valid_request_id(&"x".repeat(129)));
        assert!(!valid_request_id("line\nbreak"));
    }
}
