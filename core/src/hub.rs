//! The hub: owns every channel and takes every input.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smallvec::SmallVec;

use crate::channel::{Channel, ChannelInfo, OfflineEntry};
use crate::config::{Config, ConfigError, KickMode};
use crate::error::{AcceptError, InputError, KickError, SendError};
use crate::id::{ChannelId, IdError, IdTable};
use crate::output::{Action, ChannelState, DisconnectReason, Event};
use crate::stats::Stats;
use crate::timers::{Kind, Timers};
use crate::transitions::{self as t, Books};

/// The outcome of a broadcast: how many channels queued the bytes, and which
/// did not and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a broadcast may be refused by some channels"]
pub struct BroadcastReport {
    /// Channels that queued the bytes.
    pub sent: usize,
    /// Channels that refused them, with the reason.
    pub refused: SmallVec<[(ChannelId, SendError); 4]>,
}

#[derive(Debug, Clone, Copy)]
struct Shutdown {
    deadline: Instant,
    deadline_done: bool,
    complete: bool,
}

/// The connection-lifecycle engine: one value, one owner, no I/O.
///
/// Inputs are methods (`accept`, `handle_*`, `send`, `kick`, `attach`, …)
/// that take `now`; outputs are drained by polling. The run loop of an
/// adapter is:
///
/// 1. feed every input that happened (a connection, bytes, EOF, an error, a
///    write completion, an app command) with the current time;
/// 2. drain [`poll_action`](Hub::poll_action) and execute each action on its
///    socket, in order;
/// 3. drain [`poll_event`](Hub::poll_event) and hand each event to the app;
/// 4. sleep until the next input or [`poll_timeout`](Hub::poll_timeout),
///    whichever comes first, then call [`handle_timeout`](Hub::handle_timeout).
///
/// Outputs stay queued until polled, so the order of steps 2 and 3 only
/// matters for latency. Time never runs backwards inside the hub: an earlier
/// `now` than one seen before is clamped (and counted in
/// [`Stats::time_regressions`]).
///
/// See the [crate documentation](crate) for a complete run loop.
#[derive(Debug)]
pub struct Hub {
    config: Config,
    table: IdTable<Channel>,
    timers: Timers,
    books: Books,
    now: Option<Instant>,
    /// A `now` too far ahead of `now` to believe at once, kept to see
    /// whether the next input confirms it (see [`Config::max_clock_jump`]).
    held_jump: Option<Instant>,
    accept_paused: bool,
    shutdown: Option<Shutdown>,
}

impl Hub {
    /// A hub with this configuration.
    pub fn new(config: Config) -> Result<Hub, ConfigError> {
        config.validate()?;
        Ok(Hub {
            table: IdTable::new(config.shard),
            config,
            timers: Timers::default(),
            books: Books::default(),
            now: None,
            held_jump: None,
            accept_paused: false,
            shutdown: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The clock rule (crate docs, *Time*), applied once per input: the
    /// time the input is carried out at. Time never runs backwards while
    /// anything in the hub holds a time (invariant 10: no panic on any
    /// input, whatever the clock does), and one input cannot move it ahead
    /// by more than `max_clock_jump` unless the next input confirms it.
    fn clock(&mut self, now: Instant) -> Instant {
        let Some(last) = self.now else {
            self.now = Some(now);
            return now;
        };
        if self.table.is_empty() && self.shutdown.is_none() {
            // No channel, no shutdown deadline: nothing holds a time, so
            // any `now` is believed, an earlier one too.
            self.held_jump = None;
            self.now = Some(now);
            return now;
        }
        if now < last {
            self.books.stats.time_regressions += 1;
            self.held_jump = None;
            return last;
        }
        let bound = self.config.max_clock_jump;
        let near = |from: Instant| now >= from && now.duration_since(from) <= bound;
        if near(last) || self.held_jump.is_some_and(near) {
            self.held_jump = None;
            self.now = Some(now);
            return now;
        }
        self.held_jump = Some(now);
        self.books.stats.clock_jumps_held += 1;
        last
    }

    /// Looks up a live channel, counting stale calls.
    fn lookup<'t>(
        table: &'t mut IdTable<Channel>,
        stats: &mut Stats,
        id: ChannelId,
    ) -> Result<&'t mut Channel, IdError> {
        table.get_mut(id).inspect_err(|_| stats.stale_calls += 1)
    }

    /// Runs `f` on a live channel, then re-arms its deadline.
    fn with_channel<R, E: From<IdError>>(
        &mut self,
        now: Instant,
        id: ChannelId,
        f: impl FnOnce(&mut Channel, &mut Books, &Config, Instant) -> Result<R, E>,
    ) -> Result<R, E> {
        let now = self.clock(now);
        let ch = Self::lookup(&mut self.table, &mut self.books.stats, id)?;
        let result = f(ch, &mut self.books, &self.config, now);
        t::rearm(ch, id, &self.config, &mut self.timers);
        result
    }

    // ----- inputs from the adapter -------------------------------------

    /// A connection was accepted from `peer`: a new channel, or a refusal the
    /// adapter answers by closing the socket (no event: invariant 1). At the
    /// limit the hub also asks to pause accepting (invariant 12).
    pub fn accept(&mut self, now: Instant, peer: SocketAddr) -> Result<ChannelId, AcceptError> {
        let now = self.clock(now);
        if self.shutdown.is_some() {
            self.books.stats.refused += 1;
            return Err(AcceptError::ShuttingDown);
        }
        let live = self.table.len();
        if live >= self.config.max_channels {
            self.books.stats.refused += 1;
            self.pause_accept();
            return Err(AcceptError::LimitReached {
                live,
                max: self.config.max_channels,
            });
        }
        let Ok(id) = self.table.insert(Channel::new(peer, now)) else {
            self.books.stats.refused += 1;
            return Err(AcceptError::IdsExhausted);
        };
        self.books.stats.opened += 1;
        self.books.usable += 1;
        self.books.events.push_back(Event::Opened { id, peer });
        if let Ok(ch) = self.table.get_mut(id) {
            t::rearm(ch, id, &self.config, &mut self.timers);
        }
        if self.table.len() >= self.config.max_channels {
            self.pause_accept();
        }
        Ok(id)
    }

    fn pause_accept(&mut self) {
        if !self.accept_paused {
            self.accept_paused = true;
            self.books.actions.push_back(Action::PauseAccept);
        }
    }

    /// The peer sent `data`.
    pub fn handle_received(
        &mut self,
        now: Instant,
        id: ChannelId,
        data: Bytes,
    ) -> Result<(), InputError> {
        let r = self.with_channel(now, id, |ch, b, _, now| t::received(ch, id, data, b, now));
        self.count_rejected_input(r)
    }

    /// The peer shut down its sending side (a read returned 0).
    pub fn handle_peer_eof(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        let r = self.with_channel(now, id, |ch, b, c, now| t::peer_eof(ch, id, b, c, now));
        self.count_rejected_input(r)
    }

    /// Counts a contradictory adapter input in [`Stats::rejected_input`]
    /// (stale ids are counted in `stale_calls` by `lookup`).
    fn count_rejected_input(&mut self, r: Result<(), InputError>) -> Result<(), InputError> {
        r.inspect_err(|e| self.books.stats.rejected_input.input(e))
    }

    /// An I/O error on the socket ends the channel (reason from its kind).
    /// After the channel is offline, errors are expected and ignored.
    pub fn handle_io_error(
        &mut self,
        now: Instant,
        id: ChannelId,
        kind: io::ErrorKind,
    ) -> Result<(), InputError> {
        let r = self.with_channel(now, id, |ch, b, _, now| {
            t::io_error(ch, id, kind, b, now);
            Ok(())
        });
        self.count_rejected_input(r)
    }

    /// The adapter wrote `n` more bytes of this channel's transmits. The
    /// queue's bytes and charge drop by `n` (the charge to 0 once nothing is
    /// queued), and `n > 0` is write progress: it pushes the channel's stall
    /// deadline ([`Config::stall_timeout`]) back.
    pub fn handle_written(
        &mut self,
        now: Instant,
        id: ChannelId,
        n: usize,
    ) -> Result<(), InputError> {
        let r = self.with_channel(now, id, |ch, b, c, now| t::written(ch, id, n, b, c, now));
        self.count_rejected_input(r)
    }

    /// A holder (reader task, writer thread…) now uses the channel's socket;
    /// the socket is not closed while any holder is attached.
    pub fn attach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        let r = self.with_channel(now, id, |ch, _, _, _| t::attach(ch, id));
        self.count_rejected_input(r)
    }

    /// A holder let go of the socket. When the last one of an offline channel
    /// detaches, `CloseSocket` is emitted in this call (invariant 5, 11).
    pub fn detach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        let r = self.with_channel(now, id, |ch, b, _, _| t::detach(ch, id, b));
        self.count_rejected_input(r)
    }

    /// The adapter closed the socket after `CloseSocket`: the channel is released,
    /// its slot freed and its id dead (invariant 6). A second confirmation
    /// gets `Stale`.
    pub fn handle_closed(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        self.clock(now);
        let ch = Self::lookup(&mut self.table, &mut self.books.stats, id)?;
        if !ch.close_requested {
            let err = InputError::CloseNotRequested {
                id,
                state: ch.state,
            };
            self.books.stats.rejected_input.input(&err);
            return Err(err);
        }
        self.table.remove(id)?;
        let table = &self.table;
        self.books.offline.remove(|id| table.contains(id));
        self.compact_timers_if_sparse();
        self.books.stats.released += 1;
        self.books.events.push_back(Event::Released { id });
        if self.accept_paused
            && self.shutdown.is_none()
            && self.table.len() <= self.config.resume_mark()
        {
            self.accept_paused = false;
            self.books.actions.push_back(Action::ResumeAccept);
        }
        self.check_shutdown_complete();
        Ok(())
    }

    /// Time passed: act on every deadline at or before `now` (invariant 7),
    /// in work proportional to what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        while let Some((at, id, kind)) = self.timers.peek() {
            if at > now {
                break;
            }
            let _ = self.timers.pop();
            let Ok(ch) = self.table.get_mut(id) else {
                continue; // released since it was armed
            };
            if *ch.armed_mut(kind) != Some(at) {
                continue; // re-armed since: a stale entry
            }
            *ch.armed_mut(kind) = None;
            // Whichever entry fired, every deadline of the channel that is
            // due is acted on (invariant 7); the other entry, if also due,
            // then finds nothing left to do.
            t::deadline(ch, id, &mut self.books, &self.config, now);
            t::rearm(ch, id, &self.config, &mut self.timers);
        }
        if let Some(s) = self.shutdown.as_mut()
            && !s.deadline_done
            && s.deadline <= now
        {
            s.deadline_done = true;
            for (id, ch) in self.table.iter_mut() {
                t::shutdown_deadline(ch, id, &mut self.books, now);
                t::rearm(ch, id, &self.config, &mut self.timers);
            }
        }
        self.compact_timers_if_sparse();
    }

    /// Drops stale timer entries once they outnumber the live channels, in
    /// place (no allocation), amortized O(1) per entry. Called on every
    /// release too, not only in `handle_timeout`: when other channels keep
    /// earlier live deadlines on top of the heap, entries left by released
    /// channels sit below them, `poll_timeout` cannot drop them, and without
    /// this the heap would grow with every lifecycle until the next deadline
    /// fires (invariant 8).
    fn compact_timers_if_sparse(&mut self) {
        if self.timers.len() > 2 * self.table.len() + 64 {
            let table = &self.table;
            self.timers.compact(|at, id, kind| {
                table.get(id).is_ok_and(|ch| match kind {
                    Kind::Lifecycle => ch.armed == Some(at),
                    Kind::Stall => ch.stall_armed == Some(at),
                })
            });
        }
    }

    // ----- application commands -----------------------------------------

    /// Queues `data` for the channel: a `Transmit` action now, zero-copy.
    /// Past the queue limit the configured overflow policy applies.
    pub fn send(&mut self, now: Instant, id: ChannelId, data: Bytes) -> Result<(), SendError> {
        let now = self.clock(now);
        self.send_at(now, id, &data)
    }

    /// `send` at a time the clock rule already produced.
    fn send_at(&mut self, now: Instant, id: ChannelId, data: &Bytes) -> Result<(), SendError> {
        let ch = Self::lookup(&mut self.table, &mut self.books.stats, id)?;
        let result = t::send(ch, id, data, &mut self.books, &self.config, now);
        t::rearm(ch, id, &self.config, &mut self.timers);
        result
    }

    /// Sends `data` to every usable channel; the bytes are shared, not copied.
    pub fn broadcast(&mut self, now: Instant, data: Bytes) -> BroadcastReport {
        let now = self.clock(now);
        let mut report = BroadcastReport::default();
        for (id, ch) in self.table.iter_mut() {
            if !ch.state.is_usable() {
                continue;
            }
            match t::send(ch, id, &data, &mut self.books, &self.config, now) {
                Ok(()) => report.sent += 1,
                Err(e) => report.refused.push((id, e)),
            }
            t::rearm(ch, id, &self.config, &mut self.timers);
        }
        report
    }

    /// Sends `data` to each of `ids`.
    pub fn broadcast_to(
        &mut self,
        now: Instant,
        ids: impl IntoIterator<Item = ChannelId>,
        data: Bytes,
    ) -> BroadcastReport {
        let now = self.clock(now);
        let mut report = BroadcastReport::default();
        for id in ids {
            match self.send_at(now, id, &data) {
                Ok(()) => report.sent += 1,
                Err(e) => report.refused.push((id, e)),
            }
        }
        report
    }

    /// Kicks a channel with the app's reason `code`: `Disconnected` now, and
    /// on the wire a FIN after the queue is flushed (graceful) or a RST now
    /// (abort) — invariant 3. A second kick is `AlreadyClosing`, except that
    /// an abort escalates a graceful close still under way.
    pub fn kick(
        &mut self,
        now: Instant,
        id: ChannelId,
        mode: KickMode,
        code: u32,
    ) -> Result<(), KickError> {
        let reason = DisconnectReason::Kicked { code };
        self.with_channel(now, id, |ch, b, c, now| {
            t::kick(ch, id, mode, reason, b, c, now)
        })
    }

    /// Kicks with an explicit reason (e.g. `SlowConsumer` decided by the app).
    pub fn kick_with_reason(
        &mut self,
        now: Instant,
        id: ChannelId,
        mode: KickMode,
        reason: DisconnectReason,
    ) -> Result<(), KickError> {
        self.with_channel(now, id, |ch, b, c, now| {
            t::kick(ch, id, mode, reason, b, c, now)
        })
    }

    /// Kicks a channel the default way ([`Config::default_kick`]), code 0.
    pub fn kick_default(&mut self, now: Instant, id: ChannelId) -> Result<(), KickError> {
        let mode = self.config.default_kick;
        self.kick(now, id, mode, 0)
    }

    /// Marks the channel as logged in: the login deadline no longer applies.
    pub fn authenticate(&mut self, now: Instant, id: ChannelId) -> Result<(), IdError> {
        self.with_channel(now, id, |ch, _, _, _| {
            t::authenticate(ch);
            Ok(())
        })
    }

    /// Shuts the server down gracefully: stop accepting, kick every usable
    /// channel with `ServerShutdown` (graceful), abort whatever is still
    /// closing at `now + grace`, and emit [`Event::ShutdownComplete`] once
    /// every channel is released. Idempotent.
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        let now = self.clock(now);
        if self.shutdown.is_some() {
            return;
        }
        self.shutdown = Some(Shutdown {
            deadline: t::after_or_far(now, grace),
            deadline_done: false,
            complete: false,
        });
        self.pause_accept();
        for (id, ch) in self.table.iter_mut() {
            let _already_closing = t::kick(
                ch,
                id,
                KickMode::Graceful,
                DisconnectReason::ServerShutdown,
                &mut self.books,
                &self.config,
                now,
            );
            t::rearm(ch, id, &self.config, &mut self.timers);
        }
        self.check_shutdown_complete();
    }

    fn check_shutdown_complete(&mut self) {
        if let Some(s) = self.shutdown.as_mut()
            && !s.complete
            && self.table.is_empty()
        {
            s.complete = true;
            // Nothing left to abort: the grace deadline is moot, and
            // `poll_timeout` must not keep an adapter waiting for it.
            s.deadline_done = true;
            self.books.events.push_back(Event::ShutdownComplete);
        }
    }

    // ----- outputs -------------------------------------------------------

    /// The next action for the adapter, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.books.actions.pop_front()
    }

    /// The next event for the application, in order.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.books.events.pop_front()
    }

    /// When [`handle_timeout`](Hub::handle_timeout) should next be called;
    /// `None` when nothing is pending. Never in the past unless work is due
    /// (invariant 7).
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // The top entry may be stale (channel released or re-armed) or early
        // (armed before activity or write progress moved the real deadline
        // later, or before the queue drained, see `transitions::rearm`).
        // Settle it here so the answer is a real deadline: each pass pops
        // one entry and pushes at most one, and a settled entry is exact, so
        // this ends.
        while let Some((at, id, kind)) = self.timers.peek() {
            let Ok(ch) = self.table.get_mut(id) else {
                let _ = self.timers.pop(); // released
                continue;
            };
            if *ch.armed_mut(kind) != Some(at) {
                let _ = self.timers.pop(); // superseded by an earlier entry
                continue;
            }
            if ch.deadline_of(kind, &self.config) == Some(at) {
                break;
            }
            let _ = self.timers.pop();
            *ch.armed_mut(kind) = None;
            t::rearm(ch, id, &self.config, &mut self.timers);
        }
        let channel = self.timers.peek().map(|(at, _, _)| at);
        let shutdown = self
            .shutdown
            .filter(|s| !s.deadline_done)
            .map(|s| s.deadline);
        match (channel, shutdown) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- queries --------------------------------------------------------

    /// A view of one channel.
    pub fn channel(&self, id: ChannelId) -> Result<ChannelInfo, IdError> {
        let ch = self.table.get(id)?;
        Ok(ChannelInfo::new(id, ch, self.now.unwrap_or(ch.opened_at)))
    }

    /// The state of one channel.
    pub fn state(&self, id: ChannelId) -> Result<ChannelState, IdError> {
        self.table.get(id).map(|ch| ch.state)
    }

    /// Every live channel, in slot order.
    pub fn channels(&self) -> impl Iterator<Item = ChannelInfo> + '_ {
        self.table
            .iter()
            .map(move |(id, ch)| ChannelInfo::new(id, ch, self.now.unwrap_or(ch.opened_at)))
    }

    /// The offline queue, oldest first: disconnected channels whose socket is
    /// not closed yet, with why, how long, and who still holds them.
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

    /// Channels alive (open, half-closed, closing, offline).
    pub fn live(&self) -> usize {
        self.table.len()
    }

    /// Whether sends to this channel should be held back: it is usable and
    /// its queue's charge reached [`Config::high_watermark`] (or a send
    /// overflowed it) and has not yet fallen to [`Config::low_watermark`];
    /// [`Event::Writable`] says when it has. A closing or offline channel is
    /// never backpressured (sends to it fail `NotUsable`).
    pub fn is_backpressured(&self, id: ChannelId) -> Result<bool, IdError> {
        self.table.get(id).map(|ch| ch.backpressured)
    }

    /// How many usable channels are backpressured now, in O(1) (a counter
    /// kept by every transition that sets or clears the flag, and by every
    /// way a channel stops being usable: kick, abort, error, timeout,
    /// shutdown).
    pub fn backpressured(&self) -> usize {
        debug_assert!(self.books.backpressured <= self.books.usable);
        self.books.backpressured
    }

    /// Whether the hub asked the adapter to pause accepting.
    pub fn is_accept_paused(&self) -> bool {
        self.accept_paused
    }

    /// Whether [`shutdown`](Hub::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// Whether shutdown finished: every channel released.
    pub fn is_shutdown_complete(&self) -> bool {
        self.shutdown.is_some_and(|s| s.complete)
    }

    /// The latest `now` the hub has seen.
    pub fn now(&self) -> Option<Instant> {
        self.now
    }

    /// Counters and gauges. Gauges are computed on call (`O(offline)` for
    /// the oldest offline age at worst).
    pub fn stats(&self) -> Stats {
        let mut stats = self.books.stats.clone();
        stats.live = self.table.len();
        stats.usable = self.books.usable;
        stats.backpressured = self.backpressured();
        stats.offline_depth = self.books.offline.depth();
        stats.offline_peak = self.books.offline.peak();
        stats.accept_paused = self.accept_paused;
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
