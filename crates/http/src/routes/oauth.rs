use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use portcullis_domain::{DomainError, OAuthLogin};

use super::no_store;
use crate::body::Json;
use crate::dto::{
    AuthorizeQuery, AuthorizeResponse, CallbackRequest, GithubLoginResponse, GithubUser,
    LinkedinLoginResponse, LinkedinUser, TokenResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The provider's authorization URL, a signed `state` and a PKCE `code_verifier`.
#[utoipa::path(
    tag = "oauth",
    params(("provider" = String, Path, description = "`github` or `linkedin`"), AuthorizeQuery),
    responses(
        (status = 200, description = "Send the browser to `authorization_url`", body = AuthorizeResponse),
        (status = 404, description = "Unknown or unconfigured provider", body = ErrorBody),
        (status = 422, description = "`invalid_field`: redirect_uri missing or not an absolute http(s) URL", body = ErrorBody),
    )
)]
#[get("/v1/auth/{provider}/authorize")]
pub(crate) async fn authorize(
    state: web::Data<AppState>,
    provider: web::Path<String>,
    query: web::Query<AuthorizeQuery>,
) -> Result<HttpResponse, ApiError> {
    let redirect_uri = query.redirect_uri.as_deref().unwrap_or("");
    let authorization = state.services.oauth.authorize(&provider, redirect_uri)?;
    Ok(no_store(
        StatusCode::OK,
        &AuthorizeResponse {
            authorization_url: authorization.url,
            state: authorization.state,
            code_verifier: authorization.code_verifier,
        },
    ))
}

async fn callback(
    state: &AppState,
    provider: &str,
    body: CallbackRequest,
) -> Result<OAuthLogin, DomainError> {
    let oauth = &state.services.oauth;
    oauth
        .callback(
            provider,
            &body.code,
            &body.redirect_uri,
            body.state.as_deref(),
            body.code_verifier.as_deref(),
        )
        .await
}

/// Sign in with a GitHub authorization code.
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "oauth",
    request_body = CallbackRequest,
    responses(
        (status = 200, description = "Signed in", body = GithubLoginResponse),
        (status = 400, description = "`oauth_exchange_failed`, `invalid_oauth_state`", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 404, description = "GitHub login is not configured", body = ErrorBody),
        (status = 409, description = "`oauth_email_unverified`: GitHub confirmed no email; nothing was created", body = ErrorBody),
        (status = 422, description = "`invalid_field`: code or redirect_uri", body = ErrorBody),
        (status = 502, description = "`provider_error`", body = ErrorBody),
    )
)]
#[post("/v1/auth/github/callback")]
pub(crate) async fn github_callback(
    state: web::Data<AppState>,
    body: Json<CallbackRequest>,
) -> Result<HttpResponse, ApiError> {
    let login = callback(&state, "github", body.into_inner()).await?;
    let user = GithubUser {
        id: login.user.id.as_uuid(),
        email: login.user.email.as_str().to_owned(),
        name: login.user.full_name.as_ref().map(|n| n.as_str().to_owned()).or(login.profile.name),
        avatar_url: login.profile.picture,
    };
    Ok(no_store(StatusCode::OK, &GithubLoginResponse { token: TokenResponse::from(login.token), user }))
}

/// Sign in with a LinkedIn authorization code.
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "oauth",
    request_body = CallbackRequest,
    responses(
        (status = 200, description = "Signed in", body = LinkedinLoginResponse),
        (status = 400, description = "`oauth_exchange_failed`, `invalid_oauth_state`", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 404, description = "LinkedIn login is not configured", body = ErrorBody),
        (status = 409, description = "`oauth_email_unverified`: LinkedIn confirmed no email; nothing was created", body = ErrorBody),
        (status = 422, description = "`invalid_field`: code or redirect_uri", body = ErrorBody),
        (status = 502, description = "`provider_error`", body = ErrorBody),
    )
)]
#[post("/v1/auth/linkedin/callback")]
pub(crate) async fn linkedin_callback(
    state: web::Data<AppState>,
    body: Json<CallbackRequest>,
) -> Result<HttpResponse, ApiError> {
    let login = callback(&state, "linkedin", body.into_inner()).await?;
    let user = LinkedinUser {
        id: login.user.id.as_uuid(),
        email: login.user.email.as_str().to_owned(),
        name: login.user.full_name.as_ref().map(|n| n.as_str().to_owned()).or(login.profile.name),
        picture: login.profile.picture,
    };
    Ok(no_store(StatusCode::OK, &LinkedinLoginResponse { token: TokenResponse::from(login.token), user }))
}
