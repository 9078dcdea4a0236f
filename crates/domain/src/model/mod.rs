//! Values that cannot be invalid once constructed.

mod email;
mod password;
mod principal;
mod token;
mod user;

pub use email::{Email, EmailError};
pub use password::{Password, PasswordHash, PasswordPolicy, PasswordRule};
pub use principal::{AuthMethod, Environment, Principal};
pub use token::{AccessToken, Claims, IssuedToken};
pub use user::{FullName, FullNameError, NewUser, Provider, Role, UnknownRole, User, UserId};
