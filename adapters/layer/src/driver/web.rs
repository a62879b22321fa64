//! The WebSocket transport inside the driver (see `crate::web`): frames
//! read become hub lines, hub transmits become frames (one broadcast
//! framed once per shard), channel ends become close frames before the
//! FIN, and two timers: the handshake deadline and the idle ping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use bytes::Bytes;
use tether_core::{ChannelId, DisconnectReason, KickMode};

use super::Driver;
use crate::glue::{Glue, Socket};
use crate::stats::Counter;
use crate::web::{End, WebConn};

/// What a WebSocket timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum WebTimer {
    /// The upgrade must be complete by then.
    Handshake,
    /// Ping if nothing came since `Web::ping` ago.
    Ping,
}

/// Deadlines of the shard's WebSocket connections: at most two per
/// connection (a handshake deadline, then one ping timer), so the heap is
/// bounded by the connections, never by traffic.
pub(super) type WebTimers = BinaryHeap<Reverse<(Instant, ChannelId, WebTimer)>>;

/// The last buffer framed and its frame: the hub emits a broadcast's
/// transmits one after another with the same `Bytes`, so one entry frames
/// it once for every WebSocket client of the shard.
pub(super) type FrameCache = Option<(Bytes, Bytes)>;

impl<G: Glue> Driver<G> {
    /// A new WebSocket connection: its transport state and handshake deadline.
    pub(super) fn web_accepted(&mut self, now: Instant, id: ChannelId) -> Option<Box<WebConn>> {
        let web = self.options.web.as_ref()?;
        let deadline = now + web.handshake_timeout;
        self.web_timers
            .push(Reverse((deadline, id, WebTimer::Handshake)));
        Some(Box::new(WebConn::new(web, id, now)))
    }

    /// Bytes read from a WebSocket connection.
    pub(super) fn web_received(&mut self, now: Instant, id: ChannelId, data: Bytes) {
        let Some(web) = self.options.web.as_ref() else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(ws) = conn.web.as_mut() else {
            return;
        };
        let out = ws.read(web, &data, now);
        let mut dropped = 0;
        if let Some(response) = out.upgraded {
            conn.out.push_front_unstarted(response);
            self.counters.bump(Counter::WebUpgrades);
            if let Some(ping) = web.ping {
                self.web_timers
                    .push(Reverse((now + ping, id, WebTimer::Ping)));
            }
        }
        if let Some(answer) = out.respond {
            // Not an upgrade: what was held for it will never be read.
            dropped = conn.out.discard();
            conn.out.push_front_unstarted(answer);
        }
        for frame in out.control {
            conn.out.push_framed(frame, 0);
        }
        self.mark_dirty(id);
        if dropped > 0 {
            let result = self.hub.handle_written(now, id, dropped);
            self.rejected(result);
        }
        if !out.lines.is_empty() || out.activity {
            // An empty read is activity for the idle timeout (a pong).
            let result = self.hub.handle_received(now, id, out.lines.freeze());
            self.rejected(result);
        }
        for frame in out.echo {
            // Through the hub: its queue limit bounds what a client that
            // sends and never reads can make the server hold.
            let _counted = self.hub.send(now, id, frame);
        }
        match out.end {
            None => {}
            Some(End::PeerClose) => {
                let result = self.hub.handle_peer_eof(now, id);
                self.rejected(result);
            }
            Some(End::Violation | End::Answered) => {
                if out.end == Some(End::Violation) {
                    self.counters.bump(Counter::WebProtocolErrors);
                }
                let reason = DisconnectReason::IoError(std::io::ErrorKind::InvalidData);
                let reason = if out.end == Some(End::Answered) {
                    DisconnectReason::PeerClosed
                } else {
                    reason
                };
                self.web_kick(now, id, KickMode::Graceful, reason);
            }
        }
    }

    /// A transmit to a WebSocket connection: framed (once per broadcast),
    /// or, once the connection is closing, dropped and reported written.
    /// Returns whether it was queued.
    pub(super) fn web_transmit(&mut self, now: Instant, id: ChannelId, data: Bytes) -> bool {
        let (Some(web), Some(conn)) = (self.options.web.as_ref(), self.conns.get_mut(&id)) else {
            return false;
        };
        let Some(ws) = conn.web.as_mut() else {
            return false;
        };
        let cached = self
            .frame_cache
            .as_ref()
            .filter(|(src, _)| src.as_ptr() == data.as_ptr() && src.len() == data.len())
            .map(|(_, frame)| frame);
        let hub = data.len();
        if cached.is_none() && !web.echo && ws.open() {
            self.counters.bump(Counter::WebFrames);
        }
        match ws.frame(web, &data, cached) {
            Some(frame) => {
                let handshaking = ws.handshaking();
                conn.out.push_framed(frame.clone(), hub);
                if !web.echo {
                    self.frame_cache = Some((data, frame));
                }
                // Nothing goes out before the upgrade response.
                !handshaking
            }
            None => {
                let result = self.hub.handle_written(now, id, hub);
                self.rejected(result);
                false
            }
        }
    }

    /// `Shutdown` on a WebSocket connection: the close frame first. After a
    /// `Write`, the FIN waits until it is written (returns true); a `Both`
    /// (the peer is gone or done) gets one non-blocking try, then goes on.
    pub(super) fn web_close(&mut self, id: ChannelId, how: std::net::Shutdown) -> bool {
        let reason = self.hub.channel(id).ok().and_then(|info| info.reason);
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let Some(ws) = conn.web.as_mut() else {
            return false;
        };
        if let Some(frame) = ws.close_frame(reason.as_ref()) {
            conn.out.push_framed(frame, 0);
        }
        if conn.out.is_empty() {
            return false;
        }
        if how == std::net::Shutdown::Both {
            // Only transport frames are left (the hub's queue is empty).
            let _report = conn.out.flush(&*conn.socket);
            ws.fin_pending = false;
            return false;
        }
        ws.fin_pending = true;
        self.mark_dirty(id);
        true
    }

    /// After a flush that drained a connection: the FIN that waited.
    pub(super) fn web_drained(&mut self, id: ChannelId) {
        if let Some(conn) = self.conns.get_mut(&id)
            && let Some(ws) = conn.web.as_mut()
            && ws.fin_pending
        {
            ws.fin_pending = false;
            let _ = conn.socket.shutdown(std::net::Shutdown::Write);
        }
    }

    /// Whether `id` may be written now (not before its upgrade).
    pub(super) fn web_writable(&self, id: &ChannelId) -> bool {
        self.conns
            .get(id)
            .and_then(|conn| conn.web.as_ref())
            .is_none_or(|ws| !ws.handshaking())
    }

    pub(super) fn mark_dirty(&mut self, id: ChannelId) {
        if let Some(conn) = self.conns.get_mut(&id)
            && !conn.dirty
            && !conn.waiting
            && !conn.out.is_empty()
        {
            conn.dirty = true;
            self.dirty.push(id);
        }
    }

    /// The next WebSocket deadline.
    pub(super) fn web_deadline(&self) -> Option<Instant> {
        self.web_timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Acts on every WebSocket deadline due by `now`.
    pub(super) fn web_timeouts(&mut self, now: Instant) {
        while let Some(Reverse((at, id, timer))) = self.web_timers.peek().copied() {
            if at > now {
                break;
            }
            self.web_timers.pop();
            let Some(ws) = self.conns.get(&id).and_then(|conn| conn.web.as_ref()) else {
                continue; // gone: its timers lapse
            };
            match timer {
                WebTimer::Handshake if ws.handshaking() => {
                    self.counters.bump(Counter::WebHandshakeTimeouts);
                    let reason = DisconnectReason::LoginTimeout;
                    self.web_kick(now, id, KickMode::Abort, reason);
                }
                WebTimer::Handshake => {}
                WebTimer::Ping => self.web_ping(now, id),
            }
        }
    }

    /// Ends a channel for a transport reason (through the hub, so the app
    /// hears of it and the recorder sees it).
    fn web_kick(&mut self, now: Instant, id: ChannelId, mode: KickMode, reason: DisconnectReason) {
        let input = tether_core::Input::KickWithReason { id, mode, reason };
        let _ended = self.hub.handle_input(now, input);
    }

    fn web_ping(&mut self, now: Instant, id: ChannelId) {
        let Some(ping) = self.options.web.as_ref().and_then(|web| web.ping) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(ws) = conn.web.as_mut() else {
            return;
        };
        if !ws.open() {
            return;
        }
        let due = ws.last_seen + ping;
        if due > now {
            self.web_timers.push(Reverse((due, id, WebTimer::Ping)));
            return;
        }
        ws.last_seen = now;
        conn.out
            .push_framed(crate::web::encode::control(false, b""), 0);
        self.counters.bump(Counter::WebPings);
        self.web_timers
            .push(Reverse((now + ping, id, WebTimer::Ping)));
        self.mark_dirty(id);
    }
}
