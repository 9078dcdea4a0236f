use async_trait::async_trait;
use portcullis_domain::ports::{AuthorizationRequest, CodeExchange, OAuthError, OAuthProvider};
use portcullis_domain::{ProviderName, ProviderProfile};

use crate::{ProviderConfig, exchange, http_client};

/// LinkedIn through OpenID Connect: the `userinfo` endpoint.
#[derive(Debug)]
pub struct LinkedinProvider {
    name: ProviderName,
    config: ProviderConfig,
    http: reqwest::Client,
}

impl LinkedinProvider {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        let name = ProviderName::parse("linkedin").map_err(str::to_owned)?;
        Ok(Self { name, http: http_client(config.timeout)?, config })
    }
}

#[async_trait]
impl OAuthProvider for LinkedinProvider {
    fn name(&self) -> &ProviderName {
        &self.name
    }

    /// LinkedIn offers PKCE to native apps only, not to web applications.
    fn supports_pkce(&self) -> bool {
        false
    }

    async fn authorization_url(&self, request: AuthorizationRequest) -> Result<String, OAuthError> {
        Ok(exchange::authorization_url(
            &self.config.authorize_url,
            &self.config.client_id,
            &["openid", "profile", "email"],
            &request,
            &[],
        ))
    }

    async fn exchange(&self, exchange: CodeExchange) -> Result<ProviderProfile, OAuthError> {
        let token = exchange::access_token(&self.config, &self.http, exchange).await?.access_token;
        let info = crate::userinfo(&self.http, &self.config.api_url, &token).await?;
        if info.sub.is_empty() {
            return Err(OAuthError::Provider("userinfo without a subject".to_owned()));
        }
        Ok(ProviderProfile {
            subject: info.sub,
            email: info.email,
            email_verified: info.email_verified,
            name: info.name,
            picture: info.picture,
        })
    }
}
