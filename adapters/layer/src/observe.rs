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
    AcceptError, Action, BroadcastReport, ChannelId, Event, Hub, IdError, Input, InputError,
    KickError, KickMode, Outcome, Rejection, SendError,
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

/// A [`Hub`] with an optional [`HubObserver`]: one method per hub input —
/// the same name, signature and result as [`Hub`]'s — plus the `poll_*`
/// methods; read-only queries go to the hub through `Deref`.
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

/// The body of every input method: forward when unobserved; else make the
/// call between the observer's `before_input` and `after_input`.
macro_rules! input {
    ($self:ident, $now:expr, $call:expr, $input:expr, $outcome:expr) => {{
        match &mut $self.observer {
            Some(observer) if observer.is_active() => {
                let input = $input;
                observer.before_input(&$self.hub);
                #[allow(clippy::redundant_closure_call)]
                let result = $call(&mut $self.hub);
                #[allow(clippy::redundant_closure_call)]
                let outcome = $outcome(&result);
                $self.after_input($now, input, outcome);
                result
            }
            _ => $call(&mut $self.hub),
        }
    }};
}

fn of<E: Copy + Into<Rejection>>(r: &Result<(), E>) -> Outcome {
    Outcome::of(*r)
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

    /// [`Hub::accept`]; observed as [`Input::Accept`].
    pub fn accept(&mut self, now: Instant, peer: SocketAddr) -> Result<ChannelId, AcceptError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.accept(now, peer),
            Input::Accept { peer },
            |r: &Result<ChannelId, AcceptError>| match r {
                Ok(id) => Outcome::Opened(*id),
                Err(e) => Outcome::Rejected((*e).into()),
            }
        )
    }

    /// [`Hub::handle_received`]; observed as [`Input::Received`].
    pub fn handle_received(
        &mut self,
        now: Instant,
        id: ChannelId,
        data: Bytes,
    ) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_received(now, id, data),
            Input::Received {
                id,
                data: data.clone()
            },
            of
        )
    }

    /// [`Hub::handle_peer_eof`]; observed as [`Input::PeerEof`].
    pub fn handle_peer_eof(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_peer_eof(now, id),
            Input::PeerEof { id },
            of
        )
    }

    /// [`Hub::handle_io_error`]; observed as [`Input::IoError`].
    pub fn handle_io_error(
        &mut self,
        now: Instant,
        id: ChannelId,
        kind: std::io::ErrorKind,
    ) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_io_error(now, id, kind),
            Input::IoError { id, kind },
            of
        )
    }

    /// [`Hub::handle_written`]; observed as [`Input::Written`].
    pub fn handle_written(
        &mut self,
        now: Instant,
        id: ChannelId,
        n: usize,
    ) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_written(now, id, n),
            Input::Written { id, n },
            of
        )
    }

    /// [`Hub::attach`]; observed as [`Input::Attach`].
    pub fn attach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.attach(now, id),
            Input::Attach { id },
            of
        )
    }

    /// [`Hub::detach`]; observed as [`Input::Detach`].
    pub fn detach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.detach(now, id),
            Input::Detach { id },
            of
        )
    }

    /// [`Hub::handle_closed`]; observed as [`Input::Closed`].
    pub fn handle_closed(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_closed(now, id),
            Input::Closed { id },
            of
        )
    }

    /// [`Hub::handle_timeout`]; observed as [`Input::Timeout`]. Call it
    /// only when a deadline is due (`poll_timeout() <= now`) to keep
    /// recordings small: an early call is harmless but is a line.
    pub fn handle_timeout(&mut self, now: Instant) {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_timeout(now),
            Input::Timeout,
            |_: &()| Outcome::Ok
        )
    }

    /// [`Hub::send`]; observed as [`Input::Send`].
    pub fn send(&mut self, now: Instant, id: ChannelId, data: Bytes) -> Result<(), SendError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.send(now, id, data),
            Input::Send {
                id,
                data: data.clone()
            },
            of
        )
    }

    /// [`Hub::broadcast`]; observed as [`Input::Broadcast`].
    pub fn broadcast(&mut self, now: Instant, data: Bytes) -> BroadcastReport {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.broadcast(now, data),
            Input::Broadcast { data: data.clone() },
            |r: &BroadcastReport| Outcome::Broadcast {
                sent: r.sent,
                refused: r.refused.len(),
            }
        )
    }

    /// [`Hub::kick`]; observed as [`Input::Kick`].
    pub fn kick(
        &mut self,
        now: Instant,
        id: ChannelId,
        mode: KickMode,
        code: u32,
    ) -> Result<(), KickError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.kick(now, id, mode, code),
            Input::Kick { id, mode, code },
            of
        )
    }

    /// [`Hub::kick_default`]; observed as [`Input::KickDefault`].
    pub fn kick_default(&mut self, now: Instant, id: ChannelId) -> Result<(), KickError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.kick_default(now, id),
            Input::KickDefault { id },
            of
        )
    }

    /// [`Hub::authenticate`]; observed as [`Input::Authenticate`].
    pub fn authenticate(&mut self, now: Instant, id: ChannelId) -> Result<(), IdError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.authenticate(now, id),
            Input::Authenticate { id },
            of
        )
    }

    /// [`Hub::shutdown`]; observed as [`Input::Shutdown`].
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.shutdown(now, grace),
            Input::Shutdown { grace },
            |_: &()| Outcome::Ok
        )
    }
}
