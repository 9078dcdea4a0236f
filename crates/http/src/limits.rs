//! Per-address limits on the routes that attract guessing and sign-up floods,
//! and the `X-RateLimit-*` headers: of that budget on those routes, of the
//! principal's budget on every authenticated response.

use std::collections::HashMap;

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

/// The extension of an OpenAPI operation that names the per-address budget
/// the route counts in: `login`, `register` or `forgot_password`.
pub(crate) const FAMILY_EXTENSION: &str = "x-rate-limit-family";

/// The per-address limit family of each route that has one, as its OpenAPI
/// entry declares it ([`FAMILY_EXTENSION`], next to the handler): by method
/// and route template. Nothing else names the limited routes.
#[derive(Debug, Default)]
pub(crate) struct LimitedRoutes(HashMap<(Method, String), IpFamily>);

impl LimitedRoutes {
    /// # Panics
    /// On a family name that is not one: a handler's attribute is wrong, which
    /// every test that builds the app finds at once.
    pub(crate) fn from_document(document: &utoipa::openapi::OpenApi) -> Self {
        let mut routes = HashMap::new();
        for (path, item) in &document.paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in operations {
                let Some(family) = operation.as_ref().and_then(declared_family) else { continue };
                let family = family_named(family)
                    .unwrap_or_else(|| panic!("{path}: unknown {FAMILY_EXTENSION} {family:?}"));
                routes.insert((method, path.clone()), family);
            }
        }
        Self(routes)
    }

    fn family(&self, req: &ServiceRequest) -> Option<IpFamily> {
        // Most requests are on no limited route: no allocation for them.
        if !self.0.keys().any(|(method, _)| method == req.method()) {
            return None;
        }
        let pattern = req.match_pattern()?;
        self.0.get(&(req.method().clone(), pattern)).copied()
    }
}

/// The family an operation declares, if any.
pub(crate) fn declared_family(operation: &utoipa::openapi::path::Operation) -> Option<&str> {
    operation.extensions.as_ref()?.get(FAMILY_EXTENSION)?.as_str()
}

fn family_named(name: &str) -> Option<IpFamily> {
    match name {
        "login" => Some(IpFamily::Login),
        "register" => Some(IpFamily::Register),
        "forgot_password" => Some(IpFamily::ForgotPassword),
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
    let family = req.app_data::<web::Data<LimitedRoutes>>().and_then(|routes| routes.family(&req));
    let (Some(family), Some(state)) = (family, req.app_data::<web::Data<AppState>>().cloned()) else {
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
