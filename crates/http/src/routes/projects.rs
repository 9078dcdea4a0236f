use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};

use crate::body::Json;
use crate::dto::{ProjectRequest, ProjectResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;

/// The caller's projects in the caller's environment (`test` for `sk_test_` keys).
#[utoipa::path(
    operation_id = "list_projects",
    tag = "projects",
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Newest first", body = [ProjectResponse]),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
#[get("/v1/database/projects")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let projects = state.services.projects.list(&caller.0).await?;
    Ok(HttpResponse::Ok().json(projects.into_iter().map(ProjectResponse::from).collect::<Vec<_>>()))
}

/// Create a project in the caller's environment.
#[utoipa::path(
    operation_id = "create_project",
    tag = "projects",
    security(("bearer_jwt" = []), ("api_key" = [])),
    request_body = ProjectRequest,
    responses(
        (status = 201, description = "Created", body = ProjectResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "`invalid_field`: name", body = ErrorBody),
    )
)]
#[post("/v1/database/projects")]
pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<ProjectRequest>,
) -> Result<HttpResponse, ApiError> {
    let project = state.services.projects.create(&caller.0, &body.name).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(ProjectResponse::from(project)))
}
