use actix_web::{HttpResponse, delete, get, post, web};
use portcullis_domain::SessionId;
use uuid::Uuid;

use super::no_store;
use crate::dto::{LogoutAllResponse, MessageResponse, SessionResponse, SessionsEndedResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;

/// The caller's live sessions, newest first; `current` marks the one the
/// token belongs to.
#[utoipa::path(
    tag = "sessions",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The live sessions", body = [SessionResponse]),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`: an API key has no sessions", body = ErrorBody),
    )
)]
#[get("/v1/auth/sessions")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    super::require_jwt(&caller)?;
    let sessions = state.services.sessions.list(&caller.0).await?;
    let body: Vec<SessionResponse> = sessions.into_iter().map(SessionResponse::from).collect();
    Ok(no_store(actix_web::http::StatusCode::OK, &body))
}

/// End one of the caller's sessions (its access and refresh tokens fail at once).
#[utoipa::path(
    tag = "sessions",
    security(("bearer_jwt" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 200, description = "The session has ended", body = MessageResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
        (status = 404, description = "No live session of the caller has this id", body = ErrorBody),
    )
)]
#[delete("/v1/auth/sessions/{id}")]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    super::require_jwt(&caller)?;
    state.services.sessions.end_one(&caller.0, SessionId::from_uuid(*id)).await?;
    Ok(HttpResponse::Ok().json(MessageResponse { message: "Session ended" }))
}

/// Sign out everywhere: every session of the caller ends, this one included.
#[utoipa::path(
    tag = "sessions",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "Every session has ended", body = LogoutAllResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`jwt_required`", body = ErrorBody),
    )
)]
#[post("/v1/auth/logout-all")]
pub(crate) async fn logout_all(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    super::require_jwt(&caller)?;
    let sessions_ended = state.services.sessions.end_all(&caller.0).await?;
    Ok(HttpResponse::Ok().json(LogoutAllResponse { message: "Signed out of every session", sessions_ended }))
}

/// Sign a user out everywhere (administrators).
#[utoipa::path(
    tag = "admin",
    security(("bearer_jwt" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "Every session of the user has ended", body = SessionsEndedResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`insufficient_permissions`, `jwt_required`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[delete("/v1/admin/users/{id}/sessions")]
pub(crate) async fn end_user_sessions(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = portcullis_domain::UserId::from_uuid(*id);
    let sessions_ended = state.services.admin.end_sessions(&caller.0, user).await?;
    Ok(HttpResponse::Ok().json(SessionsEndedResponse { sessions_ended }))
}
