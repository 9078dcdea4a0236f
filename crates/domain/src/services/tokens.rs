use std::sync::Arc;

use time::Duration;

use crate::error::DomainError;
use crate::model::{
    Audience, AuditEvent, Claims, IssuedRefresh, IssuedToken, KeyDigest, RefreshTokenSecret, Session,
    SessionId, SignInMethod, User,
};
use crate::ports::{
    AuditObserver, Clock, RequestContextSource, SecretGenerator, SessionRepository, TokenCodec,
};

use super::{AuthSettings, Ports, opaque_debug};

/// Starts sessions and issues their tokens, and reads access tokens back.
#[derive(Clone)]
pub(super) struct Tokens {
    codec: Arc<dyn TokenCodec>,
    sessions: Arc<dyn SessionRepository>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    context: Arc<dyn RequestContextSource>,
    observer: Arc<dyn AuditObserver>,
    issuer: Arc<str>,
    audience: Option<Audience>,
    ttl_secs: i64,
    max_age: Duration,
    idle: Duration,
}

opaque_debug!(Tokens);

impl Tokens {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            codec: Arc::clone(&ports.adapters.tokens),
            sessions: Arc::clone(&ports.sessions),
            secrets: Arc::clone(&ports.adapters.secrets),
            clock: Arc::clone(&ports.adapters.clock),
            context: Arc::clone(&ports.adapters.context),
            observer: Arc::clone(&ports.adapters.observer),
            issuer: settings.issuer.as_str().into(),
            audience: Audience::new(settings.audience.clone()),
            ttl_secs: settings.token_ttl_secs,
            max_age: Duration::seconds(settings.session_max_age_secs),
            idle: Duration::seconds(settings.session_idle_secs),
        }
    }

    /// How long a session may go without a refresh.
    pub(super) fn idle(&self) -> Duration {
        self.idle
    }

    /// Starts a session for `user`, who just proved who they are by
    /// `method` (with a second factor or not), and issues its first access
    /// token and refresh token. `event` (the sign-in, as the audit log keeps
    /// it) is written with the session, in one write.
    ///
    /// # Errors
    /// `Unavailable` when the session cannot be stored or the token signed.
    pub(super) async fn start_session(
        &self,
        user: &User,
        method: SignInMethod,
        mfa: bool,
        event: AuditEvent,
    ) -> Result<IssuedToken, DomainError> {
        let now = self.clock.now();
        let context = self.context.current();
        let session = Session {
            id: SessionId::new(),
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            expires_at: now + self.max_age,
            auth_time: now,
            ip: context.ip,
            user_agent: context.user_agent,
            method,
            mfa,
            ended_at: None,
        };
        let (refresh, digest) = self.new_refresh();
        self.sessions.create_session(session.clone(), digest, event.clone()).await?;
        self.observer.written(&event);
        self.issue_in(user, &session, Some(refresh))
    }

    /// A new refresh token, and the digest the store keeps of it.
    pub(super) fn new_refresh(&self) -> (RefreshTokenSecret, KeyDigest) {
        let token = RefreshTokenSecret::from_random(self.secrets.secret_bytes());
        let digest = self.digest(&token);
        (token, digest)
    }

    pub(super) fn digest(&self, token: &RefreshTokenSecret) -> KeyDigest {
        KeyDigest(self.secrets.digest(token.expose().as_bytes()))
    }

    /// An access token for `user` in `session` (live, as the caller made
    /// sure), under the user's current session version, expiring no later
    /// than the session could end; with `refresh`, the session's new refresh
    /// token, when one was just stored.
    ///
    /// # Errors
    /// `Unavailable` when the token cannot be signed.
    pub(super) fn issue_in(
        &self,
        user: &User,
        session: &Session,
        refresh: Option<RefreshTokenSecret>,
    ) -> Result<IssuedToken, DomainError> {
        let now = self.clock.now();
        let claims = Claims::for_user(user, self.secrets.token_id(), &self.issuer, now, self.ttl_secs)
            .in_session(session, self.idle)
            .for_audience(self.audience.clone());
        let access_token = self.codec.encode(&claims)?;
        let expires_in = (claims.exp - now.unix_timestamp()).max(0);
        let refresh_expires_in = (session.expires_at.unix_timestamp() - now.unix_timestamp()).max(0);
        let refresh = refresh.map(|token| IssuedRefresh { token, expires_in: refresh_expires_in });
        Ok(IssuedToken { access_token, expires_in, claims, refresh })
    }

    /// The claims of a token whose signature, algorithm and issuer are right.
    ///
    /// # Errors
    /// `Unauthenticated` with the reason.
    pub(super) fn decode(&self, token: &str) -> Result<Claims, DomainError> {
        self.codec.decode(token)
    }
}
