use actix_web::{HttpResponse, get, web};
use portcullis_domain::DomainError;

use crate::dto::StatusResponse;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Liveness: the process is up.
#[utoipa::path(tag = "operations", responses((status = 200, body = StatusResponse)))]
#[get("/healthz")]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse { status: "ok" })
}

/// Readiness: storage answers.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Storage answers", body = StatusResponse),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
#[get("/readyz")]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.health.ping().await.map_err(DomainError::from)?;
    Ok(HttpResponse::Ok().json(StatusResponse { status: "ready" }))
}
