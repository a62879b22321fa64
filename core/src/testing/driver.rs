//! A hub on a virtual clock, driven by a well-behaved simulated adapter.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::VirtualClock;
use crate::{
    AcceptError, Action, ChannelId, Config, ConfigError, DisconnectReason, Event, Hub, KickError,
    KickMode, SendError, ShutdownHow,
};

/// Drives a [`Hub`] on a [`VirtualClock`] the way a perfect adapter would,
/// and records every action and event, so a policy test is a few lines:
///
/// ```
/// use std::time::Duration;
/// use tether_core::{Action, Config, DisconnectReason, ShutdownHow};
/// use tether_core::testing::Driver;
///
/// let mut d = Driver::new(Config::default().with(|c| {
///     c.idle_timeout = Some(Duration::from_secs(30));
/// }))
/// .unwrap();
/// let id = d.open();
/// d.advance(Duration::from_secs(31));
/// assert_eq!(d.disconnect_reason(id), Some(DisconnectReason::IdleTimeout));
/// assert!(d.actions().contains(&Action::Shutdown { id, how: ShutdownHow::Write }));
/// ```
///
/// What the simulated adapter does with each action, after every call
/// ([`pump`](Driver::pump)):
/// * `Transmit`: writes it whole at once (`handle_written`), unless
///   [`set_auto_write(false)`](Driver::set_auto_write) — then bytes stay
///   queued until [`write`](Driver::write);
/// * `Shutdown(Write)`: the simulated peer answers with its own EOF, unless
///   [`set_peer_answers_fin(false)`](Driver::set_peer_answers_fin);
/// * `CloseSocket`: closes and confirms (`handle_closed`), unless
///   [`set_auto_close(false)`](Driver::set_auto_close);
/// * everything else is only recorded.
#[derive(Debug)]
pub struct Driver {
    hub: Hub,
    clock: VirtualClock,
    actions: Vec<Action>,
    events: Vec<Event>,
    transmitted: HashMap<ChannelId, Vec<u8>>,
    next_port: u16,
    auto_write: bool,
    auto_close: bool,
    peer_answers_fin: bool,
}

impl Driver {
    /// A driver around a new hub with `config`.
    pub fn new(config: Config) -> Result<Driver, ConfigError> {
        Ok(Driver {
            hub: Hub::new(config)?,
            clock: VirtualClock::new(),
            actions: Vec::new(),
            events: Vec::new(),
            transmitted: HashMap::new(),
            next_port: 1024,
            auto_write: true,
            auto_close: true,
            peer_answers_fin: true,
        })
    }

    /// Whether transmits are written (and acknowledged) at once.
    pub fn set_auto_write(&mut self, on: bool) -> &mut Self {
        self.auto_write = on;
        self
    }

    /// Whether a requested close is performed and confirmed at once.
    pub fn set_auto_close(&mut self, on: bool) -> &mut Self {
        self.auto_close = on;
        self
    }

    /// Whether the simulated peer answers our FIN with its own EOF.
    pub fn set_peer_answers_fin(&mut self, on: bool) -> &mut Self {
        self.peer_answers_fin = on;
        self
    }

    /// The hub, for any call the driver has no shortcut for. Call
    /// [`pump`](Driver::pump) afterwards to run the simulated adapter.
    pub fn hub(&mut self) -> &mut Hub {
        &mut self.hub
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The clock.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Accepts a connection from a fresh loopback port.
    pub fn try_open(&mut self) -> Result<ChannelId, AcceptError> {
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, self.next_port));
        self.next_port = self.next_port.wrapping_add(1).max(1024);
        let result = self.hub.accept(self.clock.now(), peer);
        self.pump();
        result
    }

    /// Accepts a connection; panics if the hub refuses it (a test helper).
    #[track_caller]
    pub fn open(&mut self) -> ChannelId {
        match self.try_open() {
            Ok(id) => id,
            Err(e) => panic!("Driver::open: accept refused: {e}"),
        }
    }

    /// Moves the clock by `d` and serves every deadline due by then, in
    /// order, the way an adapter sleeping on `poll_timeout` would. Time
    /// passes in steps of at most [`Config::max_clock_jump`], each ending
    /// with a `handle_timeout`, so a long advance is believed by the hub's
    /// clock rule (see the crate docs, *Time*).
    pub fn advance(&mut self, d: Duration) {
        let target = self.clock.now().checked_add(d).unwrap_or(self.clock.now());
        let step = self.hub.config().max_clock_jump;
        loop {
            let stop = (self.clock.now().checked_add(step)).map_or(target, |t| t.min(target));
            // Bounded: each deadline served moves time forward or retires work.
            for _ in 0..1_000_000 {
                match self.hub.poll_timeout() {
                    Some(at) if at <= stop => {
                        if at > self.clock.now() {
                            self.clock.set(at);
                        }
                        self.hub.handle_timeout(self.clock.now());
                        self.pump();
                    }
                    _ => break,
                }
            }
            self.clock.set(stop);
            self.hub.handle_timeout(stop);
            self.pump();
            if stop >= target {
                break;
            }
        }
    }

    /// The peer sent `data`.
    pub fn receive(&mut self, id: ChannelId, data: &[u8]) -> Result<(), crate::InputError> {
        let r = self
            .hub
            .handle_received(self.clock.now(), id, Bytes::copy_from_slice(data));
        self.pump();
        r
    }

    /// The peer sent EOF.
    pub fn peer_eof(&mut self, id: ChannelId) -> Result<(), crate::InputError> {
        let r = self.hub.handle_peer_eof(self.clock.now(), id);
        self.pump();
        r
    }

    /// An I/O error of `kind` on the socket.
    pub fn io_error(
        &mut self,
        id: ChannelId,
        kind: std::io::ErrorKind,
    ) -> Result<(), crate::InputError> {
        let r = self.hub.handle_io_error(self.clock.now(), id, kind);
        self.pump();
        r
    }

    /// A holder attaches to `id`.
    pub fn attach(&mut self, id: ChannelId) -> Result<(), crate::InputError> {
        let r = self.hub.attach(self.clock.now(), id);
        self.pump();
        r
    }

    /// A holder detaches from `id`.
    pub fn detach(&mut self, id: ChannelId) -> Result<(), crate::InputError> {
        let r = self.hub.detach(self.clock.now(), id);
        self.pump();
        r
    }

    /// The app sends `data`.
    pub fn send(&mut self, id: ChannelId, data: &[u8]) -> Result<(), SendError> {
        let r = self
            .hub
            .send(self.clock.now(), id, Bytes::copy_from_slice(data));
        self.pump();
        r
    }

    /// The app kicks `id`.
    pub fn kick(&mut self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), KickError> {
        let r = self.hub.kick(self.clock.now(), id, mode, code);
        self.pump();
        r
    }

    /// The simulated adapter writes up to `n` queued bytes of `id` (when
    /// auto-write is off).
    pub fn write(&mut self, id: ChannelId, n: usize) -> Result<(), crate::InputError> {
        let r = self.hub.handle_written(self.clock.now(), id, n);
        self.pump();
        r
    }

    /// Runs the simulated adapter over every pending action and records
    /// every event. Called by every other method of the driver.
    pub fn pump(&mut self) {
        for _ in 0..1_000_000 {
            let Some(action) = self.hub.poll_action() else {
                break;
            };
            let now = self.clock.now();
            match &action {
                Action::Transmit { id, data } => {
                    self.transmitted
                        .entry(*id)
                        .or_default()
                        .extend_from_slice(data);
                    if self.auto_write {
                        let _ = self.hub.handle_written(now, *id, data.len());
                    }
                }
                Action::Shutdown {
                    id,
                    how: ShutdownHow::Write,
                } if self.peer_answers_fin => {
                    let _ = self.hub.handle_peer_eof(now, *id);
                }
                Action::CloseSocket { id } if self.auto_close => {
                    let _ = self.hub.handle_closed(now, *id);
                }
                _ => {}
            }
            self.actions.push(action);
        }
        while let Some(event) = self.hub.poll_event() {
            self.events.push(event);
        }
    }

    /// Every action so far, in order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Every event so far, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Takes the recorded actions, leaving the log empty.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Takes the recorded events, leaving the log empty.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The reason of `id`'s `Disconnected` event, if one was recorded.
    pub fn disconnect_reason(&self, id: ChannelId) -> Option<DisconnectReason> {
        self.events.iter().find_map(|e| match e {
            Event::Disconnected { id: i, reason } if *i == id => Some(*reason),
            _ => None,
        })
    }

    /// How many `Disconnected` events were recorded for `id`.
    pub fn disconnects(&self, id: ChannelId) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Disconnected { id: i, .. } if *i == id))
            .count()
    }

    /// Whether `id` was released.
    pub fn is_released(&self, id: ChannelId) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::Released { id: i } if *i == id))
    }

    /// Every byte transmitted on `id`, in order.
    pub fn transmitted(&self, id: ChannelId) -> &[u8] {
        self.transmitted.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Every byte the app received from `id`, in order.
    pub fn received(&self, id: ChannelId) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.events {
            if let Event::Received { id: i, data } = e
                && *i == id
            {
                out.extend_from_slice(data);
            }
        }
        out
    }

    /// The actions recorded for `id`, in order.
    pub fn actions_for(&self, id: ChannelId) -> Vec<Action> {
        self.actions
            .iter()
            .filter(|a| a.channel() == Some(id))
            .cloned()
            .collect()
    }
}
