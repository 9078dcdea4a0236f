//! Values that cannot be invalid once constructed.

mod api_key;
mod email;
mod password;
mod principal;
mod project;
mod reset;
mod token;
mod user;

pub use api_key::{
    ApiKey, ApiKeyId, ApiKeySecret, InvalidApiKeyId, KeyDigest, KeyUsage, MalformedApiKey, ResourceName,
    ResourceNameError,
};
pub use email::{Email, EmailError};
pub use password::{Password, PasswordHash, PasswordPolicy, PasswordRule};
pub use principal::{AuthMethod, Environment, Principal};
pub use project::Project;
pub use reset::{
    DeliveryStatus, MailMessage, MalformedResetToken, OutboxMessage, PasswordReset, ResetTokenSecret,
};
pub use token::{AccessToken, Claims, IssuedToken};
pub use user::{FullName, FullNameError, NewUser, Provider, Role, UnknownRole, User, UserId};
