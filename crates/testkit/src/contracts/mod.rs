//! The storage contract: what every store adapter must do, case by case.
//!
//! Cases panic (they are test code) with a message naming the broken promise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod api_keys;
mod audit;
mod health;
mod identities;
mod limiter;
mod mfa;
mod resets;
mod revoked_tokens;
mod sessions;
mod signing_keys;
mod users;
mod verifications;

pub use api_keys::*;
pub use audit::*;
pub use health::*;
pub use identities::*;
pub use limiter::*;
pub use mfa::*;
pub use resets::*;
pub use revoked_tokens::*;
pub use sessions::*;
pub use signing_keys::*;
pub use users::*;
pub use verifications::*;

/// Everything a storage adapter implements: the domain's [`Store`](portcullis_domain::Store).
pub use portcullis_domain::Store as ContractStore;
