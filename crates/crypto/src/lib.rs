//! Cryptography for Portcullis: argon2id password hashing on a bounded pool of
//! its own threads, access tokens (HS256, ES256, EdDSA) with their signing keys
//! sealed under the key-encryption key, and secure randomness.
//!
//! Each type implements a port of `portcullis-domain`. This crate must not
//! depend on HTTP, SQL or any other adapter crate.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod blocklist;
mod hasher;
mod jwt;
mod kek;
mod keypair;
mod memory;
mod pool;
mod provider;
mod secrets;
mod signer;
mod totp;

pub use blocklist::CommonPasswords;
pub use hasher::{Argon2Hasher, HashingConfig};
pub use jwt::{JwtCodec, JwtSecret, MIN_SECRET_LEN};
pub use kek::{KeyEncryptionKey, MIN_KEK_LEN, SealError};
pub use pool::WaitObserver;
pub use provider::install as install_jwt_provider;
pub use secrets::OsSecrets;
pub use signer::HmacSigner;
pub use totp::TotpCodes;
