use async_trait::async_trait;
use uuid::Uuid;

use crate::error::DomainError;
use crate::model::{AccessToken, Claims, GeneratedKey, KeyStatus, Password, PasswordHash, SigningAlgorithm};

/// Slow, salted password hashing.
///
/// Implementations must keep the work off the async workers and bound how much
/// of it may wait, so a login storm cannot exhaust memory or stall other requests.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a new password.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when the hashing capacity is exhausted.
    async fn hash(&self, password: Password) -> Result<PasswordHash, DomainError>;

    /// Whether `password` matches `hash`. A hash that cannot be parsed never matches.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when the hashing capacity is exhausted.
    async fn verify(&self, password: Password, hash: PasswordHash) -> Result<bool, DomainError>;

    /// Whether `hash` was made with weaker (or other) parameters than the ones
    /// configured now, so it should be replaced at the next successful login.
    fn needs_rehash(&self, hash: &PasswordHash) -> bool;

    /// Spends the time of one verification without a real hash, so that an
    /// unknown email takes as long to refuse as a wrong password.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when the hashing capacity is exhausted.
    async fn verify_dummy(&self, password: Password) -> Result<(), DomainError>;
}

/// Signs and verifies access tokens, and holds the signing keys.
///
/// `decode` checks the signature against the key the header's `kid` names
/// (with that key's algorithm, never the header's alone), the issuer, the
/// audience and the presence and types of every claim. It does not judge
/// expiry: the domain does that against its [`Clock`](super::Clock), so that
/// time is one thing.
///
/// With an asymmetric algorithm, the keys come from the store through
/// [`install_keys`](Self::install_keys); `encode` signs with the key that was
/// current at the claims' `iat`.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait TokenCodec: Send + Sync {
    /// Signs the claims.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] if the signing key cannot be used.
    fn encode(&self, claims: &Claims) -> Result<AccessToken, DomainError>;

    /// Verifies a token and returns its claims.
    ///
    /// # Errors
    /// [`DomainError::Unauthenticated`] with `InvalidToken` for anything that is
    /// not a token we signed with the configured algorithm and issuer.
    fn decode(&self, token: &str) -> Result<Claims, DomainError>;

    /// The algorithm new tokens are signed with.
    fn algorithm(&self) -> SigningAlgorithm;

    /// A new key pair for `algorithm` (an asymmetric one), its private half
    /// sealed under the key-encryption key.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when no key-encryption key is configured
    /// or the key cannot be made.
    fn generate_key(&self, algorithm: SigningAlgorithm) -> Result<GeneratedKey, DomainError>;

    /// Replaces the stored keys it signs and verifies with: every published
    /// key verifies; the ones that may sign are unsealed.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when a key that may sign cannot be
    /// unsealed (another key-encryption key sealed it): nothing is replaced.
    fn install_keys(&self, keys: &[KeyStatus]) -> Result<(), DomainError>;
}

/// Unpredictable values (token ids, secrets) and their one-way digests.
/// Injected so tests can replay them.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// A random (v4) UUID, e.g. a token's `jti`.
    fn token_id(&self) -> Uuid;

    /// 256 bits from a cryptographically secure generator.
    fn secret_bytes(&self) -> [u8; 32];

    /// SHA-256 of a secret: what is stored and looked up instead of it. A
    /// fast hash suffices because the secrets are 256-bit random values, not
    /// passwords: there is nothing to guess.
    fn digest(&self, secret: &[u8]) -> [u8; 32];
}

/// Knows the passwords attackers try first.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait PasswordBlocklist: Send + Sync {
    /// Whether `password` is one of the most common passwords (ignoring case
    /// and trailing punctuation, so `Password123!` counts as `password123`).
    fn is_common(&self, password: &str) -> bool;
}
