use serde::{Deserialize, Serialize};

use super::{ApiKey, ApiKeyId, Claims, ProviderName, User};

/// A JWT's user and token state, read in one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLookup {
    pub user: User,
    /// The token's `jti` is revoked.
    pub revoked: bool,
    /// The token's session (when it names one) is ended or gone.
    pub session_ended: bool,
    /// The providers linked to the user.
    pub linked: Vec<ProviderName>,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Jwt,
    ApiKey,
}

/// Which data a caller sees: `live` for JWTs and `sk_live_` keys, `test` for `sk_test_` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    /// The start of this environment's API keys.
    #[must_use]
    pub const fn key_prefix(self) -> &'static str {
        match self {
            Self::Live => "sk_live_",
            Self::Test => "sk_test_",
        }
    }

    /// The environment whose prefix `key` starts with.
    #[must_use]
    pub fn of_key(key: &str) -> Option<Self> {
        [Self::Live, Self::Test].into_iter().find(|env| key.starts_with(env.key_prefix()))
    }
}

impl std::str::FromStr for Environment {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "live" => Ok(Self::Live),
            "test" => Ok(Self::Test),
            _ => Err(()),
        }
    }
}

/// Who is calling, how they authenticated, and in which environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: User,
    pub method: AuthMethod,
    pub environment: Environment,
    /// The verified claims, when the caller used a JWT.
    pub claims: Option<Claims>,
    /// The key, when the caller used an API key.
    pub api_key: Option<ApiKeyId>,
    /// The social providers linked to the user, when authentication read them.
    pub linked: Option<Vec<ProviderName>>,
}

impl Principal {
    #[must_use]
    pub fn from_jwt(user: User, claims: Claims) -> Self {
        Self {
            user,
            method: AuthMethod::Jwt,
            environment: Environment::Live,
            claims: Some(claims),
            api_key: None,
            linked: None,
        }
    }

    #[must_use]
    pub fn from_api_key(user: User, key: &ApiKey) -> Self {
        Self {
            user,
            method: AuthMethod::ApiKey,
            environment: key.environment,
            claims: None,
            api_key: Some(key.id),
            linked: None,
        }
    }
}
