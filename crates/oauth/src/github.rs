use async_trait::async_trait;
use portcullis_domain::ports::{AuthorizationRequest, CodeExchange, OAuthError, OAuthProvider};
use portcullis_domain::{ProviderName, ProviderProfile};
use serde::Deserialize;

use crate::{ProviderConfig, exchange, http_client};

/// GitHub: `/user` for the profile, `/user/emails` for a verified address.
#[derive(Debug)]
pub struct GithubProvider {
    name: ProviderName,
    config: ProviderConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
    email: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

impl GithubProvider {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        let name = ProviderName::parse("github").map_err(str::to_owned)?;
        Ok(Self { name, http: http_client(config.timeout)?, config })
    }

    async fn get(&self, path: &str, token: &str) -> Result<reqwest::Response, OAuthError> {
        let url = format!("{}{path}", self.config.api_url.trim_end_matches('/'));
        self.http
            .get(url)
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .send()
            .await
            .map_err(|e| {
                OAuthError::Provider(if e.is_timeout() {
                    format!("{path} timed out")
                } else {
                    format!("{path} failed")
                })
            })
    }

    /// The address to trust: `/user`'s if GitHub lists it as verified, else
    /// the primary verified one, else none.
    async fn verified_email(
        &self,
        token: &str,
        public: Option<&str>,
    ) -> Result<(Option<String>, bool), OAuthError> {
        let response = self.get("/user/emails", token).await?;
        if matches!(response.status().as_u16(), 401 | 403 | 404) {
            // The `user:email` scope was not granted: nothing is verified.
            return Ok((public.map(str::to_owned), false));
        }
        if !response.status().is_success() {
            return Err(OAuthError::Provider(format!(
                "/user/emails answered {}",
                response.status().as_u16()
            )));
        }
        let emails: Vec<GithubEmail> =
            response.json().await.map_err(|_| OAuthError::Provider("unreadable /user/emails".to_owned()))?;
        let verified =
            |wanted: &str| emails.iter().any(|e| e.verified && e.email.eq_ignore_ascii_case(wanted));
        if let Some(public) = public.filter(|p| verified(p)) {
            return Ok((Some(public.to_owned()), true));
        }
        if let Some(primary) = emails.iter().find(|e| e.primary && e.verified) {
            return Ok((Some(primary.email.clone()), true));
        }
        Ok((public.map(str::to_owned), false))
    }
}

#[async_trait]
impl OAuthProvider for GithubProvider {
    fn name(&self) -> &ProviderName {
        &self.name
    }

    fn supports_pkce(&self) -> bool {
        true
    }

    async fn authorization_url(&self, request: AuthorizationRequest) -> Result<String, OAuthError> {
        Ok(exchange::authorization_url(
            &self.config.authorize_url,
            &self.config.client_id,
            &["user:email"],
            &request,
            &[],
        ))
    }

    async fn exchange(&self, exchange: CodeExchange) -> Result<ProviderProfile, OAuthError> {
        let token = exchange::access_token(&self.config, &self.http, exchange).await?.access_token;
        let response = self.get("/user", &token).await?;
        if !response.status().is_success() {
            return Err(OAuthError::Provider(format!("/user answered {}", response.status().as_u16())));
        }
        let user: GithubUser =
            response.json().await.map_err(|_| OAuthError::Provider("unreadable /user".to_owned()))?;
        let (email, email_verified) = self.verified_email(&token, user.email.as_deref()).await?;
        Ok(ProviderProfile {
            subject: user.id.to_string(),
            email,
            email_verified,
            name: user.name.or(Some(user.login)),
            picture: user.avatar_url,
        })
    }
}
