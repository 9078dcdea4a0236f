//! The span of one request, closed (and logged) when the response is sent.
//!
//! Unlike tracing-actix-web's default it records the path without its query
//! string, and no header at all: a key pasted into a URL by mistake, or any
//! credential header, never reaches a log line.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::{RequestId, RootSpanBuilder};

/// Fields: `method`, `route` (the template, e.g. `/v1/api-keys/{key_id}`),
/// `path`, `client_ip` (the socket peer), `request_id`, and on completion
/// `status`.
#[derive(Debug)]
pub(crate) struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        let request_id = request.extensions().get::<RequestId>().map(ToString::to_string).unwrap_or_default();
        let client_ip = request.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            route = %route,
            path = %request.path(),
            client_ip = %client_ip,
            request_id = %request_id,
            status = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        span.record("status", status.as_u16());
    }
}
