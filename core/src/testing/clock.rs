//! A clock you move by hand.

use std::time::{Duration, Instant};

/// A virtual clock: an [`Instant`] that only moves when told to. Hubs take
/// time as an argument, so tests can run hours of timeouts in microseconds.
///
/// ```
/// use std::time::Duration;
/// use tether_core::testing::VirtualClock;
/// let mut clock = VirtualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(31));
/// assert_eq!(clock.elapsed(), Duration::from_secs(31));
/// assert_eq!(clock.now() - t0, Duration::from_secs(31));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualClock {
    start: Instant,
    now: Instant,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A clock starting at an arbitrary real instant; only differences matter.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A clock starting at `start`.
    pub fn starting_at(start: Instant) -> Self {
        VirtualClock { start, now: start }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The instant the clock started at.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves the clock forward by `d` and returns the new time.
    pub fn advance(&mut self, d: Duration) -> Instant {
        self.now = self.now.checked_add(d).unwrap_or(self.now);
        self.now
    }

    /// Sets the clock to `at`, which may be earlier (to test clocks that run
    /// backwards: the hub clamps them).
    pub fn set(&mut self, at: Instant) {
        self.now = at;
    }

    /// The instant `d` after the start.
    pub fn at(&self, d: Duration) -> Instant {
        self.start.checked_add(d).unwrap_or(self.start)
    }
}
