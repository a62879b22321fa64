//! The reference model behind [`Checker`](super::Checker): what every channel
//! should look like and what every input should emit, written from the
//! transition table of docs/design.md §2.1 (`crate::transitions`) with none of the hub's machinery (no
//! timer heap, no lazy deletion, no offline queue). It predicts, per input,
//! the result and the exact actions and events; the checker compares.
//!
//! Deadlines are computed exactly from the channel's fields on every check,
//! so a deadline the hub forgets to arm is caught (invariant 7).
//!
//! Flow control as docs/design.md §5.2 states it: a queue is *charged* its
//! payload plus `message_overhead` per message queued since it was last
//! empty (all released when it drains), the limit and watermarks compare
//! against the charge, and a usable channel whose non-empty queue makes no
//! write progress for `stall_timeout` is aborted as a slow consumer.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::checker::{Input, Outcome, Rejection};

mod flow;
#[cfg(feature = "snapshot")]
mod snapshot;
mod time;
use crate::{
    Action, ChannelId, ChannelState, Config, DisconnectReason, Event, HalfClosePolicy, KickMode,
    RejectedInputs, ShutdownHow,
};
use time::far_future;

/// One live channel as the model sees it.
#[derive(Debug, Clone)]
pub(crate) struct ModelChannel {
    pub id: ChannelId,
    pub state: ChannelState,
    pub holders: u32,
    pub queued: usize,
    /// `queued` + `message_overhead` per message since the queue was empty.
    pub charged: usize,
    /// When the stall clock last (re)started: the queue went non-empty or a
    /// write made progress. Only meaningful while usable with bytes queued.
    pub stall_since: Instant,
    pub peer_eof: bool,
    pub write_shut: bool,
    pub aborted: bool,
    pub close_requested: bool,
    pub disconnected: bool,
    pub authenticated: bool,
    pub backpressured: bool,
    pub overdue_reported: bool,
    pub opened_at: Instant,
    pub last_activity: Instant,
    pub closing_deadline: Instant,
    pub offline_since: Instant,
}

/// One slot: the last generation handed out on it, and its channel if live.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    pub generation: u32,
    pub channel: Option<ModelChannel>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ModelShutdown {
    pub deadline: Instant,
    pub deadline_done: bool,
    pub complete: bool,
}

/// The whole hub as the model sees it, plus the outputs predicted for the
/// current step.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub config: Config,
    pub slots: Vec<Slot>,
    pub live: usize,
    pub now: Option<Instant>,
    /// A `now` too far ahead to believe until the next input confirms it.
    pub held_jump: Option<Instant>,
    pub paused: bool,
    pub shutdown: Option<ModelShutdown>,
    /// Channels offline (the offline queue's depth).
    pub offline: usize,
    /// Bytes accepted by sends, reported written, dropped by aborts and
    /// errors: `queued = written + dropped + still queued` (invariant 5).
    pub bytes_queued: u64,
    pub bytes_written: u64,
    pub bytes_dropped: u64,
    /// Contradictory adapter inputs the hub must have counted.
    pub rejected: RejectedInputs,
    pub actions: Vec<Action>,
    pub events: Vec<Event>,
}

/// `t + d`, `None` when `Instant` cannot hold it (such a deadline never comes).
fn after(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

impl Model {
    pub fn new(config: &Config) -> Model {
        Model {
            config: config.clone(),
            slots: Vec::new(),
            live: 0,
            now: None,
            held_jump: None,
            paused: false,
            shutdown: None,
            offline: 0,
            bytes_queued: 0,
            bytes_written: 0,
            bytes_dropped: 0,
            rejected: RejectedInputs::default(),
            actions: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The hub's clock rule (crate docs, *Time*), applied once per input:
    /// a hub with no channel (before, between, or after a completed
    /// shutdown) believes any `now`; otherwise an earlier one is clamped,
    /// and one more than `max_clock_jump` ahead is held until the next input
    /// confirms it.
    pub fn clock(&mut self, now: Instant) -> Instant {
        let Some(last) = self.now else {
            self.now = Some(now);
            return now;
        };
        // No channel, none yet or none left (a shutdown is then complete,
        // its deadline moot): nothing holds a time.
        if self.live == 0 {
            self.held_jump = None;
            self.now = Some(now);
            return now;
        }
        if now < last {
            self.held_jump = None;
            return last;
        }
        let bound = self.config.max_clock_jump;
        let near = |from: Instant| now >= from && now - from <= bound;
        if near(last) || self.held_jump.is_some_and(near) {
            self.held_jump = None;
            self.now = Some(now);
            return now;
        }
        self.held_jump = Some(now);
        last
    }

    /// The prediction for `input` (the hub's clock rule first, as the
    /// hub): its outcome, with its outputs in `actions` and `events`. For
    /// `accept`, takes the hub's id (`outcome`) and checks it is fresh.
    pub fn predict(
        &mut self,
        now: Instant,
        input: &Input,
        outcome: Outcome,
    ) -> Result<Outcome, (u8, String)> {
        let m = self;
        // The clock rule, once per input, before anything else (as the hub).
        let now = m.clock(now);
        // The channel an input on one channel names, which must be live.
        let slot = match input.channel().map(|id| m.lookup(id)) {
            Some(Ok(slot)) => slot,
            Some(Err(r)) => return Ok(Outcome::Rejected(r)),
            None => usize::MAX, // not used: the input names no one channel
        };
        Ok(match input {
            Input::Accept { peer } => return m.accept(*peer, outcome),
            Input::Received { data, .. } => m.received(now, slot, data),
            Input::PeerEof { .. } => m.peer_eof(now, slot),
            Input::IoError { kind, .. } => m.io_error(now, slot, *kind),
            Input::Written { n, .. } => m.written(now, slot, *n),
            Input::Send { data, .. } => m.send(now, slot, data),
            Input::Broadcast { data } => m.broadcast(now, data),
            Input::BroadcastTo { ids, data } => m.broadcast_to(now, ids, data),
            Input::Kick { mode, code, .. } => {
                m.kick(now, slot, *mode, DisconnectReason::Kicked { code: *code })
            }
            Input::KickDefault { .. } => {
                let mode = m.config.default_kick;
                m.kick(now, slot, mode, DisconnectReason::Kicked { code: 0 })
            }
            Input::KickWithReason { mode, reason, .. } => m.kick(now, slot, *mode, *reason),
            Input::Authenticate { .. } => m.authenticate(slot),
            Input::Attach { .. } => m.attach(slot),
            Input::Detach { .. } => m.detach(slot),
            Input::Closed { .. } => m.closed(slot),
            Input::Timeout => m.timeout(now),
            Input::Shutdown { grace } => m.shutdown(now, *grace),
        })
    }

    /// An accept: refused as the hub must, or opened with the hub's id
    /// (`outcome`), which must be fresh (invariant 6).
    fn accept(&mut self, peer: SocketAddr, outcome: Outcome) -> Result<Outcome, (u8, String)> {
        match (self.accept_expected(), outcome) {
            (Ok(()), Outcome::Opened(id)) => {
                self.accept_opened(id, peer).map_err(|e| (6, e))?;
                Ok(outcome)
            }
            (Ok(()), _) => Ok(Outcome::Opened(ChannelId::from_raw(0))),
            (Err(r), _) => Ok(Outcome::Rejected(r)),
        }
    }

    /// The slot of a live id, or the rejection the hub must give it.
    pub fn lookup(&self, id: ChannelId) -> Result<usize, Rejection> {
        let slot = id.slot() as usize;
        if id.shard() != self.config.shard {
            return Err(Rejection::Unknown);
        }
        let Some(s) = self.slots.get(slot) else {
            return Err(Rejection::Unknown);
        };
        match &s.channel {
            Some(ch) if ch.id == id => Ok(slot),
            _ if id.generation() == 0 || id.generation() > s.generation => Err(Rejection::Unknown),
            _ => Err(Rejection::Stale),
        }
    }

    /// Whether `slot` holds a live channel whose state passes `test`.
    fn state_is(&self, slot: usize, test: impl Fn(ChannelState) -> bool) -> bool {
        self.slots[slot]
            .channel
            .as_ref()
            .is_some_and(|ch| test(ch.state))
    }

    pub fn channel(&mut self, slot: usize) -> &mut ModelChannel {
        self.slots[slot]
            .channel
            .as_mut()
            .expect("lookup returned a live slot")
    }

    /// Whether an accept should succeed now (`Ok(())`) or be refused.
    pub fn accept_expected(&mut self) -> Result<(), Rejection> {
        if self.shutdown.is_some() {
            return Err(Rejection::ShuttingDown);
        }
        if self.live >= self.config.max_channels {
            self.pause();
            return Err(Rejection::LimitReached);
        }
        Ok(())
    }

    /// The hub handed out `id`: checks it is fresh (invariant 6) and opens
    /// it. `Err` names what is wrong with the id.
    pub fn accept_opened(&mut self, id: ChannelId, peer: SocketAddr) -> Result<(), String> {
        let now = self.now.expect("the checker set the clock");
        let slot = id.slot() as usize;
        if id.shard() != self.config.shard {
            return Err(format!("new id {id} carries shard {}", id.shard()));
        }
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, Slot::default);
        }
        let s = &mut self.slots[slot];
        if let Some(old) = &s.channel {
            return Err(format!(
                "new id {id} reuses slot {slot} while {} is still live (not confirmed closed)",
                old.id
            ));
        }
        if id.generation() <= s.generation {
            return Err(format!(
                "new id {id}: generation not above {} already used on slot {slot}",
                s.generation
            ));
        }
        s.generation = id.generation();
        s.channel = Some(ModelChannel {
            id,
            state: ChannelState::Open,
            holders: 0,
            queued: 0,
            charged: 0,
            stall_since: now,
            peer_eof: false,
            write_shut: false,
            aborted: false,
            close_requested: false,
            disconnected: false,
            authenticated: false,
            backpressured: false,
            overdue_reported: false,
            opened_at: now,
            last_activity: now,
            closing_deadline: now,
            offline_since: now,
        });
        self.live += 1;
        self.events.push(Event::Opened { id, peer });
        if self.live >= self.config.max_channels {
            self.pause();
        }
        Ok(())
    }

    fn pause(&mut self) {
        if !self.paused {
            self.paused = true;
            self.actions.push(Action::PauseAccept);
        }
    }

    pub fn received(&mut self, now: Instant, slot: usize, data: &Bytes) -> Outcome {
        let ch = self.channel(slot);
        if ch.peer_eof {
            return Outcome::Rejected(Rejection::AfterEof);
        }
        if ch.state.is_usable() {
            ch.last_activity = now;
            let id = ch.id;
            if !data.is_empty() {
                self.events.push(Event::Received {
                    id,
                    data: data.clone(),
                });
            }
        }
        Outcome::Ok
    }

    pub fn peer_eof(&mut self, now: Instant, slot: usize) -> Outcome {
        let half_close = self.config.half_close;
        let ch = self.channel(slot);
        if ch.peer_eof {
            return Outcome::Rejected(Rejection::AfterEof);
        }
        ch.peer_eof = true;
        match (ch.state, half_close) {
            (ChannelState::Open, HalfClosePolicy::Allow) => {
                ch.state = ChannelState::HalfClosed;
                let id = ch.id;
                self.events.push(Event::ReadClosed { id });
            }
            (ChannelState::Open, HalfClosePolicy::Disallow) => {
                self.disconnect(slot, DisconnectReason::PeerClosed);
                self.begin_graceful(slot, now);
            }
            (ChannelState::Closing, _) => self.progress_close(slot, now),
            _ => {}
        }
        Outcome::Ok
    }

    pub fn io_error(&mut self, now: Instant, slot: usize, kind: io::ErrorKind) -> Outcome {
        if self.channel(slot).state != ChannelState::Offline {
            self.disconnect(slot, DisconnectReason::from_io(kind));
            self.drop_queue(slot);
            self.go_offline(slot, now);
        }
        Outcome::Ok
    }

    pub fn kick(
        &mut self,
        now: Instant,
        slot: usize,
        mode: KickMode,
        reason: DisconnectReason,
    ) -> Outcome {
        match (self.channel(slot).state, mode) {
            (ChannelState::Open | ChannelState::HalfClosed, KickMode::Graceful) => {
                self.disconnect(slot, reason);
                self.begin_graceful(slot, now);
            }
            (ChannelState::Open | ChannelState::HalfClosed, KickMode::Abort) => {
                self.disconnect(slot, reason);
                self.abort(slot, now);
            }
            (ChannelState::Closing, KickMode::Abort) => self.abort(slot, now),
            _ => return Outcome::Rejected(Rejection::AlreadyClosing),
        }
        Outcome::Ok
    }

    pub fn authenticate(&mut self, slot: usize) -> Outcome {
        let ch = self.channel(slot);
        if ch.state.is_usable() {
            ch.authenticated = true;
        }
        Outcome::Ok
    }

    pub fn attach(&mut self, slot: usize) -> Outcome {
        let ch = self.channel(slot);
        if ch.state == ChannelState::Offline {
            return Outcome::Rejected(Rejection::AttachOffline);
        }
        match ch.holders.checked_add(1) {
            Some(h) => ch.holders = h,
            None => return Outcome::Rejected(Rejection::TooManyHolders),
        }
        Outcome::Ok
    }

    pub fn detach(&mut self, slot: usize) -> Outcome {
        let ch = self.channel(slot);
        if ch.holders == 0 {
            return Outcome::Rejected(Rejection::NotAttached);
        }
        ch.holders -= 1;
        self.maybe_close(slot);
        Outcome::Ok
    }

    pub fn closed(&mut self, slot: usize) -> Outcome {
        let ch = self.channel(slot);
        if !ch.close_requested {
            return Outcome::Rejected(Rejection::CloseNotRequested);
        }
        let id = ch.id;
        self.slots[slot].channel = None;
        self.live -= 1;
        self.offline -= 1;
        self.events.push(Event::Released { id });
        if self.paused && self.shutdown.is_none() && self.live <= self.config.resume_mark() {
            self.paused = false;
            self.actions.push(Action::ResumeAccept);
        }
        self.check_shutdown_complete();
        Outcome::Ok
    }

    pub fn shutdown(&mut self, now: Instant, grace: Duration) -> Outcome {
        if self.shutdown.is_some() {
            return Outcome::Ok;
        }
        self.shutdown = Some(ModelShutdown {
            deadline: after(now, grace).unwrap_or_else(|| far_future(now)),
            deadline_done: false,
            complete: false,
        });
        self.pause();
        for slot in 0..self.slots.len() {
            if self.state_is(slot, ChannelState::is_usable) {
                self.disconnect(slot, DisconnectReason::ServerShutdown);
                self.begin_graceful(slot, now);
            }
        }
        self.check_shutdown_complete();
        Outcome::Ok
    }

    fn check_shutdown_complete(&mut self) {
        if let Some(s) = self.shutdown.as_mut()
            && !s.complete
            && self.live == 0
        {
            s.complete = true;
            s.deadline_done = true;
            self.events.push(Event::ShutdownComplete);
        }
    }

    /// Usable channels backpressured now (what `Hub::backpressured` must say).
    pub fn backpressured(&self) -> usize {
        (self.slots.iter())
            .filter_map(|s| s.channel.as_ref())
            .filter(|ch| ch.backpressured)
            .count()
    }

    /// A rejection the hub must count in `Stats::rejected_input`.
    pub fn count_rejection(&mut self, r: Rejection) {
        let c = &mut self.rejected;
        match r {
            Rejection::AfterEof => c.after_eof += 1,
            Rejection::OverWritten => c.over_written += 1,
            Rejection::AttachOffline => c.attach_offline += 1,
            Rejection::NotAttached => c.not_attached += 1,
            Rejection::TooManyHolders => c.too_many_holders += 1,
            Rejection::CloseNotRequested => c.not_requested += 1,
            _ => {}
        }
    }

    fn disconnect(&mut self, slot: usize, reason: DisconnectReason) {
        let ch = self.channel(slot);
        if !ch.disconnected {
            ch.disconnected = true;
            // Only usable channels are backpressured.
            ch.backpressured = false;
            let id = ch.id;
            self.events.push(Event::Disconnected { id, reason });
        }
    }

    fn begin_graceful(&mut self, slot: usize, now: Instant) {
        let flush = self.config.flush_timeout;
        let ch = self.channel(slot);
        ch.state = ChannelState::Closing;
        ch.closing_deadline = after(now, flush).unwrap_or_else(|| far_future(now));
        self.progress_close(slot, now);
    }

    fn progress_close(&mut self, slot: usize, now: Instant) {
        let ch = self.channel(slot);
        if ch.state != ChannelState::Closing || ch.queued > 0 {
            return;
        }
        if ch.peer_eof {
            self.go_offline(slot, now);
        } else if !ch.write_shut {
            ch.write_shut = true;
            let id = ch.id;
            self.actions.push(Action::Shutdown {
                id,
                how: ShutdownHow::Write,
            });
        }
    }

    fn drop_queue(&mut self, slot: usize) {
        let ch = self.channel(slot);
        let dropped = ch.queued as u64;
        ch.queued = 0;
        ch.charged = 0;
        ch.backpressured = false;
        self.bytes_dropped += dropped;
    }

    fn abort(&mut self, slot: usize, now: Instant) {
        self.drop_queue(slot);
        let ch = self.channel(slot);
        ch.aborted = true;
        let id = ch.id;
        self.actions.push(Action::Abort { id });
        self.go_offline(slot, now);
    }

    fn go_offline(&mut self, slot: usize, now: Instant) {
        self.offline += 1;
        let ch = self.channel(slot);
        ch.state = ChannelState::Offline;
        ch.offline_since = now;
        if !ch.aborted {
            ch.write_shut = true;
            let id = ch.id;
            self.actions.push(Action::Shutdown {
                id,
                how: ShutdownHow::Both,
            });
        }
        self.maybe_close(slot);
    }

    fn maybe_close(&mut self, slot: usize) {
        let ch = self.channel(slot);
        if ch.state == ChannelState::Offline && ch.holders == 0 && !ch.close_requested {
            ch.close_requested = true;
            let id = ch.id;
            self.actions.push(Action::CloseSocket { id });
        }
    }
}
