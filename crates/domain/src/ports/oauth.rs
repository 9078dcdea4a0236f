use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::{NewUser, OAuthIdentity, OAuthProviderKind, ProviderProfile, RedirectUri, User, UserId};

/// Why a code exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The provider refused the code (wrong, used, expired, or for another redirect URI).
    #[error("the provider refused the authorization code")]
    ExchangeFailed,
    /// The provider is down, slow, or answered something we cannot read.
    #[error("provider failure: {0}")]
    Provider(String),
}

/// One configured social login provider.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait OAuthProvider: Send + Sync {
    fn kind(&self) -> OAuthProviderKind;

    /// Whether the provider accepts PKCE (S256) for web applications.
    fn supports_pkce(&self) -> bool;

    /// The URL to send the user's browser to. `pkce_verifier`, when given,
    /// becomes an S256 `code_challenge`.
    fn authorization_url(
        &self,
        redirect_uri: &RedirectUri,
        state: &str,
        pkce_verifier: Option<String>,
    ) -> String;

    /// Exchanges an authorization code and reads the account's profile.
    ///
    /// # Errors
    /// [`OAuthError::ExchangeFailed`] for a code the provider refuses,
    /// [`OAuthError::Provider`] for anything else that goes wrong on its side.
    async fn exchange(
        &self,
        code: &str,
        redirect_uri: &RedirectUri,
        pkce_verifier: Option<String>,
    ) -> Result<ProviderProfile, OAuthError>;
}

/// Where linked provider accounts are kept.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait OAuthIdentityRepository: Send + Sync {
    /// The identity of this provider account, with its user.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_identity(
        &self,
        provider: OAuthProviderKind,
        subject: &str,
    ) -> Result<Option<(OAuthIdentity, User)>, StoreError>;

    /// Links a provider account to an existing user.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the provider account is already linked;
    /// [`StoreError::Unavailable`].
    async fn link_identity(&self, identity: OAuthIdentity) -> Result<OAuthIdentity, StoreError>;

    /// Creates a user and links the provider account to it, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Conflict`]`("email")` when the email is taken, or a
    /// conflict when the provider account is linked meanwhile; [`StoreError::Unavailable`].
    async fn create_user_with_identity(
        &self,
        user: NewUser,
        identity: OAuthIdentity,
    ) -> Result<User, StoreError>;

    /// The user's linked provider accounts, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn list_identities(&self, user: UserId) -> Result<Vec<OAuthIdentity>, StoreError>;

    /// Records that the OAuth `state` with this nonce was used, until
    /// `expires_at` (when it would be refused anyway). `true` the first time;
    /// `false` when it was spent already, by this instance or another one
    /// sharing the store. Of concurrent calls with one nonce, one gets `true`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn spend_state(&self, nonce: &str, expires_at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Forgets spent states that expired before `now`; how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn purge_spent_states(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// Keyed signatures (HMAC-SHA256 under a server secret): what makes an OAuth
/// `state` ours, and derives its PKCE verifier.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait Signer: Send + Sync {
    fn sign(&self, message: &[u8]) -> [u8; 32];
}
