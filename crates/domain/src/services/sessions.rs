use std::sync::Arc;

use uuid::Uuid;

use crate::error::{AuthError, DomainError, Forbidden};
use crate::model::{AuditKind, Claims, Email, IssuedToken, Password, Principal, SessionLookup, User, UserId};

use super::{AuthSettings, LimitService, Ports, audit, tokens};

/// Sessions: login, token authentication, refresh and logout.
#[derive(Debug, Clone)]
pub struct SessionService {
    ports: Arc<Ports>,
    settings: Arc<AuthSettings>,
    limits: LimitService,
}

impl SessionService {
    pub(super) fn new(ports: Arc<Ports>, settings: Arc<AuthSettings>, limits: LimitService) -> Self {
        Self { ports, settings, limits }
    }

    /// Exchanges an email and password for a token.
    ///
    /// An unknown email, a user without a password and a wrong password all cost
    /// one argon2 verification and give the same `InvalidCredentials`, so neither
    /// the answer nor its timing tells which emails are registered. A disabled
    /// account is only revealed to someone who knows its password.
    ///
    /// After 5 failures within 15 minutes (by default) the account answers
    /// `RateLimited` to every attempt, right password or not, known email or
    /// not, until the window passes: the lockout reveals nothing.
    ///
    /// # Errors
    /// `InvalidCredentials`; `Forbidden(AccountDisabled)`; `RateLimited`; `Unavailable`.
    pub async fn login(&self, username: &str, password: Password) -> Result<IssuedToken, DomainError> {
        let email = Email::parse(username).ok();
        // The account is the normalised email whatever its spelling; a string
        // that is no email still gets a budget of its own.
        let account =
            email.as_ref().map_or_else(|| username.trim().to_lowercase(), |e| e.as_str().to_owned());
        let remaining = match self.limits.reserve_login(&account).await {
            Ok(remaining) => remaining,
            Err(refused @ DomainError::RateLimited(_)) => {
                let user = match &email {
                    Some(email) => self.ports.users.find_by_email(email).await.ok().flatten().map(|u| u.id),
                    None => None,
                };
                audit::record_failure(&self.ports, AuditKind::LoginFailed, user, "locked").await;
                return Err(refused);
            }
            Err(other) => return Err(other),
        };
        let (outcome, user) = self.verify_login(email, password).await;
        match &outcome {
            Ok(_) => {
                self.limits.release_login(&account).await?;
                audit::record(&self.ports, AuditKind::LoginSucceeded, user, None).await?;
            }
            Err(LoginFailure::Refused(_, reason)) => {
                audit::record_failure(&self.ports, AuditKind::LoginFailed, user, reason).await;
                if remaining == Some(0) {
                    audit::record_failure(&self.ports, AuditKind::AccountLocked, user, "failed_logins").await;
                }
            }
            Err(LoginFailure::Fault(_)) => {}
        }
        outcome.map_err(|failure| match failure {
            LoginFailure::Refused(error, _) | LoginFailure::Fault(error) => error,
        })
    }

    /// The login's outcome, and the user it concerned when there was one.
    async fn verify_login(
        &self,
        email: Option<Email>,
        password: Password,
    ) -> (Result<IssuedToken, LoginFailure>, Option<UserId>) {
        let user = match email {
            Some(email) => match self.ports.users.find_by_email(&email).await {
                Ok(user) => user,
                Err(e) => return (Err(LoginFailure::Fault(e.into())), None),
            },
            None => None,
        };
        let id = user.as_ref().map(|u| u.id);
        (self.check_password(user, password).await, id)
    }

    async fn check_password(
        &self,
        user: Option<User>,
        password: Password,
    ) -> Result<IssuedToken, LoginFailure> {
        let invalid = |reason| {
            LoginFailure::Refused(DomainError::Unauthenticated(AuthError::InvalidCredentials), reason)
        };
        let Some(user) = user else {
            self.ports.hasher.verify_dummy(password).await?;
            return Err(invalid("unknown_email"));
        };
        let Some(hash) = user.password_hash.clone() else {
            self.ports.hasher.verify_dummy(password).await?;
            return Err(invalid("no_password"));
        };
        if !self.ports.hasher.verify(password.clone(), hash.clone()).await? {
            return Err(invalid("bad_password"));
        }
        if !user.is_active {
            return Err(LoginFailure::Refused(
                DomainError::Forbidden(Forbidden::AccountDisabled),
                "disabled",
            ));
        }
        if self.ports.hasher.needs_rehash(&hash) {
            // Upgrading is best effort: a full hashing queue or a lost race
            // leaves the old hash for the next login.
            if let Ok(stronger) = self.ports.hasher.hash(password).await {
                self.ports.users.rehash_password(user.id, &hash, stronger).await?;
            }
        }
        Ok(tokens::issue(&self.ports, &self.settings, &user)?)
    }

    /// Verifies a bearer JWT and resolves its user.
    ///
    /// Refused when the signature, algorithm, issuer or any claim is wrong; when
    /// it expired (with the configured leeway) or claims to be issued in the
    /// future; when its `jti` was revoked; when the user's session version moved
    /// on (password change); when the user is disabled or gone.
    ///
    /// # Errors
    /// `Unauthenticated` with the precise reason; `Unavailable`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, DomainError> {
        let claims = self.ports.tokens.decode(token)?;
        self.check_times(&claims)?;
        let session = self.ports.users.find_session(UserId::from_uuid(claims.sub), claims.jti).await?;
        let Some(SessionLookup { user, revoked, linked }) = session else {
            return Err(DomainError::Unauthenticated(AuthError::AccountDisabled));
        };
        if revoked {
            return Err(DomainError::Unauthenticated(AuthError::TokenRevoked));
        }
        let user = Self::current(user, &claims)?;
        Ok(Principal { linked: Some(linked), ..Principal::from_jwt(user, claims) })
    }

    /// Rotates a token: revokes the presented one and issues a new one. Of
    /// several concurrent refreshes of one token exactly one succeeds.
    ///
    /// # Errors
    /// As [`authenticate`](Self::authenticate); `TokenRevoked` when the token was
    /// already refreshed or logged out.
    pub async fn refresh(&self, token: &str) -> Result<IssuedToken, DomainError> {
        let principal = self.authenticate(token).await?;
        let claims =
            principal.claims.as_ref().ok_or(DomainError::Unauthenticated(AuthError::InvalidToken))?;
        if !self.revoke(claims, principal.user.id).await? {
            return Err(DomainError::Unauthenticated(AuthError::TokenRevoked));
        }
        let token = tokens::issue(&self.ports, &self.settings, &principal.user)?;
        audit::record(&self.ports, AuditKind::TokenRefreshed, Some(principal.user.id), None).await?;
        Ok(token)
    }

    /// Revokes the presented token until it expires.
    ///
    /// # Errors
    /// As [`authenticate`](Self::authenticate).
    pub async fn logout(&self, token: &str) -> Result<(), DomainError> {
        let principal = self.authenticate(token).await?;
        if let Some(claims) = &principal.claims {
            self.revoke(claims, principal.user.id).await?;
        }
        audit::record(&self.ports, AuditKind::Logout, Some(principal.user.id), None).await
    }

    /// Forgets revocations of tokens that have expired anyway.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn purge_expired_revocations(&self) -> Result<u64, DomainError> {
        Ok(self.ports.revoked_tokens.purge_expired(self.ports.clock.now()).await?)
    }

    /// Loads a user by id for an already authenticated caller.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn user(&self, id: UserId) -> Result<Option<User>, DomainError> {
        Ok(self.ports.users.find_by_id(id).await?)
    }

    fn check_times(&self, claims: &Claims) -> Result<(), DomainError> {
        let now = self.ports.clock.now().unix_timestamp();
        let leeway = self.settings.leeway_secs;
        if claims.exp.saturating_add(leeway) <= now {
            return Err(DomainError::Unauthenticated(AuthError::TokenExpired));
        }
        if claims.iat.saturating_sub(leeway) > now || claims.iat > claims.exp {
            return Err(DomainError::Unauthenticated(AuthError::InvalidToken));
        }
        Ok(())
    }

    /// The token's user if it may still use the token.
    fn current(user: User, claims: &Claims) -> Result<User, DomainError> {
        if !user.is_active {
            return Err(DomainError::Unauthenticated(AuthError::AccountDisabled));
        }
        if user.session_version != claims.sv {
            return Err(DomainError::Unauthenticated(AuthError::TokenRevoked));
        }
        Ok(user)
    }

    /// Blacklists the token's `jti` until it could no longer pass the expiry check.
    async fn revoke(&self, claims: &Claims, user: UserId) -> Result<bool, DomainError> {
        let until = claims.expires_at() + time::Duration::seconds(self.settings.leeway_secs);
        let jti: Uuid = claims.jti;
        Ok(self.ports.revoked_tokens.revoke(jti, user, until).await?)
    }
}

/// Why a login did not give a token: refused (with the audit reason), or the
/// store or hashing pool failed.
enum LoginFailure {
    Refused(DomainError, &'static str),
    Fault(DomainError),
}

impl From<DomainError> for LoginFailure {
    fn from(error: DomainError) -> Self {
        Self::Fault(error)
    }
}

impl From<crate::error::StoreError> for LoginFailure {
    fn from(error: crate::error::StoreError) -> Self {
        Self::Fault(error.into())
    }
}
