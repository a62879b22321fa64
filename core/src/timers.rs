//! Channel deadlines: a min-heap with lazy deletion.
//!
//! Each channel has at most one *armed* deadline of each [`Kind`] (its
//! earliest possible one). Re-arming pushes a new entry and leaves the old
//! one in the heap; an entry is valid only while the channel is alive and
//! still armed at that instant for that kind, so stale entries are skipped
//! when they surface. The heap is compacted when stale entries outnumber
//! live channels, which keeps memory bounded by the channel limit
//! (invariant 8) at amortized O(1) per entry.
//!
//! The heap also remembers whether its top entry is known to be *exact*
//! (live, armed, at its channel's real deadline), so `Hub::poll_timeout`
//! can answer without looking the top's channel up again. Only exact
//! entries are pushed (`transitions::rearm` pushes a channel's deadline as
//! it is), so a push never makes a known-exact top inexact; every pop,
//! replacement and compaction forgets it, and so does every change to a
//! channel that may leave its armed entry other than its deadline
//! ([`Timers::unsettle`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::id::ChannelId;

/// Which deadline of a channel an entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Idle, login, flush or overdue holder: `Channel::armed`.
    Lifecycle,
    /// The stall deadline of a usable channel's queue: `Channel::stall_armed`.
    Stall,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, Kind)>>,
    /// The top entry, if any, is known to be exact (module doc).
    top_exact: bool,
}

impl Timers {
    /// Adds an entry for a channel armed at exactly `at`, its deadline of
    /// this kind (the only entries ever pushed, see the module doc).
    pub fn push(&mut self, at: Instant, id: ChannelId, kind: Kind) {
        // Alone in the heap, the new entry is the top and exact; otherwise
        // it is the top only if earlier, and exact either way.
        self.top_exact |= self.heap.is_empty();
        self.heap.push(Reverse((at, id.to_raw(), kind)));
    }

    pub fn peek(&self) -> Option<(Instant, ChannelId, Kind)> {
        self.heap
            .peek()
            .map(|Reverse((at, raw, kind))| (*at, ChannelId::from_raw(*raw), *kind))
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(Instant, ChannelId, Kind)> {
        self.top_exact = false;
        self.heap
            .pop()
            .map(|Reverse((at, raw, kind))| (at, ChannelId::from_raw(raw), kind))
    }

    /// Replaces the earliest entry (there is one) by this one: one sift
    /// instead of a pop and a push.
    #[inline]
    pub fn replace_top(&mut self, at: Instant, id: ChannelId, kind: Kind) {
        self.top_exact = false;
        if let Some(mut top) = self.heap.peek_mut() {
            *top = Reverse((at, id.to_raw(), kind));
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the top entry, if any, is known to be exact.
    #[inline]
    pub fn top_exact(&self) -> bool {
        self.top_exact
    }

    /// Records that the top entry was just found exact (`poll_timeout`'s
    /// settling).
    #[inline]
    pub fn settled(&mut self) {
        self.top_exact = true;
    }

    /// Forgets that the top entry is exact: a channel changed in a way
    /// that may leave its armed entry early or stale.
    #[inline]
    pub fn unsettle(&mut self) {
        self.top_exact = false;
    }

    /// Drops every entry `valid` rejects.
    pub fn compact(&mut self, mut valid: impl FnMut(Instant, ChannelId, Kind) -> bool) {
        self.top_exact = false;
        self.heap
            .retain(|Reverse((at, raw, kind))| valid(*at, ChannelId::from_raw(*raw), *kind));
    }
}

#[cfg(feature = "snapshot")]
impl Timers {
    /// Every entry, stale ones included, in the heap's own order (which
    /// [`Timers::from_entries`] keeps: a valid heap is not reordered).
    pub fn entries(&self) -> impl Iterator<Item = (Instant, ChannelId, Kind)> + '_ {
        (self.heap.as_slice().iter())
            .map(|Reverse((at, raw, kind))| (*at, ChannelId::from_raw(*raw), *kind))
    }

    /// A heap of exactly these entries.
    pub fn from_entries(entries: impl IntoIterator<Item = (Instant, ChannelId, Kind)>) -> Timers {
        let entries: Vec<_> = (entries.into_iter())
            .map(|(at, id, kind)| Reverse((at, id.to_raw(), kind)))
            .collect();
        Timers {
            heap: BinaryHeap::from(entries),
            top_exact: false,
        }
    }
}
