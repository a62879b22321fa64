//! What the hub gives back: actions, events, the next deadline, and
//! read-only queries.

use std::time::Instant;

use super::Hub;
use crate::channel::{ChannelInfo, OfflineEntry};
use crate::id::{ChannelId, IdError};
use crate::output::{Action, ChannelState, DisconnectReason, Event};
use crate::stats::Stats;

impl Hub {
    /// The next action for the adapter, in order; `None` when there is none
    /// left. Call after every input until `None`, and execute each action on
    /// its socket in order: **undrained actions pile up**, and a socket's
    /// FIN, RST or close waits behind them.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Action, Config, Hub};
    /// # let mut hub = Hub::new(Config::default().with_max_channels(1)).unwrap();
    /// # let now = Instant::now();
    /// hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// while let Some(action) = hub.poll_action() {
    ///     assert_eq!(action, Action::PauseAccept); // the limit of 1 is reached
    /// }
    /// ```
    #[must_use]
    #[inline]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.books.actions.pop_front()
    }

    /// The next event for the application, in order; `None` when there is
    /// none left. Call after every input until `None`: **undrained events
    /// pile up** (with received bytes in them).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Event, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// assert!(matches!(hub.poll_event(), Some(Event::Opened { id: i, .. }) if i == id));
    /// assert_eq!(hub.poll_event(), None);
    /// ```
    #[must_use]
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.books.events.pop_front()
    }

    /// When [`handle_timeout`](Hub::handle_timeout) should next be called:
    /// the earliest pending deadline, or `None` when nothing is pending —
    /// in particular once shutdown is complete, so an adapter may loop
    /// until `None` and exit. Never in the past unless work is due
    /// (invariant 7). Call it after draining the outputs, then sleep until
    /// then or the next input.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tether_core::{Bytes, Config, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap(); // stall timeout 10 s
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// assert_eq!(hub.poll_timeout(), None); // an open channel, nothing queued
    /// hub.send(now, id, Bytes::from_static(b"x")).unwrap();
    /// assert_eq!(hub.poll_timeout(), Some(now + Duration::from_secs(10)));
    /// ```
    #[must_use]
    #[inline]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // No channel deadline pending (the common answer between deadlines
        // when no timer is configured): only the hub's own can be.
        if self.timers.len() == 0 {
            return self.gate.deadline();
        }
        // The top was settled and nothing since made it early or stale (a
        // transition pushing its channel's exact deadline is the common
        // case): the answer without another lookup.
        if self.timers.top_exact() {
            debug_assert!(self.top_is_exact(), "a top entry marked exact is not");
            return self.earliest();
        }
        self.settle_timeout()
    }

    /// The earlier of the heap's top and the hub's own deadline.
    #[inline]
    fn earliest(&self) -> Option<Instant> {
        let channel = self.timers.peek().map(|(at, _, _)| at);
        match (channel, self.gate.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the top entry is live, armed and at its channel's deadline
    /// (what `Timers::top_exact` claims; checked in debug builds).
    fn top_is_exact(&self) -> bool {
        self.timers.peek().is_none_or(|(at, id, kind)| {
            self.table.get(id).is_ok_and(|ch| {
                ch.armed(kind) == Some(at) && ch.deadline_of(kind, &self.config) == Some(at)
            })
        })
    }

    /// [`poll_timeout`](Hub::poll_timeout) with entries in the timer heap.
    // Inlined into the caller's run loop: as a call, its register saves
    // cost more than the settling (a sixth of a lifecycle, `benches/lifecycle.rs`).
    #[inline(always)]
    fn settle_timeout(&mut self) -> Option<Instant> {
        // The top entry may be stale (channel released or re-armed) or early
        // (armed before activity or write progress moved the real deadline
        // later, or before the queue drained, see `transitions::rearm`).
        // Settle it here so the answer is a real deadline: each pass pops
        // one entry and pushes at most one, and a settled entry is exact, so
        // this ends.
        let mut settled = None;
        while let Some(top @ (at, id, kind)) = self.timers.peek() {
            if settled == Some(top) {
                break; // just re-armed at its exact deadline
            }
            let Ok(ch) = self.table.get_mut(id) else {
                let _ = self.timers.pop(); // released
                continue;
            };
            if *ch.armed_mut(kind) != Some(at) {
                let _ = self.timers.pop(); // superseded by an earlier entry
                continue;
            }
            let exact = ch.deadline_of(kind, &self.config);
            if exact == Some(at) {
                break;
            }
            // Early: re-arm this kind at its real deadline, if it still has
            // one. Only this kind: every other deadline of the channel is
            // armed at or before its own already (`transitions::rearm`).
            *ch.armed_mut(kind) = exact;
            match exact {
                Some(next) => {
                    self.timers.replace_top(next, id, kind);
                    settled = Some((next, id, kind));
                }
                None => {
                    let _ = self.timers.pop();
                }
            }
        }
        self.timers.settled();
        self.earliest()
    }

    // ----- queries --------------------------------------------------------

    /// The channel's record itself, for the transition-table test.
    #[cfg(test)]
    pub(crate) fn record(&self, id: ChannelId) -> Option<&crate::channel::Channel> {
        self.table.get(id).ok()
    }

    /// A view of one live channel, with ages at the hub's clock.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{ChannelState, Config, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// let peer = "127.0.0.1:4000".parse().unwrap();
    /// let id = hub.accept(now, peer).unwrap();
    /// let info = hub.channel(id).unwrap();
    /// assert_eq!((info.peer, info.state, info.queued), (peer, ChannelState::Open, 0));
    /// ```
    pub fn channel(&self, id: ChannelId) -> Result<ChannelInfo, IdError> {
        let ch = self.table.get(id)?;
        Ok(ChannelInfo::new(id, ch, self.now.unwrap_or(ch.opened_at)))
    }

    /// The state of one live channel; a released id is
    /// [`Stale`](IdError::Stale).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{ChannelState, Config, Hub, KickMode};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// hub.kick(now, id, KickMode::Graceful, 0).unwrap();
    /// assert_eq!(hub.state(id), Ok(ChannelState::Closing));
    /// ```
    pub fn state(&self, id: ChannelId) -> Result<ChannelState, IdError> {
        self.table.get(id).map(|ch| ch.state)
    }

    /// Every live channel (open, half-closed, closing, offline), in slot
    /// order.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let peer = "127.0.0.1:4000".parse().unwrap();
    /// let ids = [hub.accept(now, peer).unwrap(), hub.accept(now, peer).unwrap()];
    /// assert!(hub.channels().map(|c| c.id).eq(ids));
    /// ```
    pub fn channels(&self) -> impl Iterator<Item = ChannelInfo> + '_ {
        self.table
            .iter()
            .map(move |(id, ch)| ChannelInfo::new(id, ch, self.now.unwrap_or(ch.opened_at)))
    }

    /// The offline queue, oldest first: disconnected channels whose socket
    /// is not closed yet, with why, how long, and who still holds them.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, DisconnectReason, Hub, KickMode};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// hub.attach(now, id).unwrap();
    /// hub.kick(now, id, KickMode::Abort, 3).unwrap();
    /// let entry = hub.offline().next().unwrap();
    /// assert_eq!((entry.id, entry.holders), (id, 1));
    /// assert_eq!(entry.reason, DisconnectReason::Kicked { code: 3 });
    /// ```
    pub fn offline(&self) -> impl Iterator<Item = OfflineEntry> + '_ {
        let table = &self.table;
        self.books
            .offline
            .iter(move |id| table.contains(id))
            .filter_map(move |(id, since)| {
                let ch = table.get(id).ok()?;
                Some(OfflineEntry {
                    id,
                    reason: ch.reason.unwrap_or(DisconnectReason::ServerShutdown),
                    age: self.now.unwrap_or(since).saturating_duration_since(since),
                    holders: ch.holders,
                    close_requested: ch.close_requested,
                })
            })
    }

    /// How many channels are alive (open, half-closed, closing, offline).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// hub.accept(Instant::now(), "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// assert_eq!(hub.live(), 1);
    /// ```
    pub fn live(&self) -> usize {
        self.table.len()
    }

    /// Whether sends to this channel should be held back: it is usable and
    /// its queue's charge reached [`Config::high_watermark`](crate::Config::high_watermark)
    /// (or a send overflowed it) and has not yet fallen to
    /// [`Config::low_watermark`](crate::Config::low_watermark);
    /// [`Event::Writable`] says when it has. A closing or offline channel is
    /// never backpressured (sends to it fail `NotUsable`).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Bytes, Config, Hub};
    /// let mut hub = Hub::new(Config::default().with_queue_limit(1_000)).unwrap(); // high 250
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// hub.send(now, id, Bytes::from(vec![0; 200])).unwrap(); // charged 200 + 96
    /// assert_eq!(hub.is_backpressured(id), Ok(true));
    /// ```
    pub fn is_backpressured(&self, id: ChannelId) -> Result<bool, IdError> {
        self.table.get(id).map(|ch| ch.backpressured)
    }

    /// How many usable channels are backpressured now, in O(1) (a counter
    /// kept by every transition that sets or clears the flag, and by every
    /// way a channel stops being usable).
    ///
    /// ```
    /// use tether_core::{Config, Hub};
    /// assert_eq!(Hub::new(Config::default()).unwrap().backpressured(), 0);
    /// ```
    pub fn backpressured(&self) -> usize {
        debug_assert!(self.books.backpressured <= self.books.usable);
        self.books.backpressured
    }

    /// Whether the hub asked the adapter to pause accepting
    /// ([`Action::PauseAccept`] emitted, no `ResumeAccept` since).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Hub};
    /// let mut hub = Hub::new(Config::default().with_max_channels(1)).unwrap();
    /// hub.accept(Instant::now(), "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// assert!(hub.is_accept_paused());
    /// ```
    pub fn is_accept_paused(&self) -> bool {
        self.gate.accept_paused
    }

    /// Whether [`shutdown`](Hub::shutdown) was called.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tether_core::{Config, Hub};
    /// let mut hub = Hub::new(Config::default()).unwrap();
    /// assert!(!hub.is_shutting_down());
    /// hub.shutdown(Instant::now(), Duration::from_secs(1));
    /// assert!(hub.is_shutting_down());
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.gate.shutdown.is_some()
    }

    /// Whether shutdown finished: every channel released,
    /// [`Event::ShutdownComplete`] emitted.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tether_core::{Config, Hub};
    /// let mut hub = Hub::new(Config::default()).unwrap();
    /// hub.shutdown(Instant::now(), Duration::from_secs(1));
    /// assert!(hub.is_shutdown_complete()); // nothing was alive
    /// ```
    pub fn is_shutdown_complete(&self) -> bool {
        self.gate.shutdown.is_some_and(|s| s.complete)
    }

    /// The hub's clock: the time of its latest input, after the clock rule
    /// (an earlier `now` clamped, a held jump not counted).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Hub};
    /// let mut hub = Hub::new(Config::default()).unwrap();
    /// assert_eq!(hub.now(), None);
    /// let t = Instant::now();
    /// hub.handle_timeout(t);
    /// assert_eq!(hub.now(), Some(t));
    /// ```
    pub fn now(&self) -> Option<Instant> {
        self.now
    }

    /// Counters and gauges. Gauges are computed on call (`O(offline)` for
    /// the oldest offline age at worst).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// hub.accept(Instant::now(), "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// let stats = hub.stats();
    /// assert_eq!((stats.opened, stats.live, stats.usable), (1, 1, 1));
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = self.books.stats.clone();
        stats.live = self.table.len();
        stats.usable = self.books.usable;
        stats.backpressured = self.backpressured();
        stats.offline_depth = self.books.offline.depth();
        stats.offline_peak = self.books.offline.peak();
        stats.accept_paused = self.gate.accept_paused;
        stats.timer_entries = self.timers.len();
        let table = &self.table;
        stats.offline_oldest = self
            .books
            .offline
            .iter(|id| table.contains(id))
            .next()
            .map(|(_, since)| self.now.unwrap_or(since).saturating_duration_since(since));
        stats
    }
}
