//! The sign-in provider registry: each configuration section that can make a
//! provider says how, and [`oauth_providers`] lists the sections. Adding a
//! provider with an API of its own is an adapter in `portcullis-oauth`, its
//! section in `config.rs` with a [`ProviderSection`] impl here, and one entry
//! in [`sections`]; an OpenID Connect provider needs no code at all.

use std::sync::Arc;
use std::time::Duration;

use portcullis_domain::ports::OAuthProvider;
use portcullis_oauth::{GithubProvider, LinkedinProvider, OidcConfig, OidcProvider, ProviderConfig};

use crate::StartError;
use crate::config::{GithubConfig, GoogleConfig, LinkedinConfig, OidcSection, ProvidersConfig, Secret};

/// A configuration section that may turn on one provider.
pub(crate) trait ProviderSection {
    /// The provider, or `None` when the section leaves it off.
    ///
    /// # Errors
    /// A [`StartError::Config`] naming the variable that is wrong.
    fn build(&self, timeout: Duration) -> Result<Option<Arc<dyn OAuthProvider>>, StartError>;
}

/// Every section of the configuration that can turn a provider on.
fn sections(config: &ProvidersConfig) -> Vec<&dyn ProviderSection> {
    let mut sections: Vec<&dyn ProviderSection> = vec![&config.github, &config.linkedin, &config.google];
    sections.extend(config.oidc.iter().map(|section| section as &dyn ProviderSection));
    sections
}

/// The providers that are on, each name once.
///
/// # Errors
/// A section's error, or two providers of one name.
pub(crate) fn oauth_providers(config: &ProvidersConfig) -> Result<Vec<Arc<dyn OAuthProvider>>, StartError> {
    let timeout = Duration::from_secs(config.oauth_timeout_secs);
    let mut providers: Vec<Arc<dyn OAuthProvider>> = Vec::new();
    for section in sections(config) {
        let Some(provider) = section.build(timeout)? else { continue };
        if providers.iter().any(|p| p.name() == provider.name()) {
            let name = provider.name().as_str().to_ascii_uppercase();
            return Err(StartError::config(
                format!("AUTH_OIDC_{name}_ISSUER"),
                format!("a provider named {} is configured twice", provider.name()),
            ));
        }
        providers.push(provider);
    }
    Ok(providers)
}

/// Both the client id and the secret, or neither.
fn credentials(
    id: Option<&String>,
    secret: Option<&Secret>,
    variable: &'static str,
) -> Result<Option<(String, String)>, StartError> {
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.expose().is_empty() => {
            Ok(Some((id.clone(), secret.expose().to_owned())))
        }
        (None, None) => Ok(None),
        _ => Err(StartError::config(variable, "set both the client id and the client secret, or neither")),
    }
}

/// A provider with an OAuth 2.0 API of its own: its credentials, its three
/// endpoints (authorize, token, profile API), and the adapter to make.
fn oauth2<P: OAuthProvider + 'static>(
    (id, secret, variable): (Option<&String>, Option<&Secret>, &'static str),
    [authorize_url, token_url, api_url]: [&String; 3],
    timeout: Duration,
    adapter: fn(ProviderConfig) -> Result<P, String>,
) -> Result<Option<Arc<dyn OAuthProvider>>, StartError> {
    let Some((client_id, client_secret)) = credentials(id, secret, variable)? else {
        return Ok(None);
    };
    let config = ProviderConfig {
        client_id,
        client_secret,
        authorize_url: authorize_url.clone(),
        token_url: token_url.clone(),
        api_url: api_url.clone(),
        timeout,
    };
    Ok(Some(Arc::new(adapter(config).map_err(StartError::Io)?)))
}

impl ProviderSection for GithubConfig {
    fn build(&self, timeout: Duration) -> Result<Option<Arc<dyn OAuthProvider>>, StartError> {
        let credentials = (self.client_id.as_ref(), self.client_secret.as_ref(), "AUTH_GITHUB_CLIENT_SECRET");
        let endpoints = [&self.authorize_url, &self.token_url, &self.api_url];
        oauth2(credentials, endpoints, timeout, GithubProvider::new)
    }
}

impl ProviderSection for LinkedinConfig {
    fn build(&self, timeout: Duration) -> Result<Option<Arc<dyn OAuthProvider>>, StartError> {
        let credentials =
            (self.client_id.as_ref(), self.client_secret.as_ref(), "AUTH_LINKEDIN_CLIENT_SECRET");
        let endpoints = [&self.authorize_url, &self.token_url, &self.userinfo_url];
        oauth2(credentials, endpoints, timeout, LinkedinProvider::new)
    }
}

impl ProviderSection for GoogleConfig {
    fn build(&self, timeout: Duration) -> Result<Option<Arc<dyn OAuthProvider>>, StartError> {
        let Some((client_id, client_secret)) =
            credentials(self.client_id.as_ref(), self.client_secret.as_ref(), "AUTH_GOOGLE_CLIENT_SECRET")?
        else {
            return Ok(None);
        };
        let name =
            portcullis_domain::ProviderName::parse("google").map_err(|why| StartError::Io(why.to_owned()))?;
        oidc(
            OidcConfig {
                name,
                issuer: self.issuer.clone(),
                client_id,
                client_secret,
                scopes: ["openid", "email", "profile"].map(str::to_owned).to_vec(),
                timeout,
            },
            "AUTH_GOOGLE_ISSUER".to_owned(),
        )
    }
}

impl ProviderSection for OidcSection {
    fn build(&self, timeout: Duration) -> Result<Option<Arc<dyn OAuthProvider>>, StartError> {
        let variable = format!("AUTH_OIDC_{}_ISSUER", self.name.as_str().to_ascii_uppercase());
        oidc(
            OidcConfig {
                name: self.name.clone(),
                issuer: self.issuer.clone(),
                client_id: self.client_id.clone(),
                client_secret: self.client_secret.expose().to_owned(),
                scopes: self.scopes.clone(),
                timeout,
            },
            variable,
        )
    }
}

fn oidc(config: OidcConfig, issuer_variable: String) -> Result<Option<Arc<dyn OAuthProvider>>, StartError> {
    let provider = OidcProvider::new(config).map_err(|why| StartError::config(issuer_variable, why))?;
    Ok(Some(Arc::new(provider)))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::oauth_providers;
    use crate::Cli;

    fn providers(args: &[&str], oidc: &[(&str, &str)]) -> Result<Vec<String>, String> {
        crate::install_crypto_provider();
        let mut config =
            Cli::try_parse_from([&["portcullis"], args].concat()).map_err(|e| e.to_string())?.config;
        config
            .read_oidc_providers(oidc.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
            .map_err(|e| e.to_string())?;
        let built = oauth_providers(&config.providers).map_err(|e| e.to_string())?;
        Ok(built.iter().map(|p| p.name().as_str().to_owned()).collect())
    }

    const ACME: [(&str, &str); 3] = [
        ("AUTH_OIDC_ACME_ISSUER", "https://idp.acme.example"),
        ("AUTH_OIDC_ACME_CLIENT_ID", "id"),
        ("AUTH_OIDC_ACME_CLIENT_SECRET", "secret"),
    ];

    #[test]
    fn the_registry_holds_each_configured_provider_once() {
        assert_eq!(providers(&[], &[]).unwrap(), Vec::<String>::new());
        let google = ["--google-client-id", "g", "--google-client-secret", "gs"];
        let github = ["--github-client-id", "h", "--github-client-secret", "hs"];
        assert_eq!(
            providers(&[&github[..], &google[..]].concat(), &ACME).unwrap(),
            ["github", "google", "acme"]
        );

        let twice = [
            ("AUTH_OIDC_GOOGLE_ISSUER", "https://accounts.google.com"),
            ("AUTH_OIDC_GOOGLE_CLIENT_ID", "id"),
            ("AUTH_OIDC_GOOGLE_CLIENT_SECRET", "secret"),
        ];
        let error = providers(&google, &twice).unwrap_err();
        assert!(error.starts_with("AUTH_OIDC_GOOGLE_ISSUER:"), "{error}");
        let error = providers(&["--google-client-id", "g"], &[]).unwrap_err();
        assert!(error.starts_with("AUTH_GOOGLE_CLIENT_SECRET:"), "{error}");
        let plain = [
            ("AUTH_OIDC_ACME_ISSUER", "http://idp.acme.example"),
            ("AUTH_OIDC_ACME_CLIENT_ID", "id"),
            ("AUTH_OIDC_ACME_CLIENT_SECRET", "secret"),
        ];
        let error = providers(&[], &plain).unwrap_err();
        assert!(error.starts_with("AUTH_OIDC_ACME_ISSUER:") && error.contains("https"), "{error}");
    }
}
