//! The authorization URL and the code exchange, through the `oauth2` crate.

use std::borrow::Cow;

use oauth2::basic::{
    BasicClient, BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use portcullis_domain::ports::{AuthorizationRequest, CodeExchange, OAuthError};
use serde::{Deserialize, Serialize};

use crate::ProviderConfig;

/// A failed HTTP exchange with a provider (never holds a body or token).
#[derive(Debug)]
pub(crate) struct HttpError(String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// The oauth2 crate's HTTP requests, sent with our reqwest client.
async fn send(
    client: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            HttpError(if e.is_timeout() { "timed out".to_owned() } else { "request failed".to_owned() })
        })?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|_| HttpError("response body could not be read".to_owned()))?;
    let mut built = oauth2::http::Response::builder().status(status);
    if let Some(map) = built.headers_mut() {
        *map = headers;
    }
    built.body(body.to_vec()).map_err(|_| HttpError("malformed response".to_owned()))
}

/// The provider's authorization URL: our client id, the scopes, the
/// redirect URI, the state, the PKCE challenge when asked for, and any
/// `extra` parameters (an OpenID Connect `nonce`).
pub(crate) fn authorization_url(
    authorize_url: &str,
    client_id: &str,
    scopes: &[&str],
    request: &AuthorizationRequest,
    extra: &[(&str, &str)],
) -> String {
    let (Ok(auth), Ok(redirect)) =
        (AuthUrl::new(authorize_url.to_owned()), RedirectUrl::new(request.redirect_uri.as_str().to_owned()))
    else {
        // Both were validated when configured; an unusable URL gives an unusable link, not a panic.
        return String::new();
    };
    let client =
        BasicClient::new(ClientId::new(client_id.to_owned())).set_auth_uri(auth).set_redirect_uri(redirect);
    let state = request.state.clone();
    let mut url = client.authorize_url(move || CsrfToken::new(state));
    for scope in scopes {
        url = url.add_scope(Scope::new((*scope).to_owned()));
    }
    if let Some(verifier) = &request.pkce_verifier {
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
        url = url.set_pkce_challenge(challenge);
    }
    for (name, value) in extra {
        url = url.add_extra_param(*name, *value);
    }
    url.url().0.to_string()
}

/// Where and as whom a code is exchanged.
pub(crate) struct TokenEndpoint<'a> {
    pub url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

impl<'a> From<&'a ProviderConfig> for TokenEndpoint<'a> {
    fn from(config: &'a ProviderConfig) -> Self {
        Self { url: &config.token_url, client_id: &config.client_id, client_secret: &config.client_secret }
    }
}

/// What the token endpoint answered: the access token, and the OpenID Connect
/// `id_token` when there is one.
pub(crate) struct Tokens {
    pub access_token: String,
    pub id_token: Option<String>,
}

/// The token response's field beyond OAuth 2.0's: OpenID Connect's `id_token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenClient<HasTokenUrl> = Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenField, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
>;

/// Exchanges the code for the provider's tokens.
pub(crate) async fn access_token(
    endpoint: impl Into<TokenEndpoint<'_>>,
    http: &reqwest::Client,
    exchange: CodeExchange,
) -> Result<Tokens, OAuthError> {
    let endpoint = endpoint.into();
    let token_url = TokenUrl::new(endpoint.url.to_owned())
        .map_err(|_| OAuthError::Provider("bad token URL".to_owned()))?;
    let redirect = RedirectUrl::new(exchange.redirect_uri.as_str().to_owned())
        .map_err(|_| OAuthError::Provider("bad redirect URI".to_owned()))?;
    let client: TokenClient<EndpointSet> = TokenClient::new(ClientId::new(endpoint.client_id.to_owned()))
        .set_client_secret(ClientSecret::new(endpoint.client_secret.to_owned()))
        .set_token_uri(token_url)
        .set_auth_type(AuthType::RequestBody);
    let mut request =
        client.exchange_code(AuthorizationCode::new(exchange.code)).set_redirect_uri(Cow::Owned(redirect));
    if let Some(verifier) = exchange.pkce_verifier {
        request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier));
    }
    // The futures own a clone of the (reference-counted) client: borrowing it
    // makes the exchange future not provably `Send` across lifetimes.
    let http = http.clone();
    let sender = move |request: oauth2::HttpRequest| {
        let http = http.clone();
        async move { send(&http, request).await }
    };
    match request.request_async(&sender).await {
        Ok(token) => Ok(Tokens {
            access_token: token.access_token().secret().clone(),
            id_token: token.extra_fields().id_token.clone(),
        }),
        Err(RequestTokenError::ServerResponse(error)) => Err(classify(error.error())),
        Err(RequestTokenError::Parse(_, body)) => {
            // GitHub answers a bad code with 200 and {"error": "..."}.
            let error = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
            Err(match error {
                Some(code) => classify(&BasicErrorResponseType::Extension(code)),
                None => OAuthError::Provider("unreadable token response".to_owned()),
            })
        }
        Err(RequestTokenError::Request(e)) => Err(OAuthError::Provider(format!("token request: {e}"))),
        Err(RequestTokenError::Other(_)) => Err(OAuthError::Provider("unexpected token response".to_owned())),
    }
}

/// A refused code is the client's problem (400); anything else is the provider's or ours (502).
fn classify(error: &BasicErrorResponseType) -> OAuthError {
    match error {
        BasicErrorResponseType::InvalidGrant | BasicErrorResponseType::InvalidRequest => {
            OAuthError::ExchangeFailed
        }
        BasicErrorResponseType::Extension(code)
            if matches!(
                code.as_str(),
                "bad_verification_code" | "invalid_grant" | "redirect_uri_mismatch" | "invalid_request"
            ) =>
        {
            OAuthError::ExchangeFailed
        }
        other => OAuthError::Provider(format!("token endpoint refused us: {}", other.as_ref())),
    }
}
