//! The one error type of the HTTP layer: every failure, from the domain, from a
//! body that does not parse or from a route that does not exist, leaves as
//! `{"detail", "code"}` with the contract's status.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use portcullis_domain::{DomainError, FieldError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// For people; may change.
    #[schema(example = "Incorrect email or password")]
    pub detail: String,
    /// For programs; stable.
    #[schema(example = "invalid_credentials")]
    pub code: String,
    /// On 422: each field that failed and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorBody>,
}

/// One failed field of a 422.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldErrorBody {
    #[schema(example = "password")]
    pub field: String,
    #[schema(example = "password_missing_digit")]
    pub code: String,
    #[schema(example = "must contain a digit")]
    pub message: String,
}

impl From<FieldError> for FieldErrorBody {
    fn from(e: FieldError) -> Self {
        Self { field: e.field, code: e.code.to_owned(), message: e.message }
    }
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Vec<FieldErrorBody>,
    /// For 401s: whether a bearer credential was presented (RFC 6750).
    bearer_error: Option<bool>,
    /// For 429s: the limiter's answer, for `Retry-After` and `X-RateLimit-*`.
    rate: Option<portcullis_domain::RateDecision>,
}

impl ApiError {
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        let bearer_error = (status == StatusCode::UNAUTHORIZED).then_some(false);
        Self { status, code, detail: detail.into(), errors: Vec::new(), bearer_error, rate: None }
    }

    #[must_use]
    pub fn malformed_body(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_body", detail)
    }

    #[must_use]
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut error = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message.clone());
        error.errors.push(FieldErrorBody {
            field: field.to_owned(),
            code: "invalid_field".to_owned(),
            message,
        });
        error
    }

    #[must_use]
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Request body is larger than {limit} bytes"),
        )
    }

    /// A generic error for a status that reached us without a body of ours
    /// (an unknown route, a wrong method).
    #[must_use]
    pub fn for_status(status: StatusCode) -> Self {
        let (code, detail) = match status.as_u16() {
            400 => ("malformed_body", "Malformed request"),
            401 => ("not_authenticated", "Not authenticated"),
            403 => ("insufficient_permissions", "Insufficient permissions"),
            404 => ("not_found", "Not found"),
            405 => ("method_not_allowed", "Method not allowed"),
            406 => ("not_acceptable", "Not acceptable"),
            408 => ("request_timeout", "Request timeout"),
            411 => ("length_required", "Length required"),
            413 => ("payload_too_large", "Request body too large"),
            414 => ("uri_too_long", "URI too long"),
            415 => ("malformed_body", "Unsupported content type"),
            431 => ("headers_too_large", "Request headers too large"),
            503 => ("service_unavailable", "Service temporarily unavailable"),
            s if s >= 500 => ("internal_error", "Internal error"),
            _ => ("bad_request", "Bad request"),
        };
        Self::new(status, code, detail)
    }

    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let code = error.code();
        let (status, detail) = match &error {
            DomainError::Validation { errors, .. } => {
                let detail = errors.first().map_or_else(
                    || "Validation failed".to_owned(),
                    |e| format!("{}: {}", e.field, e.message),
                );
                (StatusCode::UNPROCESSABLE_ENTITY, detail)
            }
            DomainError::EmailTaken => (StatusCode::CONFLICT, "Email already registered".to_owned()),
            DomainError::Unauthenticated(e) => (StatusCode::UNAUTHORIZED, e.detail().to_owned()),
            DomainError::Forbidden(e) => (StatusCode::FORBIDDEN, e.detail().to_owned()),
            DomainError::RateLimited(decision) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many attempts; retry in {} seconds", decision.retry_after_secs),
            ),
            DomainError::InvalidOAuthState => {
                (StatusCode::BAD_REQUEST, "The OAuth state is invalid, expired or for another redirect URI".to_owned())
            }
            DomainError::OAuthExchangeFailed => {
                (StatusCode::BAD_REQUEST, "The provider refused the authorization code".to_owned())
            }
            DomainError::OAuthEmailUnverified => (
                StatusCode::CONFLICT,
                "The provider did not confirm an email address for this account; verify one with the provider and try again"
                    .to_owned(),
            ),
            DomainError::ProviderError(why) => {
                tracing::warn!(reason = %why, "OAuth provider failure");
                (StatusCode::BAD_GATEWAY, "The login provider failed or answered something unusable".to_owned())
            }
            DomainError::InvalidResetToken => {
                (StatusCode::BAD_REQUEST, "The reset token is invalid, used or expired".to_owned())
            }
            DomainError::InvalidMfaCode => {
                (StatusCode::BAD_REQUEST, "The code is wrong or was used already".to_owned())
            }
            DomainError::MfaAlreadyEnabled => {
                (StatusCode::CONFLICT, "Two-factor authentication is already on; turn it off first".to_owned())
            }
            DomainError::InvalidVerificationToken => {
                (StatusCode::BAD_REQUEST, "The verification link is invalid, used or expired".to_owned())
            }
            DomainError::InvalidCurrentPassword => {
                (StatusCode::BAD_REQUEST, "Current password is incorrect".to_owned())
            }
            DomainError::NotFound => (StatusCode::NOT_FOUND, "Not found".to_owned()),
            DomainError::Unavailable(why) => {
                // The reason is for operators; the client learns only that it may retry.
                tracing::warn!(reason = %why, "dependency unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable, retry shortly".to_owned())
            }
        };
        let bearer_error = match &error {
            DomainError::Unauthenticated(e) => Some(e.credential_was_presented()),
            _ => None,
        };
        let rate = match &error {
            DomainError::RateLimited(decision) => Some(*decision),
            _ => None,
        };
        let errors = match error {
            DomainError::Validation { errors, .. } => errors.into_iter().map(FieldErrorBody::from).collect(),
            _ => Vec::new(),
        };
        Self { status, code, detail, errors, bearer_error, rate }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        match self.bearer_error {
            Some(true) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="portcullis", error="invalid_token""#),
                ));
            }
            Some(false) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="portcullis""#),
                ));
            }
            None => {}
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        if let Some(decision) = self.rate {
            response.insert_header((header::RETRY_AFTER, decision.retry_after_secs.to_string()));
            for (name, value) in crate::limits::rate_headers(&decision) {
                response.insert_header((name, value));
            }
        }
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        // `ErrorBody` as it goes on the wire, borrowed: an address flood is
        // answered with one of these per request, and nothing is copied.
        #[derive(Serialize)]
        struct Wire<'a> {
            detail: &'a str,
            code: &'a str,
            #[serde(skip_serializing_if = "<[FieldErrorBody]>::is_empty")]
            errors: &'a [FieldErrorBody],
        }
        let wire = Wire { detail: &self.detail, code: self.code, errors: &self.errors };
        let mut body = Vec::with_capacity(64 + 2 * self.detail.len() + 160 * self.errors.len());
        match serde_json::to_writer(&mut body, &wire) {
            Ok(()) => response.body(body),
            Err(e) => {
                tracing::error!(error = %e, "an error body could not be written");
                HttpResponse::InternalServerError().finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use actix_web::body::MessageBody;

    use super::{ApiError, ErrorBody};

    /// The body as the client reads it.
    fn body_of(error: &ApiError) -> serde_json::Value {
        let response = error.error_response();
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let bytes = response.into_body().try_into_bytes().expect("a body in one piece");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[test]
    fn the_body_written_is_the_documented_error_body() {
        // The documented schema is `ErrorBody`; the response is written from
        // a borrowed copy of its fields, which must not drift from it.
        for error in [
            ApiError::invalid_field("password", "password is required"),
            ApiError::malformed_body("Body is not valid JSON (line 1, column 2)"),
            ApiError::new(actix_web::http::StatusCode::UNAUTHORIZED, "invalid_token", "Token is \"bad\"\n"),
        ] {
            let documented = ErrorBody {
                detail: error.detail.clone(),
                code: error.code.to_owned(),
                errors: error.errors.clone(),
            };
            assert_eq!(body_of(&error), serde_json::to_value(&documented).expect("a value"), "{error}");
        }
    }
}
