use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::error::{AuthError, DomainError, Forbidden};
use crate::model::{
    ApiKey, ApiKeyId, ApiKeySecret, AuditEvent, AuditKind, AuthMethod, Environment, KeyDigest, KeySighting,
    KeyUsage, Principal, ResourceName, User,
};

use crate::ports::{
    ApiKeyRepository, Change, ChangeFeed, Clock, HotReads, RequestContextSource, SecretGenerator,
};

use super::audit::Recorder;
use super::{AuthSettings, Ports, from_ports, opaque_debug};

/// How many (key, address) pairs one instance remembers before starting over
/// (a shard at a time); forgetting only costs a lookup in the store.
const SEEN_ADDRESSES: usize = 100_000;
/// The buffer's counts and pairs are spread over this many maps, each behind
/// its own lock, so that concurrent key checks seldom wait for each other.
const USAGE_SHARDS: usize = 16;
/// First uses from an address waiting for the next flush, at most. Each
/// costs a write or two at the flush, so a burst of keys used from new
/// addresses (a fleet coming online) can outrun it; past this bound a first
/// use is not kept, nor marked seen, and the key's next use from that
/// address notes it again once the flush has caught up. Memory stays bounded
/// (a sighting is about 300 bytes) whatever the burst.
const PENDING_SIGHTINGS: usize = 10_000;
/// Keys (or first uses) written per store call at a flush: one transaction
/// each, short enough that other writers barely wait (a thousand updates are
/// a few milliseconds on either database), while a million keys still flush
/// in seconds.
const FLUSH_BATCH: usize = 1_000;

/// What a caller asks for when creating a key (unvalidated).
#[derive(Debug, Clone, Default)]
pub struct NewKeyRequest {
    pub name: String,
    pub expires_in_days: Option<i64>,
    pub environment: Option<String>,
}

/// A key as its owner sees it in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub key: ApiKey,
    /// Neither revoked nor expired now.
    pub is_active: bool,
}

/// Key uses counted in memory between flushes, so that authenticating with a
/// key never writes to the database on the request's path.
#[derive(Debug, Default)]
pub(super) struct UsageBuffer {
    /// Uses since the last flush, by key, in the shard of the key's id.
    pending: [Mutex<HashMap<ApiKeyId, (i64, OffsetDateTime)>>; USAGE_SHARDS],
    /// Addresses this instance already saw each key used from, as a keyed
    /// 64-bit hash of the pair (8 bytes instead of an id and a string; two
    /// pairs of 100 000 share a hash about once in three billion fillings,
    /// and then one first use goes unrecorded), in the shard of the hash.
    seen: [Mutex<HashSet<u64>>; USAGE_SHARDS],
    pairs: RandomState,
    /// First uses from an address, to check against the store at the next
    /// flush: the event is written only if the store did not know the pair.
    sightings: Mutex<Vec<KeySighting>>,
    /// First uses not kept since the last flush (the bound was reached).
    overflowed: std::sync::atomic::AtomicU64,
}

impl UsageBuffer {
    fn pending(&self, id: ApiKeyId) -> MutexGuard<'_, HashMap<ApiKeyId, (i64, OffsetDateTime)>> {
        // The last byte of a UUID is random (v4 and v7 alike).
        let shard = usize::from(id.as_uuid().as_bytes()[15]) % USAGE_SHARDS;
        self.pending[shard].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn seen(&self, pair: u64) -> MutexGuard<'_, HashSet<u64>> {
        let shard = usize::try_from(pair % USAGE_SHARDS as u64).unwrap_or(0);
        self.seen[shard].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, id: ApiKeyId, at: OffsetDateTime) {
        let mut pending = self.pending(id);
        let entry = pending.entry(id).or_insert((0, at));
        entry.0 += 1;
        entry.1 = entry.1.max(at);
    }

    fn take(&self) -> Vec<KeyUsage> {
        let mut taken = Vec::new();
        for shard in &self.pending {
            let mut pending = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let drained =
                pending.drain().map(|(id, (count, last_used_at))| KeyUsage { id, count, last_used_at });
            taken.extend(drained);
        }
        taken
    }

    /// Notes a use of `id` from `ip`; only the first per address is kept, and
    /// at most [`PENDING_SIGHTINGS`] until the next flush.
    fn sighted(&self, id: ApiKeyId, ip: &str, event: impl FnOnce() -> AuditEvent) {
        let pair = self.pairs.hash_one((id, ip));
        let mut seen = self.seen(pair);
        if seen.contains(&pair) {
            return;
        }
        // Locked in this order only (seen, then sightings).
        let mut sightings = self.sightings.lock().unwrap_or_else(PoisonError::into_inner);
        if sightings.len() >= PENDING_SIGHTINGS {
            self.overflowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        if seen.len() >= SEEN_ADDRESSES / USAGE_SHARDS {
            seen.clear();
        }
        seen.insert(pair);
        drop(seen);
        sightings.push(KeySighting { id, ip: ip.to_owned(), event: event() });
    }

    fn take_sightings(&self) -> Vec<KeySighting> {
        std::mem::take(&mut *self.sightings.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many first uses were not kept since the last call.
    fn take_overflowed(&self) -> u64 {
        self.overflowed.swap(0, std::sync::atomic::Ordering::Relaxed)
    }

    /// Lets a sighting that could not be checked be noted again.
    fn forget(&self, id: ApiKeyId, ip: &str) {
        let pair = self.pairs.hash_one((id, ip));
        self.seen(pair).remove(&pair);
    }

    /// Puts back counts that could not be written.
    fn restore(&self, usage: Vec<KeyUsage>) {
        for KeyUsage { id, count, last_used_at } in usage {
            let mut pending = self.pending(id);
            let entry = pending.entry(id).or_insert((0, last_used_at));
            entry.0 += count;
            entry.1 = entry.1.max(last_used_at);
        }
    }
}

/// API keys: create, list, revoke, authenticate, and usage counting.
#[derive(Clone)]
pub struct ApiKeyService {
    api_keys: Arc<dyn ApiKeyRepository>,
    reads: Arc<dyn HotReads>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    context: Arc<dyn RequestContextSource>,
    changes: Arc<dyn ChangeFeed>,
    audit: Recorder,
    default_days: i64,
    usage: Arc<UsageBuffer>,
}

opaque_debug!(ApiKeyService);

impl ApiKeyService {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        from_ports!(ports => Self { api_keys, reads; secrets, clock, context, changes;
            audit: Recorder::new(ports),
            default_days: settings.api_key_default_days,
            usage: Arc::new(UsageBuffer::default()),
        })
    }

    /// Creates a key for the caller and returns it with its secret, the only
    /// time the secret exists outside its owner's hands.
    ///
    /// # Errors
    /// `JwtRequired` for a key-authenticated caller; 422 `invalid_field` for a
    /// bad name, lifetime (1 to 365 days) or environment; `Unavailable`.
    pub async fn create(
        &self,
        caller: &Principal,
        request: NewKeyRequest,
    ) -> Result<(ApiKey, ApiKeySecret), DomainError> {
        require_jwt(caller)?;
        let name = ResourceName::parse(&request.name)
            .map_err(|e| DomainError::invalid_field("name", e.to_string()))?;
        let days = request.expires_in_days.unwrap_or(self.default_days);
        if !(1..=365).contains(&days) {
            return Err(DomainError::invalid_field("expires_in_days", "must be between 1 and 365"));
        }
        let environment = match request.environment.as_deref() {
            None => Environment::Live,
            Some(raw) => raw
                .parse::<Environment>()
                .map_err(|()| DomainError::invalid_field("environment", "must be \"live\" or \"test\""))?,
        };
        let secret = ApiKeySecret::from_random(environment, self.secrets.secret_bytes());
        let now = self.clock.now();
        let key = ApiKey {
            id: ApiKeyId::new(),
            user_id: caller.user.id,
            name,
            environment,
            digest: self.digest(&secret),
            created_at: now,
            expires_at: now + Duration::days(days),
            revoked_at: None,
            last_used_at: None,
            usage_count: 0,
        };
        let key = self.api_keys.insert_key(key).await?;
        let detail = Some(format!("key_id={}", key.id));
        self.audit.record(AuditKind::ApiKeyCreated, Some(caller.user.id), detail).await?;
        Ok((key, secret))
    }

    /// The caller's keys, newest first.
    ///
    /// # Errors
    /// `JwtRequired`; `Unavailable`.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<ListedKey>, DomainError> {
        require_jwt(caller)?;
        let now = self.clock.now();
        let keys = self.api_keys.list_keys(caller.user.id).await?;
        Ok(keys.into_iter().map(|key| ListedKey { is_active: key.is_active(now), key }).collect())
    }

    /// Revokes one of the caller's keys; it fails from the next request on.
    ///
    /// # Errors
    /// `JwtRequired`; `NotFound` for an unknown key or another user's; `Unavailable`.
    pub async fn revoke(&self, caller: &Principal, id: ApiKeyId) -> Result<ApiKey, DomainError> {
        require_jwt(caller)?;
        let written = self.api_keys.revoke_key(caller.user.id, id, self.clock.now()).await;
        self.changes.changed(Change::Key(id));
        let key = written?;
        let detail = Some(format!("key_id={id}"));
        self.audit.record(AuditKind::ApiKeyRevoked, Some(caller.user.id), detail).await?;
        Ok(key)
    }

    /// Verifies a presented key. A malformed key (wrong prefix, length or
    /// checksum) is refused without touching the store. A successful use is
    /// counted in memory; [`flush_usage`](Self::flush_usage) writes the counts.
    ///
    /// # Errors
    /// `InvalidApiKey`, `ApiKeyRevoked`, `ApiKeyExpired`, `AccountDisabled`; `Unavailable`.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, DomainError> {
        let (key, user) = self.inspect(presented).await?;
        let now = self.clock.now();
        self.usage.record(key.id, now);
        if let Some(ip) = self.context.current().ip {
            self.usage.sighted(key.id, &ip, || {
                let detail = Some(format!("key_id={}", key.id));
                self.audit.event(AuditKind::ApiKeyNewIp, Some(user.id), detail, now)
            });
        }
        Ok(Principal::from_api_key(user, &key))
    }

    /// Checks a presented key as [`authenticate`](Self::authenticate) does,
    /// without counting a use or noting its address (introspection).
    ///
    /// # Errors
    /// As [`authenticate`](Self::authenticate).
    pub async fn inspect(&self, presented: &str) -> Result<(ApiKey, User), DomainError> {
        let secret = ApiKeySecret::parse(presented)
            .map_err(|_| DomainError::Unauthenticated(AuthError::InvalidApiKey))?;
        let Some((key, user)) = self.reads.find_key_with_owner(&self.digest(&secret)).await? else {
            return Err(DomainError::Unauthenticated(AuthError::InvalidApiKey));
        };
        let now = self.clock.now();
        if key.revoked_at.is_some() {
            return Err(DomainError::Unauthenticated(AuthError::ApiKeyRevoked));
        }
        if key.expires_at <= now {
            return Err(DomainError::Unauthenticated(AuthError::ApiKeyExpired));
        }
        if !user.is_active {
            return Err(DomainError::Unauthenticated(AuthError::AccountDisabled));
        }
        Ok((key, user))
    }

    /// Writes the counted uses, [`FLUSH_BATCH`] keys per store call, and
    /// returns how many keys it touched. On failure the counts not yet
    /// written stay buffered for the next flush.
    ///
    /// # Errors
    /// `Unavailable` when the store cannot be reached.
    pub async fn flush_usage(&self) -> Result<usize, DomainError> {
        self.flush_sightings().await?;
        let mut batch = self.usage.take();
        let mut written = 0;
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(FLUSH_BATCH));
            if let Err(e) = self.api_keys.record_key_usage(&batch).await {
                batch.extend(rest);
                self.usage.restore(batch);
                return Err(e.into());
            }
            written += batch.len();
            batch = rest;
        }
        Ok(written)
    }

    /// How many first uses of a key from an address were not kept since the
    /// last call, because more were waiting for the flush than it bounds
    /// (10 000): their `api_key_new_ip` events are written at the key's next
    /// use from the address instead. For the host to report.
    #[must_use]
    pub fn unrecorded_sightings(&self) -> u64 {
        self.usage.take_overflowed()
    }

    /// Writes an `api_key_new_ip` event for each address the store had not
    /// seen the key used from, [`FLUSH_BATCH`] per store call. Sightings
    /// that could not be written are forgotten, so the key's next use from
    /// the address notes them again.
    async fn flush_sightings(&self) -> Result<(), DomainError> {
        let sightings = self.usage.take_sightings();
        let mut batches = sightings.chunks(FLUSH_BATCH);
        while let Some(batch) = batches.next() {
            match self.api_keys.record_key_sightings(batch).await {
                Ok(appended) => {
                    let appended: std::collections::HashSet<uuid::Uuid> = appended.into_iter().collect();
                    for sighting in batch.iter().filter(|s| appended.contains(&s.event.id)) {
                        self.audit.written(&sighting.event);
                    }
                }
                Err(e) => {
                    for sighting in std::iter::once(batch).chain(batches).flatten() {
                        self.usage.forget(sighting.id, &sighting.ip);
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    fn digest(&self, secret: &ApiKeySecret) -> KeyDigest {
        KeyDigest(self.secrets.digest(secret.expose().as_bytes()))
    }
}

fn require_jwt(caller: &Principal) -> Result<(), DomainError> {
    if caller.method == AuthMethod::Jwt {
        Ok(())
    } else {
        Err(DomainError::Forbidden(Forbidden::JwtRequired))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::{PENDING_SIGHTINGS, UsageBuffer};
    use crate::model::{ApiKeyId, AuditEvent, AuditKind};

    fn event() -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::nil(),
            at: datetime!(2026-12-04 10:00 UTC),
            kind: AuditKind::ApiKeyNewIp,
            user_id: None,
            detail: None,
            ip: None,
            user_agent: None,
            request_id: None,
        }
    }

    #[test]
    fn first_uses_wait_in_a_bounded_buffer_and_those_past_it_are_noted_again() {
        let usage = UsageBuffer::default();
        let key = ApiKeyId::new();
        let address = |i: usize| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
        for i in 0..PENDING_SIGHTINGS + 5 {
            usage.sighted(key, &address(i), event);
        }
        usage.sighted(key, &address(0), || unreachable!("a pair already kept is not noted twice"));
        assert_eq!(usage.take_sightings().len(), PENDING_SIGHTINGS);
        assert_eq!(usage.take_overflowed(), 5);
        assert_eq!(usage.take_overflowed(), 0, "the count starts over");
        // A use past the bound was not marked seen: its next use is kept.
        usage.sighted(key, &address(PENDING_SIGHTINGS + 1), event);
        let taken = usage.take_sightings();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].ip, address(PENDING_SIGHTINGS + 1));
    }
}
