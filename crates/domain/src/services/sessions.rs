use std::sync::Arc;

use uuid::Uuid;

use crate::error::{AuthError, DomainError, Forbidden};
use crate::model::{AuditKind, Claims, Email, IssuedToken, Password, Principal, SessionLookup, User, UserId};

use crate::ports::{Change, ChangeFeed, Clock, HotReads, RevokedTokenRepository, UserRepository};

use super::audit::Recorder;
use super::credentials::Credentials;
use super::limits::Failure;
use super::tokens::Tokens;
use super::{AuthSettings, LimitService, Ports, from_ports, limits, opaque_debug};

/// Sessions: login, token authentication, refresh and logout.
#[derive(Clone)]
pub struct SessionService {
    users: Arc<dyn UserRepository>,
    reads: Arc<dyn HotReads>,
    revoked_tokens: Arc<dyn RevokedTokenRepository>,
    clock: Arc<dyn Clock>,
    changes: Arc<dyn ChangeFeed>,
    credentials: Credentials,
    tokens: Tokens,
    audit: Recorder,
    limits: LimitService,
    leeway_secs: i64,
}

opaque_debug!(SessionService);

impl SessionService {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings, limits: LimitService) -> Self {
        from_ports!(ports => Self { users, reads, revoked_tokens; clock, changes;
            credentials: Credentials::new(ports, settings),
            tokens: Tokens::new(ports, settings),
            audit: Recorder::new(ports),
            limits: limits,
            leeway_secs: settings.leeway_secs,
        })
    }

    /// Exchanges an email and password for a token.
    ///
    /// An unknown email, a user without a password and a wrong password all cost
    /// the same argon2 work and give the same `InvalidCredentials`, so neither
    /// the answer nor its timing tells which emails are registered. A disabled
    /// account is only revealed to someone who knows its password.
    ///
    /// Failures are counted per account and client address (5 in 15 minutes by
    /// default) and per account from everywhere (50): once the first budget is
    /// spent that address gets `RateLimited` for the account, right password
    /// or not, known email or not; once the second is, everyone does. Someone
    /// guessing from one address never locks the owner out elsewhere. The
    /// lockout reveals nothing, and a password reset starts both afresh.
    ///
    /// # Errors
    /// `InvalidCredentials`; `Forbidden(AccountDisabled)`; `RateLimited`; `Unavailable`.
    pub async fn login(&self, username: &str, password: Password) -> Result<IssuedToken, DomainError> {
        let user = match Email::parse(username) {
            Ok(email) => self.users.find_by_email(&email).await?,
            Err(_) => None,
        };
        let id = user.as_ref().map(|u| u.id);
        let account = limits::account_of(username, user.as_ref());
        let token =
            self.limits.guarded(&account, id, &self.audit, self.check_password(user, password)).await?;
        self.audit.record(AuditKind::LoginSucceeded, id, None).await?;
        Ok(token)
    }

    async fn check_password(&self, user: Option<User>, password: Password) -> Result<IssuedToken, Failure> {
        let invalid =
            |reason| Failure::Refused(DomainError::Unauthenticated(AuthError::InvalidCredentials), reason);
        let Some(user) = user else {
            self.credentials.verify_nothing(&password).await?;
            return Err(invalid("unknown_email"));
        };
        let Some(hash) = user.password_hash.clone() else {
            self.credentials.verify_nothing(&password).await?;
            return Err(invalid("no_password"));
        };
        let (matches, upgrade) = self.credentials.verify(&password, &hash).await?;
        if !matches {
            return Err(invalid("bad_password"));
        }
        if !user.is_active {
            return Err(Failure::Refused(DomainError::Forbidden(Forbidden::AccountDisabled), "disabled"));
        }
        if upgrade {
            // Upgrading (stronger parameters, or the normalised form) is best
            // effort: a full hashing queue or a lost race leaves the old hash
            // for the next login.
            if let Ok(stronger) = self.credentials.hash(password).await {
                self.users.rehash_password(user.id, &hash, stronger).await?;
            }
        }
        Ok(self.tokens.issue(&user)?)
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
        let claims = self.tokens.decode(token)?;
        self.check_times(&claims)?;
        let session = self.reads.find_session(UserId::from_uuid(claims.sub), claims.jti).await?;
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
        let token = self.tokens.issue(&principal.user)?;
        self.audit.record(AuditKind::TokenRefreshed, Some(principal.user.id), None).await?;
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
        self.audit.record(AuditKind::Logout, Some(principal.user.id), None).await
    }

    /// Forgets revocations of tokens that have expired anyway.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn purge_expired_revocations(&self) -> Result<u64, DomainError> {
        Ok(self.revoked_tokens.purge_expired(self.clock.now()).await?)
    }

    /// Loads a user by id for an already authenticated caller.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn user(&self, id: UserId) -> Result<Option<User>, DomainError> {
        Ok(self.users.find_by_id(id).await?)
    }

    fn check_times(&self, claims: &Claims) -> Result<(), DomainError> {
        let now = self.clock.now().unix_timestamp();
        let leeway = self.leeway_secs;
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
        let until = claims.expires_at() + time::Duration::seconds(self.leeway_secs);
        let jti: Uuid = claims.jti;
        let written = self.revoked_tokens.revoke(jti, user, until).await;
        self.changes.changed(Change::Token(jti));
        Ok(written?)
    }
}
