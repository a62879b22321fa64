//! The driver's own counters (the state machine counts the rest): what the
//! threads around it refused, dropped or found malformed. Atomics, so
//! `stats` reads them without asking the owner thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters of one node's driver, all monotonic.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct DriverCounters {
    /// Local lines, opens and closes not handed to the owner thread: its
    /// queue was full (the node is overloaded) or it had stopped.
    pub handoff_dropped: AtomicU64,
    /// Payloads the owner could not queue for the writer thread (its queue
    /// full while Redis is slow): a gap the receivers count and repair.
    pub publish_dropped: AtomicU64,
    /// Bus entries without a readable payload (not ours, or damaged).
    pub bad_entries: AtomicU64,
    /// Claim renewals that found the name held by another process.
    pub claim_lost: AtomicU64,
    /// Claim renewals that found the claim gone and took it again (Redis
    /// restarted, or the node was cut off longer than the TTL).
    pub claim_retaken: AtomicU64,
    /// Times the reader stopped reading the bus because the delivery
    /// thread was behind (the stream is the buffer: nothing is dropped).
    pub reads_paused: AtomicU64,
    /// Remote kicks not queued for execution (the kick thread's queue was
    /// full); the asking node answers `unavailable` at its timeout.
    pub kicks_dropped: AtomicU64,
    /// Remote lines not relayed because they were longer than a chat line
    /// may be, or the local server had stopped.
    pub deliveries_dropped: AtomicU64,
}

impl DriverCounters {
    /// Every counter as `(key, value)`, keys `cluster.*`, in a fixed order.
    pub fn snapshot(&self) -> [(&'static str, u64); 8] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("cluster.handoff_dropped", get(&self.handoff_dropped)),
            ("cluster.publish_dropped", get(&self.publish_dropped)),
            ("cluster.bad_entries", get(&self.bad_entries)),
            ("cluster.claim_lost", get(&self.claim_lost)),
            ("cluster.claim_retaken", get(&self.claim_retaken)),
            ("cluster.reads_paused", get(&self.reads_paused)),
            ("cluster.kicks_not_queued", get(&self.kicks_dropped)),
            ("cluster.deliveries_dropped", get(&self.deliveries_dropped)),
        ]
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Logs a recurring warning at most once a second, with how many happened
/// since the last line.
#[derive(Debug)]
pub(crate) struct RateLimit {
    last: Option<Instant>,
    missed: u64,
}

impl RateLimit {
    pub(crate) const fn new() -> RateLimit {
        RateLimit {
            last: None,
            missed: 0,
        }
    }

    /// `Some(count)` when a line is due (count: occurrences it stands for).
    pub(crate) fn hit(&mut self) -> Option<u64> {
        self.missed += 1;
        let now = Instant::now();
        match self.last {
            Some(last) if now.saturating_duration_since(last) < Duration::from_secs(1) => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.missed))
            }
        }
    }
}
