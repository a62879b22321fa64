//! The offline queue, named after the seed's: channels that are disconnected
//! but whose socket is not closed yet, oldest first.
//!
//! Entries are appended when a channel goes offline; time never runs
//! backwards inside the hub, so the queue is ordered by age. Released
//! channels are removed lazily (skipped at the front, compacted when they
//! outnumber the live entries), so a release is O(1) and memory stays within
//! twice the channel limit (invariant 8).

use std::collections::VecDeque;
use std::time::Instant;

use crate::id::ChannelId;

#[derive(Debug, Default, Clone)]
pub(crate) struct OfflineQueue {
    entries: VecDeque<(ChannelId, Instant)>,
    /// Entries still offline (the rest are released and wait for removal).
    depth: usize,
    /// The largest `depth` ever reached.
    peak: usize,
}

impl OfflineQueue {
    pub fn push(&mut self, id: ChannelId, since: Instant) {
        self.entries.push_back((id, since));
        self.depth += 1;
        self.peak = self.peak.max(self.depth);
    }

    /// Records that `id` left the queue (released); `live` says whether an
    /// id is still offline, for lazy clean-up.
    pub fn remove(&mut self, live: impl Fn(ChannelId) -> bool) {
        self.depth -= 1;
        while let Some(&(front, _)) = self.entries.front() {
            if live(front) {
                break;
            }
            self.entries.pop_front();
        }
        if self.entries.len() > 2 * self.depth + 32 {
            self.entries.retain(|&(id, _)| live(id));
        }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Offline entries, oldest first (lazily skipping released ones).
    pub fn iter<'a>(
        &'a self,
        live: impl Fn(ChannelId) -> bool + 'a,
    ) -> impl Iterator<Item = (ChannelId, Instant)> + 'a {
        self.entries
            .iter()
            .copied()
            .filter(move |&(id, _)| live(id))
    }
}

#[cfg(feature = "snapshot")]
impl OfflineQueue {
    /// Every entry (released ones not yet removed included), in order, with
    /// the depth and the peak.
    pub fn parts(&self) -> (&VecDeque<(ChannelId, Instant)>, usize, usize) {
        (&self.entries, self.depth, self.peak)
    }

    /// A queue of exactly these parts (checked by the caller).
    pub fn from_parts(entries: VecDeque<(ChannelId, Instant)>, depth: usize, peak: usize) -> Self {
        OfflineQueue {
            entries,
            depth,
            peak,
        }
    }
}
