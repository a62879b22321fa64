//! What one node knows of another: its incarnation, where its stream
//! stands, the early messages waiting for a missing one, and its channels.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use smallvec::SmallVec;
use tether_core::ChannelId;

use crate::wire::Body;

/// Whether `a` comes before `b` in a (wrapping) sequence.
fn before(a: u64, b: u64) -> bool {
    a.wrapping_sub(b) >= 1 << 63
}

/// Messages ready to apply, in sequence order (usually one).
pub(super) type Ready = SmallVec<[Body; 1]>;

/// Where a received message stands in its sender's stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sequenced {
    /// Already applied, already waiting, or already declared lost (a
    /// straggler behind a skipped gap): drop it.
    Duplicate,
    /// Older than the first message this node received from the sender
    /// (since it last became live here) but not applied: overtaken by a
    /// later one (reordering at first contact), it can no longer be
    /// applied in order.
    BeforeStart,
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
    /// Where the stream (re)started here: the first message applied since
    /// it last became live.
    first_seq: u64,
    /// Messages below this were applied before it expired here (the same
    /// process came back): copies of them are duplicates, not losses.
    applied_below: Option<u64>,
    /// Early messages by sequence number, with their arrival times; at
    /// most the reorder window.
    pub(super) early: BTreeMap<u64, (Instant, Body)>,
    /// The earliest arrival among the early messages: the gap before it
    /// has waited longest.
    pub(super) gap_since: Option<Instant>,
    pub(super) last_heard: Instant,
    pub(super) channels: BTreeSet<ChannelId>,
    /// When this node last asked that one for a snapshot (spacing).
    pub(super) last_request: Option<Instant>,
    /// A snapshot was asked for (or must be) and none applied since:
    /// the request is repeated every spacing.
    pub(super) wants_snapshot: bool,
}

impl Peer {
    /// A node heard from now, its stream starting at `seq`: whatever it
    /// sent before this node listened is not expected (its presence comes
    /// from a snapshot instead). If the same process expired here before,
    /// `resume` is where its stream stood then: the stream starts at the
    /// later of the two, and [`Peer::missed`] tells how many it skipped.
    pub(super) fn new(incarnation: u64, seq: u64, resume: Option<u64>, now: Instant) -> Peer {
        let start = match resume {
            Some(r) if before(seq, r) => r,
            _ => seq,
        };
        Peer {
            incarnation,
            next_seq: start,
            first_seq: start,
            applied_below: resume,
            early: BTreeMap::new(),
            gap_since: None,
            last_heard: now,
            channels: BTreeSet::new(),
            last_request: None,
            wants_snapshot: false,
        }
    }

    /// Messages skipped while it was gone: from where its stream stood
    /// when it expired here to where it restarted.
    pub(super) fn missed(&self) -> u64 {
        self.applied_below
            .map_or(0, |r| self.first_seq.wrapping_sub(r))
    }

    /// When it stops being live without another message.
    pub(super) fn expires(&self, ttl: Duration) -> Option<Instant> {
        self.last_heard.checked_add(ttl)
    }

    /// When a snapshot request (first or again) goes out, while one is
    /// wanted: at once if none was sent yet.
    pub(super) fn request_deadline(&self, spacing: Duration, now: Instant) -> Option<Instant> {
        if !self.wants_snapshot {
            return None;
        }
        match self.last_request {
            Some(t) => t.checked_add(spacing),
            None => Some(now),
        }
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
            // Below the start of a first contact: never applied nor counted.
            // After a resume everything below was applied or counted missed.
            if before(seq, self.first_seq) && self.applied_below.is_none() {
                return Sequenced::BeforeStart;
            }
            return Sequenced::Duplicate;
        }
        if ahead > 0 {
            if self.early.contains_key(&seq) {
                return Sequenced::Duplicate;
            }
            self.early.insert(seq, (now, body));
            self.gap_since.get_or_insert(now);
            return Sequenced::Early;
        }
        ready.push(body);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.drain(ready);
        Sequenced::Ready
    }

    /// Declares lost every missing message older than an early message
    /// that has waited `wait` (C5); applies what that unblocks into
    /// `ready`; returns how many messages were skipped.
    pub(super) fn skip_due(&mut self, now: Instant, wait: Duration, ready: &mut Ready) -> u64 {
        let cutoff = self
            .early
            .iter()
            .filter(|(_, (at, _))| at.checked_add(wait).is_some_and(|t| t <= now))
            .map(|(&seq, _)| seq)
            .next_back();
        let Some(cutoff) = cutoff else {
            return 0;
        };
        let mut missing = 0u64;
        while let Some(entry) = self.early.first_entry() {
            let seq = *entry.key();
            if seq > cutoff {
                break;
            }
            let (_, body) = entry.remove();
            missing = missing.saturating_add(seq.wrapping_sub(self.next_seq));
            ready.push(body);
            self.next_seq = seq.wrapping_add(1);
        }
        self.drain(ready);
        missing
    }

    /// Declares the gap before the oldest early message lost at once (the
    /// reorder window is full); returns how many messages it skipped.
    pub(super) fn skip_first(&mut self, ready: &mut Ready) -> u64 {
        let Some(&first) = self.early.keys().next() else {
            return 0;
        };
        let missing = first.wrapping_sub(self.next_seq);
        self.next_seq = first;
        self.drain(ready);
        missing
    }

    /// Moves the early messages that are now next into `ready`.
    fn drain(&mut self, ready: &mut Ready) {
        while let Some((_, body)) = self.early.remove(&self.next_seq) {
            ready.push(body);
            self.next_seq = self.next_seq.wrapping_add(1);
        }
        // The gap left open (if any) has waited since its oldest arrival.
        self.gap_since = self.early.values().map(|(at, _)| *at).min();
    }
}

/// What this node knows of another node's process (one incarnation), kept
/// while it is live and after it expired: its clock (a node expired during
/// a broker pause keeps its baseline, so the backlog's delay still shows
/// when it comes back) and where its stream stood.
#[derive(Debug)]
pub(super) struct Baseline {
    pub(super) incarnation: u64,
    /// Where its stream stood when it expired here: if the same
    /// incarnation comes back, its stream resumes there, so a late copy of
    /// an old message is still a duplicate and a hole is still a gap.
    pub(super) resume_seq: Option<u64>,
    /// The least offset seen (local ms − its ms), and when: the offset of
    /// its fastest message.
    least_offset: Option<(i64, Instant)>,
}

impl Baseline {
    pub(super) fn new(incarnation: u64) -> Baseline {
        Baseline {
            incarnation,
            resume_seq: None,
            least_offset: None,
        }
    }

    /// Records a message sent at its clock `sent_ms` and received at local
    /// `local_ms`; returns its estimated delay beyond the fastest message
    /// seen, in ms. The baseline may rise by 1 ms per second, so two clocks
    /// drifting apart (by far less: crystals drift ~50 ppm) never make
    /// every message look late.
    pub(super) fn observe(&mut self, sent_ms: u64, local_ms: u64, now: Instant) -> u64 {
        let to_i64 = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX);
        let sample = to_i64(local_ms).saturating_sub(to_i64(sent_ms));
        let baseline = self.least_offset.map(|(least, at)| {
            let drift = now.saturating_duration_since(at).as_millis() / 1000;
            least.saturating_add(i64::try_from(drift).unwrap_or(i64::MAX))
        });
        match baseline {
            Some(base) if sample > base => u64::try_from(sample.saturating_sub(base)).unwrap_or(0),
            _ => {
                self.least_offset = Some((sample, now));
                0
            }
        }
    }
}
