//! The ports of [`SqliteStore`]: each call runs [`Queries`] detached from the
//! caller's future (see `SqliteStore`'s docs for why).

use async_trait::async_trait;
use portcullis_domain::ports::{
    ApiKeyRepository, AuditLog, OAuthIdentityRepository, Outbox, PasswordResetRepository, PoolUsage,
    ProjectRepository, RevokedTokenRepository, StoreHealth, UserRepository,
};
use portcullis_domain::{
    ApiKey, ApiKeyId, AuditEvent, AuditQuery, Email, Environment, KeyDigest, KeyUsage, NewUser,
    OAuthIdentity, OAuthProviderKind, OutboxMessage, PasswordHash, PasswordReset, Project, ResetBudget,
    ResetRequest, Role, SessionLookup, StoreError, User, UserId,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::SqliteStore;

#[async_trait]
impl UserRepository for SqliteStore {
    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        self.write(|q| async move { q.create(user).await }).await
    }

    async fn find_session(&self, id: UserId, jti: Uuid) -> Result<Option<SessionLookup>, StoreError> {
        self.detached(|q| async move { q.find_session(id, jti).await }).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.detached(|q| async move { q.find_by_id(id).await }).await
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let email = email.clone();
        self.detached(|q| async move { q.find_by_email(&email).await }).await
    }

    async fn set_role(&self, id: UserId, role: Role, now: OffsetDateTime) -> Result<User, StoreError> {
        self.write(|q| async move { q.set_role(id, role, now).await }).await
    }

    async fn list_users(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError> {
        self.detached(|q| async move { q.list_users(limit, offset).await }).await
    }

    async fn set_active(&self, id: UserId, active: bool, now: OffsetDateTime) -> Result<User, StoreError> {
        self.write(|q| async move { q.set_active(id, active, now).await }).await
    }

    async fn rehash_password(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: PasswordHash,
    ) -> Result<bool, StoreError> {
        let old = old.clone();
        self.write(|q| async move { q.rehash_password(id, &old, new).await }).await
    }

    async fn set_password(
        &self,
        id: UserId,
        hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        self.write(|q| async move { q.set_password(id, hash, now).await }).await
    }
}

#[async_trait]
impl RevokedTokenRepository for SqliteStore {
    async fn revoke(
        &self,
        jti: Uuid,
        user_id: UserId,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.write(|q| async move { q.revoke(jti, user_id, expires_at).await }).await
    }

    async fn is_revoked(&self, jti: Uuid) -> Result<bool, StoreError> {
        self.detached(|q| async move { q.is_revoked(jti).await }).await
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.write(|q| async move { q.purge_expired(now).await }).await
    }
}

#[async_trait]
impl ApiKeyRepository for SqliteStore {
    async fn insert_key(&self, key: ApiKey) -> Result<ApiKey, StoreError> {
        self.write(|q| async move { q.insert_key(key).await }).await
    }

    async fn find_key_with_owner(&self, digest: &KeyDigest) -> Result<Option<(ApiKey, User)>, StoreError> {
        let digest = *digest;
        self.detached(|q| async move { q.find_key_with_owner(&digest).await }).await
    }

    async fn list_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError> {
        self.detached(|q| async move { q.list_keys(user).await }).await
    }

    async fn revoke_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        now: OffsetDateTime,
    ) -> Result<ApiKey, StoreError> {
        self.write(|q| async move { q.revoke_key(user, id, now).await }).await
    }

    async fn remember_key_ip(&self, id: ApiKeyId, ip: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let ip = ip.to_owned();
        self.write(|q| async move { q.remember_key_ip(id, &ip, now).await }).await
    }

    async fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<(), StoreError> {
        let usage = usage.to_vec();
        self.write(|q| async move { q.record_key_usage(&usage).await }).await
    }
}

#[async_trait]
impl ProjectRepository for SqliteStore {
    async fn insert_project(&self, project: Project) -> Result<Project, StoreError> {
        self.write(|q| async move { q.insert_project(project).await }).await
    }

    async fn list_projects(
        &self,
        user: UserId,
        environment: Environment,
    ) -> Result<Vec<Project>, StoreError> {
        self.detached(|q| async move { q.list_projects(user, environment).await }).await
    }
}

#[async_trait]
impl PasswordResetRepository for SqliteStore {
    async fn request_reset(&self, request: ResetRequest) -> Result<(), StoreError> {
        self.write(|q| async move { q.request_reset(request).await }).await
    }

    async fn claim_reset_requests(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ResetRequest>, StoreError> {
        self.write(|q| async move { q.claim_reset_requests(now, lease_until, limit).await }).await
    }

    async fn drop_reset_request(&self, id: Uuid) -> Result<(), StoreError> {
        self.write(|q| async move { q.drop_reset_request(id).await }).await
    }

    async fn issue_reset(
        &self,
        request: Uuid,
        reset: PasswordReset,
        email: OutboxMessage,
        budget: ResetBudget,
    ) -> Result<bool, StoreError> {
        self.write(|q| async move { q.issue_reset(request, reset, email, budget).await }).await
    }

    async fn find_valid_reset(
        &self,
        digest: &KeyDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PasswordReset>, StoreError> {
        let digest = *digest;
        self.detached(|q| async move { q.find_valid_reset(&digest, now).await }).await
    }

    async fn consume_reset(
        &self,
        digest: &KeyDigest,
        hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let digest = *digest;
        self.write(|q| async move { q.consume_reset(&digest, hash, now).await }).await
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.write(|q| async move { q.claim_due(now, lease_until, limit).await }).await
    }

    async fn mark_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError> {
        self.write(|q| async move { q.mark_sent(id, now).await }).await
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        attempts: i32,
        retry_at: Option<OffsetDateTime>,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.write(|q| async move { q.mark_failed(id, attempts, retry_at, &error).await }).await
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        self.detached(|q| async move { q.pending_count().await }).await
    }

    async fn find_message(&self, id: Uuid) -> Result<Option<OutboxMessage>, StoreError> {
        self.detached(|q| async move { q.find_message(id).await }).await
    }
}

#[async_trait]
impl OAuthIdentityRepository for SqliteStore {
    async fn find_identity(
        &self,
        provider: OAuthProviderKind,
        subject: &str,
    ) -> Result<Option<(OAuthIdentity, User)>, StoreError> {
        let subject = subject.to_owned();
        self.detached(|q| async move { q.find_identity(provider, &subject).await }).await
    }

    async fn link_identity(&self, identity: OAuthIdentity) -> Result<OAuthIdentity, StoreError> {
        self.write(|q| async move { q.link_identity(identity).await }).await
    }

    async fn create_user_with_identity(
        &self,
        user: NewUser,
        identity: OAuthIdentity,
    ) -> Result<User, StoreError> {
        self.write(|q| async move { q.create_user_with_identity(user, identity).await }).await
    }

    async fn list_identities(&self, user: UserId) -> Result<Vec<OAuthIdentity>, StoreError> {
        self.detached(|q| async move { q.list_identities(user).await }).await
    }

    async fn spend_state(&self, nonce: &str, expires_at: OffsetDateTime) -> Result<bool, StoreError> {
        let nonce = nonce.to_owned();
        self.write(|q| async move { q.spend_state(&nonce, expires_at).await }).await
    }

    async fn purge_spent_states(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.write(|q| async move { q.purge_spent_states(now).await }).await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.write(|q| async move { q.append(event).await }).await
    }

    async fn list_events(&self, query: AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        self.detached(|q| async move { q.list_events(query).await }).await
    }

    async fn prune_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.write(|q| async move { q.prune_events(before).await }).await
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.detached(|q| async move { q.ping().await }).await
    }

    fn pool_usage(&self) -> Option<PoolUsage> {
        Some(self.queries.usage())
    }
}
