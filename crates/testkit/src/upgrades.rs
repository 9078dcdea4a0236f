//! What the SQL stores' upgrade tests share: each puts its own database back
//! to an earlier release's state with SQL of its dialect, then checks the
//! same outcome here.

use portcullis_domain::ports::AuditLog;
use portcullis_domain::{AuditEvent, AuditKind, AuditQuery, UserId};
use time::OffsetDateTime;

/// The version diesel records for the migration that renames `user_updated`
/// to `admin_user_updated`.
pub const ADMIN_RENAME_VERSION: &str = "20261205000014";

/// An administrator's change, as the current release writes it.
#[must_use]
pub fn admin_change() -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: OffsetDateTime::now_utc(),
        kind: AuditKind::AdminUserUpdated,
        user_id: Some(UserId::new()),
        detail: Some("role=ADMIN by=someone".to_owned()),
        ip: None,
        user_agent: None,
        request_id: None,
    }
}

/// Asserts that `events` (newest first), stored under the old name, are the
/// events found under the contract's name: stored before the renaming
/// migration ran, or after it by an instance of the earlier release during a
/// rolling upgrade.
///
/// # Panics
/// When they are not.
pub async fn assert_found_under_the_contracts_name<S: AuditLog + ?Sized>(store: &S, events: &[&AuditEvent]) {
    let query =
        AuditQuery { user_id: None, kind: Some(AuditKind::AdminUserUpdated), before: None, limit: 10 };
    let found = store.list_events(query).await.expect("list_events succeeds");
    assert_eq!(
        found.iter().map(|e| e.id).collect::<Vec<_>>(),
        events.iter().map(|e| e.id).collect::<Vec<_>>(),
        "found by the contract's name"
    );
    assert!(found.iter().all(|e| e.kind == AuditKind::AdminUserUpdated));
}

/// What the earlier release writes for an administrator's change: the old
/// name (here over every stored event).
pub const OLD_NAME_WRITE: &str = "UPDATE audit_events SET kind = 'user_updated'";
