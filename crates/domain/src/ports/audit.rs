use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::{AuditEvent, AuditQuery, RequestContext};

/// Where security events are kept.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Stores one event.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn append(&self, event: AuditEvent) -> Result<(), StoreError>;

    /// The events matching `query`, newest (highest id) first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn list_events(&self, query: AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;

    /// Deletes at most `limit` of the events older than `before`, the oldest
    /// first, in one short write, and says how many. Callers loop until fewer
    /// than `limit` are deleted, so that a large backlog never holds the
    /// store's writer (or locks) for long.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn prune_events(&self, before: OffsetDateTime, limit: u32) -> Result<u64, StoreError>;
}

/// The request being served, as the edge saw it (address, user agent, request
/// id), for the audit log. The HTTP layer answers from the request in flight;
/// an embedding without one uses [`NoRequestContext`].
pub trait RequestContextSource: Send + Sync {
    fn current(&self) -> RequestContext;
}

/// A context source that knows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRequestContext;

impl RequestContextSource for NoRequestContext {
    fn current(&self) -> RequestContext {
        RequestContext::default()
    }
}

/// Told of each audit event once it is stored, whichever write stored it:
/// [`AuditLog::append`], or a store that writes the event with its own rows
/// in one commit (a session's start, a refresh token's rotation, a key's
/// first use from an address). An event whose write failed or was refused
/// is not told. For counters and forwarding (the service's `/metrics`, an
/// embedder's security feed); it runs on the request's path, so it must
/// return at once.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait AuditObserver: Send + Sync {
    fn written(&self, event: &AuditEvent);
}

/// Nobody watches the audit log.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl AuditObserver for NoObserver {
    fn written(&self, _: &AuditEvent) {}
}
