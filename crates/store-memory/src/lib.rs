//! In-memory implementations of Portcullis's repository ports.
//!
//! For tests, examples and services that embed the domain without a database.
//! Everything is lost when the process ends. It depends on the domain crate and
//! the standard library only; each port's guarantees (unique email, single-use
//! revocation) hold because every operation runs under one lock.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use portcullis_domain::ports::{
    ApiKeyRepository, AuditLog, HotReads, MfaRepository, OAuthIdentityRepository, Outbox,
    PasswordResetRepository, ProjectRepository, RevokedTokenRepository, SessionRepository,
    SigningKeyRepository, StoreHealth, UserRepository, VerificationRepository,
};
use portcullis_domain::{
    ApiKey, ApiKeyId, AuditEvent, AuditQuery, DeliveryStatus, Email, EmailVerification, Environment,
    KeyDigest, KeySighting, KeyUsage, MfaChallenge, NewUser, OAuthIdentity, OutboxMessage, PasswordHash,
    PasswordReset, Project, ProviderName, RecoveryCode, RefreshLookup, RefreshRecord, ResetBudget,
    ResetRequest, Role, Session, SessionId, SessionLookup, SigningKey, StoreError, TotpFactor, User, UserId,
    UsersFrom,
};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, User>,
    by_email: HashMap<Email, UserId>,
    revoked: HashMap<Uuid, OffsetDateTime>,
    api_keys: HashMap<ApiKeyId, ApiKey>,
    projects: Vec<Project>,
    resets: Vec<PasswordReset>,
    verifications: Vec<EmailVerification>,
    totp: HashMap<UserId, TotpFactor>,
    recovery_codes: Vec<RecoveryCode>,
    challenges: Vec<MfaChallenge>,
    outbox: Vec<OutboxMessage>,
    identities: Vec<OAuthIdentity>,
    key_addresses: HashSet<(ApiKeyId, String)>,
    /// Queued forgot-password requests, with when each is due.
    reset_requests: Vec<(ResetRequest, OffsetDateTime)>,
    /// Spent OAuth state nonces, with when they expire.
    spent_states: HashMap<String, OffsetDateTime>,
    /// Sorted by id, which is time-ordered.
    audit: std::collections::BTreeMap<Uuid, AuditEvent>,
    sessions: HashMap<SessionId, Session>,
    /// Refresh tokens by digest.
    refresh: HashMap<[u8; 32], RefreshRecord>,
    signing_keys: Vec<SigningKey>,
}

/// Every repository port over one in-process map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated:
        // every mutation below is a single insert or field write.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update_user(
        &self,
        id: UserId,
        now: OffsetDateTime,
        change: impl FnOnce(&mut User),
    ) -> Result<User, StoreError> {
        let mut state = self.state();
        let user = state.users.get_mut(&id).ok_or(StoreError::NotFound)?;
        change(user);
        user.updated_at = now;
        Ok(user.clone())
    }
}

#[async_trait]
impl UserRepository for MemoryStore {
    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let mut state = self.state();
        if state.by_email.contains_key(&user.email) {
            return Err(StoreError::Conflict("email"));
        }
        if state.users.contains_key(&user.id) {
            return Err(StoreError::Conflict("id"));
        }
        let user = user.into_user();
        state.by_email.insert(user.email.clone(), user.id);
        state.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.state().users.get(&id).cloned())
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let state = self.state();
        Ok(state.by_email.get(email).and_then(|id| state.users.get(id)).cloned())
    }

    async fn set_role(&self, id: UserId, role: Role, now: OffsetDateTime) -> Result<User, StoreError> {
        self.update_user(id, now, |user| user.role = role)
    }

    async fn list_users(&self, limit: u32, from: UsersFrom) -> Result<(Vec<User>, u64), StoreError> {
        let state = self.state();
        let mut users: Vec<&User> = state.users.values().collect();
        users.sort_by_key(|u| (u.created_at, u.id));
        let skip = match from {
            UsersFrom::Offset(offset) => usize::try_from(offset).unwrap_or(usize::MAX),
            UsersFrom::After(id) => {
                let anchor = state.users.get(&id).ok_or(StoreError::NotFound)?;
                users.partition_point(|u| (u.created_at, u.id) <= (anchor.created_at, anchor.id))
            }
        };
        let page = users.into_iter().skip(skip).take(limit as usize).cloned().collect();
        Ok((page, state.users.len() as u64))
    }

    async fn set_active(&self, id: UserId, active: bool, now: OffsetDateTime) -> Result<User, StoreError> {
        self.update_user(id, now, |user| {
            if user.is_active && !active {
                user.session_version += 1;
            }
            user.is_active = active;
        })
    }

    async fn rehash_password(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: PasswordHash,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(user) = state.users.get_mut(&id).filter(|u| u.password_hash.as_ref() == Some(old)) else {
            return Ok(false);
        };
        user.password_hash = Some(new);
        Ok(true)
    }

    async fn set_password(
        &self,
        id: UserId,
        hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let mut state = self.state();
        let user = state.users.get_mut(&id).ok_or(StoreError::NotFound)?;
        user.password_hash = Some(hash);
        user.session_version += 1;
        user.updated_at = now;
        let user = user.clone();
        void_resets(&mut state, id, now);
        Ok(user)
    }
}

/// Marks every outstanding verification link of `user` used.
fn void_verifications(state: &mut State, user: UserId, now: OffsetDateTime) {
    for link in state.verifications.iter_mut().filter(|v| v.user_id == user && v.used_at.is_none()) {
        link.used_at = Some(now);
    }
}

#[async_trait]
impl VerificationRepository for MemoryStore {
    async fn create_user_with_verification(
        &self,
        user: NewUser,
        verification: EmailVerification,
        email: OutboxMessage,
    ) -> Result<User, StoreError> {
        let mut state = self.state();
        if state.by_email.contains_key(&user.email) {
            return Err(StoreError::Conflict("email"));
        }
        if state.users.contains_key(&user.id) {
            return Err(StoreError::Conflict("id"));
        }
        let user = user.into_user();
        state.by_email.insert(user.email.clone(), user.id);
        state.users.insert(user.id, user.clone());
        state.verifications.push(verification);
        state.outbox.push(email);
        Ok(user)
    }

    async fn issue_verification(
        &self,
        verification: EmailVerification,
        email: OutboxMessage,
        budget: ResetBudget,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let user = verification.user_id;
        if !state.users.contains_key(&user) {
            return Err(StoreError::NotFound);
        }
        let recent = state.verifications.iter().filter(|v| v.user_id == user && v.created_at >= budget.since);
        if recent.count() >= budget.max as usize {
            return Ok(false);
        }
        void_verifications(&mut state, user, verification.created_at);
        state.verifications.push(verification);
        state.outbox.push(email);
        Ok(true)
    }

    async fn consume_verification(
        &self,
        digest: &KeyDigest,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let mut state = self.state();
        let Some(link) = state
            .verifications
            .iter_mut()
            .find(|v| v.digest == *digest && v.used_at.is_none() && v.expires_at > now)
        else {
            return Ok(None);
        };
        link.used_at = Some(now);
        let user_id = link.user_id;
        void_verifications(&mut state, user_id, now);
        let Some(user) = state.users.get_mut(&user_id) else { return Ok(None) };
        user.email_verified = true;
        user.updated_at = now;
        Ok(Some(user.clone()))
    }
}

#[async_trait]
impl MfaRepository for MemoryStore {
    async fn put_totp(&self, factor: TotpFactor) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.totp.get(&factor.user_id).is_some_and(|f| f.confirmed_at.is_some()) {
            return Ok(false);
        }
        if !state.users.contains_key(&factor.user_id) {
            return Err(StoreError::NotFound);
        }
        state.totp.insert(factor.user_id, factor);
        Ok(true)
    }

    async fn find_totp(&self, user: UserId) -> Result<Option<TotpFactor>, StoreError> {
        Ok(self.state().totp.get(&user).cloned())
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        sealed: &[u8],
        step: i64,
        codes: Vec<RecoveryCode>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(factor) =
            state.totp.get_mut(&user).filter(|f| f.confirmed_at.is_none() && f.sealed_secret == sealed)
        else {
            return Ok(false);
        };
        factor.confirmed_at = Some(now);
        factor.last_step = Some(step);
        state.recovery_codes.retain(|c| c.user_id != user);
        state.recovery_codes.extend(codes);
        if let Some(stored) = state.users.get_mut(&user) {
            stored.mfa_enabled = true;
            stored.updated_at = now;
        }
        Ok(true)
    }

    async fn spend_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(factor) = state
            .totp
            .get_mut(&user)
            .filter(|f| f.confirmed_at.is_some() && f.last_step.is_none_or(|last| last < step))
        else {
            return Ok(false);
        };
        factor.last_step = Some(step);
        Ok(true)
    }

    async fn remove_totp(&self, user: UserId, now: OffsetDateTime) -> Result<bool, StoreError> {
        let mut state = self.state();
        let removed = state.totp.remove(&user).is_some();
        state.recovery_codes.retain(|c| c.user_id != user);
        if let Some(stored) = state.users.get_mut(&user) {
            stored.mfa_enabled = false;
            stored.updated_at = now;
        }
        Ok(removed)
    }

    async fn replace_recovery_codes(&self, user: UserId, codes: Vec<RecoveryCode>) -> Result<(), StoreError> {
        let mut state = self.state();
        state.recovery_codes.retain(|c| c.user_id != user);
        state.recovery_codes.extend(codes);
        Ok(())
    }

    async fn spend_recovery_code(
        &self,
        user: UserId,
        digest: &KeyDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let found = state
            .recovery_codes
            .iter_mut()
            .find(|c| c.user_id == user && c.digest == *digest && c.used_at.is_none());
        Ok(found.map(|code| code.used_at = Some(now)).is_some())
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u64, StoreError> {
        let state = self.state();
        Ok(state.recovery_codes.iter().filter(|c| c.user_id == user && c.used_at.is_none()).count() as u64)
    }

    async fn create_challenge(&self, challenge: MfaChallenge) -> Result<(), StoreError> {
        self.state().challenges.push(challenge);
        Ok(())
    }

    async fn find_challenge(&self, digest: &KeyDigest) -> Result<Option<MfaChallenge>, StoreError> {
        Ok(self.state().challenges.iter().find(|c| c.digest == *digest).cloned())
    }

    async fn fail_challenge(&self, id: Uuid) -> Result<i32, StoreError> {
        let mut state = self.state();
        let challenge = state.challenges.iter_mut().find(|c| c.id == id).ok_or(StoreError::NotFound)?;
        challenge.failures += 1;
        Ok(challenge.failures)
    }

    async fn spend_challenge(
        &self,
        id: Uuid,
        max_failures: i32,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let found = state
            .challenges
            .iter_mut()
            .find(|c| c.id == id && c.used_at.is_none() && c.expires_at > now && c.failures < max_failures);
        Ok(found.map(|challenge| challenge.used_at = Some(now)).is_some())
    }

    async fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.state();
        let before_len = state.challenges.len();
        state.challenges.retain(|c| c.expires_at >= before);
        Ok((before_len - state.challenges.len()) as u64)
    }
}

/// Marks every outstanding reset of `user` used: a new password ends them.
fn void_resets(state: &mut State, user: UserId, now: OffsetDateTime) {
    for reset in state.resets.iter_mut().filter(|r| r.user_id == user && r.used_at.is_none()) {
        reset.used_at = Some(now);
    }
}

#[async_trait]
impl RevokedTokenRepository for MemoryStore {
    async fn revoke(
        &self,
        jti: Uuid,
        _user_id: UserId,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.revoked.contains_key(&jti) {
            return Ok(false);
        }
        state.revoked.insert(jti, expires_at);
        Ok(true)
    }

    async fn is_revoked(&self, jti: Uuid) -> Result<bool, StoreError> {
        Ok(self.state().revoked.contains_key(&jti))
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.state();
        let before = state.revoked.len();
        state.revoked.retain(|_, expires_at| *expires_at >= now);
        Ok((before - state.revoked.len()) as u64)
    }
}

#[async_trait]
impl ApiKeyRepository for MemoryStore {
    async fn insert_key(&self, key: ApiKey) -> Result<ApiKey, StoreError> {
        let mut state = self.state();
        if state.api_keys.contains_key(&key.id) || state.api_keys.values().any(|k| k.digest == key.digest) {
            return Err(StoreError::Conflict("api_key"));
        }
        state.api_keys.insert(key.id, key.clone());
        Ok(key)
    }

    async fn list_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError> {
        let state = self.state();
        let mut keys: Vec<ApiKey> = state.api_keys.values().filter(|k| k.user_id == user).cloned().collect();
        keys.sort_by_key(|k| std::cmp::Reverse((k.created_at, k.id)));
        Ok(keys)
    }

    async fn revoke_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        now: OffsetDateTime,
    ) -> Result<ApiKey, StoreError> {
        let mut state = self.state();
        let key = state.api_keys.get_mut(&id).filter(|k| k.user_id == user).ok_or(StoreError::NotFound)?;
        key.revoked_at.get_or_insert(now);
        Ok(key.clone())
    }

    async fn record_key_sightings(&self, sightings: &[KeySighting]) -> Result<Vec<Uuid>, StoreError> {
        let mut state = self.state();
        if sightings.iter().any(|s| state.audit.contains_key(&s.event.id)) {
            // As a database's transaction would: the batch fails whole.
            return Err(StoreError::Conflict("id"));
        }
        let mut new = Vec::new();
        for sighting in sightings {
            if state.api_keys.contains_key(&sighting.id)
                && state.key_addresses.insert((sighting.id, sighting.ip.clone()))
            {
                state.audit.insert(sighting.event.id, sighting.event.clone());
                new.push(sighting.event.id);
            }
        }
        Ok(new)
    }

    async fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<(), StoreError> {
        let mut state = self.state();
        for entry in usage {
            if let Some(key) = state.api_keys.get_mut(&entry.id) {
                key.usage_count += entry.count;
                key.last_used_at =
                    Some(key.last_used_at.map_or(entry.last_used_at, |t| t.max(entry.last_used_at)));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ProjectRepository for MemoryStore {
    async fn insert_project(&self, project: Project) -> Result<Project, StoreError> {
        self.state().projects.push(project.clone());
        Ok(project)
    }
}

#[async_trait]
impl PasswordResetRepository for MemoryStore {
    async fn request_reset(&self, request: ResetRequest) -> Result<(), StoreError> {
        let due = request.requested_at;
        self.state().reset_requests.push((request, due));
        Ok(())
    }

    async fn claim_reset_requests(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ResetRequest>, StoreError> {
        let mut state = self.state();
        let mut claimed = Vec::new();
        for (request, due) in &mut state.reset_requests {
            if claimed.len() >= limit as usize {
                break;
            }
            if *due <= now {
                *due = lease_until;
                claimed.push(request.clone());
            }
        }
        Ok(claimed)
    }

    async fn drop_reset_request(&self, id: Uuid) -> Result<(), StoreError> {
        self.state().reset_requests.retain(|(request, _)| request.id != id);
        Ok(())
    }

    async fn issue_reset(
        &self,
        request: Uuid,
        reset: PasswordReset,
        email: OutboxMessage,
        budget: ResetBudget,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        state.reset_requests.retain(|(queued, _)| queued.id != request);
        let recent =
            state.resets.iter().filter(|r| r.user_id == reset.user_id && r.created_at >= budget.since);
        if recent.count() >= budget.max as usize {
            return Ok(false);
        }
        void_resets(&mut state, reset.user_id, reset.created_at);
        state.resets.push(reset);
        state.outbox.push(email);
        Ok(true)
    }

    async fn find_valid_reset(
        &self,
        digest: &KeyDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PasswordReset>, StoreError> {
        let state = self.state();
        Ok(state
            .resets
            .iter()
            .find(|r| r.digest == *digest && r.used_at.is_none() && r.expires_at > now)
            .cloned())
    }

    async fn consume_reset(
        &self,
        digest: &KeyDigest,
        hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let mut state = self.state();
        let Some(reset) = state
            .resets
            .iter_mut()
            .find(|r| r.digest == *digest && r.used_at.is_none() && r.expires_at > now)
        else {
            return Ok(None);
        };
        reset.used_at = Some(now);
        let user_id = reset.user_id;
        let Some(user) = state.users.get_mut(&user_id) else { return Ok(None) };
        user.password_hash = Some(hash);
        // The link reached the mailbox: the address is proven.
        user.email_verified = true;
        user.session_version += 1;
        user.updated_at = now;
        let user = user.clone();
        void_resets(&mut state, user_id, now);
        Ok(Some(user))
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut state = self.state();
        let mut claimed = Vec::new();
        for message in state.outbox.iter_mut() {
            if claimed.len() >= limit as usize {
                break;
            }
            if message.status == DeliveryStatus::Pending && message.next_attempt_at <= now {
                message.next_attempt_at = lease_until;
                claimed.push(message.clone());
            }
        }
        Ok(claimed)
    }

    async fn mark_sent(&self, id: Uuid, _now: OffsetDateTime) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(message) = state.outbox.iter_mut().find(|m| m.id == id) {
            message.status = DeliveryStatus::Sent;
            message.message.text.clear();
            message.message.html.clear();
        }
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        attempts: i32,
        retry_at: Option<OffsetDateTime>,
        _error: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(message) = state.outbox.iter_mut().find(|m| m.id == id) {
            message.attempts = attempts;
            match retry_at {
                Some(at) => message.next_attempt_at = at,
                None => {
                    message.status = DeliveryStatus::Failed;
                    message.message.text.clear();
                    message.message.html.clear();
                }
            }
        }
        Ok(())
    }

    async fn find_message(&self, id: Uuid) -> Result<Option<OutboxMessage>, StoreError> {
        Ok(self.state().outbox.iter().find(|m| m.id == id).cloned())
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        Ok(self.state().outbox.iter().filter(|m| m.status == DeliveryStatus::Pending).count() as u64)
    }
}

#[async_trait]
impl OAuthIdentityRepository for MemoryStore {
    async fn find_identity(
        &self,
        provider: ProviderName,
        subject: &str,
    ) -> Result<Option<(OAuthIdentity, User)>, StoreError> {
        let state = self.state();
        Ok(state
            .identities
            .iter()
            .find(|i| i.provider == provider && i.subject == subject)
            .and_then(|i| state.users.get(&i.user_id).map(|u| (i.clone(), u.clone()))))
    }

    async fn link_identity(&self, identity: OAuthIdentity) -> Result<OAuthIdentity, StoreError> {
        let mut state = self.state();
        if state.identities.iter().any(|i| i.provider == identity.provider && i.subject == identity.subject) {
            return Err(StoreError::Conflict("identity"));
        }
        if !state.users.contains_key(&identity.user_id) {
            return Err(StoreError::NotFound);
        }
        state.identities.push(identity.clone());
        Ok(identity)
    }

    async fn create_user_with_identity(
        &self,
        user: NewUser,
        identity: OAuthIdentity,
    ) -> Result<User, StoreError> {
        let mut state = self.state();
        if state.by_email.contains_key(&user.email) {
            return Err(StoreError::Conflict("email"));
        }
        if state.identities.iter().any(|i| i.provider == identity.provider && i.subject == identity.subject) {
            return Err(StoreError::Conflict("identity"));
        }
        let user = user.into_user();
        state.by_email.insert(user.email.clone(), user.id);
        state.users.insert(user.id, user.clone());
        state.identities.push(identity);
        Ok(user)
    }

    async fn claim_account(
        &self,
        user: UserId,
        identity: OAuthIdentity,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let mut state = self.state();
        if state.identities.iter().any(|i| i.provider == identity.provider && i.subject == identity.subject) {
            return Err(StoreError::Conflict("identity"));
        }
        let Some(claimed) = state.users.get_mut(&user).filter(|u| !u.email_verified) else {
            return Ok(None);
        };
        claimed.password_hash = None;
        claimed.email_verified = true;
        claimed.mfa_enabled = false;
        claimed.session_version += 1;
        claimed.updated_at = now;
        let claimed = claimed.clone();
        for session in state.sessions.values_mut().filter(|s| s.user_id == user && s.ended_at.is_none()) {
            session.ended_at = Some(now);
        }
        for key in state.api_keys.values_mut().filter(|k| k.user_id == user) {
            key.revoked_at.get_or_insert(now);
        }
        void_resets(&mut state, user, now);
        void_verifications(&mut state, user, now);
        // A second factor the registrant set up goes too.
        state.totp.remove(&user);
        state.recovery_codes.retain(|c| c.user_id != user);
        state.challenges.retain(|c| c.user_id != user);
        state.identities.push(identity);
        Ok(Some(claimed))
    }

    async fn list_identities(&self, user: UserId) -> Result<Vec<OAuthIdentity>, StoreError> {
        let state = self.state();
        let mut identities: Vec<OAuthIdentity> =
            state.identities.iter().filter(|i| i.user_id == user).cloned().collect();
        identities.sort_by_key(|i| (i.created_at, i.id));
        Ok(identities)
    }

    async fn spend_state(&self, nonce: &str, expires_at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.spent_states.contains_key(nonce) {
            return Ok(false);
        }
        state.spent_states.insert(nonce.to_owned(), expires_at);
        Ok(true)
    }

    async fn purge_spent_states(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.state();
        let before = state.spent_states.len();
        state.spent_states.retain(|_, expires_at| *expires_at >= now);
        Ok((before - state.spent_states.len()) as u64)
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append(&self, event: AuditEvent) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.audit.contains_key(&event.id) {
            return Err(StoreError::Conflict("id"));
        }
        state.audit.insert(event.id, event);
        Ok(())
    }

    async fn list_events(&self, query: AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let state = self.state();
        let older = match query.before {
            Some(before) => state.audit.range(..before),
            None => state.audit.range(..),
        };
        Ok(older
            .rev()
            .map(|(_, event)| event)
            .filter(|e| query.user_id.is_none_or(|user| e.user_id == Some(user)))
            .filter(|e| query.kind.is_none_or(|kind| e.kind == kind))
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn prune_events(&self, before: OffsetDateTime, limit: u32) -> Result<u64, StoreError> {
        let mut state = self.state();
        let mut expired: Vec<(OffsetDateTime, Uuid)> =
            state.audit.values().filter(|e| e.at < before).map(|e| (e.at, e.id)).collect();
        expired.sort_unstable();
        expired.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        for (_, id) in &expired {
            state.audit.remove(id);
        }
        Ok(expired.len() as u64)
    }
}

#[async_trait]
impl SigningKeyRepository for MemoryStore {
    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        Ok(self.state().signing_keys.clone())
    }

    async fn insert_signing_key(&self, key: SigningKey) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.signing_keys.iter().any(|k| k.generation == key.generation || k.kid == key.kid) {
            return Ok(false);
        }
        state.signing_keys.push(key);
        Ok(true)
    }
}

#[async_trait]
impl SessionRepository for MemoryStore {
    async fn create_session(
        &self,
        session: Session,
        refresh: KeyDigest,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.sessions.contains_key(&session.id) || state.refresh.contains_key(&refresh.0) {
            return Err(StoreError::Conflict("session"));
        }
        if state.audit.contains_key(&event.id) {
            return Err(StoreError::Conflict("id"));
        }
        state.audit.insert(event.id, event);
        let token = RefreshRecord {
            digest: refresh,
            session_id: session.id,
            issued_at: session.created_at,
            spent_at: None,
        };
        state.refresh.insert(refresh.0, token);
        state.sessions.insert(session.id, session);
        Ok(())
    }

    async fn find_refresh(&self, digest: &KeyDigest) -> Result<Option<RefreshLookup>, StoreError> {
        let state = self.state();
        Ok(state.refresh.get(&digest.0).and_then(|token| {
            let session = state.sessions.get(&token.session_id)?;
            let user = state.users.get(&session.user_id)?;
            Some(RefreshLookup { token: token.clone(), session: session.clone(), user: user.clone() })
        }))
    }

    async fn rotate_refresh(
        &self,
        presented: &KeyDigest,
        next: KeyDigest,
        now: OffsetDateTime,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(token) = state.refresh.get(&presented.0).filter(|t| t.spent_at.is_none()).cloned() else {
            return Ok(false);
        };
        let live = state.sessions.get(&token.session_id).is_some_and(|s| s.ended_at.is_none());
        if !live {
            return Ok(false);
        }
        if state.audit.contains_key(&event.id) {
            return Err(StoreError::Conflict("id"));
        }
        if let Some(spent) = state.refresh.get_mut(&presented.0) {
            spent.spent_at = Some(now);
        }
        state.refresh.insert(
            next.0,
            RefreshRecord { digest: next, session_id: token.session_id, issued_at: now, spent_at: None },
        );
        if let Some(session) = state.sessions.get_mut(&token.session_id) {
            session.last_used_at = now;
        }
        state.audit.insert(event.id, event);
        Ok(true)
    }

    async fn replace_refresh(
        &self,
        session: SessionId,
        next: KeyDigest,
        now: OffsetDateTime,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let live = state.sessions.get(&session).is_some_and(|s| s.ended_at.is_none());
        if !live {
            return Ok(false);
        }
        if state.audit.contains_key(&event.id) {
            return Err(StoreError::Conflict("id"));
        }
        if let Some(live) = state.sessions.get_mut(&session) {
            live.last_used_at = now;
        }
        state.audit.insert(event.id, event);
        for token in state.refresh.values_mut() {
            if token.session_id == session && token.spent_at.is_none() {
                token.spent_at = Some(now);
            }
        }
        state.refresh.insert(
            next.0,
            RefreshRecord { digest: next, session_id: session, issued_at: now, spent_at: None },
        );
        Ok(true)
    }

    async fn find_session_by_id(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        Ok(self.state().sessions.get(&id).cloned())
    }

    async fn list_sessions(&self, user: UserId, now: OffsetDateTime) -> Result<Vec<Session>, StoreError> {
        let mut live: Vec<Session> = self
            .state()
            .sessions
            .values()
            .filter(|s| s.user_id == user && s.ended_at.is_none() && s.expires_at > now)
            .cloned()
            .collect();
        live.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        Ok(live)
    }

    async fn end_session(&self, id: SessionId, now: OffsetDateTime) -> Result<bool, StoreError> {
        Ok(match self.state().sessions.get_mut(&id) {
            Some(session) if session.ended_at.is_none() => {
                session.ended_at = Some(now);
                true
            }
            _ => false,
        })
    }

    async fn end_sessions(
        &self,
        user: UserId,
        except: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut ended = 0;
        for session in self.state().sessions.values_mut() {
            if session.user_id == user && session.ended_at.is_none() && Some(session.id) != except {
                session.ended_at = Some(now);
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn purge_sessions(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.state();
        let gone: HashSet<SessionId> = state
            .sessions
            .values()
            .filter(|s| s.ended_at.is_some_and(|at| at < before) || s.expires_at < before)
            .map(|s| s.id)
            .collect();
        state.sessions.retain(|id, _| !gone.contains(id));
        state.refresh.retain(|_, token| !gone.contains(&token.session_id));
        Ok(gone.len() as u64)
    }
}

#[async_trait]
impl HotReads for MemoryStore {
    async fn find_session(
        &self,
        id: UserId,
        jti: Uuid,
        sid: Option<SessionId>,
    ) -> Result<Option<SessionLookup>, StoreError> {
        let state = self.state();
        let Some(user) = state.users.get(&id) else { return Ok(None) };
        let mut linked: Vec<ProviderName> =
            state.identities.iter().filter(|i| i.user_id == id).map(|i| i.provider.clone()).collect();
        linked.sort_unstable();
        linked.dedup();
        let session_ended =
            sid.is_some_and(|sid| state.sessions.get(&sid).is_none_or(|session| session.ended_at.is_some()));
        Ok(Some(SessionLookup {
            user: user.clone(),
            revoked: state.revoked.contains_key(&jti),
            session_ended,
            linked,
        }))
    }

    async fn find_key_with_owner(&self, digest: &KeyDigest) -> Result<Option<(ApiKey, User)>, StoreError> {
        let state = self.state();
        Ok(state
            .api_keys
            .values()
            .find(|k| k.digest == *digest)
            .and_then(|k| state.users.get(&k.user_id).map(|u| (k.clone(), u.clone()))))
    }

    async fn list_projects(
        &self,
        user: UserId,
        environment: Environment,
    ) -> Result<Vec<Project>, StoreError> {
        let state = self.state();
        let mut projects: Vec<Project> = state
            .projects
            .iter()
            .filter(|p| p.user_id == user && p.environment == environment)
            .cloned()
            .collect();
        projects.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
        Ok(projects)
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
