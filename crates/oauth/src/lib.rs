//! GitHub, LinkedIn and OpenID Connect login for Portcullis.
//!
//! Each adapter implements the domain's `OAuthProvider` port: the authorization
//! URL and the code exchange go through the `oauth2` crate, the profile calls
//! through reqwest (rustls, no redirects followed, a timeout on everything).
//! The OpenID Connect adapter reads the provider's discovery document and
//! verifies `id_token`s against its published keys (jsonwebtoken, with the
//! `ring`-backed algorithms of `portcullis-crypto`).
//! Every URL is configurable, so tests point them at a fake provider on
//! 127.0.0.1. This crate never logs or returns a provider token, code or
//! client secret.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod exchange;
mod github;
mod linkedin;
mod oidc;

use std::time::Duration;

pub use github::GithubProvider;
pub use linkedin::LinkedinProvider;
pub use oidc::{OidcConfig, OidcProvider};

/// The process's `jsonwebtoken` backend (idempotent).
fn install_jwt_backend() {
    portcullis_crypto::install_jwt_provider();
}

/// What every provider needs: the app's credentials, its endpoints, a timeout.
#[derive(Clone)]
pub struct ProviderConfig {
    pub client_id: String,
    pub client_secret: String,
    pub authorize_url: String,
    pub token_url: String,
    /// GitHub: the API base (`https://api.github.com`); LinkedIn: the userinfo URL.
    pub api_url: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// An OpenID Connect userinfo answer (Core 5.3.2): LinkedIn's profile, and
/// an OIDC provider's when its `id_token` carries no email.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct UserInfo {
    pub sub: String,
    pub email: Option<String>,
    #[serde(default, deserialize_with = "flexible_bool")]
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
}

/// `true`, or the string `"true"` some providers send.
pub(crate) fn flexible_bool<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    use serde::Deserialize as _;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Either>::deserialize(deserializer)? {
        Some(Either::Bool(b)) => b,
        Some(Either::Text(text)) => text.eq_ignore_ascii_case("true"),
        None => false,
    })
}

/// Reads the userinfo endpoint with the provider's access token.
async fn userinfo(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> Result<UserInfo, portcullis_domain::ports::OAuthError> {
    use portcullis_domain::ports::OAuthError;
    let response = http.get(url).bearer_auth(token).send().await.map_err(|e| {
        OAuthError::Provider(if e.is_timeout() {
            "userinfo timed out".to_owned()
        } else {
            "userinfo failed".to_owned()
        })
    })?;
    if !response.status().is_success() {
        return Err(OAuthError::Provider(format!("userinfo answered {}", response.status().as_u16())));
    }
    response.json().await.map_err(|_| OAuthError::Provider("unreadable userinfo".to_owned()))
}

/// An HTTP client for provider calls: rustls, no redirects, a timeout.
fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
