//! Per-IP limits on the routes that attract guessing and sign-up floods, and
//! the `X-RateLimit-*` headers.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use portcullis_domain::{DomainError, IpFamily, RateDecision};

use crate::error::ApiError;
use crate::state::AppState;

/// `X-RateLimit-Limit`, `-Remaining`, `-Reset` (seconds until the budget is whole).
pub(crate) fn rate_headers(decision: &RateDecision) -> [(HeaderName, HeaderValue); 3] {
    [
        (HeaderName::from_static("x-ratelimit-limit"), HeaderValue::from(decision.limit)),
        (HeaderName::from_static("x-ratelimit-remaining"), HeaderValue::from(decision.remaining)),
        (HeaderName::from_static("x-ratelimit-reset"), HeaderValue::from(decision.reset_after_secs)),
    ]
}

fn family(req: &ServiceRequest) -> Option<IpFamily> {
    if req.method() != Method::POST {
        return None;
    }
    match req.match_pattern()?.as_str() {
        "/v1/auth/login"
        | "/v1/auth/login-json"
        | "/v1/test-auth/test-login"
        | "/v1/auth/github/callback"
        | "/v1/auth/linkedin/callback" => Some(IpFamily::Login),
        "/v1/auth/register" => Some(IpFamily::Register),
        "/v1/auth/forgot-password" => Some(IpFamily::ForgotPassword),
        _ => None,
    }
}

/// Counts the request against its client address when its route is limited;
/// refuses it with 429 over the limit; adds the headers either way.
pub(crate) async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let (Some(family), Some(state)) = (family(&req), req.app_data::<web::Data<AppState>>().cloned()) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // The client's address as the outermost middleware worked it out (through trusted proxies).
    let ip = crate::context::client_ip(&req).unwrap_or_else(|| "unknown".to_owned());
    let decision = match state.services.limits.hit_ip(family, &ip).await {
        Ok(decision) => decision,
        Err(e) => {
            // A limiter that cannot answer must not take the service down with it.
            tracing::warn!(error = %e, "rate limiter unavailable; request let through");
            None
        }
    };
    match decision {
        Some(decision) if !decision.allowed => Ok(req
            .into_response(ApiError::from(DomainError::RateLimited(decision)).error_response())
            .map_into_boxed_body()),
        Some(decision) => {
            let mut response = next.call(req).await?.map_into_boxed_body();
            for (name, value) in rate_headers(&decision) {
                response.headers_mut().insert(name, value);
            }
            Ok(response)
        }
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}
