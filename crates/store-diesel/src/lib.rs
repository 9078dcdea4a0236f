//! The code Portcullis's two diesel stores have in common.
//!
//! diesel-async has no `MultiConnection`, so `store-sqlite` and
//! `store-postgres` are separate crates with their own `schema.rs`, pools and
//! migrations. Their queries, though, are the same line for line: they live
//! here once, as [`diesel_repositories!`], expanded in each store against its
//! own schema and connection. Also here: a UUID column type that is native on
//! PostgreSQL and text on SQLite, and the mapping of diesel errors onto the
//! domain's `StoreError`.
//!
//! This crate depends on diesel and the domain only; no async runtime.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod error;
mod uuid_column;

pub use error::{pool_error, query_error};
pub use uuid_column::DbUuid;

use portcullis_domain::{
    ApiKey, ApiKeyId, AuditEvent, AuditKind, DeliveryStatus, Email, EmailVerification, Environment, FullName,
    KeyDigest, MailMessage, MfaChallenge, OAuthIdentity, OutboxMessage, PasswordHash, PasswordReset, Project,
    ProviderName, RecoveryCode, RefreshRecord, RequestContext, ResetRequest, ResourceName, Role, Session,
    SessionId, SignInMethod, SigningAlgorithm, SigningKey, StoreError, TotpFactor, User, UserId,
};
use time::OffsetDateTime;

/// A user row as both backends store it, before it is trusted as a [`User`].
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: DbUuid,
    pub email: String,
    pub full_name: Option<String>,
    pub password_hash: Option<String>,
    pub role: String,
    pub is_active: bool,
    pub session_version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub email_verified: bool,
    pub mfa_enabled: bool,
}

impl From<User> for UserRecord {
    fn from(user: User) -> Self {
        Self {
            id: DbUuid(user.id.as_uuid()),
            email: user.email.as_str().to_owned(),
            full_name: user.full_name.map(|n| n.as_str().to_owned()),
            password_hash: user.password_hash.map(|h| h.as_str().to_owned()),
            role: user.role.as_str().to_owned(),
            is_active: user.is_active,
            session_version: user.session_version,
            created_at: user.created_at,
            updated_at: user.updated_at,
            email_verified: user.email_verified,
            mfa_enabled: user.mfa_enabled,
        }
    }
}

impl TryFrom<UserRecord> for User {
    type Error = StoreError;

    /// A row that breaks the model's rules was not written by us: it is
    /// reported as a store fault rather than trusted.
    fn try_from(row: UserRecord) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Unavailable(format!("corrupt user row {}: {what}", row.id.0));
        Ok(Self {
            id: UserId::from_uuid(row.id.0),
            email: Email::parse(&row.email).map_err(|_| corrupt("email"))?,
            full_name: match row.full_name.as_deref() {
                Some(name) => FullName::parse(name).map_err(|_| corrupt("full_name"))?,
                None => None,
            },
            password_hash: row.password_hash.clone().map(PasswordHash::new),
            role: row.role.parse::<Role>().map_err(|_| corrupt("role"))?,
            is_active: row.is_active,
            email_verified: row.email_verified,
            mfa_enabled: row.mfa_enabled,
            session_version: row.session_version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An API key row as both backends store it.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub name: String,
    pub environment: String,
    pub key_digest: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub usage_count: i64,
}

impl From<ApiKey> for ApiKeyRecord {
    fn from(key: ApiKey) -> Self {
        Self {
            id: DbUuid(key.id.as_uuid()),
            user_id: DbUuid(key.user_id.as_uuid()),
            name: key.name.as_str().to_owned(),
            environment: key.environment.as_str().to_owned(),
            key_digest: key.digest.0.to_vec(),
            created_at: key.created_at,
            expires_at: whole_seconds(key.expires_at),
            revoked_at: key.revoked_at.map(whole_seconds),
            last_used_at: key.last_used_at.map(whole_seconds),
            usage_count: key.usage_count,
        }
    }
}

impl TryFrom<ApiKeyRecord> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRecord) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Unavailable(format!("corrupt api_keys row {}: {what}", row.id.0));
        Ok(Self {
            id: ApiKeyId::from_uuid(row.id.0),
            user_id: UserId::from_uuid(row.user_id.0),
            name: ResourceName::parse(&row.name).map_err(|_| corrupt("name"))?,
            environment: row.environment.parse::<Environment>().map_err(|()| corrupt("environment"))?,
            digest: KeyDigest(row.key_digest.as_slice().try_into().map_err(|_| corrupt("key_digest"))?),
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
            usage_count: row.usage_count,
        })
    }
}

/// A project row as both backends store it.
#[derive(Debug, Clone)]
pub struct ProjectRecord {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub name: String,
    pub environment: String,
    pub created_at: OffsetDateTime,
}

impl From<Project> for ProjectRecord {
    fn from(p: Project) -> Self {
        Self {
            id: DbUuid(p.id),
            user_id: DbUuid(p.user_id.as_uuid()),
            name: p.name.as_str().to_owned(),
            environment: p.environment.as_str().to_owned(),
            created_at: p.created_at,
        }
    }
}

impl TryFrom<ProjectRecord> for Project {
    type Error = StoreError;

    fn try_from(row: ProjectRecord) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Unavailable(format!("corrupt projects row {}: {what}", row.id.0));
        Ok(Self {
            id: row.id.0,
            user_id: UserId::from_uuid(row.user_id.0),
            name: ResourceName::parse(&row.name).map_err(|_| corrupt("name"))?,
            environment: row.environment.parse::<Environment>().map_err(|()| corrupt("environment"))?,
            created_at: row.created_at,
        })
    }
}

/// A password-reset row as both backends store it.
#[derive(Debug, Clone)]
pub struct ResetRecord {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub token_digest: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

impl From<PasswordReset> for ResetRecord {
    fn from(r: PasswordReset) -> Self {
        Self {
            id: DbUuid(r.id),
            user_id: DbUuid(r.user_id.as_uuid()),
            token_digest: r.digest.0.to_vec(),
            created_at: r.created_at,
            expires_at: whole_seconds(r.expires_at),
            used_at: r.used_at.map(whole_seconds),
        }
    }
}

impl TryFrom<ResetRecord> for PasswordReset {
    type Error = StoreError;

    fn try_from(row: ResetRecord) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Unavailable(format!("corrupt password_resets row {}: {what}", row.id.0));
        Ok(Self {
            id: row.id.0,
            user_id: UserId::from_uuid(row.user_id.0),
            digest: KeyDigest(row.token_digest.as_slice().try_into().map_err(|_| corrupt("token_digest"))?),
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

/// An email-verification row: the same columns as a password reset's.
impl From<EmailVerification> for ResetRecord {
    fn from(v: EmailVerification) -> Self {
        Self {
            id: DbUuid(v.id),
            user_id: DbUuid(v.user_id.as_uuid()),
            token_digest: v.digest.0.to_vec(),
            created_at: whole_seconds(v.created_at),
            expires_at: whole_seconds(v.expires_at),
            used_at: v.used_at.map(whole_seconds),
        }
    }
}

impl TryFrom<ResetRecord> for EmailVerification {
    type Error = StoreError;

    fn try_from(row: ResetRecord) -> Result<Self, StoreError> {
        let digest = row.token_digest.as_slice().try_into().map_err(|_| {
            StoreError::Unavailable(format!("corrupt email_verifications row {}: token_digest", row.id.0))
        })?;
        Ok(Self {
            id: row.id.0,
            user_id: UserId::from_uuid(row.user_id.0),
            digest: KeyDigest(digest),
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

/// A TOTP factor row as both backends store it.
#[derive(Debug, Clone)]
pub struct TotpRecord {
    pub user_id: DbUuid,
    pub sealed_secret: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub confirmed_at: Option<OffsetDateTime>,
    pub last_step: Option<i64>,
}

impl From<TotpFactor> for TotpRecord {
    fn from(f: TotpFactor) -> Self {
        Self {
            user_id: DbUuid(f.user_id.as_uuid()),
            sealed_secret: f.sealed_secret,
            created_at: whole_seconds(f.created_at),
            confirmed_at: f.confirmed_at.map(whole_seconds),
            last_step: f.last_step,
        }
    }
}

impl TryFrom<TotpRecord> for TotpFactor {
    type Error = StoreError;

    fn try_from(row: TotpRecord) -> Result<Self, StoreError> {
        Ok(Self {
            user_id: UserId::from_uuid(row.user_id.0),
            sealed_secret: row.sealed_secret,
            created_at: row.created_at,
            confirmed_at: row.confirmed_at,
            last_step: row.last_step,
        })
    }
}

/// A recovery-code row as both backends store it.
#[derive(Debug, Clone)]
pub struct RecoveryCodeRecord {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub code_digest: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

impl From<RecoveryCode> for RecoveryCodeRecord {
    fn from(c: RecoveryCode) -> Self {
        Self {
            id: DbUuid(c.id),
            user_id: DbUuid(c.user_id.as_uuid()),
            code_digest: c.digest.0.to_vec(),
            created_at: whole_seconds(c.created_at),
            used_at: c.used_at.map(whole_seconds),
        }
    }
}

impl TryFrom<RecoveryCodeRecord> for RecoveryCode {
    type Error = StoreError;

    fn try_from(row: RecoveryCodeRecord) -> Result<Self, StoreError> {
        let digest = row.code_digest.as_slice().try_into().map_err(|_| {
            StoreError::Unavailable(format!("corrupt recovery_codes row {}: code_digest", row.id.0))
        })?;
        Ok(Self {
            id: row.id.0,
            user_id: UserId::from_uuid(row.user_id.0),
            digest: KeyDigest(digest),
            created_at: row.created_at,
            used_at: row.used_at,
        })
    }
}

/// A sign-in waiting for its second factor, as both backends store it.
#[derive(Debug, Clone)]
pub struct ChallengeRecord {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub token_digest: Vec<u8>,
    pub method: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub failures: i32,
    pub used_at: Option<OffsetDateTime>,
}

impl From<MfaChallenge> for ChallengeRecord {
    fn from(c: MfaChallenge) -> Self {
        Self {
            id: DbUuid(c.id),
            user_id: DbUuid(c.user_id.as_uuid()),
            token_digest: c.digest.0.to_vec(),
            method: c.method.as_str().to_owned(),
            created_at: whole_seconds(c.created_at),
            expires_at: whole_seconds(c.expires_at),
            failures: c.failures,
            used_at: c.used_at.map(whole_seconds),
        }
    }
}

impl TryFrom<ChallengeRecord> for MfaChallenge {
    type Error = StoreError;

    fn try_from(row: ChallengeRecord) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Unavailable(format!("corrupt mfa_challenges row {}: {what}", row.id.0));
        Ok(Self {
            id: row.id.0,
            user_id: UserId::from_uuid(row.user_id.0),
            digest: KeyDigest(row.token_digest.as_slice().try_into().map_err(|_| corrupt("token_digest"))?),
            method: SignInMethod::parse(&row.method).map_err(|_| corrupt("method"))?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            failures: row.failures,
            used_at: row.used_at,
        })
    }
}

/// A session row as both backends store it.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub auth_time: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub method: String,
    pub mfa: bool,
    pub ended_at: Option<OffsetDateTime>,
}

impl From<Session> for SessionRecord {
    fn from(s: Session) -> Self {
        Self {
            id: DbUuid(s.id.as_uuid()),
            user_id: DbUuid(s.user_id.as_uuid()),
            created_at: whole_seconds(s.created_at),
            last_used_at: whole_seconds(s.last_used_at),
            expires_at: whole_seconds(s.expires_at),
            auth_time: whole_seconds(s.auth_time),
            ip: s.ip,
            user_agent: s.user_agent,
            method: s.method.as_str().to_owned(),
            mfa: s.mfa,
            ended_at: s.ended_at.map(whole_seconds),
        }
    }
}

impl TryFrom<SessionRecord> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRecord) -> Result<Self, StoreError> {
        Ok(Self {
            id: SessionId::from_uuid(row.id.0),
            user_id: UserId::from_uuid(row.user_id.0),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            auth_time: row.auth_time,
            ip: row.ip,
            user_agent: row.user_agent,
            method: SignInMethod::parse(&row.method)
                .map_err(|_| StoreError::Unavailable(format!("corrupt sessions row {}: method", row.id.0)))?,
            mfa: row.mfa,
            ended_at: row.ended_at,
        })
    }
}

/// A signing-key row as both backends store it.
#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub generation: i64,
    pub algorithm: String,
    pub public_jwk: String,
    pub sealed_private: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub activates_at: OffsetDateTime,
}

impl From<SigningKey> for SigningKeyRecord {
    fn from(k: SigningKey) -> Self {
        Self {
            kid: k.kid,
            generation: k.generation,
            algorithm: k.algorithm.as_str().to_owned(),
            public_jwk: k.public_jwk,
            sealed_private: k.sealed_private,
            created_at: whole_seconds(k.created_at),
            activates_at: whole_seconds(k.activates_at),
        }
    }
}

impl TryFrom<SigningKeyRecord> for SigningKey {
    type Error = StoreError;

    fn try_from(row: SigningKeyRecord) -> Result<Self, StoreError> {
        Ok(Self {
            algorithm: SigningAlgorithm::parse(&row.algorithm).map_err(|_| {
                StoreError::Unavailable(format!("corrupt signing_keys row {}: algorithm", row.kid))
            })?,
            kid: row.kid,
            generation: row.generation,
            public_jwk: row.public_jwk,
            sealed_private: row.sealed_private,
            created_at: row.created_at,
            activates_at: row.activates_at,
        })
    }
}

/// A refresh-token row as both backends store it.
#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub digest: Vec<u8>,
    pub session_id: DbUuid,
    pub issued_at: OffsetDateTime,
    pub spent_at: Option<OffsetDateTime>,
}

impl From<RefreshRecord> for RefreshTokenRecord {
    fn from(r: RefreshRecord) -> Self {
        Self {
            digest: r.digest.0.to_vec(),
            session_id: DbUuid(r.session_id.as_uuid()),
            issued_at: whole_seconds(r.issued_at),
            spent_at: r.spent_at.map(whole_seconds),
        }
    }
}

impl TryFrom<RefreshTokenRecord> for RefreshRecord {
    type Error = StoreError;

    fn try_from(row: RefreshTokenRecord) -> Result<Self, StoreError> {
        let digest = row.digest.as_slice().try_into().map_err(|_| {
            StoreError::Unavailable(format!(
                "corrupt refresh_tokens row of session {}: digest",
                row.session_id.0
            ))
        })?;
        Ok(Self {
            digest: KeyDigest(digest),
            session_id: SessionId::from_uuid(row.session_id.0),
            issued_at: row.issued_at,
            spent_at: row.spent_at,
        })
    }
}

/// An outbox row as both backends store it.
#[derive(Debug, Clone)]
pub struct OutboxRecord {
    pub id: DbUuid,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

impl From<OutboxMessage> for OutboxRecord {
    fn from(m: OutboxMessage) -> Self {
        Self {
            id: DbUuid(m.id),
            recipient: m.message.to.as_str().to_owned(),
            subject: m.message.subject,
            body_text: m.message.text,
            body_html: m.message.html,
            status: m.status.as_str().to_owned(),
            attempts: m.attempts,
            next_attempt_at: whole_seconds(m.next_attempt_at),
            created_at: m.created_at,
        }
    }
}

impl TryFrom<OutboxRecord> for OutboxMessage {
    type Error = StoreError;

    fn try_from(row: OutboxRecord) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Unavailable(format!("corrupt outbox row {}: {what}", row.id.0));
        Ok(Self {
            id: row.id.0,
            message: MailMessage {
                to: Email::parse(&row.recipient).map_err(|_| corrupt("recipient"))?,
                subject: row.subject,
                text: row.body_text,
                html: row.body_html,
            },
            status: row.status.parse::<DeliveryStatus>().map_err(|()| corrupt("status"))?,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
        })
    }
}

/// A queued forgot-password request as both backends store it.
#[derive(Debug, Clone)]
pub struct ResetRequestRecord {
    pub id: DbUuid,
    pub email: String,
    pub requested_at: OffsetDateTime,
    pub next_attempt_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl From<ResetRequest> for ResetRequestRecord {
    fn from(r: ResetRequest) -> Self {
        Self {
            id: DbUuid(r.id),
            email: r.email.as_str().to_owned(),
            requested_at: whole_seconds(r.requested_at),
            next_attempt_at: whole_seconds(r.requested_at),
            ip: r.context.ip,
            user_agent: r.context.user_agent,
            request_id: r.context.request_id,
        }
    }
}

impl TryFrom<ResetRequestRecord> for ResetRequest {
    type Error = StoreError;

    fn try_from(row: ResetRequestRecord) -> Result<Self, StoreError> {
        let email = Email::parse(&row.email).map_err(|_| {
            StoreError::Unavailable(format!("corrupt password_reset_requests row {}: email", row.id.0))
        })?;
        let context = RequestContext { ip: row.ip, user_agent: row.user_agent, request_id: row.request_id };
        Ok(Self { id: row.id.0, email, requested_at: row.requested_at, context })
    }
}

/// A linked provider account as both backends store it.
#[derive(Debug, Clone)]
pub struct IdentityRecord {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub created_at: OffsetDateTime,
}

impl From<OAuthIdentity> for IdentityRecord {
    fn from(i: OAuthIdentity) -> Self {
        Self {
            id: DbUuid(i.id),
            user_id: DbUuid(i.user_id.as_uuid()),
            provider: i.provider.as_str().to_owned(),
            subject: i.subject,
            email: i.email.map(|e| e.as_str().to_owned()),
            email_verified: i.email_verified,
            created_at: i.created_at,
        }
    }
}

impl TryFrom<IdentityRecord> for OAuthIdentity {
    type Error = StoreError;

    fn try_from(row: IdentityRecord) -> Result<Self, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Unavailable(format!("corrupt oauth_identities row {}: {what}", row.id.0))
        };
        Ok(Self {
            id: row.id.0,
            user_id: UserId::from_uuid(row.user_id.0),
            provider: ProviderName::parse(&row.provider).map_err(|_| corrupt("provider"))?,
            subject: row.subject,
            email: row.email.as_deref().map(Email::parse).transpose().map_err(|_| corrupt("email"))?,
            email_verified: row.email_verified,
            created_at: row.created_at,
        })
    }
}

/// An audit event row as both backends store it.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: DbUuid,
    pub at: OffsetDateTime,
    pub kind: String,
    pub user_id: Option<DbUuid>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl From<AuditEvent> for AuditRecord {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: DbUuid(event.id),
            at: whole_seconds(event.at),
            kind: event.kind.as_str().to_owned(),
            user_id: event.user_id.map(|u| DbUuid(u.as_uuid())),
            detail: event.detail,
            ip: event.ip,
            user_agent: event.user_agent,
            request_id: event.request_id,
        }
    }
}

impl TryFrom<AuditRecord> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditRecord) -> Result<Self, StoreError> {
        let kind = row
            .kind
            .parse::<AuditKind>()
            .map_err(|()| StoreError::Unavailable(format!("corrupt audit_events row {}: kind", row.id.0)))?;
        Ok(Self {
            id: row.id.0,
            at: row.at,
            kind,
            user_id: row.user_id.map(|u| UserId::from_uuid(u.0)),
            detail: row.detail,
            ip: row.ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
        })
    }
}

/// Whether a query only reads or also writes. SQLite takes one writer at a
/// time, so its store queues the writes; each query says which it is, next
/// to its SQL in [`diesel_repositories!`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Declares a diesel row struct for `$table` with the fields of `$record`,
/// and conversions both ways through the record.
#[doc(hidden)]
#[macro_export]
macro_rules! diesel_row {
    ($row:ident, $table:ident, $record:ident, $domain:ident, { $($field:ident: $ty:ty),* $(,)? }) => {
        #[derive(Queryable, Selectable, Insertable)]
        // `None` is inserted as NULL, not as DEFAULT (every nullable column
        // defaults to NULL anyway). With DEFAULT the SQL depends on which
        // fields are set, so diesel prepares the insert again on every call
        // instead of reusing the connection's prepared statement.
        #[diesel(table_name = $table, treat_none_as_default_value = false)]
        struct $row {
            $($field: $ty),*
        }

        impl From<$domain> for $row {
            fn from(value: $domain) -> Self {
                let r = $record::from(value);
                Self { $($field: r.$field),* }
            }
        }

        impl TryFrom<$row> for $domain {
            type Error = StoreError;

            fn try_from(r: $row) -> Result<Self, StoreError> {
                $domain::try_from($record { $($field: r.$field),* })
            }
        }
    };
}

/// Makes `$statement` (a struct whose `QueryFragment<Pg>` writes out one
/// PostgreSQL statement returning a count) a query diesel can run. Written
/// out rather than through `sql_query`, the connection keeps it prepared
/// (`sql_query` is parsed and planned on every call).
#[doc(hidden)]
#[macro_export]
macro_rules! counting_statement {
    ($statement:ident) => {
        impl diesel::query_builder::QueryId for $statement {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }

        impl diesel::query_builder::Query for $statement {
            type SqlType = diesel::sql_types::BigInt;
        }
    };
}

/// Writes `, recorded AS (INSERT INTO audit_events ... SELECT <the event's
/// values> FROM $from)` into a statement of data-modifying CTEs: the audit
/// event is stored once per row of `$from` (one, or none when the write it
/// records did not happen).
#[doc(hidden)]
#[macro_export]
macro_rules! push_audit_event {
    ($out:ident, $event:expr, $from:literal) => {{
        use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
        let event = $event;
        $out.push_sql(
            ", recorded AS (INSERT INTO audit_events (id, at, kind, user_id, detail, ip, user_agent, request_id) SELECT ",
        );
        $out.push_bind_param::<SqlUuid, _>(&event.id)?;
        $out.push_sql(", ");
        $out.push_bind_param::<Timestamptz, _>(&event.at)?;
        $out.push_sql(", ");
        $out.push_bind_param::<Text, _>(&event.kind)?;
        $out.push_sql(", ");
        $out.push_bind_param::<Nullable<SqlUuid>, _>(&event.user_id)?;
        for text in [&event.detail, &event.ip, &event.user_agent, &event.request_id] {
            $out.push_sql(", ");
            $out.push_bind_param::<Nullable<Text>, _>(text)?;
        }
        $out.push_sql(concat!(" FROM ", $from, ")"));
    }};
}

/// The body of `rotate_refresh` in `diesel_repositories!`, by backend: the
/// exchange of a refresh token is the hot write of a busy service.
///
/// - `transaction` (SQLite): `BEGIN`, the conditional spend, the next token,
///   the session's `last_used_at`, the audit event, `COMMIT`, every
///   statement kept prepared. The statements run on the writer's own thread
///   and connection, so this is cheap.
/// - `one_statement`: the same four writes as one statement of
///   data-modifying CTEs (PostgreSQL), one round trip and one commit instead
///   of six statements: under 16 concurrent exchanges PostgreSQL's own CPU,
///   not the service's, was the limit. Atomic as any single statement;
///   of concurrent spends of one token, the row lock lets one through and the
///   others re-check `spent_at IS NULL` and find nothing.
#[doc(hidden)]
#[macro_export]
macro_rules! rotate_refresh_query {
    (transaction, $conn:ident, $presented:ident, $next:ident, $now:ident, $event:ident) => {{
        use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
        use diesel::sql_types::{Binary, Text, TimestamptzSqlite};
        use diesel::sqlite::Sqlite;

        // diesel's own UPDATE is never kept prepared (a changeset's SQL may
        // vary), so the two updates of the exchange are written out: the
        // writer connection keeps them prepared.

        /// Spends the token only if unspent and its session not ended: the
        /// one conditional write that decides. A correlated EXISTS on the
        /// session's key: `session_id IN (SELECT id FROM live sessions)` made
        /// SQLite list every live session on each refresh.
        struct Spend {
            presented: Vec<u8>,
            now: OffsetDateTime,
        }

        impl QueryId for Spend {
            type QueryId = Self;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl Query for Spend {
            type SqlType = Text;
        }

        impl QueryFragment<Sqlite> for Spend {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> diesel::QueryResult<()> {
                out.push_sql("UPDATE refresh_tokens SET spent_at = ");
                out.push_bind_param::<TimestamptzSqlite, _>(&self.now)?;
                out.push_sql(" WHERE digest = ");
                out.push_bind_param::<Binary, _>(&self.presented)?;
                out.push_sql(
                    " AND spent_at IS NULL AND EXISTS (SELECT 1 FROM sessions WHERE sessions.id = \
                     refresh_tokens.session_id AND sessions.ended_at IS NULL) RETURNING session_id",
                );
                Ok(())
            }
        }

        /// The session's last use.
        struct Touch {
            session: DbUuid,
            now: OffsetDateTime,
        }

        impl QueryId for Touch {
            type QueryId = Self;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl QueryFragment<Sqlite> for Touch {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> diesel::QueryResult<()> {
                out.push_sql("UPDATE sessions SET last_used_at = ");
                out.push_bind_param::<TimestamptzSqlite, _>(&self.now)?;
                out.push_sql(" WHERE id = ");
                out.push_bind_param::<Text, _>(&self.session)?;
                Ok(())
            }
        }

        let now = whole_seconds($now);
        AsyncConnection::transaction::<_, diesel::result::Error, _>($conn, async |conn| {
            let spent = Spend { presented: $presented, now }.get_result::<DbUuid>(conn).await.optional()?;
            let Some(session) = spent else { return Ok(false) };
            let token = RefreshRow::from(RefreshRecord {
                digest: $next,
                session_id: SessionId::from_uuid(session.0),
                issued_at: now,
                spent_at: None,
            });
            diesel::insert_into(refresh_tokens::table).values(token).execute(conn).await?;
            Touch { session, now }.execute(conn).await?;
            diesel::insert_into(audit_events::table).values(AuditRow::from($event)).execute(conn).await?;
            Ok(true)
        })
        .await
        .map_err(query_error)
    }};
    (one_statement, $conn:ident, $presented:ident, $next:ident, $now:ident, $event:ident) => {{
        use diesel::query_builder::{AstPass, QueryFragment};
        use diesel::sql_types::{Binary, Timestamptz};

        struct Rotation {
            presented: Vec<u8>,
            next: Vec<u8>,
            now: OffsetDateTime,
            event: AuditRow,
        }

        $crate::counting_statement!(Rotation);

        impl QueryFragment<diesel::pg::Pg> for Rotation {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> diesel::QueryResult<()> {
                out.push_sql("WITH spent AS (UPDATE refresh_tokens SET spent_at = ");
                out.push_bind_param::<Timestamptz, _>(&self.now)?;
                out.push_sql(" WHERE digest = ");
                out.push_bind_param::<Binary, _>(&self.presented)?;
                out.push_sql(
                    " AND spent_at IS NULL AND EXISTS (SELECT 1 FROM sessions WHERE sessions.id = \
                     refresh_tokens.session_id AND sessions.ended_at IS NULL) RETURNING session_id), \
                     stored AS (INSERT INTO refresh_tokens (digest, session_id, issued_at, spent_at) SELECT ",
                );
                out.push_bind_param::<Binary, _>(&self.next)?;
                out.push_sql(", session_id, ");
                out.push_bind_param::<Timestamptz, _>(&self.now)?;
                out.push_sql(", NULL FROM spent), touched AS (UPDATE sessions SET last_used_at = ");
                out.push_bind_param::<Timestamptz, _>(&self.now)?;
                out.push_sql(" FROM spent WHERE sessions.id = spent.session_id)");
                $crate::push_audit_event!(out, &self.event, "spent");
                out.push_sql(" SELECT count(*) FROM spent");
                Ok(())
            }
        }

        let rotation = Rotation {
            presented: $presented,
            next: $next.0.to_vec(),
            now: whole_seconds($now),
            event: AuditRow::from($event),
        };
        rotation.get_result::<i64>($conn).await.map(|rotated| rotated == 1).map_err(query_error)
    }};
}

/// The body of `replace_refresh` in `diesel_repositories!`, by backend (the
/// same choice as [`rotate_refresh_query!`]): a refresh by access token
/// touches the live session, spends its unspent refresh tokens, stores the
/// next one and appends the audit event, or writes nothing.
///
/// - `transaction` (SQLite): four statements in one transaction, on the
///   writer's own thread and connection.
/// - `one_statement` (PostgreSQL): one statement of data-modifying CTEs, all
///   reading one snapshot (so the spend never sees the token stored beside
///   it): one round trip and one commit, where a transaction takes six
///   round trips.
#[doc(hidden)]
#[macro_export]
macro_rules! replace_refresh_query {
    (transaction, $conn:ident, $session:ident, $next:ident, $now:ident, $event:ident) => {{
        let now = whole_seconds($now);
        let id = DbUuid($session.as_uuid());
        AsyncConnection::transaction::<_, diesel::result::Error, _>($conn, async |conn| {
            let touched = diesel::update(sessions::table.find(id).filter(sessions::ended_at.is_null()))
                .set(sessions::last_used_at.eq(now))
                .execute(conn)
                .await?;
            if touched == 0 {
                return Ok(false);
            }
            diesel::update(
                refresh_tokens::table
                    .filter(refresh_tokens::session_id.eq(id))
                    .filter(refresh_tokens::spent_at.is_null()),
            )
            .set(refresh_tokens::spent_at.eq(now))
            .execute(conn)
            .await?;
            let token =
                RefreshRow::from(RefreshRecord { digest: $next, session_id: $session, issued_at: now, spent_at: None });
            diesel::insert_into(refresh_tokens::table).values(token).execute(conn).await?;
            diesel::insert_into(audit_events::table).values(AuditRow::from($event)).execute(conn).await?;
            Ok(true)
        })
        .await
        .map_err(query_error)
    }};
    (one_statement, $conn:ident, $session:ident, $next:ident, $now:ident, $event:ident) => {{
        use diesel::query_builder::{AstPass, QueryFragment};
        use diesel::sql_types::{Binary, Timestamptz, Uuid as SqlUuid};

        struct Replacement {
            session: DbUuid,
            next: Vec<u8>,
            now: OffsetDateTime,
            event: AuditRow,
        }

        $crate::counting_statement!(Replacement);

        impl QueryFragment<diesel::pg::Pg> for Replacement {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> diesel::QueryResult<()> {
                out.push_sql("WITH touched AS (UPDATE sessions SET last_used_at = ");
                out.push_bind_param::<Timestamptz, _>(&self.now)?;
                out.push_sql(" WHERE id = ");
                out.push_bind_param::<SqlUuid, _>(&self.session)?;
                out.push_sql(
                    " AND ended_at IS NULL RETURNING id), spent AS (UPDATE refresh_tokens SET spent_at = ",
                );
                out.push_bind_param::<Timestamptz, _>(&self.now)?;
                out.push_sql(
                    " FROM touched WHERE refresh_tokens.session_id = touched.id AND refresh_tokens.spent_at IS NULL), \
                     stored AS (INSERT INTO refresh_tokens (digest, session_id, issued_at, spent_at) SELECT ",
                );
                out.push_bind_param::<Binary, _>(&self.next)?;
                out.push_sql(", id, ");
                out.push_bind_param::<Timestamptz, _>(&self.now)?;
                out.push_sql(", NULL FROM touched)");
                $crate::push_audit_event!(out, &self.event, "touched");
                out.push_sql(" SELECT count(*) FROM touched");
                Ok(())
            }
        }

        let replacement = Replacement {
            session: DbUuid($session.as_uuid()),
            next: $next.0.to_vec(),
            now: whole_seconds($now),
            event: AuditRow::from($event),
        };
        replacement.get_result::<i64>($conn).await.map(|touched| touched == 1).map_err(query_error)
    }};
}

/// The body of `create_session` in `diesel_repositories!`, by backend (the
/// same choice as [`rotate_refresh_query!`]): a sign-in's three rows, the
/// session, its first refresh token and the audit event.
///
/// - `transaction` (SQLite): the three inserts in one transaction, on the
///   writer's own thread and connection.
/// - `one_statement` (PostgreSQL): the same three inserts, each as diesel
///   writes it, joined into one statement of data-modifying CTEs: one round
///   trip and one commit, where a transaction takes five round trips. The
///   refresh token's reference to its session is checked at the end of the
///   statement, when the session's row is there.
#[doc(hidden)]
#[macro_export]
macro_rules! create_session_query {
    (transaction, $conn:ident, $session:ident, $token:ident, $event:ident) => {{
        AsyncConnection::transaction::<_, diesel::result::Error, _>($conn, async |conn| {
            diesel::insert_into(sessions::table).values($session).execute(conn).await?;
            diesel::insert_into(refresh_tokens::table).values($token).execute(conn).await?;
            diesel::insert_into(audit_events::table).values($event).execute(conn).await?;
            Ok(())
        })
        .await
        .map_err(query_error)
    }};
    (one_statement, $conn:ident, $session:ident, $token:ident, $event:ident) => {{
        use diesel::query_builder::{AstPass, QueryFragment, QueryId};

        /// `WITH s AS (first), r AS (second) third`: three writes, one statement.
        struct Together<A, B, C>(A, B, C);

        impl<A, B, C> QueryId for Together<A, B, C> {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }

        impl<A, B, C> QueryFragment<diesel::pg::Pg> for Together<A, B, C>
        where
            A: QueryFragment<diesel::pg::Pg>,
            B: QueryFragment<diesel::pg::Pg>,
            C: QueryFragment<diesel::pg::Pg>,
        {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> diesel::QueryResult<()> {
                out.push_sql("WITH s AS (");
                self.0.walk_ast(out.reborrow())?;
                out.push_sql("), r AS (");
                self.1.walk_ast(out.reborrow())?;
                out.push_sql(") ");
                self.2.walk_ast(out.reborrow())
            }
        }

        Together(
            diesel::insert_into(sessions::table).values($session),
            diesel::insert_into(refresh_tokens::table).values($token),
            diesel::insert_into(audit_events::table).values($event),
        )
        .execute($conn)
        .await
        .map(drop)
        .map_err(query_error)
    }};
}

/// The body of `record_key_usage` in `diesel_repositories!`, by backend: one
/// batch of a usage flush (a thousand keys at most), in one transaction.
///
/// - `per_key` (SQLite): one prepared UPDATE a key, count and last use
///   together, in one transaction on the writer's own connection, where a
///   statement costs microseconds and no round trip.
/// - `unnest` (PostgreSQL): the whole batch as one statement joined with
///   `unnest` of three arrays, one round trip instead of two a key (a
///   million keys took minutes to flush that way, and their counts waited in
///   memory meanwhile).
#[doc(hidden)]
#[macro_export]
macro_rules! record_usage_query {
    (per_key, $conn:ident, $usage:ident) => {{
        use diesel::query_builder::{AstPass, QueryFragment, QueryId};
        use diesel::sql_types::{BigInt, Text, TimestamptzSqlite};
        use diesel::sqlite::Sqlite;

        /// Adds to the count and moves the last use forward, never back.
        struct Count {
            id: DbUuid,
            count: i64,
            at: OffsetDateTime,
        }

        impl QueryId for Count {
            type QueryId = Self;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl QueryFragment<Sqlite> for Count {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> diesel::QueryResult<()> {
                out.push_sql("UPDATE api_keys SET usage_count = usage_count + ");
                out.push_bind_param::<BigInt, _>(&self.count)?;
                out.push_sql(", last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ");
                out.push_bind_param::<TimestamptzSqlite, _>(&self.at)?;
                out.push_sql(" THEN ");
                out.push_bind_param::<TimestamptzSqlite, _>(&self.at)?;
                out.push_sql(" ELSE last_used_at END WHERE id = ");
                out.push_bind_param::<Text, _>(&self.id)?;
                Ok(())
            }
        }

        AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *$conn, async |conn| {
            for entry in $usage {
                let count = Count {
                    id: DbUuid(entry.id.as_uuid()),
                    count: entry.count,
                    at: whole_seconds(entry.last_used_at),
                };
                count.execute(conn).await?;
            }
            Ok(())
        })
        .await
        .map_err(query_error)
    }};
    (unnest, $conn:ident, $usage:ident) => {{
        use diesel::pg::Pg;
        use diesel::query_builder::{AstPass, QueryFragment, QueryId};
        use diesel::sql_types::{Array, BigInt, Timestamptz, Uuid as SqlUuid};

        /// The batch as three parallel arrays (the ids are distinct: the
        /// buffer counts each key once).
        struct Counts {
            ids: Vec<DbUuid>,
            counts: Vec<i64>,
            ats: Vec<OffsetDateTime>,
        }

        impl QueryId for Counts {
            type QueryId = Self;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl QueryFragment<Pg> for Counts {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
                out.push_sql(
                    "UPDATE api_keys SET usage_count = api_keys.usage_count + u.n, \
                     last_used_at = GREATEST(api_keys.last_used_at, u.at) FROM unnest(",
                );
                out.push_bind_param::<Array<SqlUuid>, _>(&self.ids)?;
                out.push_sql(", ");
                out.push_bind_param::<Array<BigInt>, _>(&self.counts)?;
                out.push_sql(", ");
                out.push_bind_param::<Array<Timestamptz>, _>(&self.ats)?;
                out.push_sql(") AS u(id, n, at) WHERE api_keys.id = u.id");
                Ok(())
            }
        }

        let counts = Counts {
            ids: $usage.iter().map(|entry| DbUuid(entry.id.as_uuid())).collect(),
            counts: $usage.iter().map(|entry| entry.count).collect(),
            ats: $usage.iter().map(|entry| whole_seconds(entry.last_used_at)).collect(),
        };
        counts.execute(&mut *$conn).await.map(drop).map_err(query_error)
    }};
}

/// Implements every storage port for `$store` over the tables of the invoking
/// crate's `schema` module, for the diesel backend `$backend`. Expanded once
/// per backend.
///
/// Each query says, next to its SQL, whether it reads or writes: its body runs
/// in `$store::run(Access::Read, |conn| ...)` or `run(Access::Write, ...)`,
/// a method each store has (`async fn run<T, F, R>(&self, access: Access,
/// query: F) -> Result<T, StoreError>` where `F: FnOnce(connection) -> R`),
/// besides `fn usage(&self) -> PoolUsage`.
/// SQLite runs reads on the pool and writes through its writers' queue, each
/// as a task of its own; PostgreSQL runs both on the pool. Arguments passed
/// by reference are owned first, so the query can outlive the caller's future.
///
/// A lookup by a unique key reads its row with `get_result`, never `first`:
/// `first` adds `LIMIT ?`, and SQLite (3.48 on) lets a bound `LIMIT` shape
/// the plan, so every new binding expired the cached statement and each
/// lookup was parsed and planned again (a quarter of the CPU of a
/// refresh-token exchange). `clippy.toml` disallows `first`, so clippy
/// refuses it here too.
#[macro_export]
macro_rules! diesel_repositories {
    // `$linked_sql`: the backend's SQL for a user's linked provider names,
    // comma-separated, as a subquery correlated with `users.id`.
    //
    // `$rotation`: how a refresh token is exchanged (see `rotate_refresh_query!`):
    // `transaction` or `one_statement`.
    //
    // `$usage`: how a flush's batch of key-usage counts is written (see
    // `record_usage_query!`): `per_key` or `unnest`.
    //
    // `$read_ahead`: whether the audit prune reads the index pages its delete
    // will touch on a reader first (`true` for SQLite, whose single writer
    // would otherwise wait on the disk for each; `false` for PostgreSQL,
    // whose deletes run concurrently and would only pay for the count).
    ($store:ident, $backend:path, linked_providers = $linked_sql:literal, rotation = $rotation:ident, usage = $usage:ident, prune_read_ahead = $read_ahead:literal) => {
        mod repositories {
            use async_trait::async_trait;
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            use diesel_async::AsyncConnection;
            use portcullis_domain::ports::{
                ApiKeyRepository, AuditLog, HotReads, Outbox, PasswordResetRepository, PoolUsage, ProjectRepository,
                RevokedTokenRepository, SessionRepository, SigningKeyRepository, StoreHealth, UserRepository,
                VerificationRepository, MfaRepository,
            };
            use portcullis_domain::{
                ApiKey, ApiKeyId, AuditEvent, AuditQuery, DeliveryStatus, Email, EmailVerification, MfaChallenge, RecoveryCode, TotpFactor, ProviderName, SessionLookup, Environment, KeyDigest, KeySighting, KeyUsage, NewUser, OAuthIdentity, OutboxMessage,
                PasswordHash, PasswordReset, Project, RefreshLookup, RefreshRecord, ResetBudget, ResetRequest, Role, Session, SessionId, SigningKey, StoreError, User, UserId, UsersFrom,
            };
            use portcullis_store_diesel::{
                Access, ApiKeyRecord, AuditRecord, ChallengeRecord, DbUuid, RecoveryCodeRecord, TotpRecord, IdentityRecord, OutboxRecord, ProjectRecord, RefreshTokenRecord, ResetRecord, ResetRequestRecord, SessionRecord, SigningKeyRecord, UserRecord, query_error,
                whole_seconds,
            };
            use time::OffsetDateTime;
            use uuid::Uuid;

            use super::schema::{api_key_addresses, api_keys, audit_events, email_verifications, mfa_challenges, oauth_identities, recovery_codes, totp_factors, oauth_spent_states, outbox, password_reset_requests, password_resets, projects, refresh_tokens, revoked_tokens, sessions, signing_keys, user_count, users};
            use super::$store;

            portcullis_store_diesel::diesel_row!(UserRow, users, UserRecord, User, {
                id: DbUuid,
                email: String,
                full_name: Option<String>,
                password_hash: Option<String>,
                role: String,
                is_active: bool,
                session_version: i64,
                created_at: OffsetDateTime,
                updated_at: OffsetDateTime,
                email_verified: bool,
                mfa_enabled: bool,
            });

            portcullis_store_diesel::diesel_row!(ApiKeyRow, api_keys, ApiKeyRecord, ApiKey, {
                id: DbUuid,
                user_id: DbUuid,
                name: String,
                environment: String,
                key_digest: Vec<u8>,
                created_at: OffsetDateTime,
                expires_at: OffsetDateTime,
                revoked_at: Option<OffsetDateTime>,
                last_used_at: Option<OffsetDateTime>,
                usage_count: i64,
            });

            portcullis_store_diesel::diesel_row!(ProjectRow, projects, ProjectRecord, Project, {
                id: DbUuid,
                user_id: DbUuid,
                name: String,
                environment: String,
                created_at: OffsetDateTime,
            });

            fn found(row: Option<UserRow>) -> Result<User, StoreError> {
                row.ok_or(StoreError::NotFound)?.try_into()
            }

            #[async_trait]
            impl UserRepository for $store {
                async fn create(&self, user: NewUser) -> Result<User, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::insert_into(users::table)
                            .values(UserRow::from(user.into_user()))
                            .returning(UserRow::as_returning())
                            .get_result::<UserRow>(&mut *conn)
                            .await
                            .map_err(query_error)?
                            .try_into()
                    })
                    .await
                }

                async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        users::table
                            .find(DbUuid(id.as_uuid()))
                            .select(UserRow::as_select())
                            .get_result::<UserRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?
                            .map(User::try_from)
                            .transpose()
                    })
                    .await
                }


                async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
                    let email = ToOwned::to_owned(email);
                    self.run(Access::Read, move |mut conn| async move {
                        let email: &Email = &email;
                        users::table
                            .filter(users::email.eq(email.as_str()))
                            .select(UserRow::as_select())
                            .get_result::<UserRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?
                            .map(User::try_from)
                            .transpose()
                    })
                    .await
                }

                async fn set_role(
                    &self,
                    id: UserId,
                    role: Role,
                    now: OffsetDateTime,
                ) -> Result<User, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let row = diesel::update(users::table.find(DbUuid(id.as_uuid())))
                            .set((users::role.eq(role.as_str()), users::updated_at.eq(now)))
                            .returning(UserRow::as_returning())
                            .get_result::<UserRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?;
                        found(row)
                    })
                    .await
                }

                async fn list_users(&self, limit: u32, from: UsersFrom) -> Result<(Vec<User>, u64), StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        let mut page = users::table
                            .order((users::created_at.asc(), users::id.asc()))
                            .limit(i64::from(limit))
                            .into_boxed();
                        match from {
                            UsersFrom::Offset(offset) => page = page.offset(i64::try_from(offset).unwrap_or(i64::MAX)),
                            UsersFrom::After(after) => {
                                let (at, id) = users::table
                                    .find(DbUuid(after.as_uuid()))
                                    .select((users::created_at, users::id))
                                    .get_result::<(OffsetDateTime, DbUuid)>(&mut *conn)
                                    .await
                                    .optional()
                                    .map_err(query_error)?
                                    .ok_or(StoreError::NotFound)?;
                                // `(created_at, id) > (at, id)`, written so that both
                                // databases walk users_created_at_idx from `at` on.
                                page = page
                                    .filter(users::created_at.ge(at))
                                    .filter(users::created_at.gt(at).or(users::id.gt(id)));
                            }
                        }
                        // Kept by the database's triggers: one row, not a count of every user.
                        let total: i64 = user_count::table.select(user_count::n).get_result(&mut *conn).await.map_err(query_error)?;
                        let rows = page
                            .select(UserRow::as_select())
                            .load::<UserRow>(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        let users = rows.into_iter().map(User::try_from).collect::<Result<Vec<_>, _>>()?;
                        Ok((users, u64::try_from(total).unwrap_or(0)))
                    })
                    .await
                }

                async fn set_active(&self, id: UserId, active: bool, now: OffsetDateTime) -> Result<User, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let user = users::table.find(DbUuid(id.as_uuid()));
                        if !active {
                            // Disabling an active user ends every session, in the same write.
                            diesel::update(user.filter(users::is_active.eq(true)))
                                .set((users::is_active.eq(false), users::session_version.eq(users::session_version + 1)))
                                .execute(&mut *conn)
                                .await
                                .map_err(query_error)?;
                        }
                        let row = diesel::update(user)
                            .set((users::is_active.eq(active), users::updated_at.eq(now)))
                            .returning(UserRow::as_returning())
                            .get_result::<UserRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?;
                        found(row)
                    })
                    .await
                }

                async fn rehash_password(&self, id: UserId, old: &PasswordHash, new: PasswordHash) -> Result<bool, StoreError> {
                    let old = ToOwned::to_owned(old);
                    self.run(Access::Write, move |mut conn| async move {
                        let old: &PasswordHash = &old;
                        let updated = diesel::update(
                            users::table.find(DbUuid(id.as_uuid())).filter(users::password_hash.eq(old.as_str())),
                        )
                        .set(users::password_hash.eq(new.as_str()))
                        .execute(&mut *conn)
                        .await
                        .map_err(query_error)?;
                        Ok(updated == 1)
                    })
                    .await
                }

                async fn set_password(
                    &self,
                    id: UserId,
                    hash: PasswordHash,
                    now: OffsetDateTime,
                ) -> Result<User, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let user = DbUuid(id.as_uuid());
                        let row = AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            let row = diesel::update(users::table.find(user))
                                .set((
                                    users::password_hash.eq(hash.as_str()),
                                    users::session_version.eq(users::session_version + 1),
                                    users::updated_at.eq(now),
                                ))
                                .returning(UserRow::as_returning())
                                .get_result::<UserRow>(conn)
                                .await
                                .optional()?;
                            // A new password ends every reset link still out.
                            void_resets(conn, user, now).await?;
                            Ok(row)
                        })
                        .await
                        .map_err(query_error)?;
                        found(row)
                    })
                    .await
                }
            }

            #[async_trait]
            impl RevokedTokenRepository for $store {
                async fn revoke(
                    &self,
                    jti: Uuid,
                    user_id: UserId,
                    expires_at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let inserted = diesel::insert_into(revoked_tokens::table)
                            .values((
                                revoked_tokens::jti.eq(DbUuid(jti)),
                                revoked_tokens::user_id.eq(DbUuid(user_id.as_uuid())),
                                revoked_tokens::expires_at.eq(portcullis_store_diesel::whole_seconds(expires_at)),
                            ))
                            .on_conflict(revoked_tokens::jti)
                            .do_nothing()
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(inserted == 1)
                    })
                    .await
                }

                async fn is_revoked(&self, jti: Uuid) -> Result<bool, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        diesel::select(diesel::dsl::exists(revoked_tokens::table.find(DbUuid(jti))))
                            .get_result::<bool>(&mut *conn)
                            .await
                            .map_err(query_error)
                    })
                    .await
                }

                async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let deleted =
                            diesel::delete(revoked_tokens::table.filter(
                                revoked_tokens::expires_at.lt(portcullis_store_diesel::whole_seconds(now)),
                            ))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(deleted as u64)
                    })
                    .await
                }
            }

            #[async_trait]
            impl ApiKeyRepository for $store {
                async fn insert_key(&self, key: ApiKey) -> Result<ApiKey, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::insert_into(api_keys::table)
                            .values(ApiKeyRow::from(key))
                            .returning(ApiKeyRow::as_returning())
                            .get_result::<ApiKeyRow>(&mut *conn)
                            .await
                            .map_err(query_error)?
                            .try_into()
                    })
                    .await
                }


                async fn list_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        api_keys::table
                            .filter(api_keys::user_id.eq(DbUuid(user.as_uuid())))
                            .order((api_keys::created_at.desc(), api_keys::id.desc()))
                            .select(ApiKeyRow::as_select())
                            .load::<ApiKeyRow>(&mut *conn)
                            .await
                            .map_err(query_error)?
                            .into_iter()
                            .map(ApiKey::try_from)
                            .collect()
                    })
                    .await
                }

                async fn revoke_key(&self, user: UserId, id: ApiKeyId, now: OffsetDateTime) -> Result<ApiKey, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let owned = api_keys::table
                            .filter(api_keys::id.eq(DbUuid(id.as_uuid())))
                            .filter(api_keys::user_id.eq(DbUuid(user.as_uuid())));
                        diesel::update(owned.filter(api_keys::revoked_at.is_null()))
                            .set(api_keys::revoked_at.eq(whole_seconds(now)))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        owned
                            .select(ApiKeyRow::as_select())
                            .get_result::<ApiKeyRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?
                            .ok_or(StoreError::NotFound)?
                            .try_into()
                    })
                    .await
                }

                async fn record_key_sightings(&self, sightings: &[KeySighting]) -> Result<Vec<Uuid>, StoreError> {
                    let sightings = ToOwned::to_owned(sightings);
                    self.run(Access::Write, move |mut conn| async move {
                        let sightings: &[KeySighting] = &sightings;
                        AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            // Keys deleted since their use are skipped here:
                            // a foreign-key error would abort the whole batch.
                            let ids: Vec<DbUuid> = sightings.iter().map(|s| DbUuid(s.id.as_uuid())).collect();
                            let live: std::collections::HashSet<DbUuid> = api_keys::table
                                .filter(api_keys::id.eq_any(ids))
                                .select(api_keys::id)
                                .load::<DbUuid>(conn)
                                .await?
                                .into_iter()
                                .collect();
                            let mut new = Vec::new();
                            for sighting in sightings.iter().filter(|s| live.contains(&DbUuid(s.id.as_uuid()))) {
                                let remembered = diesel::insert_into(api_key_addresses::table)
                                    .values((
                                        api_key_addresses::key_id.eq(DbUuid(sighting.id.as_uuid())),
                                        api_key_addresses::ip.eq(&sighting.ip),
                                        api_key_addresses::first_seen_at.eq(whole_seconds(sighting.event.at)),
                                    ))
                                    .on_conflict((api_key_addresses::key_id, api_key_addresses::ip))
                                    .do_nothing()
                                    .execute(conn)
                                    .await?;
                                if remembered == 1 {
                                    diesel::insert_into(audit_events::table)
                                        .values(AuditRow::from(sighting.event.clone()))
                                        .execute(conn)
                                        .await?;
                                    new.push(sighting.event.id);
                                }
                            }
                            Ok(new)
                        })
                        .await
                        .map_err(query_error)
                    })
                    .await
                }

                async fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<(), StoreError> {
                    let usage = ToOwned::to_owned(usage);
                    self.run(Access::Write, move |mut conn| async move {
                        let usage: &[KeyUsage] = &usage;
                        $crate::record_usage_query!($usage, conn, usage)
                    })
                    .await
                }
            }

            #[async_trait]
            impl ProjectRepository for $store {
                async fn insert_project(&self, project: Project) -> Result<Project, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::insert_into(projects::table)
                            .values(ProjectRow::from(project))
                            .returning(ProjectRow::as_returning())
                            .get_result::<ProjectRow>(&mut *conn)
                            .await
                            .map_err(query_error)?
                            .try_into()
                    })
                    .await
                }


            }

            portcullis_store_diesel::diesel_row!(ResetRow, password_resets, ResetRecord, PasswordReset, {
                id: DbUuid,
                user_id: DbUuid,
                token_digest: Vec<u8>,
                created_at: OffsetDateTime,
                expires_at: OffsetDateTime,
                used_at: Option<OffsetDateTime>,
            });

            portcullis_store_diesel::diesel_row!(OutboxRow, outbox, OutboxRecord, OutboxMessage, {
                id: DbUuid,
                recipient: String,
                subject: String,
                body_text: String,
                body_html: String,
                status: String,
                attempts: i32,
                next_attempt_at: OffsetDateTime,
                created_at: OffsetDateTime,
            });

            portcullis_store_diesel::diesel_row!(ResetRequestRow, password_reset_requests, ResetRequestRecord, ResetRequest, {
                id: DbUuid,
                email: String,
                requested_at: OffsetDateTime,
                next_attempt_at: OffsetDateTime,
                ip: Option<String>,
                user_agent: Option<String>,
                request_id: Option<String>,
            });

            /// Marks every outstanding reset of `user` used at `at`.
            async fn void_resets<C>(conn: &mut C, user: DbUuid, at: OffsetDateTime) -> Result<usize, diesel::result::Error>
            where
                C: diesel_async::AsyncConnection<Backend = $backend>,
            {
                diesel::update(
                    password_resets::table
                        .filter(password_resets::user_id.eq(user))
                        .filter(password_resets::used_at.is_null()),
                )
                .set(password_resets::used_at.eq(whole_seconds(at)))
                .execute(conn)
                .await
            }

            #[async_trait]
            impl PasswordResetRepository for $store {
                async fn request_reset(&self, request: ResetRequest) -> Result<(), StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::insert_into(password_reset_requests::table)
                            .values(ResetRequestRow::from(request))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn claim_reset_requests(&self, now: OffsetDateTime, lease_until: OffsetDateTime, limit: u32) -> Result<Vec<ResetRequest>, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let (now, lease_until) = (whole_seconds(now), whole_seconds(lease_until));
                        let due = || password_reset_requests::table.filter(password_reset_requests::next_attempt_at.le(now));
                        let candidates = due()
                            .order((password_reset_requests::next_attempt_at.asc(), password_reset_requests::id.asc()))
                            .limit(i64::from(limit))
                            .select(password_reset_requests::id)
                            .load::<DbUuid>(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        let mut claimed = Vec::with_capacity(candidates.len());
                        for id in candidates {
                            // Claimed only if still due: another worker may have taken it meanwhile.
                            let row = diesel::update(due().filter(password_reset_requests::id.eq(id)))
                                .set(password_reset_requests::next_attempt_at.eq(lease_until))
                                .returning(ResetRequestRow::as_returning())
                                .get_result::<ResetRequestRow>(&mut *conn)
                                .await
                                .optional()
                                .map_err(query_error)?;
                            if let Some(row) = row {
                                claimed.push(ResetRequest::try_from(row)?);
                            }
                        }
                        Ok(claimed)
                    })
                    .await
                }

                async fn drop_reset_request(&self, id: Uuid) -> Result<(), StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::delete(password_reset_requests::table.find(DbUuid(id)))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn issue_reset(&self, request: Uuid, reset: PasswordReset, email: OutboxMessage, budget: ResetBudget) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let (user, at) = (DbUuid(reset.user_id.as_uuid()), whole_seconds(reset.created_at));
                        let since = whole_seconds(budget.since);
                        let (reset, email) = (ResetRow::from(reset), OutboxRow::from(email));
                        AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            diesel::delete(password_reset_requests::table.find(DbUuid(request))).execute(conn).await?;
                            // Writing the user's row first makes concurrent issues for
                            // one user wait for each other, so each counts the others'
                            // resets (PostgreSQL locks the row; SQLite has one writer).
                            diesel::update(users::table.find(user))
                                .set(users::session_version.eq(users::session_version))
                                .execute(conn)
                                .await?;
                            let recent: i64 = password_resets::table
                                .filter(password_resets::user_id.eq(user))
                                .filter(password_resets::created_at.ge(since))
                                .count()
                                .get_result(conn)
                                .await?;
                            if recent >= i64::from(budget.max) {
                                return Ok(false);
                            }
                            void_resets(conn, user, at).await?;
                            diesel::insert_into(password_resets::table).values(reset).execute(conn).await?;
                            diesel::insert_into(outbox::table).values(email).execute(conn).await?;
                            Ok(true)
                        })
                        .await
                        .map_err(query_error)
                    })
                    .await
                }

                async fn find_valid_reset(&self, digest: &KeyDigest, now: OffsetDateTime) -> Result<Option<PasswordReset>, StoreError> {
                    let digest = ToOwned::to_owned(digest);
                    self.run(Access::Read, move |mut conn| async move {
                        let digest: &KeyDigest = &digest;
                        password_resets::table
                            .filter(password_resets::token_digest.eq(digest.0.as_slice()))
                            .filter(password_resets::used_at.is_null())
                            .filter(password_resets::expires_at.gt(whole_seconds(now)))
                            .select(ResetRow::as_select())
                            .get_result::<ResetRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?
                            .map(PasswordReset::try_from)
                            .transpose()
                    })
                    .await
                }

                async fn consume_reset(&self, digest: &KeyDigest, hash: PasswordHash, now: OffsetDateTime) -> Result<Option<User>, StoreError> {
                    let digest = ToOwned::to_owned(digest);
                    self.run(Access::Write, move |mut conn| async move {
                        let digest: &KeyDigest = &digest;
                        let digest = digest.0.to_vec();
                        let row = AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            // The conditional update is the lock: of racing consumers, one
                            // sees the row unused and the others see it used.
                            let owner = diesel::update(
                                password_resets::table
                                    .filter(password_resets::token_digest.eq(&digest))
                                    .filter(password_resets::used_at.is_null())
                                    .filter(password_resets::expires_at.gt(whole_seconds(now))),
                            )
                            .set(password_resets::used_at.eq(whole_seconds(now)))
                            .returning(password_resets::user_id)
                            .get_result::<DbUuid>(conn)
                            .await
                            .optional()?;
                            let Some(owner) = owner else { return Ok(None) };
                            void_resets(conn, owner, now).await?;
                            // The link reached the mailbox: the address is proven.
                            diesel::update(users::table.find(owner))
                                .set((
                                    users::password_hash.eq(hash.as_str()),
                                    users::email_verified.eq(true),
                                    users::session_version.eq(users::session_version + 1),
                                    users::updated_at.eq(now),
                                ))
                                .returning(UserRow::as_returning())
                                .get_result::<UserRow>(conn)
                                .await
                                .optional()
                        })
                        .await
                        .map_err(query_error)?;
                        row.map(User::try_from).transpose()
                    })
                    .await
                }
            }

            portcullis_store_diesel::diesel_row!(VerificationRow, email_verifications, ResetRecord, EmailVerification, {
                id: DbUuid,
                user_id: DbUuid,
                token_digest: Vec<u8>,
                created_at: OffsetDateTime,
                expires_at: OffsetDateTime,
                used_at: Option<OffsetDateTime>,
            });

            /// Marks every outstanding verification link of `user` used at `at`.
            async fn void_verifications<C>(conn: &mut C, user: DbUuid, at: OffsetDateTime) -> Result<usize, diesel::result::Error>
            where
                C: diesel_async::AsyncConnection<Backend = $backend>,
            {
                diesel::update(
                    email_verifications::table
                        .filter(email_verifications::user_id.eq(user))
                        .filter(email_verifications::used_at.is_null()),
                )
                .set(email_verifications::used_at.eq(whole_seconds(at)))
                .execute(conn)
                .await
            }

            #[async_trait]
            impl VerificationRepository for $store {
                async fn create_user_with_verification(&self, user: NewUser, verification: EmailVerification, email: OutboxMessage) -> Result<User, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let (user, link, email) = (UserRow::from(user.into_user()), VerificationRow::from(verification), OutboxRow::from(email));
                        let row = AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            let row = diesel::insert_into(users::table)
                                .values(user)
                                .returning(UserRow::as_returning())
                                .get_result::<UserRow>(conn)
                                .await?;
                            diesel::insert_into(email_verifications::table).values(link).execute(conn).await?;
                            diesel::insert_into(outbox::table).values(email).execute(conn).await?;
                            Ok(row)
                        })
                        .await
                        .map_err(query_error)?;
                        row.try_into()
                    })
                    .await
                }

                async fn issue_verification(&self, verification: EmailVerification, email: OutboxMessage, budget: ResetBudget) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let (user, at) = (DbUuid(verification.user_id.as_uuid()), whole_seconds(verification.created_at));
                        let since = whole_seconds(budget.since);
                        let (link, email) = (VerificationRow::from(verification), OutboxRow::from(email));
                        AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            // Writing the user's row first makes concurrent issues for
                            // one user wait for each other, so each counts the others'
                            // links (PostgreSQL locks the row; SQLite has one writer).
                            let exists = diesel::update(users::table.find(user))
                                .set(users::session_version.eq(users::session_version))
                                .execute(conn)
                                .await?;
                            if exists == 0 {
                                return Err(diesel::result::Error::NotFound);
                            }
                            let recent: i64 = email_verifications::table
                                .filter(email_verifications::user_id.eq(user))
                                .filter(email_verifications::created_at.ge(since))
                                .count()
                                .get_result(conn)
                                .await?;
                            if recent >= i64::from(budget.max) {
                                return Ok(false);
                            }
                            void_verifications(conn, user, at).await?;
                            diesel::insert_into(email_verifications::table).values(link).execute(conn).await?;
                            diesel::insert_into(outbox::table).values(email).execute(conn).await?;
                            Ok(true)
                        })
                        .await
                        .map_err(query_error)
                    })
                    .await
                }

                async fn consume_verification(&self, digest: &KeyDigest, now: OffsetDateTime) -> Result<Option<User>, StoreError> {
                    let digest = digest.0.to_vec();
                    self.run(Access::Write, move |mut conn| async move {
                        let row = AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            // The conditional update is the lock: of racing consumers, one
                            // sees the link unused and the others see it used.
                            let owner = diesel::update(
                                email_verifications::table
                                    .filter(email_verifications::token_digest.eq(&digest))
                                    .filter(email_verifications::used_at.is_null())
                                    .filter(email_verifications::expires_at.gt(whole_seconds(now))),
                            )
                            .set(email_verifications::used_at.eq(whole_seconds(now)))
                            .returning(email_verifications::user_id)
                            .get_result::<DbUuid>(conn)
                            .await
                            .optional()?;
                            let Some(owner) = owner else { return Ok(None) };
                            void_verifications(conn, owner, now).await?;
                            diesel::update(users::table.find(owner))
                                .set((users::email_verified.eq(true), users::updated_at.eq(now)))
                                .returning(UserRow::as_returning())
                                .get_result::<UserRow>(conn)
                                .await
                                .optional()
                        })
                        .await
                        .map_err(query_error)?;
                        row.map(User::try_from).transpose()
                    })
                    .await
                }
            }

            portcullis_store_diesel::diesel_row!(TotpRow, totp_factors, TotpRecord, TotpFactor, {
                user_id: DbUuid,
                sealed_secret: Vec<u8>,
                created_at: OffsetDateTime,
                confirmed_at: Option<OffsetDateTime>,
                last_step: Option<i64>,
            });

            portcullis_store_diesel::diesel_row!(RecoveryCodeRow, recovery_codes, RecoveryCodeRecord, RecoveryCode, {
                id: DbUuid,
                user_id: DbUuid,
                code_digest: Vec<u8>,
                created_at: OffsetDateTime,
                used_at: Option<OffsetDateTime>,
            });

            portcullis_store_diesel::diesel_row!(ChallengeRow, mfa_challenges, ChallengeRecord, MfaChallenge, {
                id: DbUuid,
                user_id: DbUuid,
                token_digest: Vec<u8>,
                method: String,
                created_at: OffsetDateTime,
                expires_at: OffsetDateTime,
                failures: i32,
                used_at: Option<OffsetDateTime>,
            });

            #[async_trait]
            impl MfaRepository for $store {
                async fn put_totp(&self, factor: TotpFactor) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let user = DbUuid(factor.user_id.as_uuid());
                        let row = TotpRow::from(factor);
                        AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            // Only an unconfirmed factor is replaced; a confirmed one stays.
                            diesel::delete(totp_factors::table.find(user).filter(totp_factors::confirmed_at.is_null()))
                                .execute(conn)
                                .await?;
                            let inserted = diesel::insert_into(totp_factors::table)
                                .values(row)
                                .on_conflict(totp_factors::user_id)
                                .do_nothing()
                                .execute(conn)
                                .await?;
                            Ok(inserted == 1)
                        })
                        .await
                        .map_err(query_error)
                    })
                    .await
                }

                async fn find_totp(&self, user: UserId) -> Result<Option<TotpFactor>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        totp_factors::table
                            .find(DbUuid(user.as_uuid()))
                            .select(TotpRow::as_select())
                            .get_result::<TotpRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?
                            .map(TotpFactor::try_from)
                            .transpose()
                    })
                    .await
                }

                async fn confirm_totp(&self, user: UserId, sealed: &[u8], step: i64, codes: Vec<RecoveryCode>, now: OffsetDateTime) -> Result<bool, StoreError> {
                    let sealed = sealed.to_vec();
                    self.run(Access::Write, move |mut conn| async move {
                        let id = DbUuid(user.as_uuid());
                        let codes: Vec<RecoveryCodeRow> = codes.into_iter().map(RecoveryCodeRow::from).collect();
                        AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            let confirmed = diesel::update(
                                totp_factors::table
                                    .find(id)
                                    .filter(totp_factors::confirmed_at.is_null())
                                    .filter(totp_factors::sealed_secret.eq(&sealed)),
                            )
                            .set((totp_factors::confirmed_at.eq(whole_seconds(now)), totp_factors::last_step.eq(step)))
                            .execute(conn)
                            .await?;
                            if confirmed == 0 {
                                return Ok(false);
                            }
                            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id))).execute(conn).await?;
                            for code in codes {
                                diesel::insert_into(recovery_codes::table).values(code).execute(conn).await?;
                            }
                            diesel::update(users::table.find(id))
                                .set((users::mfa_enabled.eq(true), users::updated_at.eq(now)))
                                .execute(conn)
                                .await?;
                            Ok(true)
                        })
                        .await
                        .map_err(query_error)
                    })
                    .await
                }

                async fn spend_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let spent = diesel::update(
                            totp_factors::table
                                .find(DbUuid(user.as_uuid()))
                                .filter(totp_factors::confirmed_at.is_not_null())
                                .filter(totp_factors::last_step.is_null().or(totp_factors::last_step.lt(step))),
                        )
                        .set(totp_factors::last_step.eq(step))
                        .execute(&mut *conn)
                        .await
                        .map_err(query_error)?;
                        Ok(spent == 1)
                    })
                    .await
                }

                async fn remove_totp(&self, user: UserId, now: OffsetDateTime) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let id = DbUuid(user.as_uuid());
                        AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            let removed = diesel::delete(totp_factors::table.find(id)).execute(conn).await?;
                            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id))).execute(conn).await?;
                            diesel::update(users::table.find(id))
                                .set((users::mfa_enabled.eq(false), users::updated_at.eq(now)))
                                .execute(conn)
                                .await?;
                            Ok(removed == 1)
                        })
                        .await
                        .map_err(query_error)
                    })
                    .await
                }

                async fn replace_recovery_codes(&self, user: UserId, codes: Vec<RecoveryCode>) -> Result<(), StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let id = DbUuid(user.as_uuid());
                        let codes: Vec<RecoveryCodeRow> = codes.into_iter().map(RecoveryCodeRow::from).collect();
                        AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id))).execute(conn).await?;
                            for code in codes {
                                diesel::insert_into(recovery_codes::table).values(code).execute(conn).await?;
                            }
                            Ok(())
                        })
                        .await
                        .map_err(query_error)
                    })
                    .await
                }

                async fn spend_recovery_code(&self, user: UserId, digest: &KeyDigest, now: OffsetDateTime) -> Result<bool, StoreError> {
                    let digest = digest.0.to_vec();
                    self.run(Access::Write, move |mut conn| async move {
                        let spent = diesel::update(
                            recovery_codes::table
                                .filter(recovery_codes::code_digest.eq(digest))
                                .filter(recovery_codes::user_id.eq(DbUuid(user.as_uuid())))
                                .filter(recovery_codes::used_at.is_null()),
                        )
                        .set(recovery_codes::used_at.eq(whole_seconds(now)))
                        .execute(&mut *conn)
                        .await
                        .map_err(query_error)?;
                        Ok(spent == 1)
                    })
                    .await
                }

                async fn recovery_codes_left(&self, user: UserId) -> Result<u64, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        let left: i64 = recovery_codes::table
                            .filter(recovery_codes::user_id.eq(DbUuid(user.as_uuid())))
                            .filter(recovery_codes::used_at.is_null())
                            .count()
                            .get_result(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(u64::try_from(left).unwrap_or(0))
                    })
                    .await
                }

                async fn create_challenge(&self, challenge: MfaChallenge) -> Result<(), StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::insert_into(mfa_challenges::table)
                            .values(ChallengeRow::from(challenge))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn find_challenge(&self, digest: &KeyDigest) -> Result<Option<MfaChallenge>, StoreError> {
                    let digest = digest.0.to_vec();
                    self.run(Access::Read, move |mut conn| async move {
                        mfa_challenges::table
                            .filter(mfa_challenges::token_digest.eq(digest))
                            .select(ChallengeRow::as_select())
                            .get_result::<ChallengeRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?
                            .map(MfaChallenge::try_from)
                            .transpose()
                    })
                    .await
                }

                async fn fail_challenge(&self, id: Uuid) -> Result<i32, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::update(mfa_challenges::table.find(DbUuid(id)))
                            .set(mfa_challenges::failures.eq(mfa_challenges::failures + 1))
                            .returning(mfa_challenges::failures)
                            .get_result::<i32>(&mut *conn)
                            .await
                            .map_err(query_error)
                    })
                    .await
                }

                async fn spend_challenge(&self, id: Uuid, max_failures: i32, now: OffsetDateTime) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let spent = diesel::update(
                            mfa_challenges::table
                                .find(DbUuid(id))
                                .filter(mfa_challenges::used_at.is_null())
                                .filter(mfa_challenges::expires_at.gt(whole_seconds(now)))
                                .filter(mfa_challenges::failures.lt(max_failures)),
                        )
                        .set(mfa_challenges::used_at.eq(whole_seconds(now)))
                        .execute(&mut *conn)
                        .await
                        .map_err(query_error)?;
                        Ok(spent == 1)
                    })
                    .await
                }

                async fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let purged = diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.lt(whole_seconds(before))))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(purged as u64)
                    })
                    .await
                }
            }

            #[async_trait]
            impl Outbox for $store {
                async fn claim_due(&self, now: OffsetDateTime, lease_until: OffsetDateTime, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let (now, lease_until) = (whole_seconds(now), whole_seconds(lease_until));
                        let due = || outbox::table
                            .filter(outbox::status.eq(DeliveryStatus::Pending.as_str()))
                            .filter(outbox::next_attempt_at.le(now));
                        let candidates = due()
                            .order(outbox::next_attempt_at.asc())
                            .limit(i64::from(limit))
                            .select(outbox::id)
                            .load::<DbUuid>(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        let mut claimed = Vec::with_capacity(candidates.len());
                        for id in candidates {
                            // Claimed only if still due: another worker may have taken it meanwhile.
                            let row = diesel::update(due().filter(outbox::id.eq(id)))
                                .set(outbox::next_attempt_at.eq(lease_until))
                                .returning(OutboxRow::as_returning())
                                .get_result::<OutboxRow>(&mut *conn)
                                .await
                                .optional()
                                .map_err(query_error)?;
                            if let Some(row) = row {
                                claimed.push(OutboxMessage::try_from(row)?);
                            }
                        }
                        Ok(claimed)
                    })
                    .await
                }

                async fn mark_sent(&self, id: uuid::Uuid, now: OffsetDateTime) -> Result<(), StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::update(outbox::table.find(DbUuid(id)))
                            .set((
                                outbox::status.eq(DeliveryStatus::Sent.as_str()),
                                outbox::sent_at.eq(now),
                                outbox::body_text.eq(""),
                                outbox::body_html.eq(""),
                            ))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn mark_failed(&self, id: uuid::Uuid, attempts: i32, retry_at: Option<OffsetDateTime>, error: &str) -> Result<(), StoreError> {
                    let error = ToOwned::to_owned(error);
                    self.run(Access::Write, move |mut conn| async move {
                        let error: &str = &error;
                        let error: String = error.chars().take(500).collect();
                        let message = outbox::table.find(DbUuid(id));
                        match retry_at {
                            Some(at) => diesel::update(message)
                                .set((
                                    outbox::attempts.eq(attempts),
                                    outbox::next_attempt_at.eq(whole_seconds(at)),
                                    outbox::last_error.eq(error),
                                ))
                                .execute(&mut *conn)
                                .await,
                            None => diesel::update(message)
                                .set((
                                    outbox::attempts.eq(attempts),
                                    outbox::status.eq(DeliveryStatus::Failed.as_str()),
                                    outbox::last_error.eq(error),
                                    outbox::body_text.eq(""),
                                    outbox::body_html.eq(""),
                                ))
                                .execute(&mut *conn)
                                .await,
                        }
                        .map_err(query_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn pending_count(&self) -> Result<u64, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        let count: i64 = outbox::table
                            .filter(outbox::status.eq(DeliveryStatus::Pending.as_str()))
                            .count()
                            .get_result(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(u64::try_from(count).unwrap_or(0))
                    })
                    .await
                }

                async fn find_message(&self, id: uuid::Uuid) -> Result<Option<OutboxMessage>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        outbox::table
                            .find(DbUuid(id))
                            .select(OutboxRow::as_select())
                            .get_result::<OutboxRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?
                            .map(OutboxMessage::try_from)
                            .transpose()
                    })
                    .await
                }
            }

            portcullis_store_diesel::diesel_row!(IdentityRow, oauth_identities, IdentityRecord, OAuthIdentity, {
                id: DbUuid,
                user_id: DbUuid,
                provider: String,
                subject: String,
                email: Option<String>,
                email_verified: bool,
                created_at: OffsetDateTime,
            });

            #[async_trait]
            impl portcullis_domain::ports::OAuthIdentityRepository for $store {
                async fn find_identity(
                    &self,
                    provider: portcullis_domain::ProviderName,
                    subject: &str,
                ) -> Result<Option<(portcullis_domain::OAuthIdentity, User)>, StoreError> {
                    let subject = ToOwned::to_owned(subject);
                    self.run(Access::Read, move |mut conn| async move {
                        let subject: &str = &subject;
                        let found = oauth_identities::table
                            .inner_join(users::table)
                            .filter(oauth_identities::provider.eq(provider.as_str()))
                            .filter(oauth_identities::subject.eq(subject))
                            .select((IdentityRow::as_select(), UserRow::as_select()))
                            .get_result::<(IdentityRow, UserRow)>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?;
                        found.map(|(identity, user)| Ok((identity.try_into()?, user.try_into()?))).transpose()
                    })
                    .await
                }

                async fn link_identity(
                    &self,
                    identity: portcullis_domain::OAuthIdentity,
                ) -> Result<portcullis_domain::OAuthIdentity, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::insert_into(oauth_identities::table)
                            .values(IdentityRow::from(identity))
                            .returning(IdentityRow::as_returning())
                            .get_result::<IdentityRow>(&mut *conn)
                            .await
                            .map_err(query_error)?
                            .try_into()
                    })
                    .await
                }

                async fn create_user_with_identity(
                    &self,
                    user: NewUser,
                    identity: portcullis_domain::OAuthIdentity,
                ) -> Result<User, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let (user, identity) = (UserRow::from(user.into_user()), IdentityRow::from(identity));
                        let row = AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            let row = diesel::insert_into(users::table)
                                .values(user)
                                .returning(UserRow::as_returning())
                                .get_result::<UserRow>(conn)
                                .await?;
                            diesel::insert_into(oauth_identities::table).values(identity).execute(conn).await?;
                            Ok(row)
                        })
                        .await
                        .map_err(query_error)?;
                        row.try_into()
                    })
                    .await
                }

                async fn claim_account(&self, user: UserId, identity: portcullis_domain::OAuthIdentity, now: OffsetDateTime) -> Result<Option<User>, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let (id, identity, at) = (DbUuid(user.as_uuid()), IdentityRow::from(identity), whole_seconds(now));
                        let row = AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            // Only while the address is unverified: this write is also the lock
                            // against a concurrent verification or claim.
                            let row = diesel::update(users::table.find(id).filter(users::email_verified.eq(false)))
                                .set((
                                    users::password_hash.eq(None::<String>),
                                    users::email_verified.eq(true),
                                    users::mfa_enabled.eq(false),
                                    users::session_version.eq(users::session_version + 1),
                                    users::updated_at.eq(now),
                                ))
                                .returning(UserRow::as_returning())
                                .get_result::<UserRow>(conn)
                                .await
                                .optional()?;
                            let Some(row) = row else { return Ok(None) };
                            diesel::update(sessions::table.filter(sessions::user_id.eq(id)).filter(sessions::ended_at.is_null()))
                                .set(sessions::ended_at.eq(at))
                                .execute(conn)
                                .await?;
                            diesel::update(api_keys::table.filter(api_keys::user_id.eq(id)).filter(api_keys::revoked_at.is_null()))
                                .set(api_keys::revoked_at.eq(at))
                                .execute(conn)
                                .await?;
                            void_resets(conn, id, now).await?;
                            void_verifications(conn, id, now).await?;
                            // A second factor the registrant set up goes too: the owner would
                            // otherwise be asked for the registrant's codes.
                            diesel::delete(totp_factors::table.find(id)).execute(conn).await?;
                            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id))).execute(conn).await?;
                            diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(id))).execute(conn).await?;
                            diesel::insert_into(oauth_identities::table).values(identity).execute(conn).await?;
                            Ok(Some(row))
                        })
                        .await
                        .map_err(query_error)?;
                        row.map(User::try_from).transpose()
                    })
                    .await
                }

                async fn spend_state(&self, nonce: &str, expires_at: OffsetDateTime) -> Result<bool, StoreError> {
                    let nonce = ToOwned::to_owned(nonce);
                    self.run(Access::Write, move |mut conn| async move {
                        let nonce: &str = &nonce;
                        let inserted = diesel::insert_into(oauth_spent_states::table)
                            .values((
                                oauth_spent_states::nonce.eq(nonce),
                                oauth_spent_states::expires_at.eq(whole_seconds(expires_at)),
                            ))
                            .on_conflict(oauth_spent_states::nonce)
                            .do_nothing()
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(inserted == 1)
                    })
                    .await
                }

                async fn purge_spent_states(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let deleted = diesel::delete(oauth_spent_states::table.filter(oauth_spent_states::expires_at.lt(whole_seconds(now))))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(deleted as u64)
                    })
                    .await
                }

                async fn list_identities(&self, user: UserId) -> Result<Vec<portcullis_domain::OAuthIdentity>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        oauth_identities::table
                            .filter(oauth_identities::user_id.eq(DbUuid(user.as_uuid())))
                            .order((oauth_identities::created_at.asc(), oauth_identities::id.asc()))
                            .select(IdentityRow::as_select())
                            .load::<IdentityRow>(&mut *conn)
                            .await
                            .map_err(query_error)?
                            .into_iter()
                            .map(portcullis_domain::OAuthIdentity::try_from)
                            .collect()
                    })
                    .await
                }
            }

            portcullis_store_diesel::diesel_row!(AuditRow, audit_events, AuditRecord, AuditEvent, {
                id: DbUuid,
                at: OffsetDateTime,
                kind: String,
                user_id: Option<DbUuid>,
                detail: Option<String>,
                ip: Option<String>,
                user_agent: Option<String>,
                request_id: Option<String>,
            });

            #[async_trait]
            impl AuditLog for $store {
                async fn append(&self, event: AuditEvent) -> Result<(), StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        diesel::insert_into(audit_events::table)
                            .values(AuditRow::from(event))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn list_events(&self, query: AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        let mut select = audit_events::table.into_boxed();
                        if let Some(user) = query.user_id {
                            select = select.filter(audit_events::user_id.eq(DbUuid(user.as_uuid())));
                        }
                        if let Some(kind) = query.kind {
                            select = select.filter(audit_events::kind.eq_any(kind.stored_names()));
                        }
                        if let Some(before) = query.before {
                            select = select.filter(audit_events::id.lt(DbUuid(before)));
                        }
                        select
                            .order(audit_events::id.desc())
                            .limit(i64::from(query.limit))
                            .select(AuditRow::as_select())
                            .load::<AuditRow>(&mut *conn)
                            .await
                            .map_err(query_error)?
                            .into_iter()
                            .map(AuditEvent::try_from)
                            .collect()
                    })
                    .await
                }

                async fn prune_events(&self, before: OffsetDateTime, limit: u32) -> Result<u64, StoreError> {
                    // First, on a reader (no writer waits meanwhile): the
                    // oldest `limit` through the index on `at`, and, where
                    // `$read_ahead`, the pages their deletion will touch
                    // brought into memory. Each event sits on its own page of
                    // the index by user, far from the others; on SQLite a page
                    // the OS had evicted was read from disk while the delete
                    // held the writers' turn, and behind a checkpoint's writes
                    // that read took up to 250 ms (the large-data prune).
                    let oldest: Vec<(DbUuid, Option<DbUuid>)> = self
                        .run(Access::Read, move |mut conn| async move {
                            let oldest: Vec<(DbUuid, Option<DbUuid>)> = audit_events::table
                                .select((audit_events::id, audit_events::user_id))
                                .filter(audit_events::at.lt(whole_seconds(before)))
                                .order(audit_events::at.asc())
                                .limit(i64::from(limit))
                                .load(&mut *conn)
                                .await
                                .map_err(query_error)?;
                            let users: Vec<DbUuid> = oldest.iter().filter_map(|(_, user)| user.clone()).collect();
                            if $read_ahead && !users.is_empty() {
                                // Counted from the index alone: its pages are what this reads.
                                audit_events::table
                                    .filter(audit_events::user_id.eq_any(users))
                                    .count()
                                    .get_result::<i64>(&mut *conn)
                                    .await
                                    .map_err(query_error)?;
                            }
                            Ok(oldest)
                        })
                        .await?;
                    if oldest.is_empty() {
                        return Ok(0);
                    }
                    let ids: Vec<DbUuid> = oldest.into_iter().map(|(id, _)| id).collect();
                    // Then those rows by key, still past the cutoff: one short write job.
                    self.run(Access::Write, move |mut conn| async move {
                        let deleted = diesel::delete(
                            audit_events::table
                                .filter(audit_events::id.eq_any(ids))
                                .filter(audit_events::at.lt(whole_seconds(before))),
                        )
                        .execute(&mut *conn)
                        .await
                        .map_err(query_error)?;
                        Ok(deleted as u64)
                    })
                    .await
                }
            }

            portcullis_store_diesel::diesel_row!(SigningKeyRow, signing_keys, SigningKeyRecord, SigningKey, {
                kid: String,
                generation: i64,
                algorithm: String,
                public_jwk: String,
                sealed_private: Vec<u8>,
                created_at: OffsetDateTime,
                activates_at: OffsetDateTime,
            });

            #[async_trait]
            impl SigningKeyRepository for $store {
                async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        let rows: Vec<SigningKeyRow> = signing_keys::table
                            .order(signing_keys::generation)
                            .select(SigningKeyRow::as_select())
                            .load(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        rows.into_iter().map(SigningKey::try_from).collect()
                    })
                    .await
                }

                async fn insert_signing_key(&self, key: SigningKey) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let inserted = diesel::insert_into(signing_keys::table)
                            .values(SigningKeyRow::from(key))
                            .on_conflict_do_nothing()
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(inserted == 1)
                    })
                    .await
                }
            }

            portcullis_store_diesel::diesel_row!(SessionRow, sessions, SessionRecord, Session, {
                id: DbUuid,
                user_id: DbUuid,
                created_at: OffsetDateTime,
                last_used_at: OffsetDateTime,
                expires_at: OffsetDateTime,
                auth_time: OffsetDateTime,
                ip: Option<String>,
                user_agent: Option<String>,
                method: String,
                mfa: bool,
                ended_at: Option<OffsetDateTime>,
            });

            portcullis_store_diesel::diesel_row!(RefreshRow, refresh_tokens, RefreshTokenRecord, RefreshRecord, {
                digest: Vec<u8>,
                session_id: DbUuid,
                issued_at: OffsetDateTime,
                spent_at: Option<OffsetDateTime>,
            });

            #[async_trait]
            impl SessionRepository for $store {
                async fn create_session(&self, session: Session, refresh: KeyDigest, event: AuditEvent) -> Result<(), StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let token = RefreshRow::from(RefreshRecord {
                            digest: refresh,
                            session_id: session.id,
                            issued_at: session.created_at,
                            spent_at: None,
                        });
                        let session = SessionRow::from(session);
                        let event = AuditRow::from(event);
                        let conn = &mut *conn;
                        portcullis_store_diesel::create_session_query!($rotation, conn, session, token, event)
                    })
                    .await
                }

                async fn find_refresh(&self, digest: &KeyDigest) -> Result<Option<RefreshLookup>, StoreError> {
                    let digest = digest.0.to_vec();
                    self.run(Access::Read, move |mut conn| async move {
                        let row = refresh_tokens::table
                            .inner_join(sessions::table.inner_join(users::table))
                            .filter(refresh_tokens::digest.eq(digest))
                            .select((RefreshRow::as_select(), SessionRow::as_select(), UserRow::as_select()))
                            .get_result::<(RefreshRow, SessionRow, UserRow)>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?;
                        row.map(|(token, session, user)| {
                            Ok(RefreshLookup { token: token.try_into()?, session: session.try_into()?, user: user.try_into()? })
                        })
                        .transpose()
                    })
                    .await
                }

                async fn rotate_refresh(&self, presented: &KeyDigest, next: KeyDigest, now: OffsetDateTime, event: AuditEvent) -> Result<bool, StoreError> {
                    let presented = presented.0.to_vec();
                    self.run(Access::Write, move |mut conn| async move {
                        let conn = &mut *conn;
                        $crate::rotate_refresh_query!($rotation, conn, presented, next, now, event)
                    })
                    .await
                }

                async fn replace_refresh(&self, session: SessionId, next: KeyDigest, now: OffsetDateTime, event: AuditEvent) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let conn = &mut *conn;
                        $crate::replace_refresh_query!($rotation, conn, session, next, now, event)
                    })
                    .await
                }

                async fn find_session_by_id(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        sessions::table
                            .find(DbUuid(id.as_uuid()))
                            .select(SessionRow::as_select())
                            .get_result::<SessionRow>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?
                            .map(Session::try_from)
                            .transpose()
                    })
                    .await
                }

                async fn list_sessions(&self, user: UserId, now: OffsetDateTime) -> Result<Vec<Session>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        sessions::table
                            .filter(sessions::user_id.eq(DbUuid(user.as_uuid())))
                            .filter(sessions::ended_at.is_null())
                            .filter(sessions::expires_at.gt(whole_seconds(now)))
                            .order((sessions::created_at.desc(), sessions::id.desc()))
                            .select(SessionRow::as_select())
                            .load::<SessionRow>(&mut *conn)
                            .await
                            .map_err(query_error)?
                            .into_iter()
                            .map(Session::try_from)
                            .collect()
                    })
                    .await
                }

                async fn end_session(&self, id: SessionId, now: OffsetDateTime) -> Result<bool, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let ended = diesel::update(sessions::table.find(DbUuid(id.as_uuid())).filter(sessions::ended_at.is_null()))
                            .set(sessions::ended_at.eq(whole_seconds(now)))
                            .execute(&mut *conn)
                            .await
                            .map_err(query_error)?;
                        Ok(ended == 1)
                    })
                    .await
                }

                async fn end_sessions(&self, user: UserId, except: Option<SessionId>, now: OffsetDateTime) -> Result<u64, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        // The nil UUID is never a session's id: "except none".
                        let except = DbUuid(except.map_or(Uuid::nil(), |id| id.as_uuid()));
                        let ended = diesel::update(
                            sessions::table
                                .filter(sessions::user_id.eq(DbUuid(user.as_uuid())))
                                .filter(sessions::ended_at.is_null())
                                .filter(sessions::id.ne(except)),
                        )
                        .set(sessions::ended_at.eq(whole_seconds(now)))
                        .execute(&mut *conn)
                        .await
                        .map_err(query_error)?;
                        Ok(ended as u64)
                    })
                    .await
                }

                async fn purge_sessions(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
                    self.run(Access::Write, move |mut conn| async move {
                        let before = whole_seconds(before);
                        AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                            let gone = || sessions::table
                                .filter(sessions::ended_at.lt(before).or(sessions::expires_at.lt(before)))
                                .select(sessions::id);
                            diesel::delete(refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(gone())))
                                .execute(conn)
                                .await?;
                            let deleted = diesel::delete(
                                sessions::table.filter(sessions::ended_at.lt(before).or(sessions::expires_at.lt(before))),
                            )
                            .execute(conn)
                            .await?;
                            Ok(deleted as u64)
                        })
                        .await
                        .map_err(query_error)
                    })
                    .await
                }
            }

            #[async_trait]
            impl HotReads for $store {
                async fn find_session(&self, id: UserId, jti: Uuid, sid: Option<SessionId>) -> Result<Option<SessionLookup>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        let user = DbUuid(id.as_uuid());
                        // The nil UUID is never a session's: a token without `sid` reads "not live", ignored below.
                        let session = DbUuid(sid.map_or(Uuid::nil(), |sid| sid.as_uuid()));
                        let row = users::table
                            .find(user)
                            .select((
                                UserRow::as_select(),
                                diesel::dsl::exists(revoked_tokens::table.find(DbUuid(jti))),
                                diesel::dsl::exists(sessions::table.find(session).filter(sessions::ended_at.is_null())),
                                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>($linked_sql),
                            ))
                            .get_result::<(UserRow, bool, bool, Option<String>)>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?;
                        let Some((row, revoked, session_live, names)) = row else { return Ok(None) };
                        let session_ended = sid.is_some() && !session_live;
                        let mut linked = names
                            .as_deref()
                            .unwrap_or("")
                            .split(',')
                            .filter(|name| !name.is_empty())
                            .map(|name| {
                                ProviderName::parse(name).map_err(|_| {
                                    StoreError::Unavailable(format!("corrupt oauth_identities provider of user {}", id.as_uuid()))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        linked.sort_unstable();
                        linked.dedup();
                        Ok(Some(SessionLookup { user: User::try_from(row)?, revoked, session_ended, linked }))
                    })
                    .await
                }

                async fn find_key_with_owner(&self, digest: &KeyDigest) -> Result<Option<(ApiKey, User)>, StoreError> {
                    let digest = ToOwned::to_owned(digest);
                    self.run(Access::Read, move |mut conn| async move {
                        let digest: &KeyDigest = &digest;
                        let found = api_keys::table
                            .inner_join(users::table)
                            .filter(api_keys::key_digest.eq(digest.0.as_slice()))
                            .select((ApiKeyRow::as_select(), UserRow::as_select()))
                            .get_result::<(ApiKeyRow, UserRow)>(&mut *conn)
                            .await
                            .optional()
                            .map_err(query_error)?;
                        found.map(|(key, user)| Ok((key.try_into()?, user.try_into()?))).transpose()
                    })
                    .await
                }

                async fn list_projects(&self, user: UserId, environment: Environment) -> Result<Vec<Project>, StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        projects::table
                            .filter(projects::user_id.eq(DbUuid(user.as_uuid())))
                            .filter(projects::environment.eq(environment.as_str()))
                            .order((projects::created_at.desc(), projects::id.desc()))
                            .select(ProjectRow::as_select())
                            .load::<ProjectRow>(&mut *conn)
                            .await
                            .map_err(query_error)?
                            .into_iter()
                            .map(Project::try_from)
                            .collect()
                    })
                    .await
                }
            }

            #[async_trait]
            impl StoreHealth for $store {
                async fn ping(&self) -> Result<(), StoreError> {
                    self.run(Access::Read, move |mut conn| async move {
                        diesel::sql_query("SELECT 1").execute(&mut *conn).await.map_err(query_error)?;
                        Ok(())
                    })
                    .await
                }

                fn pool_usage(&self) -> Option<PoolUsage> {
                    Some(self.usage())
                }
            }

            #[cfg(test)]
            mod prepared_statements {
                use diesel::query_builder::QueryFragment;

                use super::*;

                fn reusable(query: &impl QueryFragment<$backend>) -> bool {
                    query.is_safe_to_cache_prepared(&$backend).expect("the query can be walked")
                }

                /// Inserts with empty optional fields keep one SQL text, so each
                /// connection prepares them once (a `DEFAULT` for `None` made
                /// diesel parse the audit insert of every login again).
                #[test]
                fn inserts_with_empty_optional_fields_reuse_their_prepared_statement() {
                    let event = AuditRow {
                        id: DbUuid(Uuid::nil()),
                        at: OffsetDateTime::UNIX_EPOCH,
                        kind: "login_succeeded".to_owned(),
                        user_id: None,
                        detail: None,
                        ip: None,
                        user_agent: None,
                        request_id: None,
                    };
                    assert!(reusable(&diesel::insert_into(audit_events::table).values(event)));
                    let user = UserRow {
                        id: DbUuid(Uuid::nil()),
                        email: "a@example.com".to_owned(),
                        full_name: None,
                        password_hash: None,
                        role: "user".to_owned(),
                        is_active: true,
                        session_version: 0,
                        created_at: OffsetDateTime::UNIX_EPOCH,
                        updated_at: OffsetDateTime::UNIX_EPOCH,
                        email_verified: false,
                        mfa_enabled: false,
                    };
                    assert!(reusable(&diesel::insert_into(users::table).values(user)));
                }
            }
        }
    };
}

/// Drops sub-second precision. SQLite stores timestamps as text with a
/// variable number of decimals, so only whole seconds compare correctly as
/// text; both backends store comparable timestamps this way.
#[must_use]
pub fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}
