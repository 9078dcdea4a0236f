//! RFC 7662 token introspection, for services that must know at once whether
//! a credential still holds (a logout, an ended session, a revoked key).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use portcullis_domain::{DomainError, Forbidden, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::no_store;
use crate::body::Json;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;

/// `POST /v1/auth/introspect`, as JSON or as a form.
#[derive(Deserialize, ToSchema)]
pub(crate) struct IntrospectRequest {
    /// An access token, a refresh token (`rt_...`) or an API key.
    pub token: String,
    /// RFC 7662's hint; accepted and not needed (each kind has its own form).
    #[allow(dead_code)]
    pub token_type_hint: Option<String>,
}

/// `200` of `POST /v1/auth/introspect`: `{"active": false}` alone for
/// anything that is not a live credential.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct IntrospectionResponse {
    pub active: bool,
    /// `access_token`, `refresh_token` or `api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `USER` or `ADMIN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// When it stops being valid (seconds since the epoch): an access
    /// token's `exp`, a refresh token's session end, an API key's expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// When it was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The session (access and refresh tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// `live` or `test` (API keys); `live` for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub aud: Option<serde_json::Value>,
}

/// Whether `token` is a live credential, and whose (RFC 7662). For
/// administrators (JWT or API key). An introspected API key is not counted
/// as a use. Always 200 for any token, `{"active": false}` for one that is
/// malformed, unknown, expired, revoked, spent or of an ended session.
#[utoipa::path(
    tag = "sessions",
    security(("bearer_jwt" = []), ("api_key" = [])),
    request_body(description = "Form or JSON: `token`", content(
        (IntrospectRequest = "application/x-www-form-urlencoded"),
        (IntrospectRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "The verdict", body = IntrospectionResponse),
        (status = 401, description = "The caller is not authenticated", body = ErrorBody),
        (status = 403, description = "`insufficient_permissions`: the caller is not an ADMIN", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: no `token`", body = ErrorBody),
    )
)]
#[post("/v1/auth/introspect")]
pub(crate) async fn introspect(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: web::Either<Json<IntrospectRequest>, web::Form<IntrospectRequest>>,
) -> Result<HttpResponse, ApiError> {
    if caller.0.user.role != Role::Admin {
        return Err(DomainError::Forbidden(Forbidden::InsufficientPermissions).into());
    }
    let token = match body {
        web::Either::Left(Json(request)) => request.token,
        web::Either::Right(form) => form.into_inner().token,
    };
    let verdict = inspect(&state, token.trim()).await?;
    Ok(no_store(StatusCode::OK, &verdict))
}

/// The verdict on one presented credential; only an outage is an error.
async fn inspect(state: &AppState, token: &str) -> Result<IntrospectionResponse, DomainError> {
    let inactive = IntrospectionResponse::default();
    let services = &state.services;
    if token.starts_with("rt_") {
        let Some((session, user)) = services.sessions.inspect_refresh(token).await? else {
            return Ok(inactive);
        };
        return Ok(IntrospectionResponse {
            active: true,
            token_type: Some("refresh_token"),
            sub: Some(user.id.as_uuid()),
            email: Some(user.email.as_str().to_owned()),
            role: Some(user.role.as_str()),
            exp: Some(services.sessions.session_end(&session).unix_timestamp()),
            iat: Some(session.created_at.unix_timestamp()),
            sid: Some(session.id.as_uuid()),
            environment: Some("live"),
            iss: Some(state.settings.issuer.clone()),
            aud: None,
        });
    }
    if portcullis_domain::Environment::of_key(token).is_some() {
        return match services.api_keys.inspect(token).await {
            Ok((key, user)) => Ok(IntrospectionResponse {
                active: true,
                token_type: Some("api_key"),
                sub: Some(user.id.as_uuid()),
                email: Some(user.email.as_str().to_owned()),
                role: Some(user.role.as_str()),
                exp: Some(key.expires_at.unix_timestamp()),
                iat: Some(key.created_at.unix_timestamp()),
                sid: None,
                environment: Some(key.environment.as_str()),
                iss: Some(state.settings.issuer.clone()),
                aud: None,
            }),
            Err(DomainError::Unauthenticated(_)) => Ok(inactive),
            Err(other) => Err(other),
        };
    }
    match services.sessions.authenticate(token).await {
        Ok(principal) => {
            let Some(claims) = principal.claims else { return Ok(inactive) };
            Ok(IntrospectionResponse {
                active: true,
                token_type: Some("access_token"),
                sub: Some(claims.sub),
                email: Some(principal.user.email.as_str().to_owned()),
                role: Some(principal.user.role.as_str()),
                exp: Some(claims.exp),
                iat: Some(claims.iat),
                sid: claims.sid,
                environment: Some("live"),
                iss: Some(claims.iss),
                aud: claims.aud.and_then(|aud| serde_json::to_value(aud).ok()),
            })
        }
        Err(DomainError::Unauthenticated(_)) => Ok(inactive),
        Err(other) => Err(other),
    }
}
