use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use portcullis_domain::{DomainError, OAuthLogin, SignIn};

use super::no_store;
use crate::body::Json;
use crate::dto::{
    AuthorizeQuery, AuthorizeResponse, CallbackRequest, GithubCallbackResponse, GithubLoginResponse,
    GithubUser, MfaRequiredResponse, ProviderCallbackResponse, ProviderLoginResponse, ProviderUser,
};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The provider's authorization URL, a signed `state` and a PKCE `code_verifier`.
#[utoipa::path(
    tag = "oauth",
    params(("provider" = String, Path, description = "`github`, `linkedin`, `google` or the name of a configured OpenID Connect provider"), AuthorizeQuery),
    responses(
        (status = 200, description = "Send the browser to `authorization_url`", body = AuthorizeResponse),
        (status = 404, description = "Unknown or unconfigured provider", body = ErrorBody),
        (status = 422, description = "`invalid_field`: redirect_uri missing or not an absolute http(s) URL", body = ErrorBody),
        (status = 502, description = "`provider_error`: an OpenID Connect provider's discovery document could not be read", body = ErrorBody),
    )
)]
#[get("/v1/auth/{provider}/authorize")]
pub(crate) async fn authorize(
    state: web::Data<AppState>,
    provider: web::Path<String>,
    query: web::Query<AuthorizeQuery>,
) -> Result<HttpResponse, ApiError> {
    let redirect_uri = query.redirect_uri.as_deref().unwrap_or("");
    let authorization = state.services.oauth.authorize(&provider, redirect_uri).await?;
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
        (status = 200, description = "Signed in; or, for an account with a second factor, `mfa_required` and an `mfa_token`", body = GithubCallbackResponse),
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
    let body = match login.token {
        SignIn::Session(token) => {
            GithubCallbackResponse::Session(GithubLoginResponse { token: token.into(), user })
        }
        SignIn::MfaRequired { mfa_token, expires_in } => {
            GithubCallbackResponse::Mfa(MfaRequiredResponse::new(&mfa_token, expires_in))
        }
    };
    Ok(no_store(StatusCode::OK, &body))
}

/// Sign in with a LinkedIn authorization code.
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "oauth",
    request_body = CallbackRequest,
    responses(
        (status = 200, description = "Signed in; or `mfa_required` and an `mfa_token`", body = ProviderCallbackResponse),
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
    provider_login(&state, "linkedin", body.into_inner()).await
}

/// Sign in with an authorization code of any configured provider: `google`
/// or an OpenID Connect provider added by configuration (`linkedin` too).
/// The `state` from `/authorize` is required for OpenID Connect providers:
/// the `id_token`'s `nonce` is checked against it.
#[utoipa::path(
    extensions(("x-rate-limit-family" = json!("login"))),
    tag = "oauth",
    params(("provider" = String, Path, description = "`google` or the name of a configured OpenID Connect provider")),
    request_body = CallbackRequest,
    responses(
        (status = 200, description = "Signed in; or `mfa_required` and an `mfa_token`", body = ProviderCallbackResponse),
        (status = 400, description = "`oauth_exchange_failed` (a refused code, or an `id_token` with a bad signature, another issuer or audience, expired, or another nonce), `invalid_oauth_state`", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 404, description = "No provider of this name is configured", body = ErrorBody),
        (status = 409, description = "`oauth_email_unverified`: the provider confirmed no email; nothing was created", body = ErrorBody),
        (status = 422, description = "`invalid_field`: code or redirect_uri", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider is down, slow or answered something unreadable", body = ErrorBody),
    )
)]
#[post("/v1/auth/{provider}/callback")]
pub(crate) async fn provider_callback(
    state: web::Data<AppState>,
    provider: web::Path<String>,
    body: Json<CallbackRequest>,
) -> Result<HttpResponse, ApiError> {
    provider_login(&state, &provider, body.into_inner()).await
}

/// Signs in and answers with the OpenID Connect naming (`picture`).
async fn provider_login(
    state: &AppState,
    provider: &str,
    body: CallbackRequest,
) -> Result<HttpResponse, ApiError> {
    let login = callback(state, provider, body).await?;
    let user = ProviderUser {
        id: login.user.id.as_uuid(),
        email: login.user.email.as_str().to_owned(),
        name: login.user.full_name.as_ref().map(|n| n.as_str().to_owned()).or(login.profile.name),
        picture: login.profile.picture,
    };
    let body = match login.token {
        SignIn::Session(token) => {
            ProviderCallbackResponse::Session(ProviderLoginResponse { token: token.into(), user })
        }
        SignIn::MfaRequired { mfa_token, expires_in } => {
            ProviderCallbackResponse::Mfa(MfaRequiredResponse::new(&mfa_token, expires_in))
        }
    };
    Ok(no_store(StatusCode::OK, &body))
}
