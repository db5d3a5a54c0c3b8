//! Where "now" comes from. Production reads the system clock; tests inject
//! a [`ManualClock`] and move it by hand (token and `state` expiry in
//! [`crate::oauth`], slots and leases in the scheduler), so no test sleeps.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A clock that starts at a given time and runs at the system clock's
/// pace: a replay runs "at" its cassette's recording time, and its runs
/// still take time.
#[derive(Debug, Clone)]
pub struct OffsetClock {
    start: DateTime<Utc>,
    since: std::time::Instant,
}

impl OffsetClock {
    /// A clock showing `start` now.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            start,
            since: std::time::Instant::now(),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = Duration::from_std(self.since.elapsed()).unwrap_or_default();
        self.start + elapsed
    }
}
