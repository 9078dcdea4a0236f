use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Email, UserId};

/// A social login provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OAuthProviderKind {
    Github,
    Linkedin,
}

impl OAuthProviderKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Linkedin => "linkedin",
        }
    }
}

impl fmt::Display for OAuthProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OAuthProviderKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "github" => Ok(Self::Github),
            "linkedin" => Ok(Self::Linkedin),
            _ => Err(()),
        }
    }
}

/// A provider account linked to a Portcullis user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthIdentity {
    pub id: Uuid,
    pub user_id: UserId,
    pub provider: OAuthProviderKind,
    /// The provider's stable id for the account (GitHub's numeric id, LinkedIn's `sub`).
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
    /// GitHub's `avatar_url`, LinkedIn's `picture`.
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
