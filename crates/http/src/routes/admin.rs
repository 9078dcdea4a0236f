use actix_web::{HttpResponse, get, patch, web};
use portcullis_domain::{AuditKind, AuditQuery, DomainError, Role, UserChanges, UserId, UsersFrom};
use uuid::Uuid;

use crate::body::Json;
use crate::dto::{AuditEventsPage, AuditQueryParams, PageQuery, UpdateUserRequest, UserResponse, UsersPage};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;

/// All users, oldest first, a page at a time: from the start, then `after`
/// the `next_after` of each page until it is `null`.
#[utoipa::path(
    tag = "admin",
    security(("bearer_jwt" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page, the total, and the next page's `after`", body = UsersPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`insufficient_permissions` (not an admin), `jwt_required`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: limit, offset, or after (no such user, or given with offset)", body = ErrorBody),
    )
)]
#[get("/v1/admin/users")]
pub(crate) async fn list_users(
    state: web::Data<AppState>,
    caller: Authenticated,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let from = match (page.after, page.offset) {
        (Some(_), Some(_)) => {
            return Err(DomainError::invalid_field("after", "cannot be combined with offset").into());
        }
        (Some(after), None) => UsersFrom::After(UserId::from_uuid(after)),
        (None, offset) => UsersFrom::Offset(offset.unwrap_or(0)),
    };
    let page = state.services.admin.list_users(&caller.0, page.limit.unwrap_or(50), from).await?;
    Ok(HttpResponse::Ok().json(UsersPage {
        items: page.users.iter().map(UserResponse::from).collect(),
        total: page.total,
        next_after: page.next_after.map(|id| id.as_uuid()),
    }))
}

/// Enable, disable, promote or demote a user. Takes effect on their next request.
#[utoipa::path(
    tag = "admin",
    security(("bearer_jwt" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The updated user", body = UserResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`insufficient_permissions`, `jwt_required`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "`invalid_field`: role, or disabling or demoting yourself", body = ErrorBody),
    )
)]
#[patch("/v1/admin/users/{id}")]
pub(crate) async fn update_user(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<String>,
    body: Json<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::try_parse(&id).map(UserId::from_uuid).map_err(|_| DomainError::NotFound)?;
    let role = body
        .role
        .as_deref()
        .map(str::parse::<Role>)
        .transpose()
        .map_err(|_| DomainError::invalid_field("role", "must be \"USER\" or \"ADMIN\""))?;
    let changes = UserChanges { is_active: body.is_active, role };
    let user = state.services.admin.update_user(&caller.0, id, changes).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(&user)))
}

/// The audit log: security events of every user, newest first, a page at a time.
#[utoipa::path(
    tag = "admin",
    security(("bearer_jwt" = [])),
    params(AuditQueryParams),
    responses(
        (status = 200, description = "A page of events; `next_before` gives the next", body = AuditEventsPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`insufficient_permissions` (not an admin), `jwt_required`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: limit, type, user_id or before", body = ErrorBody),
    )
)]
#[get("/v1/admin/audit-events")]
pub(crate) async fn audit_events(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<AuditQueryParams>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let kind = query
        .kind
        .as_deref()
        .map(str::parse::<AuditKind>)
        .transpose()
        .map_err(|()| DomainError::invalid_field("type", "is not an audit event type"))?;
    let limit = query.limit.unwrap_or(50);
    let filter =
        AuditQuery { user_id: query.user_id.map(UserId::from_uuid), kind, before: query.before, limit };
    let events = state.services.audit.list(&caller.0, filter).await?;
    Ok(HttpResponse::Ok().json(AuditEventsPage::new(events, limit)))
}
