//! The in-process limiter: GCRA state in sharded maps that stay bounded.
//!
//! A flood of requests from ever new client addresses is a flood of new keys.
//! Three rules keep that from costing every other request:
//!
//! - **No global lock.** Keys are spread over [`SHARDS`] maps, each behind its
//!   own mutex, so a hit locks one shard; the per-principal budget of a
//!   signed-in user never waits behind the login flood's keys.
//! - **No scan.** Each shard keeps its keys in a min-heap by the time their
//!   budget is whole again (the TAT); a hit pops at most [`EXPIRE_PER_HIT`]
//!   keys whose time has passed, so expiry costs O(log n) and is spread over
//!   the hits that cause it.
//! - **A hard bound.** A shard holds at most `max_keys / SHARDS` keys; at the
//!   bound the key closest to being whole goes, which forgets the least.
//!
//! Keys are stored as a 64-bit keyed hash (random per process, so nobody can
//! aim two keys at one slot): about 60 bytes a key, whatever its length.

use std::cmp::Reverse;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use portcullis_domain::ports::RateLimiter;
use portcullis_domain::{Quota, RateDecision, StoreError};
use time::OffsetDateTime;

use crate::{decide, interval_ms, millis};

/// How many maps the keys are spread over.
const SHARDS: usize = 70;
/// Most expired keys one hit removes (each hit adds at most one).
const EXPIRE_PER_HIT: usize = 4;
/// Keys a sweep looks at per turn of a shard's lock.
const SWEEP_TURN: usize = 256;
/// Stale heap positions looked at before an eviction takes the top as it is.
const EVICTION_TRIES: usize = 8;
/// Keys kept at most, by default. A key is 16 bytes in its shard's table and
/// 16 in its heap, but a table at its bound churns (each eviction leaves a
/// tombstone) and is rebuilt at twice the size its keys need: half a million
/// keys cost about 30 MiB, a million about 57 (measured with a profiler).
/// Half a million fresh client addresses inside one window is a flood, and
/// at the bound the key nearest to a whole budget goes first.
pub const DEFAULT_MAX_KEYS: usize = 500_000;

/// The shard's map is keyed by an already random 64-bit hash; this only mixes
/// it so that the bits the shard was chosen by do not cluster its slots.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        let h = self.0 ^ (self.0 >> 32);
        h.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[derive(Default)]
struct Shard {
    /// Key hash → theoretical arrival time (ms since the epoch).
    tats: HashMap<u64, i64, BuildHasherDefault<Mix>>,
    /// One position per key: (its TAT when last filed, key). A key's TAT only
    /// moves forward while it is in use, so a filed time is never later than
    /// the real one; a position found early is filed again at the real time.
    deadlines: BinaryHeap<Reverse<(i64, u64)>>,
}

impl Shard {
    /// Forgets up to `most` keys whose budget is whole at `now`; whether
    /// more may be due.
    fn expire(&mut self, now: i64, most: usize) -> bool {
        for _ in 0..most {
            match self.deadlines.peek() {
                Some(Reverse((due, _))) if *due <= now => {}
                _ => return false,
            }
            let Some(Reverse((_, key))) = self.deadlines.pop() else { return false };
            match self.tats.get(&key).copied() {
                Some(tat) if tat > now => self.deadlines.push(Reverse((tat, key))),
                Some(_) => {
                    self.tats.remove(&key);
                }
                None => {}
            }
        }
        true
    }

    /// Makes room for one key: the one whose budget is whole soonest goes.
    fn evict(&mut self) {
        for _ in 0..EVICTION_TRIES {
            let Some(Reverse((filed, key))) = self.deadlines.pop() else { return };
            match self.tats.get(&key).copied() {
                Some(tat) if tat > filed => self.deadlines.push(Reverse((tat, key))),
                Some(_) => {
                    self.tats.remove(&key);
                    return;
                }
                None => {}
            }
        }
        if let Some(Reverse((_, key))) = self.deadlines.pop() {
            self.tats.remove(&key);
        }
    }
}

/// The in-process limiter: limits hold per instance.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    shards: Box<[Mutex<Shard>]>,
    keys: RandomState,
    per_shard: usize,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("keys", &self.tats.len()).finish()
    }
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }
}

impl MemoryRateLimiter {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A limiter that keeps at most about `max_keys` keys.
    #[must_use]
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            keys: RandomState::new(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// How many keys are held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).tats.len()).sum()
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every key whose budget is whole at `now`, a shard at a time and
    /// in short turns, so no request waits long behind it. Hits expire keys of
    /// their own shard as they go; this frees what an idle shard still holds
    /// (the server runs it every few seconds).
    pub fn sweep(&self, now: OffsetDateTime) {
        let now = clamp(millis(now));
        for shard in &*self.shards {
            while shard.lock().unwrap_or_else(PoisonError::into_inner).expire(now, SWEEP_TURN) {}
        }
    }

    fn shard(&self, key: &str) -> (std::sync::MutexGuard<'_, Shard>, u64) {
        let hash = self.keys.hash_one(key);
        let index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        let shard = self.shards[index].lock().unwrap_or_else(PoisonError::into_inner);
        (shard, hash)
    }
}

fn clamp(ms: i128) -> i64 {
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<RateDecision, StoreError> {
        let now = clamp(millis(now));
        let (mut shard, hash) = self.shard(key);
        shard.expire(now, EXPIRE_PER_HIT);
        let stored = shard.tats.get(&hash).map(|tat| i128::from(*tat));
        let (decision, new_tat) = decide(stored, quota, i128::from(now));
        if let Some(tat) = new_tat.map(clamp) {
            let full = shard.tats.len() >= self.per_shard;
            if !shard.tats.contains_key(&hash) && full {
                shard.evict();
            }
            if let Entry::Vacant(slot) = shard.tats.entry(hash) {
                slot.insert(tat);
                shard.deadlines.push(Reverse((tat, hash)));
            } else {
                shard.tats.insert(hash, tat);
            }
        }
        Ok(decision)
    }

    async fn refund(&self, key: &str, quota: Quota, now: OffsetDateTime) -> Result<(), StoreError> {
        let now = clamp(millis(now));
        let interval = clamp(interval_ms(quota));
        let (mut shard, hash) = self.shard(key);
        if let Some(tat) = shard.tats.get_mut(&hash) {
            *tat = (tat.saturating_sub(interval)).max(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use super::*;

    const T0: OffsetDateTime = time::macros::datetime!(2026-12-01 10:00:00 UTC);

    #[tokio::test]
    async fn the_bound_holds_and_evicts_the_key_closest_to_whole() {
        let limiter = MemoryRateLimiter::with_max_keys(SHARDS * 10);
        let quota = Quota::new(5, 60);
        // A key that is spent stays; a flood of one-hit keys cannot evict it.
        for _ in 0..5 {
            assert!(limiter.hit("spent", quota, T0).await.unwrap().allowed);
        }
        for i in 0..10_000 {
            limiter.hit(&format!("flood-{i}"), Quota::new(1000, 1), T0).await.unwrap();
        }
        assert!(limiter.len() <= SHARDS * 10, "{} keys", limiter.len());
        assert!(
            !limiter.hit("spent", quota, T0).await.unwrap().allowed,
            "the spent budget survived the flood"
        );
    }

    #[tokio::test]
    async fn a_sweep_forgets_every_key_whose_budget_is_whole_again() {
        let limiter = MemoryRateLimiter::with_max_keys(1_000_000);
        for i in 0..1_000 {
            limiter.hit(&format!("k{i}"), Quota::new(10, 1), T0).await.unwrap();
        }
        assert_eq!(limiter.len(), 1_000);
        let later = T0 + Duration::seconds(2);
        limiter.hit("fresh", Quota::new(10, 60), later).await.unwrap();
        limiter.sweep(later);
        assert_eq!(limiter.len(), 1, "every expired key went; the fresh one stays");
    }

    #[tokio::test]
    async fn a_key_in_steady_use_is_never_expired_early() {
        let limiter = MemoryRateLimiter::with_max_keys(1_000);
        let quota = Quota::new(3, 60);
        for second in 0..3 {
            let at = T0 + Duration::seconds(second * 10);
            assert!(limiter.hit("steady", quota, at).await.unwrap().allowed);
            limiter.hit("noise", Quota::new(1000, 1), at).await.unwrap();
        }
        // The first hit's filed TAT (T0 + 20 s) has passed; the real one has not.
        let at = T0 + Duration::seconds(30);
        limiter.hit("noise", Quota::new(1000, 1), at).await.unwrap();
        let decision = limiter.hit("steady", quota, at).await.unwrap();
        assert!(decision.allowed, "one hit's worth came back after 20 s");
        assert!(!limiter.hit("steady", quota, at).await.unwrap().allowed, "and only one");
    }
}
