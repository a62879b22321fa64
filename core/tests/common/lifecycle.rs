//! The steady-state channel lifecycle shared by `benches/lifecycle.rs` (which
//! times it) and `tests/allocations.rs` (which counts its allocations), so
//! both measure exactly the same sequence. Each includes this file with
//! `#[path]` and uses its part of it.
#![allow(dead_code)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use tether_core::{Action, Bytes, Config, DisconnectReason, Event, Hub, KickMode};

/// Channels alive besides the one going through its lifecycle.
pub const OTHERS: usize = 10_000;

/// What the lifecycles emitted, by kind; counting is allocation-free.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outputs {
    pub transmitted: usize,
    pub shutdowns: u32,
    pub aborts: u32,
    pub closes: u32,
    pub other_actions: u32,
    pub opened: u32,
    pub received: usize,
    pub kicked_code_7: u32,
    pub other_disconnects: u32,
    pub released: u32,
    pub other_events: u32,
    /// How many times `poll_timeout` named a deadline.
    pub deadlines: u32,
}

impl Outputs {
    /// These outputs `n` times over.
    pub fn times(self, n: usize) -> Outputs {
        let n32 = n as u32;
        Outputs {
            transmitted: self.transmitted * n,
            shutdowns: self.shutdowns * n32,
            aborts: self.aborts * n32,
            closes: self.closes * n32,
            other_actions: self.other_actions * n32,
            opened: self.opened * n32,
            received: self.received * n,
            kicked_code_7: self.kicked_code_7 * n32,
            other_disconnects: self.other_disconnects * n32,
            released: self.released * n32,
            other_events: self.other_events * n32,
            deadlines: self.deadlines * n32,
        }
    }
}

/// Drains every output and asks for the next deadline, as an adapter's
/// loop does after each input. Matching on each output is what an adapter
/// does anyway; it also keeps the polls from being optimised away.
#[inline]
pub fn drain(hub: &mut Hub, out: &mut Outputs) {
    while let Some(action) = hub.poll_action() {
        match action {
            Action::Transmit { data, .. } => out.transmitted += data.len(),
            Action::Shutdown { .. } => out.shutdowns += 1,
            Action::Abort { .. } => out.aborts += 1,
            Action::CloseSocket { .. } => out.closes += 1,
            _ => out.other_actions += 1,
        }
    }
    while let Some(event) = hub.poll_event() {
        match event {
            Event::Opened { .. } => out.opened += 1,
            Event::Received { data, .. } => out.received += data.len(),
            Event::Disconnected {
                reason: DisconnectReason::Kicked { code: 7 },
                ..
            } => out.kicked_code_7 += 1,
            Event::Disconnected { .. } => out.other_disconnects += 1,
            Event::Released { .. } => out.released += 1,
            _ => out.other_events += 1,
        }
    }
    if black_box(hub.poll_timeout()).is_some() {
        out.deadlines += 1;
    }
}

/// accept → attach → received → send → written → graceful kick → peer EOF
/// → detach → closed → released. `payload` is shared, not copied.
pub fn graceful_lifecycle(
    hub: &mut Hub,
    now: Instant,
    peer: SocketAddr,
    payload: &Bytes,
    out: &mut Outputs,
) {
    let id = hub.accept(now, peer).expect("below the limit");
    drain(hub, out);
    hub.attach(now, id).expect("open");
    hub.handle_received(now, id, payload.clone()).expect("open");
    drain(hub, out);
    hub.send(now, id, payload.clone()).expect("open");
    drain(hub, out);
    hub.handle_written(now, id, payload.len()).expect("queued");
    drain(hub, out);
    hub.kick(now, id, KickMode::Graceful, 7).expect("open");
    drain(hub, out);
    hub.handle_peer_eof(now, id).expect("closing");
    drain(hub, out);
    hub.detach(now, id).expect("attached");
    drain(hub, out);
    hub.handle_closed(now, id).expect("close was requested");
    drain(hub, out);
}

/// What one graceful lifecycle emits: Transmit, Shutdown(Write),
/// Shutdown(Both), Close; Opened, Received, Disconnected, Released; a
/// deadline pending after the send (the stall deadline of the unwritten
/// queue), after the kick (flush) and after the peer's EOF (overdue holder)
/// only — with the default config, which has no idle timer.
pub fn graceful_once(payload: &Bytes) -> Outputs {
    Outputs {
        transmitted: payload.len(),
        shutdowns: 2,
        closes: 1,
        opened: 1,
        received: payload.len(),
        kicked_code_7: 1,
        released: 1,
        deadlines: 3,
        ..Outputs::default()
    }
}

/// The abortive variant: the queued transmit is discarded, RST, then the
/// holder lets go and the close is confirmed.
pub fn abortive_lifecycle(
    hub: &mut Hub,
    now: Instant,
    peer: SocketAddr,
    payload: &Bytes,
    out: &mut Outputs,
) {
    let id = hub.accept(now, peer).expect("below the limit");
    drain(hub, out);
    hub.attach(now, id).expect("open");
    hub.send(now, id, payload.clone()).expect("open");
    drain(hub, out);
    hub.kick(now, id, KickMode::Abort, 7).expect("open");
    drain(hub, out);
    hub.detach(now, id).expect("attached");
    drain(hub, out);
    hub.handle_closed(now, id).expect("close was requested");
    drain(hub, out);
}

/// A hub built from `config` holding [`OTHERS`] attached, open channels.
pub fn hub_with_others(config: Config, now: Instant, peer: SocketAddr) -> Hub {
    let mut hub = Hub::new(config).expect("valid config");
    for _ in 0..OTHERS {
        let id = hub.accept(now, peer).expect("below the limit");
        hub.attach(now, id).expect("open");
    }
    while hub.poll_action().is_some() {}
    while hub.poll_event().is_some() {}
    hub
}
