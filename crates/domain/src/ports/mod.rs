//! The traits through which the domain reaches the outside world. Each speaks
//! domain types only; adapters live in other crates.

mod api_keys;
mod audit;
mod clock;
mod crypto;
mod health;
mod keys;
mod mfa;
mod oauth;
mod projects;
mod rate;
mod reads;
mod resets;
mod revoked_tokens;
mod sessions;
mod store;
mod users;
mod verifications;

pub use api_keys::ApiKeyRepository;
#[cfg(feature = "mocks")]
pub use api_keys::MockApiKeyRepository;
pub use audit::{AuditLog, AuditObserver, NoObserver, NoRequestContext, RequestContextSource};
#[cfg(feature = "mocks")]
pub use audit::{MockAuditLog, MockAuditObserver};
#[cfg(feature = "mocks")]
pub use clock::MockClock;
pub use clock::{Clock, SystemClock};
#[cfg(feature = "mocks")]
pub use crypto::{MockPasswordBlocklist, MockPasswordHasher, MockSecretGenerator, MockTokenCodec};
pub use crypto::{PasswordBlocklist, PasswordHasher, SecretGenerator, TokenCodec};
#[cfg(feature = "mocks")]
pub use health::MockStoreHealth;
pub use health::{PoolUsage, StoreHealth};
#[cfg(feature = "mocks")]
pub use keys::MockSigningKeyRepository;
pub use keys::SigningKeyRepository;
pub use mfa::{MfaRepository, OneTimeCodes};
#[cfg(feature = "mocks")]
pub use mfa::{MockMfaRepository, MockOneTimeCodes};
pub use oauth::{
    AuthorizationRequest, CodeExchange, OAuthError, OAuthIdentityRepository, OAuthProvider, Signer,
};
#[cfg(feature = "mocks")]
pub use oauth::{MockOAuthIdentityRepository, MockOAuthProvider, MockSigner};
#[cfg(feature = "mocks")]
pub use projects::MockProjectRepository;
pub use projects::ProjectRepository;
#[cfg(feature = "mocks")]
pub use rate::MockRateLimiter;
pub use rate::RateLimiter;
pub use reads::{Change, ChangeFeed, HotReads, NoCopies};
#[cfg(feature = "mocks")]
pub use reads::{MockChangeFeed, MockHotReads};
pub use resets::{MailError, Mailer, Outbox, PasswordResetRepository};
#[cfg(feature = "mocks")]
pub use resets::{MockMailer, MockOutbox, MockPasswordResetRepository};
#[cfg(feature = "mocks")]
pub use revoked_tokens::MockRevokedTokenRepository;
pub use revoked_tokens::RevokedTokenRepository;
#[cfg(feature = "mocks")]
pub use sessions::MockSessionRepository;
pub use sessions::SessionRepository;
pub use store::Store;
#[cfg(feature = "mocks")]
pub use users::MockUserRepository;
pub use users::UserRepository;
#[cfg(feature = "mocks")]
pub use verifications::MockVerificationRepository;
pub use verifications::VerificationRepository;
