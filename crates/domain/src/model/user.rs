use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Email, PasswordHash};

/// A user's id. A UUIDv7, so new rows land at the end of the primary-key index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

uuid_id!(UserId);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a user may do. Serialised as the contract spells it: `USER`, `ADMIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Admin => "ADMIN",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role string was neither `USER` nor `ADMIN`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "USER" => Ok(Self::User),
            "ADMIN" => Ok(Self::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// A display name: trimmed, at most 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

/// Why a string is not a [`FullName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FullNameError {
    #[error("full_name must be at most 200 characters")]
    TooLong,
    #[error("full_name must not contain control characters")]
    ControlCharacter,
}

impl FullName {
    pub const MAX_LEN: usize = 200;

    /// An empty or blank name is no name at all (`Ok(None)`).
    ///
    /// # Errors
    /// [`FullNameError`] for an overlong name or one with control characters.
    pub fn parse(raw: &str) -> Result<Option<Self>, FullNameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Ok(None);
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(FullNameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(FullNameError::ControlCharacter);
        }
        Ok(Some(Self(name.to_owned())))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a user can sign in; listed as `providers` in the user's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Password,
}

impl Provider {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
        }
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub full_name: Option<FullName>,
    /// `None` for users who have never set a password (e.g. created through OAuth).
    pub password_hash: Option<PasswordHash>,
    pub role: Role,
    pub is_active: bool,
    /// Whether the user proved they own `email`: a verification link, a
    /// password reset, or a provider that verified the address.
    pub email_verified: bool,
    /// Whether sign-ins need a second factor (a confirmed TOTP factor).
    pub mfa_enabled: bool,
    /// Bumped whenever every existing token of the user must stop working
    /// (password change or reset, disabling). A token carries the version it was
    /// issued under and is refused once they differ. A counter rather than a
    /// timestamp: it needs no clock agreement between instances and cannot be
    /// fooled by two events in the same second.
    pub session_version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl User {
    #[must_use]
    pub fn providers(&self) -> Vec<Provider> {
        let mut providers = Vec::new();
        if self.password_hash.is_some() {
            providers.push(Provider::Password);
        }
        providers
    }
}

/// A user about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub full_name: Option<FullName>,
    pub password_hash: Option<PasswordHash>,
    pub role: Role,
    /// `true` when the address is already proven (a provider verified it, or
    /// the operator created the account).
    pub email_verified: bool,
    pub created_at: OffsetDateTime,
}

impl NewUser {
    /// The stored form of a new user: active, session version 0.
    #[must_use]
    pub fn into_user(self) -> User {
        User {
            id: self.id,
            email: self.email,
            full_name: self.full_name,
            password_hash: self.password_hash,
            role: self.role,
            is_active: true,
            email_verified: self.email_verified,
            mfa_enabled: false,
            session_version: 0,
            created_at: self.created_at,
            updated_at: self.created_at,
        }
    }
}

/// Where a page of users (oldest first: by creation, then id) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersFrom {
    /// After skipping this many users: the database walks every skipped row,
    /// so deep pages get slower; kept for clients that page by offset.
    Offset(u64),
    /// Just after this user (the last one of the previous page): a keyset
    /// that an index serves as fast at the millionth user as at the first.
    After(UserId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_name_is_trimmed_and_blank_is_none() {
        assert_eq!(FullName::parse("  John Doe ").unwrap().unwrap().as_str(), "John Doe");
        assert_eq!(FullName::parse("   ").unwrap(), None);
        assert_eq!(FullName::parse("a\u{7}b"), Err(FullNameError::ControlCharacter));
        assert_eq!(FullName::parse(&"x".repeat(201)), Err(FullNameError::TooLong));
    }

    #[test]
    fn role_round_trips_through_its_string() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("admin".parse::<Role>().is_err());
    }
}
