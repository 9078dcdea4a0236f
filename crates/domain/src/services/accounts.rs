use std::sync::Arc;

use crate::error::{AuthError, DomainError, FieldError};
use crate::model::{
    AuditKind, Claims, Email, FullName, IssuedToken, NewUser, Password, Principal, ProviderName, Role,
    SignInMethod, User, UserId,
};

use crate::ports::{Change, ChangeFeed, Clock, OAuthIdentityRepository, SessionRepository, UserRepository};

use super::audit::Recorder;
use super::credentials::Credentials;
use super::limits::Failure;
use super::tokens::Tokens;
use super::{AuthSettings, LimitService, Ports, VerificationService, from_ports, limits, opaque_debug};

/// What a client sends to register; checked here, not at the edge.
#[derive(Debug, Clone)]
pub struct Registration {
    pub email: String,
    pub password: Password,
    pub full_name: Option<String>,
}

/// What `ensure_admin` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    Created,
    Promoted,
    AlreadyAdmin,
}

/// Accounts: registration, passwords and roles.
#[derive(Clone)]
pub struct AccountService {
    users: Arc<dyn UserRepository>,
    identities: Arc<dyn OAuthIdentityRepository>,
    sessions: Arc<dyn SessionRepository>,
    clock: Arc<dyn Clock>,
    changes: Arc<dyn ChangeFeed>,
    credentials: Credentials,
    tokens: Tokens,
    audit: Recorder,
    limits: LimitService,
    verification: VerificationService,
    /// Registration signs the user in only once the address is verified.
    require_verified_email: bool,
}

opaque_debug!(AccountService);

impl AccountService {
    pub(super) fn new(
        ports: &Ports,
        settings: &AuthSettings,
        limits: LimitService,
        verification: VerificationService,
    ) -> Self {
        from_ports!(ports => Self { users, identities, sessions; clock, changes;
            credentials: Credentials::new(ports, settings),
            tokens: Tokens::new(ports, settings),
            audit: Recorder::new(ports),
            limits: limits,
            verification: verification,
            require_verified_email: settings.require_verified_email,
        })
    }

    /// Registers a user with the `USER` role, queues the email that verifies
    /// the address (in the same write), and signs them in, unless verified
    /// addresses are required: then there is no token until the link is followed.
    ///
    /// # Errors
    /// 422 codes for an invalid email, name or a password that fails the policy
    /// (every failed rule listed); `EmailTaken`; `Unavailable`.
    pub async fn register(
        &self,
        registration: Registration,
    ) -> Result<(User, Option<IssuedToken>), DomainError> {
        let new = self.new_user(registration, Role::User).await?;
        let user = self.verification.register(new).await?;
        let token = if self.require_verified_email {
            self.audit.record(AuditKind::Register, Some(user.id), None).await?;
            None
        } else {
            let event = self.audit.event_now(AuditKind::Register, Some(user.id), None);
            Some(self.tokens.start_session(&user, SignInMethod::password(), false, event).await?)
        };
        self.audit.record(AuditKind::EmailVerificationRequested, Some(user.id), None).await?;
        Ok((user, token))
    }

    /// Validates and stores a new user without signing them in or sending
    /// anything: an account the operator creates, its address taken as verified.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub async fn create_user(&self, registration: Registration, role: Role) -> Result<User, DomainError> {
        let new = self.new_user(registration, role).await?;
        Ok(self.users.create(NewUser { email_verified: true, ..new }).await?)
    }

    /// A registration checked against every rule, its password hashed; not stored.
    async fn new_user(&self, registration: Registration, role: Role) -> Result<NewUser, DomainError> {
        let Registration { email, password, full_name } = registration;
        let mut errors: Vec<FieldError> = Vec::new();
        let email = Email::parse(&email).map_err(|e| errors.push(DomainError::invalid_email(e))).ok();
        let full_name = match full_name.as_deref().map(FullName::parse).transpose() {
            Ok(name) => name.flatten(),
            Err(e) => {
                errors.push(DomainError::invalid_full_name(e));
                None
            }
        };
        let password = match self.credentials.check_new(password.expose(), email.as_ref(), "password") {
            Ok(password) => Some(password),
            Err(DomainError::Validation { errors: failed, .. }) => {
                errors.extend(failed);
                None
            }
            Err(other) => return Err(other),
        };
        let (Some(email), Some(password)) = (email, password) else {
            return Err(DomainError::validation(errors));
        };
        if !errors.is_empty() {
            return Err(DomainError::validation(errors));
        }
        // Checking first spares an argon2 hash for the common duplicate; the
        // unique index still decides races.
        if self.users.find_by_email(&email).await?.is_some() {
            return Err(DomainError::EmailTaken);
        }
        let password_hash = self.credentials.hash(password).await?;
        Ok(NewUser {
            id: UserId::new(),
            email,
            full_name,
            password_hash: Some(password_hash),
            role,
            email_verified: false,
            created_at: self.clock.now(),
        })
    }

    /// The rules a new password must meet.
    #[must_use]
    pub fn password_policy(&self) -> &crate::model::PasswordPolicy {
        self.credentials.policy()
    }

    /// How `user` can sign in: `password` if they have one, then each linked provider.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn providers(&self, user: &User) -> Result<Vec<String>, DomainError> {
        let linked = self.identities.list_identities(user.id).await?;
        Ok(Self::merge_providers(user, linked.iter().map(|identity| &identity.provider)))
    }

    /// As [`providers`](Self::providers), without a round trip when
    /// authentication already read the linked providers.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn providers_of(&self, caller: &Principal) -> Result<Vec<String>, DomainError> {
        match &caller.linked {
            Some(linked) => Ok(Self::merge_providers(&caller.user, linked.iter())),
            None => self.providers(&caller.user).await,
        }
    }

    /// `password` first when the user has one, then the linked providers by name.
    fn merge_providers<'a>(user: &User, linked: impl Iterator<Item = &'a ProviderName>) -> Vec<String> {
        let mut providers: Vec<String> =
            user.providers().into_iter().map(|p| p.as_str().to_owned()).collect();
        let mut linked: Vec<&str> = linked.map(ProviderName::as_str).collect();
        linked.sort_unstable();
        linked.dedup();
        providers.extend(linked.into_iter().map(str::to_owned));
        providers
    }

    /// Changes the caller's password. Every token issued before stops working,
    /// and so does every outstanding reset link; every other session ends;
    /// the returned token is issued in the caller's session (whose refresh
    /// token keeps working) under the new session version.
    ///
    /// A wrong current password is a failed login of the account: it counts
    /// in the same budgets (per account and address, and account-wide), so a
    /// stolen token cannot be used to guess the password at leisure.
    ///
    /// # Errors
    /// `InvalidCurrentPassword` when the current password is wrong, 422 when the
    /// new one fails the policy, `RateLimited` once the failed-login budgets
    /// are spent, `Unavailable`.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: Password,
        new: Password,
    ) -> Result<IssuedToken, DomainError> {
        let new = self.credentials.check_new(new.expose(), Some(&principal.user.email), "new_password")?;
        let Some(user) = self.users.find_by_id(principal.user.id).await? else {
            return Err(DomainError::Unauthenticated(AuthError::InvalidToken));
        };
        let account = limits::account_of(user.email.as_str(), Some(&user));
        let check = async {
            let matches = match user.password_hash.clone() {
                Some(hash) => self.credentials.verify(&current, &hash).await?.0,
                None => {
                    self.credentials.verify_nothing(&current).await?;
                    false
                }
            };
            if matches {
                Ok(())
            } else {
                Err(Failure::Refused(DomainError::InvalidCurrentPassword, "bad_current_password"))
            }
        };
        self.limits.guarded(&account, Some(user.id), &self.audit, check).await?;
        let hash = self.credentials.hash(new).await?;
        let written = self.users.set_password(user.id, hash, self.clock.now()).await;
        self.changes.changed(Change::User(user.id));
        let user = written?;
        let now = self.clock.now();
        let current = principal.claims.as_ref().and_then(Claims::session);
        self.sessions.end_sessions(user.id, current, now).await?;
        let session = match current {
            Some(sid) => self.sessions.find_session_by_id(sid).await?,
            None => None,
        };
        match session.filter(|s| s.is_live(now, self.tokens.idle())) {
            Some(session) => {
                let token = self.tokens.issue_in(&user, &session, None)?;
                self.audit.record(AuditKind::PasswordChanged, Some(user.id), None).await?;
                Ok(token)
            }
            // A token of an earlier version, without a session: a session starts now.
            None => {
                let event = self.audit.event_now(AuditKind::PasswordChanged, Some(user.id), None);
                self.tokens.start_session(&user, SignInMethod::password(), false, event).await
            }
        }
    }

    /// Makes `email` an administrator: promotes an existing user, or creates one
    /// with `password` (which must meet the policy).
    ///
    /// # Errors
    /// 422 codes for a bad email or password; `NotFound`-like validation when a
    /// new user is needed but no password was given; `Unavailable`.
    pub async fn ensure_admin(
        &self,
        email: &str,
        password: Option<Password>,
    ) -> Result<AdminOutcome, DomainError> {
        let parsed =
            Email::parse(email).map_err(|e| DomainError::validation(vec![DomainError::invalid_email(e)]))?;
        if let Some(user) = self.users.find_by_email(&parsed).await? {
            if user.role == Role::Admin {
                return Ok(AdminOutcome::AlreadyAdmin);
            }
            let written = self.users.set_role(user.id, Role::Admin, self.clock.now()).await;
            self.changes.changed(Change::User(user.id));
            written?;
            return Ok(AdminOutcome::Promoted);
        }
        let Some(password) = password else {
            return Err(DomainError::validation(vec![FieldError {
                field: "password".to_owned(),
                code: "invalid_field",
                message: "a password is required to create a new administrator".to_owned(),
            }]));
        };
        let registration = Registration { email: email.to_owned(), password, full_name: None };
        self.create_user(registration, Role::Admin).await?;
        Ok(AdminOutcome::Created)
    }
}
