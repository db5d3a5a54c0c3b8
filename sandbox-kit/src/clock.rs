//! The sandbox's own time: session TTLs, code expiry and lockouts read it,
//! so tests move time with [`ManualClock::advance`] instead of sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A monotonic clock, as time elapsed since some origin.
pub trait Clock: Send + Sync {
    /// Time elapsed since the clock's origin.
    fn now(&self) -> Duration;
}

/// A clock tests can move forward. [`ManualClock::running`] follows real
/// time plus the advances; [`ManualClock::frozen`] moves only when advanced.
#[derive(Debug)]
pub struct ManualClock {
    origin: Option<Instant>,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// Real elapsed time plus whatever [`ManualClock::advance`] added.
    pub fn running() -> Self {
        Self {
            origin: Some(Instant::now()),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Stands still at zero until advanced.
    pub fn frozen() -> Self {
        Self {
            origin: None,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut offset = self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *offset += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::running()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        let offset = *self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.origin.map(|o| o.elapsed()).unwrap_or_default() + offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_moves_only_when_advanced() {
        let clock = ManualClock::frozen();
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), Duration::from_secs(90));
    }

    #[test]
    fn running_adds_advances_to_real_time() {
        let clock = ManualClock::running();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now() >= Duration::from_secs(3600));
        assert!(clock.now() < Duration::from_secs(3700));
    }
}
