use serde::{Deserialize, Serialize};

use super::{Claims, User};

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

/// Who is calling, how they authenticated, and in which environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: User,
    pub method: AuthMethod,
    pub environment: Environment,
    /// The verified claims, when the caller used a JWT.
    pub claims: Option<Claims>,
}

impl Principal {
    #[must_use]
    pub fn from_jwt(user: User, claims: Claims) -> Self {
        Self { user, method: AuthMethod::Jwt, environment: Environment::Live, claims: Some(claims) }
    }
}
