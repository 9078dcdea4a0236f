//! Per-address limits on the routes that attract guessing and sign-up floods,
//! and the `X-RateLimit-*` headers: of that budget on those routes, of the
//! principal's budget on every authenticated response.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
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
        "/v1/auth/register" | "/v1/test-auth/create-test-user" => Some(IpFamily::Register),
        "/v1/auth/forgot-password" => Some(IpFamily::ForgotPassword),
        _ => None,
    }
}

/// The principal's budget after an authenticated request counted in it, left
/// in the request's extensions by the authentication extractor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrincipalBudget(pub RateDecision);

/// Counts the request against its client address when its route is limited;
/// refuses it with 429 over the limit; adds the headers either way. An
/// authenticated request gets the headers of its principal's budget instead.
pub(crate) async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let (Some(family), Some(state)) = (family(&req), req.app_data::<web::Data<AppState>>().cloned()) else {
        let mut response = next.call(req).await?.map_into_boxed_body();
        let budget = response.request().extensions().get::<PrincipalBudget>().copied();
        if let Some(PrincipalBudget(decision)) = budget {
            for (name, value) in rate_headers(&decision) {
                response.headers_mut().insert(name, value);
            }
        }
        return Ok(response);
    };
    // The client's address as the outermost middleware worked it out (through trusted proxies).
    let ip = crate::context::client_ip(&req);
    let decision = match state.services.limits.hit_ip(family, ip.as_deref()).await {
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
