//! Channel deadlines: a min-heap with lazy deletion.
//!
//! Each channel has at most one *armed* deadline (its earliest possible
//! one). Re-arming pushes a new entry and leaves the old one in the heap;
//! an entry is valid only while the channel is alive and still armed at that
//! instant, so stale entries are skipped when they surface. The heap is
//! compacted when stale entries outnumber live channels, which keeps memory
//! bounded by the channel limit (invariant 8) at amortized O(1) per entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::id::ChannelId;

#[derive(Debug, Default, Clone)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Timers {
    pub fn push(&mut self, at: Instant, id: ChannelId) {
        self.heap.push(Reverse((at, id.to_raw())));
    }

    pub fn peek(&self) -> Option<(Instant, ChannelId)> {
        self.heap
            .peek()
            .map(|Reverse((at, raw))| (*at, ChannelId::from_raw(*raw)))
    }

    pub fn pop(&mut self) -> Option<(Instant, ChannelId)> {
        self.heap
            .pop()
            .map(|Reverse((at, raw))| (at, ChannelId::from_raw(raw)))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops every entry `valid` rejects.
    pub fn compact(&mut self, mut valid: impl FnMut(Instant, ChannelId) -> bool) {
        self.heap
            .retain(|Reverse((at, raw))| valid(*at, ChannelId::from_raw(*raw)));
    }
}
