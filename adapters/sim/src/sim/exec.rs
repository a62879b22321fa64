//! How the simulated adapter carries out each op: accepts, peer traffic,
//! app commands, partial writes, holders, hostile calls and the final drain.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::testing::{Input, Outcome};
use tether_core::{ChannelId, KickMode};

use super::{MAX_DEADLINES_PER_WAIT, Sim};
use crate::net::Socket;
use crate::op::{Call, Op, SendSize};

impl Sim {
    fn bytes(&self, size: SendSize) -> Bytes {
        let limit = self.hub.config().queue_limit;
        let len = match size {
            SendSize::Empty => 0,
            SendSize::Tiny(n) => usize::from(n) + 1,
            SendSize::Small(n) => usize::from(n) % 4096,
            SendSize::AtLimit => limit,
            SendSize::OverLimit => limit + 1,
        };
        self.payload.slice(..len.min(self.payload.len()))
    }

    fn accept(&mut self) {
        self.next_port = self.next_port.wrapping_add(1).max(1024);
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, self.next_port));
        if let Outcome::Opened(id) = self.call(Input::Accept { peer }) {
            let mut sock = Socket::new(id);
            // The adapter's reader task takes the socket at once.
            if self.call(Input::Attach { id }) == Outcome::Ok {
                sock.holders = 1;
                sock.reader_attached = true;
            }
            self.sockets.insert(sock);
        }
    }

    /// Time passes to `target`: peers answer our FIN, pending closes are
    /// confirmed, then every deadline up to `target` is served at its time.
    pub(super) fn wait(&mut self, target: Instant) {
        let answering: Vec<_> = (self.sockets.iter_mut())
            .filter(|s| s.fin_sent && !s.rst_sent && !s.fd_closed && !s.peer_eof_reported)
            .filter(|s| s.reader_attached)
            .map(|s| {
                s.peer_eof_reported = true;
                s.id
            })
            .collect();
        for id in answering {
            self.call(Input::PeerEof { id });
            self.pump();
        }
        let confirming: Vec<_> = (self.sockets.iter_mut())
            .filter(|s| s.confirm_pending)
            .map(|s| s.id)
            .collect();
        for id in confirming {
            self.confirm(id);
            self.pump();
        }
        for _ in 0..MAX_DEADLINES_PER_WAIT {
            match self.hub.poll_timeout() {
                Some(due) if due <= target && self.violation.is_none() => {
                    self.now = self.now.max(due);
                    self.call(Input::Timeout);
                    self.pump();
                }
                _ => return,
            }
        }
        self.fail(
            10,
            format!("more than {MAX_DEADLINES_PER_WAIT} deadlines in one wait"),
        );
    }

    pub(super) fn exec(&mut self, op: Op) {
        match op {
            Op::Advance { .. } | Op::Rewind { .. } => {}
            Op::Accept => self.accept(),
            Op::AcceptFlood { n } => {
                for _ in 0..=(n % 32) {
                    self.accept();
                    self.pump();
                }
            }
            Op::Timeout => {
                self.call(Input::Timeout);
            }
            Op::Shutdown { grace_ms } => {
                let grace = Duration::from_millis(u64::from(grace_ms));
                self.call(Input::Shutdown { grace });
            }
            Op::Broadcast { size } => {
                let data = self.bytes(size);
                self.call(Input::Broadcast { data });
            }
            Op::BroadcastTo { mask, stale, size } => {
                let mut ids: Vec<ChannelId> = (0..8)
                    .filter(|i| mask & (1 << i) != 0)
                    .filter_map(|i| self.sockets.pick(i))
                    .collect();
                if stale && let Some(dead) = self.sockets.dead.back() {
                    ids.push(*dead);
                }
                let data = self.bytes(size);
                self.call(Input::BroadcastTo { ids, data });
            }
            Op::Flush => {
                let ids: Vec<_> = self.sockets.order.clone();
                for id in ids {
                    self.write(id, 100);
                    self.pump();
                }
            }
            Op::Drain => self.drain(),
            Op::Stale { pick, call } => {
                if !self.sockets.dead.is_empty() {
                    let id = self.sockets.dead[usize::from(pick) % self.sockets.dead.len()];
                    self.call_with(id, call);
                }
            }
            Op::Forged {
                shard,
                slot,
                generation,
                call,
            } => {
                let id = ChannelId::from_parts(shard % 2, slot.into(), generation.into())
                    .expect("a u8 slot fits");
                // A forged id that happens to be live would make a real call
                // behind the adapter's back; only dead or unknown ones.
                if self.sockets.get(id).is_none() {
                    self.call_with(id, call);
                }
            }
            _ => self.exec_on_conn(op),
        }
    }

    /// See [`Op::Drain`].
    fn drain(&mut self) {
        self.call(Input::Shutdown {
            grace: Duration::from_secs(1),
        });
        self.pump();
        for id in self.sockets.order.clone() {
            while let Some(sock) = self.sockets.get(id)
                && sock.holders > u32::from(sock.reader_attached)
            {
                sock.holders -= 1;
                self.call(Input::Detach { id });
                self.pump();
            }
        }
        // Serve deadlines (at least 2 s on each round, so closes the
        // adapter confirms on a wait get confirmed) until shutdown is done.
        for _ in 0..64 {
            if self.hub.is_shutdown_complete() || self.violation.is_some() {
                break;
            }
            let soon = self.now + Duration::from_secs(2);
            let target = self.hub.poll_timeout().map_or(soon, |t| t.max(soon));
            self.wait(target);
            self.now = target;
            self.pump();
        }
        self.clock_ms = self
            .clock_ms
            .max(self.now.duration_since(self.start).as_millis() as u64);
        if self.violation.is_none() && !self.hub.is_shutdown_complete() {
            let left: Vec<String> = (self.hub.offline())
                .map(|o| {
                    format!(
                        "{} ({} holders, close requested: {})",
                        o.id, o.holders, o.close_requested
                    )
                })
                .collect();
            let msg = format!(
                "after drain {} channels are still alive; offline: [{}]",
                self.hub.live(),
                left.join(", ")
            );
            self.fail(11, msg);
        }
    }

    /// An op on one of the adapter's connections (`conn` picks which): the
    /// peer's side, the holders', or an app command.
    fn exec_on_conn(&mut self, op: Op) {
        let Some(conn) = op.conn() else {
            return;
        };
        let Some(id) = self.sockets.pick(conn) else {
            return;
        };
        if self.sockets.get(id).is_none() {
            return;
        }
        match op {
            Op::PeerSend { .. } | Op::PeerEof { .. } | Op::IoError { .. } => self.peer_op(id, op),
            Op::Attach { .. } | Op::Detach { .. } | Op::ConfirmClose { .. } => {
                self.holder_op(id, op);
            }
            _ => self.app_op(id, op),
        }
    }

    /// What the peer did, as the adapter sees it: data and EOF only while
    /// its reader holds the socket, an I/O error until the fd is closed.
    fn peer_op(&mut self, id: ChannelId, op: Op) {
        let Some(sock) = self.sockets.get(id) else {
            return;
        };
        let (reading, fd_closed) = (sock.reader_attached, sock.fd_closed);
        match op {
            Op::PeerSend { len, .. } if reading => {
                let data = self.payload.slice(..usize::from(len % 512));
                self.call(Input::Received { id, data });
            }
            Op::PeerEof { .. } if reading => {
                sock.peer_eof_reported = true;
                self.call(Input::PeerEof { id });
            }
            Op::IoError { kind, .. } if !fd_closed => {
                self.call(Input::IoError {
                    id,
                    kind: kind.kind(),
                });
            }
            _ => {}
        }
    }

    /// A command of the app's on the connection.
    fn app_op(&mut self, id: ChannelId, op: Op) {
        match op {
            Op::AppSend { size, .. } => {
                let data = self.bytes(size);
                self.call(Input::Send { id, data });
            }
            Op::Write { percent, .. } => self.write(id, percent),
            Op::Kick { abort, code, .. } => {
                self.call(Input::Kick {
                    id,
                    mode: kick_mode(abort),
                    code: code.into(),
                });
            }
            Op::KickDefault { .. } => {
                self.call(Input::KickDefault { id });
            }
            Op::KickReason { abort, reason, .. } => {
                self.call(Input::KickWithReason {
                    id,
                    mode: kick_mode(abort),
                    reason: Op::reason(reason),
                });
            }
            Op::Authenticate { .. } => {
                self.call(Input::Authenticate { id });
            }
            _ => {}
        }
    }

    /// A holder of the socket attaching or detaching, or the adapter
    /// confirming a close.
    fn holder_op(&mut self, id: ChannelId, op: Op) {
        let Some(sock) = self.sockets.get(id) else {
            return;
        };
        match op {
            Op::Attach { .. } if !sock.fd_closed => {
                if self.call(Input::Attach { id }) == Outcome::Ok
                    && let Some(sock) = self.sockets.get(id)
                {
                    sock.holders += 1;
                }
            }
            Op::Detach { .. } => {
                let writers = sock.holders - u32::from(sock.reader_attached);
                if writers > 0 {
                    sock.holders -= 1;
                } else if sock.reader_attached {
                    // The reader task ends on its own.
                    sock.reader_attached = false;
                    sock.holders -= 1;
                }
                // With no holder at all this is a detach without attach:
                // the hub must refuse it.
                self.call(Input::Detach { id });
            }
            Op::ConfirmClose { .. } => {
                if sock.confirm_pending {
                    self.confirm(id);
                } else {
                    // Confirming a close the hub never asked for.
                    self.call(Input::Closed { id });
                }
            }
            _ => {}
        }
    }

    /// The socket is writable: write `percent` of the queue (rounded up),
    /// and report it. 250–255: a hostile report of more than is queued.
    fn write(&mut self, id: ChannelId, percent: u8) {
        let Some(sock) = self.sockets.get(id) else {
            return;
        };
        if sock.rst_sent || sock.fd_closed {
            return;
        }
        if percent >= 250 {
            let n = sock.unwritten_len + usize::from(percent - 249);
            self.call(Input::Written { id, n });
            return;
        }
        let share = usize::from(percent.min(100));
        let n = (sock.unwritten_len * share).div_ceil(100);
        if n > 0 {
            let n = sock.write(n);
            self.call(Input::Written { id, n });
        }
    }

    /// A call with an id the adapter does not hold (stale or forged).
    fn call_with(&mut self, id: ChannelId, call: Call) {
        let one = self.payload.slice(..1);
        let input = match call {
            Call::Received => Input::Received { id, data: one },
            Call::PeerEof => Input::PeerEof { id },
            Call::IoError => Input::IoError {
                id,
                kind: std::io::ErrorKind::ConnectionReset,
            },
            Call::Written => Input::Written { id, n: 1 },
            Call::Send => Input::Send { id, data: one },
            Call::Kick => Input::Kick {
                id,
                mode: KickMode::Graceful,
                code: 0,
            },
            Call::Abort => Input::Kick {
                id,
                mode: KickMode::Abort,
                code: 0,
            },
            Call::Authenticate => Input::Authenticate { id },
            Call::Attach => Input::Attach { id },
            Call::Detach => Input::Detach { id },
            Call::Closed => Input::Closed { id },
        };
        self.call(input);
    }
}

fn kick_mode(abort: bool) -> KickMode {
    if abort {
        KickMode::Abort
    } else {
        KickMode::Graceful
    }
}
