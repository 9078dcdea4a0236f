//! The storage contract: what every store adapter must do, case by case.
//!
//! Cases panic (they are test code) with a message naming the broken promise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod health;
mod revoked_tokens;
mod users;

pub use health::*;
pub use revoked_tokens::*;
pub use users::*;

use portcullis_domain::ports::{RevokedTokenRepository, StoreHealth, UserRepository};

/// Everything a storage adapter implements.
pub trait ContractStore: UserRepository + RevokedTokenRepository + StoreHealth {}

impl<T: UserRepository + RevokedTokenRepository + StoreHealth + ?Sized> ContractStore for T {}
