use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use crate::error::{DomainError, Forbidden, StoreError};
use crate::model::{
    Email, FullName, IssuedToken, NewUser, OAuthIdentity, OAuthProviderKind, ProviderProfile, RedirectUri,
    Role, User, UserId,
};
use crate::ports::{OAuthError, OAuthProvider};

use super::{AuthSettings, Ports, audit, tokens};
use crate::model::AuditKind;

/// How long a `state` from `/authorize` stays valid.
const STATE_TTL: Duration = Duration::minutes(10);

/// Where to send the user, and the `state` to expect back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub url: String,
    pub state: String,
}

/// A completed social login.
#[derive(Debug, Clone)]
pub struct OAuthLogin {
    pub token: IssuedToken,
    pub user: User,
    pub profile: ProviderProfile,
}

/// Social login: authorization URLs with signed `state` and PKCE, code
/// exchange, and finding, linking or creating the user.
#[derive(Clone)]
pub struct OAuthService {
    ports: Arc<Ports>,
    settings: Arc<AuthSettings>,
}

impl std::fmt::Debug for OAuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthService").finish_non_exhaustive()
    }
}

impl OAuthService {
    pub(super) fn new(ports: Arc<Ports>, settings: Arc<AuthSettings>) -> Self {
        Self { ports, settings }
    }

    /// The providers that are configured.
    #[must_use]
    pub fn configured(&self) -> Vec<OAuthProviderKind> {
        self.ports.oauth_providers.iter().map(|p| p.kind()).collect()
    }

    /// The provider's authorization URL for `redirect_uri`, with a `state`
    /// signed by us, bound to the provider and the redirect URI, valid for 10
    /// minutes, and, where the provider supports it, a PKCE challenge whose
    /// verifier only we can recompute from the state.
    ///
    /// # Errors
    /// `NotFound` for an unknown or unconfigured provider; 422 for a bad redirect URI.
    pub fn authorize(&self, provider: &str, redirect_uri: &str) -> Result<Authorization, DomainError> {
        let provider = self.provider(provider)?;
        let redirect = redirect(redirect_uri)?;
        let random = self.ports.secrets.secret_bytes();
        let nonce = crate::model::base62_text(&random[..16], 22);
        let expires = (self.ports.clock.now() + STATE_TTL).unix_timestamp();
        let signature = self.state_signature(provider.kind(), &redirect, &nonce, expires);
        let state = format!("{nonce}.{expires}.{signature}");
        let verifier = self.verifier(provider.as_ref(), &nonce);
        Ok(Authorization { url: provider.authorization_url(&redirect, &state, verifier), state })
    }

    /// Exchanges the code and signs the provider's account in: the same user
    /// as last time; or the user whose email the provider verified (linked);
    /// or a new user without a password. A provider email that is missing or
    /// unverified never links and creates nothing.
    ///
    /// # Errors
    /// `NotFound` (provider), 422 (code, redirect URI), `InvalidOAuthState`,
    /// `OAuthExchangeFailed`, `ProviderError`, `OAuthEmailUnverified`,
    /// `Forbidden(AccountDisabled)`, `Unavailable`.
    pub async fn callback(
        &self,
        provider: &str,
        code: &str,
        redirect_uri: &str,
        state: Option<&str>,
    ) -> Result<OAuthLogin, DomainError> {
        let provider = self.provider(provider)?;
        if code.trim().is_empty() || code.len() > 2048 {
            return Err(DomainError::invalid_field(
                "code",
                "must be the authorization code from the provider",
            ));
        }
        let redirect = redirect(redirect_uri)?;
        let verifier = match state.filter(|s| !s.is_empty()) {
            Some(state) => {
                let nonce = self.check_state(provider.kind(), &redirect, state)?;
                self.verifier(provider.as_ref(), &nonce)
            }
            None if self.settings.oauth_require_state => return Err(DomainError::InvalidOAuthState),
            None => None,
        };
        let profile = provider.exchange(code.trim(), &redirect, verifier).await.map_err(|e| match e {
            OAuthError::ExchangeFailed => DomainError::OAuthExchangeFailed,
            OAuthError::Provider(why) => DomainError::ProviderError(why),
        })?;
        let kind = provider.kind();
        let (user, linked) = self.resolve(kind, &profile).await?;
        if linked {
            let detail = Some(format!("provider={kind}"));
            audit::record(&self.ports, AuditKind::OAuthLinked, Some(user.id), detail).await?;
        }
        if !user.is_active {
            audit::record_failure(&self.ports, AuditKind::LoginFailed, Some(user.id), "disabled").await;
            return Err(DomainError::Forbidden(Forbidden::AccountDisabled));
        }
        let token = tokens::issue(&self.ports, &self.settings, &user)?;
        audit::record(&self.ports, AuditKind::OAuthLogin, Some(user.id), Some(format!("provider={kind}")))
            .await?;
        Ok(OAuthLogin { token, user, profile })
    }

    /// The user of this identity, and whether it was linked just now.
    async fn resolve(
        &self,
        kind: OAuthProviderKind,
        profile: &ProviderProfile,
    ) -> Result<(User, bool), DomainError> {
        if let Some((_, user)) = self.ports.identities.find_identity(kind, &profile.subject).await? {
            return Ok((user, false));
        }
        let email = profile
            .email
            .as_deref()
            .filter(|_| profile.email_verified)
            .and_then(|e| Email::parse(e).ok())
            .ok_or(DomainError::OAuthEmailUnverified)?;
        let now = self.ports.clock.now();
        let identity = |user_id: UserId| OAuthIdentity {
            id: Uuid::now_v7(),
            user_id,
            provider: kind,
            subject: profile.subject.clone(),
            email: Some(email.clone()),
            email_verified: true,
            created_at: now,
        };
        // Twice at most: a concurrent first login may create the user or link
        // the identity between our read and our write.
        for _ in 0..2 {
            if let Some(user) = self.ports.users.find_by_email(&email).await? {
                match self.ports.identities.link_identity(identity(user.id)).await {
                    Ok(_) => return Ok((user, true)),
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            } else {
                let new = NewUser {
                    id: UserId::new(),
                    email: email.clone(),
                    full_name: profile.name.as_deref().and_then(|n| FullName::parse(n).ok().flatten()),
                    password_hash: None,
                    role: Role::User,
                    created_at: now,
                };
                match self.ports.identities.create_user_with_identity(new.clone(), identity(new.id)).await {
                    Ok(user) => return Ok((user, true)),
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some((_, user)) = self.ports.identities.find_identity(kind, &profile.subject).await? {
                return Ok((user, false));
            }
        }
        Err(DomainError::Unavailable("could not settle a concurrent first login".to_owned()))
    }

    fn provider(&self, name: &str) -> Result<Arc<dyn OAuthProvider>, DomainError> {
        let kind = name.parse::<OAuthProviderKind>().map_err(|()| DomainError::NotFound)?;
        self.ports.oauth_providers.iter().find(|p| p.kind() == kind).cloned().ok_or(DomainError::NotFound)
    }

    fn state_signature(
        &self,
        kind: OAuthProviderKind,
        redirect: &RedirectUri,
        nonce: &str,
        expires: i64,
    ) -> String {
        let message = format!("oauth-state\n{kind}\n{}\n{nonce}\n{expires}", redirect.as_str());
        crate::model::base62_text(&self.ports.signer.sign(message.as_bytes()), 43)
    }

    /// Checks a `state` and returns its nonce.
    fn check_state(
        &self,
        kind: OAuthProviderKind,
        redirect: &RedirectUri,
        state: &str,
    ) -> Result<String, DomainError> {
        let mut parts = state.split('.');
        let (Some(nonce), Some(expires), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DomainError::InvalidOAuthState);
        };
        let expires: i64 = expires.parse().map_err(|_| DomainError::InvalidOAuthState)?;
        let expected = self.state_signature(kind, redirect, nonce, expires);
        if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(DomainError::InvalidOAuthState);
        }
        if expires < self.ports.clock.now().unix_timestamp() {
            return Err(DomainError::InvalidOAuthState);
        }
        Ok(nonce.to_owned())
    }

    /// The PKCE verifier of a state's nonce: 43 base62 characters only we can derive.
    fn verifier(&self, provider: &dyn OAuthProvider, nonce: &str) -> Option<String> {
        let message = format!("oauth-pkce\n{nonce}");
        provider
            .supports_pkce()
            .then(|| crate::model::base62_text(&self.ports.signer.sign(message.as_bytes()), 43))
    }
}

fn redirect(raw: &str) -> Result<RedirectUri, DomainError> {
    RedirectUri::parse(raw).map_err(|why| DomainError::invalid_field("redirect_uri", why))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
