//! The span of one request, closed (and logged) when the response is sent.
//!
//! Unlike tracing-actix-web's default it records the path without its query
//! string, and no header at all: a key pasted into a URL by mistake, or any
//! credential header, never reaches a log line.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use portcullis_domain::RequestContext;
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::RootSpanBuilder;

use crate::context::RequestStart;

/// Fields: `method`, `route` (the template, e.g. `/v1/api-keys/{key_id}`),
/// `path`, `client_ip` (the client's address, through trusted proxies),
/// `request_id`, `principal` (`user:<id>` or `key:<id>` once authenticated),
/// and on completion `status` and `latency_ms`.
#[derive(Debug)]
pub(crate) struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request
            .extensions()
            .get::<RequestStart>()
            .map_or_else(|| "unmatched".to_owned(), |start| start.route.clone());
        let context = request.extensions().get::<RequestContext>().cloned().unwrap_or_default();
        let request_id = context.request_id.unwrap_or_default();
        let client_ip = context.ip.unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            route = %route,
            path = %request.path(),
            client_ip = %client_ip,
            request_id = %request_id,
            principal = Empty,
            status = Empty,
            latency_ms = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => {
                if let Some(start) = response.request().extensions().get::<RequestStart>() {
                    span.record("latency_ms", start.at.elapsed().as_secs_f64() * 1000.0);
                }
                response.status()
            }
            Err(error) => error.as_response_error().status_code(),
        };
        span.record("status", status.as_u16());
    }
}
