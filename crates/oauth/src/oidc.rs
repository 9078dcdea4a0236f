//! Any OpenID Connect provider, from its issuer URL alone: the discovery
//! document gives the endpoints, the provider's JWKS the keys its `id_token`s
//! are signed with. Google is one of these.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_domain::ports::{AuthorizationRequest, CodeExchange, OAuthError, OAuthProvider};
use portcullis_domain::{ProviderName, ProviderProfile};
use serde::Deserialize;

use crate::exchange::{self, TokenEndpoint};
use crate::{flexible_bool, http_client};

/// How long a discovery document or key set is used before it is read again.
const REFRESH_AFTER: Duration = Duration::from_secs(3600);
/// The clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;
/// The signatures an `id_token` may carry: asymmetric only, never `none` or
/// an HMAC (whose key would be our client secret).
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// One OpenID Connect provider's settings.
#[derive(Clone)]
pub struct OidcConfig {
    /// The name in `/v1/auth/{name}/...` and in the store.
    pub name: ProviderName,
    /// The issuer URL: `https://accounts.google.com`. Its discovery document is
    /// `<issuer>/.well-known/openid-configuration`, and its `issuer` must be this.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Requested scopes; `openid` is always among them.
    pub scopes: Vec<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The part of the discovery document (OpenID Connect Discovery 1.0, 3) we use.
#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
}

/// What was read from the provider, and when.
struct Fetched<T> {
    value: Arc<T>,
    at: Instant,
}

/// The claims of an `id_token` we read; `iss`, `aud` and `exp` are checked by
/// the validation itself.
#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    azp: Option<String>,
    #[serde(default)]
    aud: Audience,
    email: Option<String>,
    #[serde(default, deserialize_with = "flexible_bool")]
    email_verified: bool,
    name: Option<String>,
    picture: Option<String>,
}

/// How many audiences the token names (the validation checked we are one).
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Audience {
    #[default]
    None,
    Many(Vec<serde::de::IgnoredAny>),
    One(serde::de::IgnoredAny),
}

impl Audience {
    fn count(&self) -> usize {
        match self {
            Self::None => 0,
            Self::One(_) => 1,
            Self::Many(all) => all.len(),
        }
    }
}

/// A generic OpenID Connect provider.
pub struct OidcProvider {
    config: OidcConfig,
    http: reqwest::Client,
    discovery: Mutex<Option<Fetched<Discovery>>>,
    keys: Mutex<Option<Fetched<JwkSet>>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// Nothing is fetched here: the provider may be down when Portcullis
    /// starts; the discovery document is read at the first sign-in.
    ///
    /// # Errors
    /// When the issuer is not an https URL (http is allowed on loopback
    /// addresses only, for tests) or the HTTP client cannot be built.
    pub fn new(mut config: OidcConfig) -> Result<Self, String> {
        check_url(&config.issuer).map_err(|why| format!("the issuer {why}"))?;
        config.issuer = config.issuer.trim_end_matches('/').to_owned();
        if !config.scopes.iter().any(|s| s == "openid") {
            config.scopes.insert(0, "openid".to_owned());
        }
        crate::install_jwt_backend();
        Ok(Self {
            http: http_client(config.timeout)?,
            config,
            discovery: Mutex::new(None),
            keys: Mutex::new(None),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str, what: &str) -> Result<T, OAuthError> {
        let response = self.http.get(url).header("Accept", "application/json").send().await.map_err(|e| {
            OAuthError::Provider(if e.is_timeout() {
                format!("{what} timed out")
            } else {
                format!("{what} failed")
            })
        })?;
        if !response.status().is_success() {
            return Err(OAuthError::Provider(format!("{what} answered {}", response.status().as_u16())));
        }
        response.json().await.map_err(|_| OAuthError::Provider(format!("unreadable {what}")))
    }

    /// The discovery document, read at most once an hour (again at once after a failure).
    async fn discovery(&self) -> Result<Arc<Discovery>, OAuthError> {
        if let Some(cached) = fresh(&self.discovery) {
            return Ok(cached);
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
        let document: Discovery = self.get_json(&url, "discovery document").await?;
        // OpenID Connect Discovery 1.0, 4.3: the issuer must be the one we asked.
        if document.issuer.trim_end_matches('/') != self.config.issuer {
            return Err(OAuthError::Provider("the discovery document names another issuer".to_owned()));
        }
        for (endpoint, url) in [
            ("authorization_endpoint", Some(&document.authorization_endpoint)),
            ("token_endpoint", Some(&document.token_endpoint)),
            ("jwks_uri", Some(&document.jwks_uri)),
            ("userinfo_endpoint", document.userinfo_endpoint.as_ref()),
        ] {
            if let Some(url) = url {
                check_url(url).map_err(|why| OAuthError::Provider(format!("discovery: {endpoint} {why}")))?;
            }
        }
        let document = Arc::new(document);
        store(&self.discovery, &document);
        Ok(document)
    }

    /// The provider's keys; `refetch` reads them again whatever the cache holds.
    async fn keys(&self, jwks_uri: &str, refetch: bool) -> Result<Arc<JwkSet>, OAuthError> {
        if !refetch && let Some(cached) = fresh(&self.keys) {
            return Ok(cached);
        }
        let set: JwkSet = self.get_json(jwks_uri, "key set").await?;
        let set = Arc::new(set);
        store(&self.keys, &set);
        Ok(set)
    }

    /// Checks the `id_token` (signature by one of the provider's keys, `iss`,
    /// `aud`, `azp`, `exp`, `nonce`) and returns its claims.
    async fn verify(
        &self,
        discovery: &Discovery,
        id_token: &str,
        nonce: &str,
    ) -> Result<IdClaims, OAuthError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|_| OAuthError::Provider("unreadable id_token".to_owned()))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(refused(&self.config.name, "id_token signed with an algorithm we do not accept"));
        }
        let mut key = find_key(
            self.keys(&discovery.jwks_uri, false).await?.as_ref(),
            header.kid.as_deref(),
            header.alg,
        );
        if key.is_none() {
            // The provider may have rotated its keys since we read them: once more, then refuse.
            key = find_key(
                self.keys(&discovery.jwks_uri, true).await?.as_ref(),
                header.kid.as_deref(),
                header.alg,
            );
        }
        let Some(key) = key else {
            return Err(refused(&self.config.name, "id_token signed by a key the provider does not publish"));
        };
        let key = DecodingKey::from_jwk(&key)
            .map_err(|_| OAuthError::Provider("unusable key in the provider's key set".to_owned()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer, &format!("{}/", self.config.issuer)]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    OAuthError::Provider("unreadable id_token".to_owned())
                }
                ErrorKind::InvalidSignature => {
                    refused(&self.config.name, "id_token signature does not verify")
                }
                ErrorKind::ExpiredSignature => refused(&self.config.name, "id_token expired"),
                ErrorKind::InvalidIssuer => refused(&self.config.name, "id_token from another issuer"),
                ErrorKind::InvalidAudience => refused(&self.config.name, "id_token for another client"),
                _ => refused(&self.config.name, "id_token refused"),
            })?
            .claims;
        // OpenID Connect Core 3.1.3.7: with several audiences, we must be the authorized party.
        if (claims.aud.count() > 1 || claims.azp.is_some())
            && claims.azp.as_deref() != Some(self.config.client_id.as_str())
        {
            return Err(refused(&self.config.name, "id_token for another authorized party"));
        }
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(refused(&self.config.name, "id_token nonce does not match the sign-in"));
        }
        if claims.sub.is_empty() {
            return Err(OAuthError::Provider("id_token without a subject".to_owned()));
        }
        Ok(claims)
    }
}

/// A refusal of an answer that is not for this sign-in; the reason goes to
/// the log (never the token), the client gets `oauth_exchange_failed`.
fn refused(provider: &ProviderName, why: &str) -> OAuthError {
    tracing::warn!(%provider, reason = why, "OpenID Connect sign-in refused");
    OAuthError::ExchangeFailed
}

/// The key that signed a token: by `kid`, or the one signing key of the
/// token's type when the token names none. A key that says it is for
/// encryption, or for another algorithm, never verifies a signature.
fn find_key(set: &JwkSet, kid: Option<&str>, algorithm: Algorithm) -> Option<Jwk> {
    let usable = |key: &&Jwk| {
        !matches!(key.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_)))
            && key.common.key_algorithm.is_none_or(|a| a.to_string() == format!("{algorithm:?}"))
            && DecodingKey::from_jwk(key).is_ok_and(|k| k.family() == algorithm.family())
    };
    match kid {
        Some(kid) => {
            set.keys.iter().filter(usable).find(|key| key.common.key_id.as_deref() == Some(kid)).cloned()
        }
        None => {
            let mut candidates = set.keys.iter().filter(usable);
            match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only.clone()),
                _ => None,
            }
        }
    }
}

fn fresh<T>(slot: &Mutex<Option<Fetched<T>>>) -> Option<Arc<T>> {
    let guard = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.as_ref().filter(|f| f.at.elapsed() < REFRESH_AFTER).map(|f| Arc::clone(&f.value))
}

fn store<T>(slot: &Mutex<Option<Fetched<T>>>, value: &Arc<T>) {
    let mut guard = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *guard = Some(Fetched { value: Arc::clone(value), at: Instant::now() });
}

/// An https URL, or http to a loopback host (a provider on the same machine,
/// as in tests); `Err` says what is wrong.
fn check_url(url: &str) -> Result<(), &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a URL")?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("has no host"),
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must be an https URL (http only to a loopback address)"),
    }
}

#[async_trait]
impl OAuthProvider for OidcProvider {
    fn name(&self) -> &ProviderName {
        &self.config.name
    }

    /// OpenID Connect providers accept PKCE, or ignore the parameters (RFC 6749, 3.1).
    fn supports_pkce(&self) -> bool {
        true
    }

    fn uses_nonce(&self) -> bool {
        true
    }

    async fn authorization_url(&self, request: AuthorizationRequest) -> Result<String, OAuthError> {
        let discovery = self.discovery().await?;
        let scopes: Vec<&str> = self.config.scopes.iter().map(String::as_str).collect();
        let nonce = request.nonce.clone();
        Ok(exchange::authorization_url(
            &discovery.authorization_endpoint,
            &self.config.client_id,
            &scopes,
            &request,
            &[("nonce", &nonce)],
        ))
    }

    async fn exchange(&self, exchange: CodeExchange) -> Result<ProviderProfile, OAuthError> {
        let Some(nonce) = exchange.nonce.clone() else {
            return Err(refused(&self.config.name, "callback without the state its nonce comes from"));
        };
        let discovery = self.discovery().await?;
        let endpoint = TokenEndpoint {
            url: &discovery.token_endpoint,
            client_id: &self.config.client_id,
            client_secret: &self.config.client_secret,
        };
        let tokens = exchange::access_token(endpoint, &self.http, exchange).await?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| OAuthError::Provider("token response without an id_token".to_owned()))?;
        let claims = self.verify(&discovery, &id_token, &nonce).await?;
        let mut profile = ProviderProfile {
            subject: claims.sub,
            email: claims.email,
            email_verified: claims.email_verified,
            name: claims.name,
            picture: claims.picture,
        };
        // Providers that keep the id_token small put the email in userinfo only.
        if profile.email.is_none()
            && let Some(userinfo) = &discovery.userinfo_endpoint
        {
            let info = crate::userinfo(&self.http, userinfo, &tokens.access_token).await?;
            // OpenID Connect Core 5.3.2: a userinfo of another subject must not be used.
            if info.sub != profile.subject {
                return Err(OAuthError::Provider("userinfo for another subject".to_owned()));
            }
            profile.email = info.email;
            profile.email_verified = info.email_verified;
            profile.name = profile.name.or(info.name);
            profile.picture = profile.picture.or(info.picture);
        }
        Ok(profile)
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn issuers_and_endpoints_are_https_or_loopback() {
        assert!(check_url("https://accounts.google.com").is_ok());
        assert!(check_url("http://127.0.0.1:8080/realms/x").is_ok());
        assert!(check_url("http://[::1]:8080").is_ok());
        assert!(check_url("http://localhost:9000").is_ok());
        assert!(check_url("http://accounts.example.com").is_err());
        assert!(check_url("ftp://127.0.0.1").is_err());
        assert!(check_url("not a url").is_err());
    }
}
