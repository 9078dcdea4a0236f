use actix_web::{HttpResponse, get, web};
use portcullis_domain::DomainError;

use crate::dto::StatusResponse;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Liveness: the process is up.
#[utoipa::path(tag = "operations", responses((status = 200, description = "The process is up", body = StatusResponse)))]
#[get("/healthz")]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse { status: "ok" })
}

/// Prometheus metrics (text exposition format): requests, logins, tokens, API
/// keys, hashing queue, database pool, outbox. Served here unless
/// `AUTH_METRICS_BIND` moves it to a port of its own.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
)]
#[get("/metrics")]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    render_metrics(&state).await
}

/// Samples the gauges and renders every metric.
pub(crate) async fn render_metrics(state: &AppState) -> HttpResponse {
    // A store that cannot answer leaves the last backlog figure in place.
    let backlog = state.services.passwords.backlog().await.ok();
    state.metrics.sample(state.health.pool_usage(), backlog);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(state.metrics.encode())
}

/// Readiness: storage answers (and Redis, when `AUTH_REDIS_REQUIRED` is true).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Storage answers (and Redis, when AUTH_REDIS_REQUIRED is true)", body = StatusResponse),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
#[get("/readyz")]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.health.ping().await.map_err(DomainError::from)?;
    Ok(HttpResponse::Ok().json(StatusResponse { status: "ready" }))
}
