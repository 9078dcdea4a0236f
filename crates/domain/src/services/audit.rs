use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DomainError;
use crate::model::{
    AuditEvent, AuditKind, AuditQuery, MAX_USER_AGENT_CHARS, Principal, RequestContext, UserId,
};

use crate::ports::{AuditLog, AuditObserver, Clock, RequestContextSource};

use super::{Ports, admin::require_admin, opaque_debug};

/// How many expired audit events one pruning write deletes at most: a few
/// milliseconds of work on either database, so no other write waits long.
pub(crate) const PRUNE_BATCH: u32 = 1_000;

/// What a service that writes audit events holds: the log, and the clock
/// and request in flight that stamp each event.
#[derive(Clone)]
pub(super) struct Recorder {
    log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    context: Arc<dyn RequestContextSource>,
    observer: Arc<dyn AuditObserver>,
}

opaque_debug!(Recorder);

impl Recorder {
    pub(super) fn new(ports: &Ports) -> Self {
        Self {
            log: Arc::clone(&ports.audit),
            clock: Arc::clone(&ports.adapters.clock),
            context: Arc::clone(&ports.adapters.context),
            observer: Arc::clone(&ports.adapters.observer),
        }
    }

    /// Writes one event, with the context of the request in flight.
    ///
    /// # Errors
    /// `Unavailable`.
    pub(super) async fn record(
        &self,
        kind: AuditKind,
        user_id: Option<UserId>,
        detail: Option<String>,
    ) -> Result<(), DomainError> {
        let event = self.event(kind, user_id, detail, self.clock.now());
        self.append(event).await
    }

    /// Writes one event on a path that already failed: losing it must not
    /// hide the error the caller is about to get.
    pub(super) async fn record_failure(&self, kind: AuditKind, user_id: Option<UserId>, detail: &str) {
        let _ = self.record(kind, user_id, Some(detail.to_owned())).await;
    }

    /// Writes one event on behalf of an earlier request (work queued by it
    /// and done later), with that request's context.
    ///
    /// # Errors
    /// `Unavailable`.
    pub(super) async fn record_for(
        &self,
        context: RequestContext,
        kind: AuditKind,
        user_id: Option<UserId>,
        detail: Option<String>,
    ) -> Result<(), DomainError> {
        let event = event_in(context, kind, user_id, detail, self.clock.now());
        self.append(event).await
    }

    async fn append(&self, event: AuditEvent) -> Result<(), DomainError> {
        self.log.append(event.clone()).await?;
        self.observer.written(&event);
        Ok(())
    }

    /// Tells the observer of an event a store wrote with its own rows.
    pub(super) fn written(&self, event: &AuditEvent) {
        self.observer.written(event);
    }

    /// The event [`record`](Self::record) would write now, for a caller
    /// that has the store write it with other rows (a session's start).
    pub(super) fn event_now(
        &self,
        kind: AuditKind,
        user_id: Option<UserId>,
        detail: Option<String>,
    ) -> AuditEvent {
        self.event(kind, user_id, detail, self.clock.now())
    }

    /// The event as [`record`](Self::record) would write it, for a caller
    /// that writes it itself (or not at all).
    pub(super) fn event(
        &self,
        kind: AuditKind,
        user_id: Option<UserId>,
        detail: Option<String>,
        at: OffsetDateTime,
    ) -> AuditEvent {
        event_in(self.context.current(), kind, user_id, detail, at)
    }
}

fn event_in(
    context: RequestContext,
    kind: AuditKind,
    user_id: Option<UserId>,
    detail: Option<String>,
    at: OffsetDateTime,
) -> AuditEvent {
    AuditEvent {
        id: time_ordered_id(at),
        at,
        kind,
        user_id,
        detail,
        ip: context.ip,
        user_agent: context.user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
        request_id: context.request_id,
    }
}

/// The last id's 60-bit time (48 bits of milliseconds, 12 of fraction) in this process.
static LAST_TICK: AtomicU64 = AtomicU64::new(0);

/// A UUIDv7 at `at` (the domain's clock, so tests control it). Its 12 bits
/// after the millisecond hold the fraction of the millisecond (RFC 9562,
/// method 3), and within one process every id is greater than the one before,
/// even when the clock stands still or steps back: events sort in the order
/// they were written.
fn time_ordered_id(at: OffsetDateTime) -> Uuid {
    let nanos = u128::try_from(at.unix_timestamp_nanos()).unwrap_or(0);
    let millis = u64::try_from(nanos / 1_000_000).unwrap_or(0) & ((1 << 48) - 1);
    let fraction = u64::try_from((nanos % 1_000_000) * 4096 / 1_000_000).unwrap_or(0);
    let wanted = (millis << 12) | fraction;
    let previous = LAST_TICK
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(wanted.max(last + 1)))
        .unwrap_or(wanted);
    let tick = wanted.max(previous + 1);
    let random = Uuid::new_v4().as_u128();
    let time = (u128::from(tick >> 12) << 80) | (0x7 << 76) | (u128::from(tick & 0xfff) << 64);
    Uuid::from_u128(time | (random & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000)
}

/// The audit log: reading it, and forgetting old events.
#[derive(Clone)]
pub struct AuditService {
    log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
}

opaque_debug!(AuditService);

/// Most events one page returns.
pub const MAX_AUDIT_PAGE: u32 = 200;

impl AuditService {
    #[must_use]
    pub fn new(log: Arc<dyn AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self { log, clock }
    }

    /// Any user's events, for administrators.
    ///
    /// # Errors
    /// `InsufficientPermissions`, `JwtRequired`; 422 for a limit outside
    /// 1..=200; `Unavailable`.
    pub async fn list(&self, caller: &Principal, query: AuditQuery) -> Result<Vec<AuditEvent>, DomainError> {
        require_admin(caller)?;
        self.page(query).await
    }

    /// The caller's own events, with any credential.
    ///
    /// # Errors
    /// 422 for a limit outside 1..=200; `Unavailable`.
    pub async fn mine(
        &self,
        caller: &Principal,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<AuditEvent>, DomainError> {
        self.page(AuditQuery { user_id: Some(caller.user.id), kind: None, before, limit }).await
    }

    async fn page(&self, query: AuditQuery) -> Result<Vec<AuditEvent>, DomainError> {
        if !(1..=MAX_AUDIT_PAGE).contains(&query.limit) {
            return Err(DomainError::invalid_field(
                "limit",
                format!("must be between 1 and {MAX_AUDIT_PAGE}"),
            ));
        }
        Ok(self.log.list_events(query).await?)
    }

    /// Deletes events older than `retention_days`; returns how many. It goes
    /// in batches of 1 000 events, each its own write, so other writes take
    /// their turns in between however large the backlog. A service that can
    /// wait between batches should call [`Self::prune_batch`] itself and
    /// pace them (the server does).
    ///
    /// # Errors
    /// `Unavailable` (what was deleted before stays deleted).
    pub async fn prune(&self, retention_days: u32) -> Result<u64, DomainError> {
        let mut total = 0;
        loop {
            let deleted = self.prune_batch(retention_days, PRUNE_BATCH).await?;
            total += deleted;
            if deleted < u64::from(PRUNE_BATCH) {
                return Ok(total);
            }
        }
    }

    /// Deletes the oldest of the events older than `retention_days`, at most
    /// `limit` (1 to 1 000) of them, in one write; returns how many. Fewer
    /// than `limit` means none was left, or another instance pruning at the
    /// same time deleted part of the batch first: a periodic caller stops
    /// there and its next pass resumes.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn prune_batch(&self, retention_days: u32, limit: u32) -> Result<u64, DomainError> {
        let cutoff = self.clock.now() - time::Duration::days(i64::from(retention_days));
        Ok(self.log.prune_events(cutoff, limit.clamp(1, PRUNE_BATCH)).await?)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::time_ordered_id;

    #[test]
    fn ids_sort_like_their_times_within_a_millisecond() {
        let at = datetime!(2026-11-28 10:00:00.123 UTC);
        let ids: Vec<_> =
            (0..50).map(|i| time_ordered_id(at + time::Duration::nanoseconds(i * 19_000))).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by time");
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids.iter().all(|id| id.get_variant() == uuid::Variant::RFC4122));
        assert_eq!(ids[0].get_timestamp().map(|t| t.to_unix().0), Some(at.unix_timestamp().cast_unsigned()));
    }

    #[test]
    fn ids_keep_increasing_when_the_clock_stands_still_or_steps_back() {
        let at = datetime!(2026-11-28 10:00:00 UTC);
        let ids =
            [time_ordered_id(at), time_ordered_id(at), time_ordered_id(at - time::Duration::seconds(5))];
        assert!(ids[0] < ids[1] && ids[1] < ids[2]);
    }
}
