//! The hub: owns every channel and takes every input. This file holds the
//! hub itself and the adapter's inputs; `app.rs` the application's
//! commands; `outputs.rs` the outputs and queries.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::channel::Channel;
use crate::config::{Config, ConfigError};
use crate::error::{AcceptError, InputError, SendError};
use crate::id::{ChannelId, IdError, IdTable};
use crate::output::ChannelState;
use crate::stats::{Stats, count};
use crate::timers::{Kind, Timers};
use crate::transitions::{self as t, Books, Gate};

mod app;
mod outputs;
#[cfg(feature = "snapshot")]
mod snapshot;

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

/// The connection-lifecycle engine: one value, one owner, no I/O.
///
/// Inputs are methods that take `now` (`accept`, `handle_*`, `attach`,
/// `detach`, `send`, `kick`, …); outputs are drained by polling. The run
/// loop of an adapter is:
///
/// 1. feed every input that happened (a connection, bytes, EOF, an error, a
///    write completion, a holder attaching or detaching, an app command)
///    with the current time;
/// 2. drain [`poll_action`](Hub::poll_action) and execute each action on its
///    socket, in order;
/// 3. drain [`poll_event`](Hub::poll_event) and hand each event to the app;
/// 4. sleep until the next input or [`poll_timeout`](Hub::poll_timeout),
///    whichever comes first, then call [`handle_timeout`](Hub::handle_timeout).
///
/// **Outputs must be drained.** They stay queued until polled, and those
/// queues grow with every input if nobody polls them; the order of steps 2
/// and 3 only matters for latency. **Calling `handle_timeout` early is
/// harmless**: it acts on what is due and nothing else, so an adapter may
/// wake for any reason and call it.
///
/// Time follows the clock rule of the [crate documentation](crate#time):
/// every input that changes state takes `now`; an earlier `now` than the
/// hub's clock is clamped (counted in [`Stats::time_regressions`]) while
/// the hub has a channel, and taken as it is when it has none (before the
/// first accept, between channels, after `ShutdownComplete`); a `now`
/// more than [`Config::max_clock_jump`] ahead is held until the next input
/// confirms it (counted in [`Stats::clock_jumps_held`]). Queries take no
/// `now`: they report ages at the hub's clock.
///
/// Every transition is listed in the [`transitions`](crate::transitions)
/// table; each method below says which rows it drives.
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
    gate: Gate,
}

impl Hub {
    /// A hub with this configuration, or why the configuration cannot work.
    /// Cheap: no allocation beyond a few empty collections.
    ///
    /// ```
    /// use tether_core::{Config, ConfigError, Hub};
    /// let hub = Hub::new(Config::default()).unwrap();
    /// assert_eq!(hub.live(), 0);
    /// let bad = Config::default().with(|c| c.max_channels = 0);
    /// assert_eq!(Hub::new(bad).unwrap_err(), ConfigError::MaxChannels(0));
    /// ```
    pub fn new(config: Config) -> Result<Hub, ConfigError> {
        config.validate()?;
        Ok(Hub {
            table: IdTable::new(config.shard),
            config,
            timers: Timers::default(),
            books: Books::default(),
            now: None,
            held_jump: None,
            gate: Gate::default(),
        })
    }

    /// The configuration the hub was made with.
    ///
    /// ```
    /// use tether_core::{Config, Hub};
    /// let hub = Hub::new(Config::default().with_max_channels(5)).unwrap();
    /// assert_eq!(hub.config().max_channels, 5);
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The clock rule (crate docs, *Time*), applied once per input: the
    /// time the input is carried out at. Time never runs backwards while
    /// anything in the hub holds a time (invariant 10: no panic on any
    /// input, whatever the clock does), and one input cannot move it ahead
    /// by more than `max_clock_jump` unless the next input confirms it.
    #[inline]
    fn clock(&mut self, now: Instant) -> Instant {
        // The common case, first: an adapter reads the time once per
        // wake-up and feeds every input of that batch with it. The rule
        // below gives the same answer for it (believed, any held jump
        // forgotten), without its arithmetic.
        if self.now == Some(now) {
            self.held_jump = None;
            return now;
        }
        self.clock_moved(now)
    }

    /// [`clock`](Hub::clock) for a `now` other than the hub's clock.
    fn clock_moved(&mut self, now: Instant) -> Instant {
        let Some(last) = self.now else {
            self.now = Some(now);
            return now;
        };
        if self.table.is_empty() {
            // No channel: nothing holds a time, so any `now` is believed,
            // an earlier one too. A shutdown holds none either: with no
            // channel left it is complete and its deadline moot (a
            // shutdown of an empty hub completes in the same call).
            debug_assert!(
                self.gate.deadline().is_none(),
                "an empty hub holds a deadline"
            );
            self.held_jump = None;
            self.now = Some(now);
            return now;
        }
        if now < last {
            count(&mut self.books.stats.time_regressions, 1);
            self.held_jump = None;
            return last;
        }
        let bound = self.config.max_clock_jump;
        // `now - from <= bound`, as `now <= from + bound` (an addition is
        // cheaper than `duration_since`); a `from + bound` past what
        // `Instant` holds is past every `now`.
        let near =
            |from: Instant| now >= from && from.checked_add(bound).is_none_or(|far| now <= far);
        if near(last) || self.held_jump.is_some_and(near) {
            self.held_jump = None;
            self.now = Some(now);
            return now;
        }
        self.held_jump = Some(now);
        count(&mut self.books.stats.clock_jumps_held, 1);
        last
    }

    /// Looks up a live channel, counting stale calls.
    fn lookup<'t>(
        table: &'t mut IdTable<Channel>,
        stats: &mut Stats,
        id: ChannelId,
    ) -> Result<&'t mut Channel, IdError> {
        table
            .get_mut(id)
            .inspect_err(|_| count(&mut stats.stale_calls, 1))
    }

    /// Runs `f` on a live channel at the clock rule's time, then re-arms its
    /// deadline.
    fn with_channel<R, E: From<IdError>>(
        &mut self,
        now: Instant,
        id: ChannelId,
        f: impl FnOnce(&mut Channel, &mut Books, &Config, Instant) -> Result<R, E>,
    ) -> Result<R, E> {
        let now = self.clock(now);
        self.at_channel(now, id, f)
    }

    /// `with_channel` at a time the clock rule already produced.
    fn at_channel<R, E: From<IdError>>(
        &mut self,
        now: Instant,
        id: ChannelId,
        f: impl FnOnce(&mut Channel, &mut Books, &Config, Instant) -> Result<R, E>,
    ) -> Result<R, E> {
        self.at_channel_then(now, id, f, |ch, _, config, timers| {
            t::rearm(ch, id, config, timers);
        })
    }

    /// `at_channel` for an input that touches only the channel's queue (a
    /// send, a write): unless it changed the state, only the stall deadline
    /// can have moved (`transitions::rearm_after_queue`).
    #[inline]
    fn at_channel_queue<R, E: From<IdError>>(
        &mut self,
        now: Instant,
        id: ChannelId,
        f: impl FnOnce(&mut Channel, &mut Books, &Config, Instant) -> Result<R, E>,
    ) -> Result<R, E> {
        self.at_channel_then(now, id, f, |ch, before, config, timers| {
            t::rearm_after_queue(ch, id, before, config, timers);
        })
    }

    /// Runs `f` on a live channel, then `rearm` with the state the channel
    /// had before `f`.
    #[inline]
    fn at_channel_then<R, E: From<IdError>>(
        &mut self,
        now: Instant,
        id: ChannelId,
        f: impl FnOnce(&mut Channel, &mut Books, &Config, Instant) -> Result<R, E>,
        rearm: impl FnOnce(&mut Channel, ChannelState, &Config, &mut Timers),
    ) -> Result<R, E> {
        let ch = Self::lookup(&mut self.table, &mut self.books.stats, id)?;
        let before = ch.state;
        let result = f(ch, &mut self.books, &self.config, now);
        rearm(ch, before, &self.config, &mut self.timers);
        result
    }

    /// `with_channel` for an input that can only move the channel's
    /// deadlines later or remove them (received bytes, a holder attaching
    /// or detaching, a login): its armed entries stay in place, early at
    /// worst (`transitions::rearm` would push nothing), so it skips the
    /// re-arm.
    fn with_channel_later<R, E: From<IdError>>(
        &mut self,
        now: Instant,
        id: ChannelId,
        f: impl FnOnce(&mut Channel, &mut Books, Instant) -> Result<R, E>,
    ) -> Result<R, E> {
        let now = self.clock(now);
        let ch = Self::lookup(&mut self.table, &mut self.books.stats, id)?;
        let result = f(ch, &mut self.books, now);
        // Not re-armed: an entry of this channel may now be early.
        self.timers.unsettle();
        debug_assert!(
            [Kind::Lifecycle, Kind::Stall].into_iter().all(|kind| {
                (ch.deadline_of(kind, &self.config))
                    .is_none_or(|next| ch.armed(kind).is_some_and(|armed| armed <= next))
            }),
            "an input that moves deadlines later made one earlier"
        );
        result
    }

    /// Counts a contradictory adapter input in [`Stats::rejected_input`]
    /// (stale ids are counted in `stale_calls` by `lookup`).
    fn count_rejected(&mut self, r: Result<(), InputError>) -> Result<(), InputError> {
        r.inspect_err(|e| self.books.stats.rejected_input.input(e))
    }

    // ----- inputs from the adapter -------------------------------------

    /// Call when the listener accepted a connection from `peer`. Returns
    /// the new channel's id and emits [`Event::Opened`](crate::Event::Opened);
    /// reaching [`Config::max_channels`] also emits
    /// [`Action::PauseAccept`](crate::Action::PauseAccept) (invariant 12).
    ///
    /// Errors (the adapter closes the socket; no event, invariant 1; the
    /// refusal is counted in [`Stats::refused`]):
    /// [`LimitReached`](AcceptError::LimitReached) at the channel limit;
    /// [`ShuttingDown`](AcceptError::ShuttingDown) once
    /// [`shutdown`](Hub::shutdown) was called;
    /// [`IdsExhausted`](AcceptError::IdsExhausted) when the id table is
    /// used up. Rows *accept* of the [table](crate::transitions).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{AcceptError, Action, Config, Event, Hub};
    /// let mut hub = Hub::new(Config::default().with_max_channels(1)).unwrap();
    /// let (now, peer) = (Instant::now(), "127.0.0.1:4000".parse().unwrap());
    /// let id = hub.accept(now, peer).unwrap();
    /// assert_eq!(hub.poll_event(), Some(Event::Opened { id, peer }));
    /// assert_eq!(hub.poll_action(), Some(Action::PauseAccept));
    /// let refused = hub.accept(now, peer).unwrap_err();
    /// assert_eq!(refused, AcceptError::LimitReached { live: 1, max: 1 });
    /// ```
    pub fn accept(&mut self, now: Instant, peer: SocketAddr) -> Result<ChannelId, AcceptError> {
        let now = self.clock(now);
        let live = self.table.len();
        self.gate.admit(live, &self.config, &mut self.books)?;
        let Ok(id) = self.table.insert(Channel::new(peer, now)) else {
            count(&mut self.books.stats.refused, 1);
            return Err(AcceptError::IdsExhausted);
        };
        t::opened(id, peer, &mut self.books);
        if let Ok(ch) = self.table.get_mut(id) {
            t::rearm(ch, id, &self.config, &mut self.timers);
        }
        self.gate
            .opened(self.table.len(), &self.config, &mut self.books);
        Ok(id)
    }

    /// Call when a read on the channel's socket returned bytes. Emits
    /// [`Event::Received`](crate::Event::Received) with them (none for an
    /// empty `data`) and restarts the idle timer while the channel is
    /// usable; once it is closing or offline the bytes are discarded and
    /// counted (invariant 2).
    ///
    /// Errors: [`Id`](InputError::Id) for a stale or unknown id;
    /// [`AfterEof`](InputError::AfterEof) after the peer's EOF was reported
    /// (an adapter bug; counted). Rows *received*.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Bytes, Config, Event, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// # let _ = hub.poll_event();
    /// hub.handle_received(now, id, Bytes::from_static(b"hi")).unwrap();
    /// assert_eq!(hub.poll_event(), Some(Event::Received { id, data: Bytes::from_static(b"hi") }));
    /// ```
    pub fn handle_received(
        &mut self,
        now: Instant,
        id: ChannelId,
        data: Bytes,
    ) -> Result<(), InputError> {
        let r = self.with_channel_later(now, id, |ch, b, now| t::received(ch, id, data, b, now));
        self.count_rejected(r)
    }

    /// Call when a read on the channel's socket returned 0: the peer shut
    /// down its sending side. With [`HalfClosePolicy::Allow`](crate::HalfClosePolicy::Allow)
    /// an open channel emits [`Event::ReadClosed`](crate::Event::ReadClosed)
    /// and stays usable; with `Disallow` it emits
    /// `Disconnected(PeerClosed)` and closes gracefully (what is queued is
    /// still flushed). A closing channel whose FIN is out goes offline.
    ///
    /// Errors: [`Id`](InputError::Id); [`AfterEof`](InputError::AfterEof)
    /// for a second EOF (counted). Rows *peer EOF*.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, DisconnectReason, Event, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// # let _ = hub.poll_event();
    /// hub.handle_peer_eof(now, id).unwrap(); // half-close disallowed by default
    /// let reason = DisconnectReason::PeerClosed;
    /// assert_eq!(hub.poll_event(), Some(Event::Disconnected { id, reason }));
    /// assert!(hub.handle_peer_eof(now, id).is_err()); // a second EOF
    /// ```
    pub fn handle_peer_eof(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        let r = self.with_channel(now, id, |ch, b, c, now| t::peer_eof(ch, id, b, c, now));
        self.count_rejected(r)
    }

    /// Call when an I/O operation on the channel's socket failed. A live
    /// channel ends: `Disconnected` with the reason from `kind`
    /// ([`DisconnectReason::from_io`](crate::DisconnectReason::from_io)),
    /// its queue dropped and counted, `Shutdown(Both)`, and `CloseSocket`
    /// if no holder is attached. On an offline channel errors are expected
    /// (holders see them as they leave) and ignored.
    ///
    /// Errors: only [`Id`](InputError::Id). Rows *I/O error*.
    ///
    /// ```
    /// use std::{io::ErrorKind, time::Instant};
    /// use tether_core::{Config, DisconnectReason, Event, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// # let _ = hub.poll_event();
    /// hub.handle_io_error(now, id, ErrorKind::ConnectionReset).unwrap();
    /// let reason = DisconnectReason::PeerReset;
    /// assert_eq!(hub.poll_event(), Some(Event::Disconnected { id, reason }));
    /// ```
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
        self.count_rejected(r)
    }

    /// Call when the kernel took `n` more bytes of the channel's transmits
    /// (report every write, in the same step as it happened: "slow" means
    /// the kernel refused bytes, not that the adapter was late). The
    /// queue's bytes and charge drop by `n` (the charge to 0 once nothing
    /// is queued); `n > 0` is progress and pushes the stall deadline
    /// ([`Config::stall_timeout`]) back. A backpressured channel whose
    /// charge falls to [`Config::low_watermark`] emits
    /// [`Event::Writable`](crate::Event::Writable); a closing channel whose
    /// queue drains emits its FIN (`Shutdown(Write)`).
    ///
    /// Errors: [`Id`](InputError::Id); [`OverWritten`](InputError::OverWritten)
    /// when `n` is more than is queued (counted). Rows *written(n)*.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Action, Bytes, Config, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// hub.send(now, id, Bytes::from_static(b"hello")).unwrap();
    /// # let _ = hub.poll_action();
    /// hub.handle_written(now, id, 5).unwrap();
    /// assert_eq!(hub.channel(id).unwrap().queued, 0);
    /// assert!(hub.handle_written(now, id, 1).is_err()); // nothing was queued
    /// ```
    pub fn handle_written(
        &mut self,
        now: Instant,
        id: ChannelId,
        n: usize,
    ) -> Result<(), InputError> {
        let now = self.clock(now);
        let r = self.at_channel_queue(now, id, |ch, b, c, now| t::written(ch, id, n, b, c, now));
        self.count_rejected(r)
    }

    /// Call when a holder (a reader task, a writer thread…) takes hold of
    /// the channel's socket. The hub never asks to close a socket while a
    /// holder is attached (invariant 5). Emits nothing.
    ///
    /// Errors: [`Id`](InputError::Id); [`AttachOffline`](InputError::AttachOffline)
    /// once the channel is offline (its socket is on its way out);
    /// [`TooManyHolders`](InputError::TooManyHolders) past `u32::MAX`. Rows
    /// *attach*.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// hub.attach(now, id).unwrap();
    /// assert_eq!(hub.channel(id).unwrap().holders, 1);
    /// ```
    pub fn attach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        let r = self.with_channel_later(now, id, |ch, _, _| t::attach(ch, id));
        self.count_rejected(r)
    }

    /// Call when a holder lets go of the socket (after
    /// `Shutdown(Both)` or `Abort` woke it, or when it is done). When the
    /// last holder of an offline channel detaches,
    /// [`Action::CloseSocket`](crate::Action::CloseSocket) is emitted in this
    /// call (invariants 5, 11).
    ///
    /// Errors: [`Id`](InputError::Id); [`NotAttached`](InputError::NotAttached)
    /// without a matching attach (counted). Rows *detach*.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Action, Config, Hub, KickMode};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// hub.attach(now, id).unwrap();
    /// hub.kick(now, id, KickMode::Abort, 0).unwrap();
    /// # let _ = hub.poll_action(); // Abort
    /// assert_eq!(hub.poll_action(), None); // a holder is still attached
    /// hub.detach(now, id).unwrap();
    /// assert_eq!(hub.poll_action(), Some(Action::CloseSocket { id }));
    /// ```
    pub fn detach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        let r = self.with_channel_later(now, id, |ch, b, _| t::detach(ch, id, b));
        self.count_rejected(r)
    }

    /// Call when the socket is closed, after the hub asked with
    /// [`Action::CloseSocket`](crate::Action::CloseSocket). The channel is
    /// released: [`Event::Released`](crate::Event::Released), its slot free,
    /// its id stale for good (invariant 6). Below the resume mark a paused
    /// hub emits `ResumeAccept`; the last release of a shutdown emits
    /// `ShutdownComplete`.
    ///
    /// Errors: [`Id`](InputError::Id) — also for a close confirmed twice,
    /// since the first released the id; [`CloseNotRequested`](InputError::CloseNotRequested)
    /// when the hub has not asked (counted). Rows *closed*.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Action, Config, Event, Hub, KickMode};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// # let _ = hub.poll_event();
    /// assert!(hub.handle_closed(now, id).is_err()); // not requested
    /// hub.kick(now, id, KickMode::Abort, 0).unwrap(); // no holder: CloseSocket at once
    /// assert_eq!(hub.poll_action(), Some(Action::Abort { id }));
    /// assert_eq!(hub.poll_action(), Some(Action::CloseSocket { id }));
    /// hub.handle_closed(now, id).unwrap();
    /// # let _ = hub.poll_event();
    /// assert_eq!(hub.poll_event(), Some(Event::Released { id }));
    /// ```
    pub fn handle_closed(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        // The time is the clock's only: releasing records none.
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
        // Its entries, if any, are stale now.
        self.timers.unsettle();
        let table = &self.table;
        self.books.offline.remove(|id| table.contains(id));
        self.compact_timers_if_sparse();
        t::released(id, &mut self.books);
        self.gate
            .released(self.table.len(), &self.config, &mut self.books);
        Ok(())
    }

    /// Call when [`poll_timeout`](Hub::poll_timeout)'s instant has come, or
    /// whenever convenient: **an early call is harmless**, it acts on what
    /// is due at `now` and nothing else. Every deadline at or before `now`
    /// is acted on (invariant 7), in work proportional to what is due: idle
    /// and login timeouts kick in the default mode, a stalled queue aborts
    /// (`SlowConsumer`), a flush deadline aborts a graceful close, an
    /// overdue holder is reported, the shutdown's grace deadline aborts
    /// what is still closing. Rows *… due*.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tether_core::{Config, DisconnectReason, Event, Hub};
    /// let idle = Duration::from_secs(30);
    /// let mut hub = Hub::new(Config::default().with(|c| c.idle_timeout = Some(idle))).unwrap();
    /// let t0 = Instant::now();
    /// let id = hub.accept(t0, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// # let _ = hub.poll_event();
    /// hub.handle_timeout(t0 + Duration::from_secs(1)); // early: nothing happens
    /// assert_eq!(hub.poll_event(), None);
    /// let due = hub.poll_timeout().unwrap(); // t0 + 30 s
    /// hub.handle_timeout(due);
    /// let reason = DisconnectReason::IdleTimeout;
    /// assert_eq!(hub.poll_event(), Some(Event::Disconnected { id, reason }));
    /// ```
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
        if self.gate.grace_due(now) {
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
            self.timers
                .compact(|at, id, kind| table.get(id).is_ok_and(|ch| ch.armed(kind) == Some(at)));
        }
    }
}
