use std::sync::Arc;

use uuid::Uuid;

use time::{Duration, OffsetDateTime};

use crate::error::{AuthError, DomainError, Forbidden};
use crate::model::{
    AuditKind, Claims, Email, IssuedToken, Password, Principal, RefreshLookup, RefreshTokenSecret, Session,
    SessionId, SessionLookup, SignInMethod, User, UserId,
};

use crate::ports::{
    Change, ChangeFeed, Clock, HotReads, RevokedTokenRepository, SessionRepository, UserRepository,
};

use super::audit::Recorder;
use super::credentials::Credentials;
use super::limits::Failure;
use super::mfa::{MfaService, SignIn};
use super::tokens::Tokens;
use super::{AuthSettings, LimitService, Ports, from_ports, limits, opaque_debug};

/// Sessions: login, token authentication, refresh (by access token or by
/// refresh token, with reuse detection), the caller's list of sessions, and
/// ending them.
#[derive(Clone)]
pub struct SessionService {
    users: Arc<dyn UserRepository>,
    reads: Arc<dyn HotReads>,
    revoked_tokens: Arc<dyn RevokedTokenRepository>,
    sessions: Arc<dyn SessionRepository>,
    clock: Arc<dyn Clock>,
    changes: Arc<dyn ChangeFeed>,
    credentials: Credentials,
    tokens: Tokens,
    audit: Recorder,
    limits: LimitService,
    leeway_secs: i64,
    reuse_grace: Duration,
    /// Password accounts sign in and refresh only once their address is verified.
    require_verified_email: bool,
    mfa: MfaService,
}

/// One of the caller's live sessions, and whether the caller's token belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub session: Session,
    pub current: bool,
}

opaque_debug!(SessionService);

impl SessionService {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings, limits: LimitService, mfa: MfaService) -> Self {
        from_ports!(ports => Self { users, reads, revoked_tokens, sessions; clock, changes;
            credentials: Credentials::new(ports, settings),
            tokens: Tokens::new(ports, settings),
            audit: Recorder::new(ports),
            limits: limits,
            leeway_secs: settings.leeway_secs,
            reuse_grace: Duration::seconds(settings.refresh_reuse_grace_secs),
            require_verified_email: settings.require_verified_email,
            mfa: mfa,
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
    /// When verified addresses are required, the right password of an
    /// account whose address is not verified gets `EmailNotVerified` (a
    /// wrong one still gets `InvalidCredentials`, so the answer tells
    /// nothing to someone without the password).
    ///
    /// # Errors
    /// An account with a second factor gets [`SignIn::MfaRequired`]: no
    /// session until `MfaService::verify`.
    ///
    /// # Errors
    /// `InvalidCredentials`; `Forbidden(AccountDisabled)`;
    /// `Forbidden(EmailNotVerified)`; `RateLimited`; `Unavailable`.
    pub async fn login(&self, username: &str, password: Password) -> Result<SignIn, DomainError> {
        let user = match Email::parse(username) {
            Ok(email) => self.users.find_by_email(&email).await?,
            Err(_) => None,
        };
        let id = user.as_ref().map(|u| u.id);
        let account = limits::account_of(username, user.as_ref());
        let user =
            self.limits.guarded(&account, id, &self.audit, self.check_password(user, password)).await?;
        if let Err(refused) = self.may_continue(&user) {
            self.audit.record_failure(AuditKind::LoginFailed, id, "email_not_verified").await;
            return Err(refused);
        }
        self.mfa.sign_in(&user, SignInMethod::password(), AuditKind::LoginSucceeded, None).await
    }

    /// Refuses a user whose address must be verified first. The right
    /// password was shown (or the session exists), so this is no failed
    /// guess: it is not counted against the account.
    fn may_continue(&self, user: &User) -> Result<(), DomainError> {
        if self.require_verified_email && !user.email_verified {
            return Err(DomainError::Forbidden(Forbidden::EmailNotVerified));
        }
        Ok(())
    }

    async fn check_password(&self, user: Option<User>, password: Password) -> Result<User, Failure> {
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
        Ok(user)
    }

    /// Verifies a bearer JWT and resolves its user.
    ///
    /// Refused when the signature, algorithm, issuer or any claim is wrong; when
    /// it expired (with the configured leeway) or claims to be issued in the
    /// future; when its `jti` was revoked; when its session ended; when the
    /// user's session version moved on (password change); when the user is
    /// disabled or gone.
    ///
    /// # Errors
    /// `Unauthenticated` with the precise reason; `Unavailable`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, DomainError> {
        let claims = self.tokens.decode(token)?;
        self.check_times(&claims)?;
        let session =
            self.reads.find_session(UserId::from_uuid(claims.sub), claims.jti, claims.session()).await?;
        let Some(SessionLookup { user, revoked, session_ended, linked }) = session else {
            return Err(DomainError::Unauthenticated(AuthError::AccountDisabled));
        };
        if revoked {
            return Err(DomainError::Unauthenticated(AuthError::TokenRevoked));
        }
        // A disabled account says so first; then an ended session (the other
        // sessions after a password change among them); then an older session version.
        if session_ended && user.is_active {
            return Err(DomainError::Unauthenticated(AuthError::SessionEnded));
        }
        let user = Self::current(user, &claims)?;
        Ok(Principal { linked: Some(linked), ..Principal::from_jwt(user, claims) })
    }

    /// The seed's refresh, by access token: revokes the presented token and
    /// issues a new one in the same session, with the session's new refresh
    /// token (every earlier one of the session is spent). Of several
    /// concurrent refreshes of one token exactly one succeeds. A token of an
    /// earlier version, without a session, gets a session of its own.
    ///
    /// # Errors
    /// As [`authenticate`](Self::authenticate); `TokenRevoked` when the token was
    /// already refreshed or logged out; `SessionEnded`; `Forbidden(EmailNotVerified)`.
    pub async fn refresh(&self, token: &str) -> Result<IssuedToken, DomainError> {
        let principal = self.authenticate(token).await?;
        let claims =
            principal.claims.as_ref().ok_or(DomainError::Unauthenticated(AuthError::InvalidToken))?;
        self.may_continue(&principal.user)?;
        if !self.revoke(claims, principal.user.id).await? {
            return Err(DomainError::Unauthenticated(AuthError::TokenRevoked));
        }
        let user = &principal.user;
        match claims.session() {
            Some(sid) => self.renew(user, sid).await,
            None => {
                let event = self.audit.event_now(AuditKind::TokenRefreshed, Some(user.id), None);
                self.tokens.start_session(user, SignInMethod::password(), false, event).await
            }
        }
    }

    /// A new access token and refresh token in the live session `sid`; the
    /// new refresh token and the audit event are one commit.
    async fn renew(&self, user: &User, sid: SessionId) -> Result<IssuedToken, DomainError> {
        let ended = DomainError::Unauthenticated(AuthError::SessionEnded);
        let now = self.clock.now();
        let session = self.sessions.find_session_by_id(sid).await?;
        let Some(session) = session.filter(|s| s.user_id == user.id && s.is_live(now, self.tokens.idle()))
        else {
            return Err(ended);
        };
        // Signed before the write, as an exchange's: a session that ended
        // meanwhile discards the token.
        let (refresh, digest) = self.tokens.new_refresh();
        let token = self.tokens.issue_in(user, &Session { last_used_at: now, ..session }, Some(refresh))?;
        let event = self.audit.event(AuditKind::TokenRefreshed, Some(user.id), None, now);
        if !self.sessions.replace_refresh(sid, digest, now, event.clone()).await? {
            return Err(ended);
        }
        self.audit.written(&event);
        Ok(token)
    }

    /// Exchanges a refresh token for a new access token and a new refresh
    /// token of the same session (RFC 9700, 4.14.2: rotation). The presented
    /// token is spent; of concurrent exchanges of one token exactly one
    /// succeeds. A spent token presented again within the grace period is
    /// refused and nothing else happens (two tabs racing); later, it means a
    /// copy is in other hands, and the whole session is ended.
    ///
    /// # Errors
    /// `InvalidRefreshToken` for a malformed or unknown token, or one of a
    /// session that ended or expired; `RefreshTokenReused`;
    /// `AccountDisabled`; `Forbidden(EmailNotVerified)`; `Unavailable`.
    pub async fn refresh_with(&self, presented: &str) -> Result<IssuedToken, DomainError> {
        let invalid = || DomainError::Unauthenticated(AuthError::InvalidRefreshToken);
        let presented = RefreshTokenSecret::parse(presented.trim()).map_err(|_| invalid())?;
        let digest = self.tokens.digest(&presented);
        let Some(RefreshLookup { token: record, session, user }) =
            self.sessions.find_refresh(&digest).await?
        else {
            return Err(invalid());
        };
        let now = self.clock.now();
        if let Some(spent_at) = record.spent_at {
            return Err(self.reused(&session, spent_at, now).await);
        }
        if !session.is_live(now, self.tokens.idle()) {
            return Err(invalid());
        }
        if !user.is_active {
            return Err(DomainError::Unauthenticated(AuthError::AccountDisabled));
        }
        self.may_continue(&user)?;
        // Signed before the write, so that the rotation and its audit event
        // are the exchange's one commit; a lost race discards the token.
        let (next, next_digest) = self.tokens.new_refresh();
        let token = self.tokens.issue_in(&user, &Session { last_used_at: now, ..session }, Some(next))?;
        let event = self.audit.event(AuditKind::TokenRefreshed, Some(user.id), None, now);
        if !self.sessions.rotate_refresh(&digest, next_digest, now, event.clone()).await? {
            // Spent by a concurrent exchange a moment ago, or the session ended meanwhile.
            return Err(DomainError::Unauthenticated(AuthError::RefreshTokenReused));
        }
        self.audit.written(&event);
        Ok(token)
    }

    /// What a refresh token stands for, without spending it (introspection):
    /// its session and user while it could be exchanged, else `None` (unknown,
    /// malformed, spent, session ended or past either end, user disabled).
    ///
    /// # Errors
    /// `Unavailable` when the store cannot be reached.
    pub async fn inspect_refresh(&self, presented: &str) -> Result<Option<(Session, User)>, DomainError> {
        let Ok(presented) = RefreshTokenSecret::parse(presented.trim()) else { return Ok(None) };
        let found = self.sessions.find_refresh(&self.tokens.digest(&presented)).await?;
        let Some(RefreshLookup { token, session, user }) = found else { return Ok(None) };
        let live = session.is_live(self.clock.now(), self.tokens.idle());
        Ok((token.spent_at.is_none() && live && user.is_active).then_some((session, user)))
    }

    /// When `session` ends unless it is refreshed first.
    #[must_use]
    pub fn session_end(&self, session: &Session) -> OffsetDateTime {
        session.ends_at(self.tokens.idle())
    }

    /// A spent refresh token came back: a race within the grace period, a
    /// theft after it (the session ends).
    async fn reused(&self, session: &Session, spent_at: OffsetDateTime, now: OffsetDateTime) -> DomainError {
        let reused = DomainError::Unauthenticated(AuthError::RefreshTokenReused);
        if now - spent_at <= self.reuse_grace || session.ended_at.is_some() {
            return reused;
        }
        match self.end(session.user_id, session.id).await {
            Ok(true) => {
                let detail = format!("session={}", session.id);
                self.audit
                    .record_failure(AuditKind::RefreshTokenReused, Some(session.user_id), &detail)
                    .await;
                reused
            }
            Ok(false) => reused,
            Err(e) => e,
        }
    }

    /// Ends the token's whole session (its refresh token too), and revokes
    /// the token itself (a token of an earlier version has no session).
    ///
    /// # Errors
    /// As [`authenticate`](Self::authenticate).
    pub async fn logout(&self, token: &str) -> Result<(), DomainError> {
        let principal = self.authenticate(token).await?;
        if let Some(claims) = &principal.claims {
            self.revoke(claims, principal.user.id).await?;
            if let Some(sid) = claims.session() {
                self.end(principal.user.id, sid).await?;
            }
        }
        self.audit.record(AuditKind::Logout, Some(principal.user.id), None).await
    }

    /// The caller's live sessions, newest first, the caller's own marked.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<SessionView>, DomainError> {
        let now = self.clock.now();
        let current = caller.claims.as_ref().and_then(Claims::session);
        let sessions = self.sessions.list_sessions(caller.user.id, now).await?;
        Ok(sessions
            .into_iter()
            .filter(|s| s.is_live(now, self.tokens.idle()))
            .map(|session| SessionView { current: Some(session.id) == current, session })
            .collect())
    }

    /// Ends one of the caller's sessions.
    ///
    /// # Errors
    /// `NotFound` for another user's, an unknown or an already ended
    /// session; `Unavailable`.
    pub async fn end_one(&self, caller: &Principal, id: SessionId) -> Result<(), DomainError> {
        let now = self.clock.now();
        let session = self.sessions.find_session_by_id(id).await?;
        let mine = session.is_some_and(|s| s.user_id == caller.user.id && s.is_live(now, self.tokens.idle()));
        if !mine || !self.end(caller.user.id, id).await? {
            return Err(DomainError::NotFound);
        }
        let detail = Some(format!("deleted session={id}"));
        self.audit.record(AuditKind::SessionsEnded, Some(caller.user.id), detail).await
    }

    /// Ends every session of the caller, the current one included, and
    /// revokes the presented token; how many sessions ended.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn end_all(&self, caller: &Principal) -> Result<u64, DomainError> {
        if let Some(claims) = &caller.claims {
            self.revoke(claims, caller.user.id).await?;
        }
        let ended = self.sessions.end_sessions(caller.user.id, None, self.clock.now()).await;
        self.changes.changed(Change::User(caller.user.id));
        let ended = ended?;
        let detail = Some(format!("logout_all sessions={ended}"));
        self.audit.record(AuditKind::SessionsEnded, Some(caller.user.id), detail).await?;
        Ok(ended)
    }

    /// Ends one session; `true` when it was live. Cached reads of the user forget.
    async fn end(&self, user: UserId, sid: SessionId) -> Result<bool, DomainError> {
        let ended = self.sessions.end_session(sid, self.clock.now()).await;
        self.changes.changed(Change::User(user));
        Ok(ended?)
    }

    /// Forgets sessions that ended or reached their absolute end more than a
    /// day ago (a reused refresh token of theirs is refused as unknown then).
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn purge_sessions(&self) -> Result<u64, DomainError> {
        Ok(self.sessions.purge_sessions(self.clock.now() - Duration::days(1)).await?)
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
