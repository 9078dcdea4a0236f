use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, web};
use portcullis_domain::{ApiKeyId, DomainError, NewKeyRequest};

use super::no_store;
use crate::body::Json;
use crate::dto::{
    ApiKeyResponse, CreateApiKeyRequest, CreatedApiKeyResponse, MessageResponse, key_prefix, rfc3339,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;

/// Create an API key. Its secret is in this response and nowhere else, ever.
#[utoipa::path(
    operation_id = "create_api_key",
    tag = "api-keys",
    security(("bearer_jwt" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; `api_key` is shown only here", body = CreatedApiKeyResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`: keys cannot manage keys", body = ErrorBody),
        (status = 422, description = "`invalid_field`: name, expires_in_days (1..=365) or environment", body = ErrorBody),
    )
)]
#[post("/v1/api-keys")]
pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = NewKeyRequest {
        name: body.name,
        expires_in_days: body.expires_in_days,
        environment: body.environment,
    };
    let (key, secret) = state.services.api_keys.create(&caller.0, request).await?;
    let body = CreatedApiKeyResponse {
        id: key.id.to_string(),
        api_key: secret.expose().to_owned(),
        name: key.name.as_str().to_owned(),
        prefix: key_prefix(key.environment),
        environment: key.environment.as_str(),
        expires_at: rfc3339(key.expires_at),
        created_at: rfc3339(key.created_at),
    };
    Ok(no_store(StatusCode::CREATED, &body))
}

/// The caller's API keys, newest first, revoked ones included.
#[utoipa::path(
    operation_id = "list_api_keys",
    tag = "api-keys",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "Never includes a secret or digest", body = [ApiKeyResponse]),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
    )
)]
#[get("/v1/api-keys")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let keys = state.services.api_keys.list(&caller.0).await?;
    let body: Vec<ApiKeyResponse> = keys.into_iter().map(ApiKeyResponse::from).collect();
    Ok(no_store(StatusCode::OK, &body))
}

/// Revoke one of the caller's API keys; it fails from the next request on.
#[utoipa::path(
    operation_id = "revoke_api_key",
    tag = "api-keys",
    security(("bearer_jwt" = [])),
    params(("key_id" = String, Path, description = "`key_<uuid>`")),
    responses(
        (status = 200, description = "Revoked", body = MessageResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
        (status = 404, description = "No such key of the caller's", body = ErrorBody),
    )
)]
#[delete("/v1/api-keys/{key_id}")]
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    caller: Authenticated,
    key_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // An id that is not `key_<uuid>` names no key: 404, like an unknown one.
    let id: ApiKeyId = key_id.parse().map_err(|_| DomainError::NotFound)?;
    state.services.api_keys.revoke(&caller.0, id).await?;
    Ok(HttpResponse::Ok().json(MessageResponse { message: "API key revoked successfully" }))
}
