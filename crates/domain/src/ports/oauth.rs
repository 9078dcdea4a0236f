use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::{NewUser, OAuthIdentity, ProviderName, ProviderProfile, RedirectUri, User, UserId};

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

/// What a provider needs to build the URL the user's browser is sent to.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub redirect_uri: RedirectUri,
    /// Our signed `state`, returned by the provider to the callback.
    pub state: String,
    /// When given, the URL carries its S256 `code_challenge` (RFC 7636).
    pub pkce_verifier: Option<String>,
    /// Bound to the state: an OpenID Connect provider puts it in the
    /// authorization URL and must return it inside the `id_token`.
    pub nonce: String,
}

impl std::fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// An authorization code to exchange, with what binds it to its sign-in.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeExchange {
    pub code: String,
    pub redirect_uri: RedirectUri,
    pub pkce_verifier: Option<String>,
    /// The nonce of the sign-in's state; `None` when the callback carried no
    /// state (then a provider that [uses a nonce](OAuthProvider::uses_nonce)
    /// is never asked).
    pub nonce: Option<String>,
}

impl std::fmt::Debug for CodeExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeExchange").field("redirect_uri", &self.redirect_uri).finish_non_exhaustive()
    }
}

/// One configured sign-in provider: GitHub, LinkedIn, or any OpenID Connect
/// provider. The set is whatever the configuration builds; the domain finds a
/// provider by its [name](OAuthProvider::name).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait OAuthProvider: Send + Sync {
    /// The name in the callback path and in the store.
    fn name(&self) -> &ProviderName;

    /// Whether the provider accepts PKCE (S256) for web applications.
    fn supports_pkce(&self) -> bool;

    /// Whether the provider's answer carries the nonce of the authorization
    /// request (an OpenID Connect `id_token`): then a callback must carry the
    /// state, the nonce's source, or nothing binds the answer to the sign-in.
    fn uses_nonce(&self) -> bool {
        false
    }

    /// The URL to send the user's browser to.
    ///
    /// # Errors
    /// [`OAuthError::Provider`] when the provider must be asked first (an
    /// OpenID Connect discovery document) and cannot be.
    async fn authorization_url(&self, request: AuthorizationRequest) -> Result<String, OAuthError>;

    /// Exchanges an authorization code and reads the account's profile.
    ///
    /// # Errors
    /// [`OAuthError::ExchangeFailed`] for a code the provider refuses or an
    /// answer that is not for this sign-in (an `id_token` for another client,
    /// from another issuer, expired, with another nonce, or not signed by the
    /// provider's keys); [`OAuthError::Provider`] for anything else that goes
    /// wrong on its side.
    async fn exchange(&self, exchange: CodeExchange) -> Result<ProviderProfile, OAuthError>;
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
        provider: ProviderName,
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

    /// Claims an account whose address was never verified for the owner of
    /// `identity`, whose provider verified that address: in one
    /// transaction, only while the user's email is still unverified, removes
    /// the password, marks the email verified, moves the session version on
    /// (every access token is refused), ends every session (their refresh
    /// tokens with them), revokes every API key, voids outstanding reset and
    /// verification links, removes any second factor (TOTP, recovery codes,
    /// pending sign-ins; `mfa_enabled` off), and links the identity. `None` when the user
    /// verified meanwhile (or is gone), and nothing changed.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the provider account was linked
    /// meanwhile (nothing changed); [`StoreError::Unavailable`].
    async fn claim_account(
        &self,
        user: UserId,
        identity: OAuthIdentity,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

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
