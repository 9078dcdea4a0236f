use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Email, UserId};

/// A sign-in provider's name, as configured and as stored: `github`,
/// `linkedin`, `google`, or the lowercased `<NAME>` of an
/// `AUTH_OIDC_<NAME>_ISSUER`. The provider set is data: the store keeps the
/// name, and nothing in the domain lists providers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderName(Arc<str>);

impl ProviderName {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 32;

    /// # Errors
    /// A message when the name is not 1 to 32 characters of `a-z`, `0-9`,
    /// `_` and `-`, starting with a letter or digit, or is `password`
    /// (which `providers` on `/me` uses for the password sign-in).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let valid = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
            && raw.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if !valid {
            return Err("must be 1 to 32 characters of a-z, 0-9, _ and -, starting with a letter or digit");
        }
        if raw == "password" {
            return Err("`password` names the password sign-in");
        }
        Ok(Self(raw.into()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ProviderName {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A provider account linked to a Portcullis user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthIdentity {
    pub id: Uuid,
    pub user_id: UserId,
    pub provider: ProviderName,
    /// The provider's stable id for the account (GitHub's numeric id, an OpenID Connect `sub`).
    pub subject: String,
    /// The email the provider reported, and whether it vouched for it.
    pub email: Option<Email>,
    pub email_verified: bool,
    pub created_at: OffsetDateTime,
}

/// What a provider says about the account that just signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderProfile {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// GitHub's `avatar_url`, an OpenID Connect `picture`.
    pub picture: Option<String>,
}

/// A redirect URI given by a client: an absolute http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// # Errors
    /// A message when the text is not an absolute http or https URL with a host.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let uri = raw.trim();
        let rest = uri
            .strip_prefix("https://")
            .or_else(|| uri.strip_prefix("http://"))
            .ok_or("must be an absolute http:// or https:// URL")?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || uri.len() > 2048 || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must be an absolute http:// or https:// URL");
        }
        Ok(Self(uri.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
