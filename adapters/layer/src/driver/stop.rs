//! The two-phase drain (docs/design.md §5.5): every shard stops reading and
//! accepting, every relay between shards already in flight reaches its
//! shard's hub (a barrier), and only then does each hub start its graceful
//! shutdown with its deadline.
//!
//! Without the barrier a shard that shut down first rejected the lines
//! another shard was still relaying to it: its clients lost lines that the
//! others read (issue 16).
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Driver;
use crate::glue::Glue;

/// Shards that may still relay lines to other shards: each leaves once its
/// reads have stopped and its relays are in the other shards' queues.
/// Shared by every shard of a server.
#[derive(Debug)]
pub(crate) struct Barrier(AtomicUsize);

impl Barrier {
    pub fn new(shards: usize) -> Arc<Barrier> {
        Arc::new(Barrier(AtomicUsize::new(shards)))
    }

    fn leave(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }

    /// Every shard has left: every relay is in its target's queue.
    fn passed(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }
}

/// Where a shard's driver is in the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stopping {
    /// Serving: no shutdown asked for.
    No,
    /// Reads and accepts stopped; this shard's relays to other shards are
    /// not all in their queues yet.
    Quiescing { grace: Duration, by: Instant },
    /// This shard left the barrier; waiting for every other shard, then for
    /// its own queued commands to reach its hub.
    Settling { grace: Duration, by: Instant },
    /// The hub's graceful shutdown runs (`Hub::shutdown`).
    Draining,
}

impl Stopping {
    /// Reads wait between the start of the drain and the hub's shutdown:
    /// what is read then would be a line accepted after the drain began.
    pub fn holds_reads(self) -> bool {
        matches!(self, Stopping::Quiescing { .. } | Stopping::Settling { .. })
    }
}

impl<G: Glue> Driver<G> {
    /// Starts the drain (the first call's grace counts; later ones change
    /// nothing). The barrier phase waits at most `grace`, the hub's
    /// graceful shutdown at most `grace` more.
    pub(super) fn begin_stop(&mut self, now: Instant, grace: Duration) {
        if self.stopping != Stopping::No {
            return;
        }
        // Far enough when `grace` does not fit an `Instant`.
        let by = now
            .checked_add(grace)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        self.stopping = Stopping::Quiescing { grace, by };
        self.gates.set(self.shard, false);
    }

    /// Moves the drain on as far as it can go now; whether the hub's
    /// shutdown started (its outputs want a drain).
    pub(super) fn advance_stop(&mut self, now: Instant) -> bool {
        if let Stopping::Quiescing { grace, by } = self.stopping {
            let relayed = self
                .app
                .as_ref()
                .is_none_or(|app| !app.has_remote_pending());
            if relayed || now >= by {
                self.leave_barrier();
                self.stopping = Stopping::Settling { grace, by };
            }
        }
        if let Stopping::Settling { grace, by } = self.stopping {
            let settled = self.barrier.passed()
                && self.held.is_none()
                && self.behind.is_empty()
                && self.app.as_ref().is_none_or(|app| app.backlog() == 0)
                && self.queues.commands.is_empty();
            if settled || now >= by {
                self.stopping = Stopping::Draining;
                self.hub.shutdown(now, grace);
                return true;
            }
        }
        false
    }

    /// Shuts the hub down at once (every handle is gone).
    pub(super) fn stop_now(&mut self, now: Instant) {
        self.leave_barrier();
        self.stopping = Stopping::Draining;
        self.hub.shutdown(now, Duration::ZERO);
    }

    /// Leaves the barrier, once.
    fn leave_barrier(&mut self) {
        if !self.left_barrier {
            self.left_barrier = true;
            self.barrier.leave();
        }
    }
}
