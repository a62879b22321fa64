//! What one node knows of another: its incarnation, where its stream
//! stands, the early messages waiting for a missing one, and its channels.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use smallvec::SmallVec;
use tether_core::ChannelId;

use crate::wire::Body;

/// Messages ready to apply, in sequence order (usually one).
pub(super) type Ready = SmallVec<[Body; 1]>;

/// Where a received message stands in its sender's stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sequenced {
    /// Already applied or already waiting: drop it.
    Duplicate,
    /// Waiting for an earlier one.
    Early,
    /// Applied in order (with any early ones it unblocked).
    Ready,
}

/// One remote node, live.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) incarnation: u64,
    /// The sequence number of the next message to apply.
    pub(super) next_seq: u64,
    /// Early messages by sequence number, at most the reorder window.
    pub(super) early: BTreeMap<u64, Body>,
    /// Since when the oldest open gap has been waiting.
    pub(super) gap_since: Option<Instant>,
    pub(super) last_heard: Instant,
    pub(super) channels: BTreeSet<ChannelId>,
    /// When this node last asked that one for a snapshot (spacing).
    pub(super) last_request: Option<Instant>,
}

impl Peer {
    /// A node first heard from now, its stream starting at `seq`: whatever
    /// it sent before this node listened is not expected (its presence
    /// comes from a snapshot instead).
    pub(super) fn new(incarnation: u64, seq: u64, now: Instant) -> Peer {
        Peer {
            incarnation,
            next_seq: seq,
            early: BTreeMap::new(),
            gap_since: None,
            last_heard: now,
            channels: BTreeSet::new(),
            last_request: None,
        }
    }

    /// When it stops being live without another message.
    pub(super) fn expires(&self, ttl: Duration) -> Option<Instant> {
        self.last_heard.checked_add(ttl)
    }

    /// When its open gap is declared lost.
    pub(super) fn gap_deadline(&self, wait: Duration) -> Option<Instant> {
        self.gap_since.and_then(|t| t.checked_add(wait))
    }

    /// Places message `seq` in the stream: applies it (into `ready`, with
    /// the early ones it unblocks) if it is the next one, holds it if
    /// early, drops it if seen. Sequence numbers are compared by distance
    /// (wrapping), so a stream may run through `u64::MAX`.
    pub(super) fn sequence(
        &mut self,
        seq: u64,
        body: Body,
        now: Instant,
        ready: &mut Ready,
    ) -> Sequenced {
        let ahead = seq.wrapping_sub(self.next_seq);
        if ahead >= 1 << 63 {
            return Sequenced::Duplicate;
        }
        if ahead > 0 {
            if self.early.contains_key(&seq) {
                return Sequenced::Duplicate;
            }
            self.early.insert(seq, body);
            self.gap_since.get_or_insert(now);
            return Sequenced::Early;
        }
        ready.push(body);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.drain(ready);
        Sequenced::Ready
    }

    /// Declares the gap before the oldest early message lost: returns how
    /// many messages it skipped, and applies what follows it into `ready`.
    pub(super) fn skip_gap(&mut self, now: Instant, ready: &mut Ready) -> u64 {
        let Some(&first) = self.early.keys().next() else {
            self.gap_since = None;
            return 0;
        };
        let missing = first.wrapping_sub(self.next_seq);
        self.next_seq = first;
        self.drain(ready);
        if !self.early.is_empty() {
            // A later gap gets its own wait.
            self.gap_since = Some(now);
        }
        missing
    }

    /// Moves the early messages that are now next into `ready`.
    fn drain(&mut self, ready: &mut Ready) {
        while let Some(body) = self.early.remove(&self.next_seq) {
            ready.push(body);
            self.next_seq = self.next_seq.wrapping_add(1);
        }
        // An early message left behind means a gap is still open; it may be
        // a newer one, but waiting is measured from the first (conservative).
        if self.early.is_empty() {
            self.gap_since = None;
        }
    }
}
