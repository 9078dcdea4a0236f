//! The rules of Portcullis authentication, and nothing else.
//!
//! This crate holds the model (values that cannot be invalid once built), the
//! ports (traits for storage, hashing, tokens, time and randomness) and the
//! services that enforce the HTTP contract's rules on top of them. It must not
//! depend on any I/O library: no actix, diesel, tokio, lettre or reqwest, and on
//! no other Portcullis crate. Embed it with the memory store, or plug in your own
//! adapters by implementing the ports.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod error;
pub mod model;
pub mod ports;
pub mod services;

pub use error::{AuthError, DomainError, FieldError, Forbidden, StoreError};
pub use model::*;
pub use ports::Store;
pub use services::{
    AccountService, Adapters, AdminOutcome, AdminService, ApiKeyService, AuditService, AuthSettings,
    DeliveryReport, IpFamily, LimitService, ListedKey, MAX_AUDIT_PAGE, MFA_MAX_FAILURES, MFA_TOKEN_TTL_SECS,
    MfaService, NewKeyRequest, OAuthLogin, OAuthService, PasswordService, Ports, ProjectService, RateLimits,
    Registration, Resend, Rotation, Services, SessionService, SessionView, SignIn, SigningKeyService,
    TotpSetup, UserChanges, UsersPage, VERIFICATIONS_PER_HOUR, VerificationService,
};
