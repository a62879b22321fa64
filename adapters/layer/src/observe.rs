//! Observing a shard's hub: the interface a flight recorder plugs in
//! through ([`Options::record`](crate::Options::record)).
//!
//! The driver owns an [`ObservedHub`]: a [`Hub`] plus, optionally, a
//! [`HubObserver`]. Every hub input the driver makes goes through it; with
//! an observer, the observer sees each input as a value
//! ([`tether_core::Input`]) with its time, its [`Outcome`] and every output
//! it produced, in order. Without one every call is forwarded (one branch).
//! The layer knows nothing of files or formats: `tether-record` implements
//! [`ObserverFactory`] for its `RecordOptions`, and the application (the
//! `tether` binary for `serve --record`) puts it in the options.

use std::collections::VecDeque;
use std::collections::vec_deque;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Deref;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::{
    AcceptError, Action, Answer, BroadcastReport, ChannelId, Event, Hub, IdError, Input,
    InputError, KickError, KickMode, Outcome, SendError,
};

#[cfg(test)]
mod tests;

/// An observer's error: why it could not start, or why it stopped. Boxed
/// so that the layer names no observer's error type; the observer's own
/// type can be recovered with `downcast_ref`.
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

/// What an observer did so far: the `adapter.record_*` counters
/// ([`ServerStats`](crate::ServerStats)) are their sum over the shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObserverStats {
    /// Inputs recorded.
    pub lines: u64,
    /// Bytes written (or buffered).
    pub bytes: u64,
    /// Files (segments) started after the first.
    pub rotations: u64,
    /// Errors that stopped the observer (0 or 1).
    pub errors: u64,
}

/// One observed hub input: its time, the input, its outcome and every
/// output it produced (actions, then events, in the order the hub emitted
/// them; they are still to be executed by the driver).
#[derive(Debug)]
pub struct Step<'a> {
    /// When the input was made.
    pub now: Instant,
    /// The input.
    pub input: Input,
    /// Its result.
    pub outcome: Outcome,
    /// The actions it produced.
    pub actions: vec_deque::Iter<'a, Action>,
    /// The events it produced.
    pub events: vec_deque::Iter<'a, Event>,
}

/// Sees every input of one shard's hub (see the [crate docs](crate#recording-a-live-server)).
///
/// An observer must not fail the server: an error stops the observer
/// (it then says [`is_active`](Self::is_active) `false`), is kept for
/// [`take_error`](Self::take_error), and is logged once by the driver.
pub trait HubObserver: Send + fmt::Debug {
    /// Whether it still wants inputs (false once finished or stopped by
    /// an error): the hub is then driven unobserved.
    fn is_active(&self) -> bool;
    /// Before an input: the hub holds no undrained output (each earlier
    /// one was handed to [`after_input`](Self::after_input)), so it can be
    /// snapshot.
    fn before_input(&mut self, hub: &Hub);
    /// After an input, with everything it produced.
    fn after_input(&mut self, step: Step<'_>);
    /// Writes out what is buffered. Returns the error that stopped the
    /// observer, once (it is then not kept for `take_error`).
    fn flush(&mut self) -> Result<(), ObserverError>;
    /// Flushes and stops for good (the driver is ending). Returns the
    /// error that stopped it earlier if not taken yet, or the last flush's.
    fn finish(&mut self) -> Result<(), ObserverError>;
    /// The error that stopped the observer, once.
    fn take_error(&mut self) -> Option<ObserverError>;
    /// What it did so far.
    fn stats(&self) -> ObserverStats;
}

/// Makes one shard's [`HubObserver`] when a server starts.
pub trait ObserverFactory: Send + Sync + fmt::Debug {
    /// The observer of shard `shard` of `shards`, starting now with `hub`
    /// (drained), with times measured from `epoch` — one epoch for every
    /// shard of a server, no later than any `now` it will see. An error
    /// fails the start ([`StartError::Observer`](crate::StartError::Observer)).
    fn start(
        &self,
        shard: usize,
        shards: usize,
        epoch: Instant,
        hub: &Hub,
    ) -> Result<Box<dyn HubObserver>, ObserverError>;
}

/// A [`Hub`] with an optional [`HubObserver`]. Every input goes in through
/// one method, [`handle_input`](Self::handle_input) — the hub's own
/// [`Hub::handle_input`], observed — so every input the hub has is
/// observed the same way, with no per-input code here. For the driver's
/// convenience the inputs it makes also have typed forms (`accept`,
/// `send`, …: the same name, signature and result as [`Hub`]'s), each
/// one `handle_input` call. The `poll_*` methods serve the outputs;
/// read-only queries go to the hub through `Deref`.
///
/// With an active observer, after each input it drains the hub's actions
/// and events into its own queues (which `poll_*` then serve, in the same
/// order) and shows them to the observer with the input.
#[derive(Debug)]
pub struct ObservedHub {
    hub: Hub,
    observer: Option<Box<dyn HubObserver>>,
    /// Outputs drained from the hub, not yet polled.
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl Deref for ObservedHub {
    type Target = Hub;

    fn deref(&self) -> &Hub {
        &self.hub
    }
}

impl From<Hub> for ObservedHub {
    fn from(hub: Hub) -> Self {
        ObservedHub::new(hub)
    }
}

/// The hub answers each input as the method it names returns
/// ([`Hub::handle_input`]), so a typed form never sees another answer.
#[cold]
fn mismatch(answer: Answer) -> ! {
    unreachable!("Hub::handle_input answered {answer:?}")
}

impl ObservedHub {
    /// A hub observed by nobody: every call is forwarded.
    pub fn new(hub: Hub) -> Self {
        ObservedHub {
            hub,
            observer: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A hub observed from now on by the observer `start` makes of it.
    /// Outputs the hub still holds are moved to this hub's queues first
    /// (served by `poll_*` as usual; the observer does not see them).
    pub fn observed(
        mut hub: Hub,
        start: impl FnOnce(&Hub) -> Result<Box<dyn HubObserver>, ObserverError>,
    ) -> Result<Self, ObserverError> {
        let mut actions = VecDeque::with_capacity(64);
        let mut events = VecDeque::with_capacity(64);
        actions.extend(std::iter::from_fn(|| hub.poll_action()));
        events.extend(std::iter::from_fn(|| hub.poll_event()));
        let observer = start(&hub)?;
        Ok(ObservedHub {
            hub,
            observer: Some(observer),
            actions,
            events,
        })
    }

    /// After an input: drain the hub and show the step to the observer.
    #[inline]
    fn after_input(&mut self, now: Instant, input: Input, outcome: Outcome) {
        let (a, e) = (self.actions.len(), self.events.len());
        self.actions
            .extend(std::iter::from_fn(|| self.hub.poll_action()));
        self.events
            .extend(std::iter::from_fn(|| self.hub.poll_event()));
        if let Some(observer) = &mut self.observer {
            observer.after_input(Step {
                now,
                input,
                outcome,
                actions: self.actions.range(a..),
                events: self.events.range(e..),
            });
        }
    }

    /// Whether inputs are being observed (false without an observer and
    /// once it finished or stopped).
    pub fn is_observed(&self) -> bool {
        self.observer.as_ref().is_some_and(|o| o.is_active())
    }

    /// The observer's counters, if there is an observer.
    pub fn observer_stats(&self) -> Option<ObserverStats> {
        self.observer.as_ref().map(|o| o.stats())
    }

    /// The error that stopped the observer, once (later calls: `None`).
    pub fn take_error(&mut self) -> Option<ObserverError> {
        self.observer.as_mut().and_then(|o| o.take_error())
    }

    /// [`HubObserver::flush`]; `Ok` without an observer.
    pub fn flush(&mut self) -> Result<(), ObserverError> {
        self.observer.as_mut().map_or(Ok(()), |o| o.flush())
    }

    /// [`HubObserver::finish`]: later inputs are forwarded unobserved.
    pub fn finish(&mut self) -> Result<(), ObserverError> {
        self.observer.as_mut().map_or(Ok(()), |o| o.finish())
    }

    /// The hub itself (its outputs not yet polled from this wrapper are
    /// lost: drain first).
    pub fn into_inner(self) -> Hub {
        self.hub
    }

    /// The next action: this wrapper's queue first, then the hub's.
    #[inline]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front().or_else(|| self.hub.poll_action())
    }

    /// The next event: this wrapper's queue first, then the hub's.
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front().or_else(|| self.hub.poll_event())
    }

    /// [`Hub::poll_timeout`] (not an input: not observed).
    #[inline]
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.hub.poll_timeout()
    }

    /// Makes `input` on the hub ([`Hub::handle_input`]) and answers what
    /// the hub answered. With an active observer, the observer sees the
    /// hub before the input, then the input with its time, its
    /// [`Outcome`] and every output it produced, once; without one the
    /// call is forwarded (one branch).
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Answer {
        match &mut self.observer {
            Some(observer) if observer.is_active() => {
                observer.before_input(&self.hub);
                // Payloads are shared, not copied.
                let answer = self.hub.handle_input(now, input.clone());
                self.after_input(now, input, answer.outcome());
                answer
            }
            _ => self.hub.handle_input(now, input),
        }
    }

    /// No observer watches: the typed forms below then call the hub's typed
    /// methods themselves. The same calls (`Hub::handle_input` is a match
    /// over them), without making an `Input` and matching its `Answer`:
    /// measured by callgrind at ~800 instructions per connection under
    /// churn, about 2% of all of it.
    fn unobserved(&self) -> bool {
        !self.observer.as_ref().is_some_and(|o| o.is_active())
    }

    /// An adapter input on one channel.
    fn on_channel(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        match self.handle_input(now, input) {
            Answer::Channel(result) => result,
            other => mismatch(other),
        }
    }

    /// A kick.
    fn kick_input(&mut self, now: Instant, input: Input) -> Result<(), KickError> {
        match self.handle_input(now, input) {
            Answer::Kick(result) => result,
            other => mismatch(other),
        }
    }

    /// [`Hub::accept`] as [`Input::Accept`].
    pub fn accept(&mut self, now: Instant, peer: SocketAddr) -> Result<ChannelId, AcceptError> {
        if self.unobserved() {
            return self.hub.accept(now, peer);
        }
        match self.handle_input(now, Input::Accept { peer }) {
            Answer::Accept(result) => result,
            other => mismatch(other),
        }
    }

    /// [`Hub::handle_received`] as [`Input::Received`].
    pub fn handle_received(
        &mut self,
        now: Instant,
        id: ChannelId,
        data: Bytes,
    ) -> Result<(), InputError> {
        if self.unobserved() {
            return self.hub.handle_received(now, id, data);
        }
        self.on_channel(now, Input::Received { id, data })
    }

    /// [`Hub::handle_peer_eof`] as [`Input::PeerEof`].
    pub fn handle_peer_eof(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        if self.unobserved() {
            return self.hub.handle_peer_eof(now, id);
        }
        self.on_channel(now, Input::PeerEof { id })
    }

    /// [`Hub::handle_io_error`] as [`Input::IoError`].
    pub fn handle_io_error(
        &mut self,
        now: Instant,
        id: ChannelId,
        kind: std::io::ErrorKind,
    ) -> Result<(), InputError> {
        if self.unobserved() {
            return self.hub.handle_io_error(now, id, kind);
        }
        self.on_channel(now, Input::IoError { id, kind })
    }

    /// [`Hub::handle_written`] as [`Input::Written`].
    pub fn handle_written(
        &mut self,
        now: Instant,
        id: ChannelId,
        n: usize,
    ) -> Result<(), InputError> {
        if self.unobserved() {
            return self.hub.handle_written(now, id, n);
        }
        self.on_channel(now, Input::Written { id, n })
    }

    /// [`Hub::attach`] as [`Input::Attach`].
    pub fn attach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        if self.unobserved() {
            return self.hub.attach(now, id);
        }
        self.on_channel(now, Input::Attach { id })
    }

    /// [`Hub::detach`] as [`Input::Detach`].
    pub fn detach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        if self.unobserved() {
            return self.hub.detach(now, id);
        }
        self.on_channel(now, Input::Detach { id })
    }

    /// [`Hub::handle_closed`] as [`Input::Closed`].
    pub fn handle_closed(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        if self.unobserved() {
            return self.hub.handle_closed(now, id);
        }
        self.on_channel(now, Input::Closed { id })
    }

    /// [`Hub::handle_timeout`] as [`Input::Timeout`]. An early call is
    /// harmless, and observed like any other input (a recorded line).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.unobserved() {
            self.hub.handle_timeout(now);
            return;
        }
        let _done = self.handle_input(now, Input::Timeout);
    }

    /// [`Hub::send`] as [`Input::Send`].
    pub fn send(&mut self, now: Instant, id: ChannelId, data: Bytes) -> Result<(), SendError> {
        if self.unobserved() {
            return self.hub.send(now, id, data);
        }
        match self.handle_input(now, Input::Send { id, data }) {
            Answer::Send(result) => result,
            other => mismatch(other),
        }
    }

    /// [`Hub::broadcast`] as [`Input::Broadcast`].
    pub fn broadcast(&mut self, now: Instant, data: Bytes) -> BroadcastReport {
        if self.unobserved() {
            return self.hub.broadcast(now, data);
        }
        match self.handle_input(now, Input::Broadcast { data }) {
            Answer::Broadcast(report) => report,
            other => mismatch(other),
        }
    }

    /// [`Hub::kick`] as [`Input::Kick`].
    pub fn kick(
        &mut self,
        now: Instant,
        id: ChannelId,
        mode: KickMode,
        code: u32,
    ) -> Result<(), KickError> {
        if self.unobserved() {
            return self.hub.kick(now, id, mode, code);
        }
        self.kick_input(now, Input::Kick { id, mode, code })
    }

    /// [`Hub::kick_default`] as [`Input::KickDefault`].
    pub fn kick_default(&mut self, now: Instant, id: ChannelId) -> Result<(), KickError> {
        if self.unobserved() {
            return self.hub.kick_default(now, id);
        }
        self.kick_input(now, Input::KickDefault { id })
    }

    /// [`Hub::authenticate`] as [`Input::Authenticate`].
    pub fn authenticate(&mut self, now: Instant, id: ChannelId) -> Result<(), IdError> {
        if self.unobserved() {
            return self.hub.authenticate(now, id);
        }
        match self.handle_input(now, Input::Authenticate { id }) {
            Answer::Authenticate(result) => result,
            other => mismatch(other),
        }
    }

    /// [`Hub::shutdown`] as [`Input::Shutdown`].
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        if self.unobserved() {
            self.hub.shutdown(now, grace);
            return;
        }
        let _done = self.handle_input(now, Input::Shutdown { grace });
    }
}
