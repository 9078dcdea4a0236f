//! A clock that tests move by hand.

use std::sync::Mutex;

use portcullis_domain::ports::Clock;
use time::{Duration, OffsetDateTime};

/// Starts at the real time; `advance` moves it forward, never the wall clock.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    #[must_use]
    pub fn new() -> Self {
        Self { now: Mutex::new(OffsetDateTime::now_utc()) }
    }

    #[must_use]
    pub fn at(now: OffsetDateTime) -> Self {
        Self { now: Mutex::new(now) }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
