use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use crate::error::{DomainError, Forbidden, StoreError};
use crate::model::AuditKind;
use crate::model::{
    Email, FullName, NewUser, OAuthIdentity, ProviderName, ProviderProfile, RedirectUri, Role, SignInMethod,
    User, UserId,
};
use crate::ports::{
    AuthorizationRequest, Change, ChangeFeed, Clock, CodeExchange, OAuthError, OAuthIdentityRepository,
    OAuthProvider, SecretGenerator, Signer, UserRepository,
};

use super::audit::Recorder;
use super::mfa::{MfaService, SignIn};
use super::{AuthSettings, Ports, from_ports, opaque_debug};

/// How long a `state` from `/authorize` stays valid.
const STATE_TTL: Duration = Duration::minutes(10);

/// Where to send the user, and what the application keeps (in the user's
/// browser session) and sends back to the callback.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    pub url: String,
    pub state: String,
    /// The PKCE verifier (RFC 7636): random, never derived from the state.
    /// The URL carries its S256 challenge when the provider supports PKCE.
    pub code_verifier: String,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization").field("url", &self.url).finish_non_exhaustive()
    }
}

/// A completed social login.
#[derive(Debug, Clone)]
pub struct OAuthLogin {
    /// A session, or the second step of a sign-in with MFA.
    pub token: SignIn,
    pub user: User,
    pub profile: ProviderProfile,
}

/// Social login: authorization URLs with signed `state` and PKCE, code
/// exchange, and finding, linking or creating the user.
#[derive(Clone)]
pub struct OAuthService {
    users: Arc<dyn UserRepository>,
    identities: Arc<dyn OAuthIdentityRepository>,
    oauth_providers: Arc<[Arc<dyn OAuthProvider>]>,
    signer: Arc<dyn Signer>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    changes: Arc<dyn ChangeFeed>,
    mfa: MfaService,
    audit: Recorder,
    /// Refuse callbacks without a `state`.
    require_state: bool,
}

opaque_debug!(OAuthService);

impl OAuthService {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings, mfa: MfaService) -> Self {
        from_ports!(ports => Self { users, identities; signer, secrets, clock, changes;
            oauth_providers: ports.adapters.oauth_providers.clone().into(),
            mfa: mfa,
            audit: Recorder::new(ports),
            require_state: settings.oauth_require_state,
        })
    }

    /// The providers that are configured.
    #[must_use]
    pub fn configured(&self) -> Vec<ProviderName> {
        self.oauth_providers.iter().map(|p| p.name().clone()).collect()
    }

    /// The provider's authorization URL for `redirect_uri`, with a `state`
    /// signed by us, bound to the provider and the redirect URI, valid for 10
    /// minutes and accepted once, and a random PKCE verifier whose S256
    /// challenge the URL carries where the provider supports PKCE.
    ///
    /// The state also yields the OpenID Connect `nonce` the provider must
    /// return in its `id_token`.
    ///
    /// # Errors
    /// `NotFound` for an unknown or unconfigured provider; 422 for a bad
    /// redirect URI; `ProviderError` when an OpenID Connect provider's
    /// discovery document cannot be read.
    pub async fn authorize(&self, provider: &str, redirect_uri: &str) -> Result<Authorization, DomainError> {
        let provider = self.provider(provider)?;
        let redirect = redirect(redirect_uri)?;
        let random = self.secrets.secret_bytes();
        let nonce = crate::model::base62_text(&random[..16], 22);
        let secret = self.secrets.secret_bytes();
        let sealed = hex(&xor(&secret, &self.pad(&nonce)));
        let expires = (self.clock.now() + STATE_TTL).unix_timestamp();
        let signed = format!("{nonce}.{sealed}");
        let signature = self.state_signature(provider.name(), &redirect, &signed, expires);
        let state = format!("{nonce}.{sealed}.{expires}.{signature}");
        let code_verifier = verifier_text(&secret);
        let request = AuthorizationRequest {
            redirect_uri: redirect,
            pkce_verifier: provider.supports_pkce().then(|| code_verifier.clone()),
            nonce: self.oidc_nonce(&nonce),
            state: state.clone(),
        };
        let url = provider.authorization_url(request).await.map_err(provider_error)?;
        Ok(Authorization { url, state, code_verifier })
    }

    /// Checks the `state` (signed by us, for this provider and redirect URI,
    /// unexpired, never used before) and spends it, then exchanges the code
    /// with `code_verifier` and signs the provider's account in: the same user
    /// as last time; or the user whose email the provider verified (linked);
    /// or a new user without a password. A provider email that is missing or
    /// unverified never links and creates nothing.
    ///
    /// # Errors
    /// Without a `code_verifier`, one derived from the state is used (the way
    /// of earlier versions), unless `oauth_require_state` is set: then both
    /// the state and the verifier are required.
    ///
    /// # Errors
    /// `NotFound` (provider), 422 (code, redirect URI, code_verifier), `InvalidOAuthState`,
    /// `OAuthExchangeFailed`, `ProviderError`, `OAuthEmailUnverified`,
    /// `Forbidden(AccountDisabled)`, `Unavailable`.
    pub async fn callback(
        &self,
        provider: &str,
        code: &str,
        redirect_uri: &str,
        state: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<OAuthLogin, DomainError> {
        let provider = self.provider(provider)?;
        if code.trim().is_empty() || code.len() > 2048 {
            return Err(DomainError::invalid_field(
                "code",
                "must be the authorization code from the provider",
            ));
        }
        let redirect = redirect(redirect_uri)?;
        let sent_verifier = code_verifier.filter(|v| !v.is_empty()).map(pkce_verifier).transpose()?;
        let required = self.require_state;
        let (verifier, nonce) = match (state.filter(|s| !s.is_empty()), sent_verifier) {
            (Some(state), sent) => {
                let checked = self.check_state(provider.name(), &redirect, state)?;
                if sent.is_none() && required {
                    return Err(DomainError::invalid_field(
                        "code_verifier",
                        "is required: send the code_verifier from /authorize",
                    ));
                }
                self.spend(&checked.nonce, checked.expires).await?;
                let verifier = match sent {
                    Some(sent) => sent,
                    // An application of an earlier version, which kept only the state.
                    None => self.recover_verifier(&checked),
                };
                (provider.supports_pkce().then_some(verifier), Some(self.oidc_nonce(&checked.nonce)))
            }
            // An `id_token` is bound to its sign-in by the nonce, which only the state gives.
            (None, _) if required || provider.uses_nonce() => return Err(DomainError::InvalidOAuthState),
            (None, sent) => (sent.filter(|_| provider.supports_pkce()), None),
        };
        let exchange = CodeExchange {
            code: code.trim().to_owned(),
            redirect_uri: redirect,
            pkce_verifier: verifier,
            nonce,
        };
        let profile = provider.exchange(exchange).await.map_err(provider_error)?;
        let kind = provider.name();
        let (user, linked) = self.resolve(kind, &profile).await?;
        if linked {
            let detail = Some(format!("provider={kind}"));
            self.audit.record(AuditKind::OAuthLinked, Some(user.id), detail).await?;
        }
        if !user.is_active {
            self.audit.record_failure(AuditKind::LoginFailed, Some(user.id), "disabled").await;
            return Err(DomainError::Forbidden(Forbidden::AccountDisabled));
        }
        let detail = Some(format!("provider={kind}"));
        let token =
            self.mfa.sign_in(&user, SignInMethod::provider(kind), AuditKind::OAuthLogin, detail).await?;
        Ok(OAuthLogin { token, user, profile })
    }

    /// The user of this identity, and whether it was linked just now.
    async fn resolve(
        &self,
        kind: &ProviderName,
        profile: &ProviderProfile,
    ) -> Result<(User, bool), DomainError> {
        if let Some((_, user)) = self.identities.find_identity(kind.clone(), &profile.subject).await? {
            return Ok((user, false));
        }
        let email = profile
            .email
            .as_deref()
            .filter(|_| profile.email_verified)
            .and_then(|e| Email::parse(e).ok())
            .ok_or(DomainError::OAuthEmailUnverified)?;
        let now = self.clock.now();
        let identity = |user_id: UserId| OAuthIdentity {
            id: Uuid::now_v7(),
            user_id,
            provider: kind.clone(),
            subject: profile.subject.clone(),
            email: Some(email.clone()),
            email_verified: true,
            created_at: now,
        };
        // Twice at most: a concurrent first login may create the user or link
        // the identity between our read and our write.
        for _ in 0..2 {
            if let Some(user) = self.users.find_by_email(&email).await? {
                if user.email_verified {
                    let written = self.identities.link_identity(identity(user.id)).await;
                    self.changes.changed(Change::User(user.id));
                    match written {
                        Ok(_) => return Ok((user, true)),
                        Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    // Whoever registered the address never proved they own it; the
                    // provider says this person does: the account is theirs now.
                    let claimed = self.identities.claim_account(user.id, identity(user.id), now).await;
                    self.changes.changed(Change::User(user.id));
                    match claimed {
                        Ok(Some(user)) => {
                            let detail = Some(format!("provider={kind}"));
                            self.audit.record(AuditKind::AccountClaimed, Some(user.id), detail).await?;
                            return Ok((user, true));
                        }
                        // Verified meanwhile (linked as any verified account next
                        // round), or linked by a concurrent login (found below).
                        Ok(None) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            } else {
                let new = NewUser {
                    id: UserId::new(),
                    email: email.clone(),
                    full_name: profile.name.as_deref().and_then(|n| FullName::parse(n).ok().flatten()),
                    password_hash: None,
                    role: Role::User,
                    email_verified: true,
                    created_at: now,
                };
                match self.identities.create_user_with_identity(new.clone(), identity(new.id)).await {
                    Ok(user) => return Ok((user, true)),
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some((_, user)) = self.identities.find_identity(kind.clone(), &profile.subject).await? {
                return Ok((user, false));
            }
        }
        Err(DomainError::Unavailable("could not settle a concurrent first login".to_owned()))
    }

    fn provider(&self, name: &str) -> Result<Arc<dyn OAuthProvider>, DomainError> {
        self.oauth_providers.iter().find(|p| p.name().as_str() == name).cloned().ok_or(DomainError::NotFound)
    }

    /// The OpenID Connect `nonce` of a sign-in: derived from its state's
    /// unique nonce under the server key, so the callback can recompute it
    /// from the state alone, and nobody else can.
    fn oidc_nonce(&self, state_nonce: &str) -> String {
        crate::model::base62_text(&self.signer.sign(format!("oidc-nonce\n{state_nonce}").as_bytes()), 43)
    }

    fn state_signature(
        &self,
        kind: &ProviderName,
        redirect: &RedirectUri,
        signed: &str,
        expires: i64,
    ) -> String {
        let message = format!("oauth-state\n{kind}\n{}\n{signed}\n{expires}", redirect.as_str());
        crate::model::base62_text(&self.signer.sign(message.as_bytes()), 43)
    }

    /// Checks a `state`: ours (signed for this provider and redirect URI)
    /// and unexpired. Accepts the form of earlier versions too
    /// (`nonce.expires.signature`, without the sealed verifier) while such
    /// states can still be in flight.
    fn check_state(
        &self,
        kind: &ProviderName,
        redirect: &RedirectUri,
        state: &str,
    ) -> Result<CheckedState, DomainError> {
        let parts: Vec<&str> = state.split('.').collect();
        let (nonce, sealed, expires, signature) = match parts.as_slice() {
            [nonce, sealed, expires, signature] => (*nonce, Some(*sealed), *expires, *signature),
            [nonce, expires, signature] => (*nonce, None, *expires, *signature),
            _ => return Err(DomainError::InvalidOAuthState),
        };
        let expires: i64 = expires.parse().map_err(|_| DomainError::InvalidOAuthState)?;
        let signed = sealed.map_or_else(|| nonce.to_owned(), |sealed| format!("{nonce}.{sealed}"));
        let expected = self.state_signature(kind, redirect, &signed, expires);
        if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(DomainError::InvalidOAuthState);
        }
        if expires < self.clock.now().unix_timestamp() {
            return Err(DomainError::InvalidOAuthState);
        }
        let sealed = match sealed {
            Some(sealed) => Some(unhex(sealed).ok_or(DomainError::InvalidOAuthState)?),
            None => None,
        };
        Ok(CheckedState { nonce: nonce.to_owned(), sealed, expires })
    }

    /// The keystream that seals a state's verifier: HMAC of its unique nonce
    /// under the server key, so only we can open it, and the state's
    /// signature covers the sealed bytes.
    fn pad(&self, nonce: &str) -> [u8; 32] {
        self.signer.sign(format!("oauth-pkce-seal\n{nonce}").as_bytes())
    }

    /// The verifier of a callback that sent none: the one sealed in the state,
    /// or, for a state of an earlier version, the one derived from its nonce.
    fn recover_verifier(&self, state: &CheckedState) -> String {
        match &state.sealed {
            Some(sealed) => verifier_text(&xor(sealed, &self.pad(&state.nonce))),
            None => {
                let message = format!("oauth-pkce\n{}", state.nonce);
                crate::model::base62_text(&self.signer.sign(message.as_bytes()), 43)
            }
        }
    }

    /// Records the state as used; refuses it when it was used before.
    async fn spend(&self, nonce: &str, expires: i64) -> Result<(), DomainError> {
        let expires_at = time::OffsetDateTime::from_unix_timestamp(expires)
            .unwrap_or_else(|_| self.clock.now() + STATE_TTL);
        if self.identities.spend_state(nonce, expires_at).await? {
            Ok(())
        } else {
            Err(DomainError::InvalidOAuthState)
        }
    }

    /// Forgets spent states that have expired anyway.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn purge_spent_states(&self) -> Result<u64, DomainError> {
        Ok(self.identities.purge_spent_states(self.clock.now()).await?)
    }
}

fn provider_error(error: OAuthError) -> DomainError {
    match error {
        OAuthError::ExchangeFailed => DomainError::OAuthExchangeFailed,
        OAuthError::Provider(why) => DomainError::ProviderError(why),
    }
}

fn redirect(raw: &str) -> Result<RedirectUri, DomainError> {
    RedirectUri::parse(raw).map_err(|why| DomainError::invalid_field("redirect_uri", why))
}

/// A state that passed [`OAuthService::check_state`].
struct CheckedState {
    nonce: String,
    /// The verifier's random bytes, sealed (absent in states of earlier versions).
    sealed: Option<Vec<u8>>,
    expires: i64,
}

/// The verifier text of 32 random bytes: 43 base62 characters (RFC 7636 allows 43 to 128).
fn verifier_text(bytes: &[u8]) -> String {
    crate::model::base62_text(bytes, 43)
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

/// A PKCE `code_verifier` as RFC 7636 (4.1) allows: 43 to 128 unreserved characters.
fn pkce_verifier(raw: &str) -> Result<String, DomainError> {
    let valid = (43..=128).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(DomainError::invalid_field("code_verifier", "must be the code_verifier from /authorize"))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
