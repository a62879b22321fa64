//! What the socket tasks report: accepted connections, reads, ends, writability.
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use event_listener::EventListener;
use tether_core::ChannelId;

use super::{Conn, Driver};
use crate::glue::{Glue, Socket};
use crate::input::{Input, ReadEnd};
use crate::outbound::Outbound;
use crate::stats::Counter;

impl<G: Glue> Driver<G> {
    pub(super) fn input(&mut self, now: Instant, input: Input<G::Socket, G::Accepted>) {
        match input {
            Input::Accepted {
                socket,
                peer,
                accepted,
                transport,
            } => self.accepted(now, socket, peer, accepted, transport),
            Input::Received(id, data) => {
                // The chunk is taken: its reader may read another (a stale
                // id finds no connection, and then no reader waits on it).
                if let Some(conn) = self.conns.get(&id) {
                    let web = conn.web.is_some();
                    self.freed_reader |= conn.ahead.taken();
                    if web {
                        return self.web_received(now, id, data);
                    }
                }
                let result = self.hub.handle_received(now, id, data);
                self.rejected(result);
            }
            Input::ReaderDone(id, end) => {
                let result = match end {
                    ReadEnd::Eof => self.hub.handle_peer_eof(now, id),
                    ReadEnd::Error(kind) => self.hub.handle_io_error(now, id, kind),
                    ReadEnd::Released => Ok(()),
                };
                // After a kick or an abort the hub already knows: not news.
                let _already_ended = result;
                let result = self.hub.detach(now, id);
                self.rejected(result);
            }
            Input::WaiterDone(id) => {
                self.writable(id);
                let result = self.hub.detach(now, id);
                self.rejected(result);
            }
        }
    }

    pub(super) fn writable(&mut self, id: ChannelId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.waiting = false;
            if !conn.out.is_empty()
                && !conn.dirty
                && conn.web.as_ref().is_none_or(|w| !w.handshaking())
            {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    pub(super) fn accepted(
        &mut self,
        now: Instant,
        socket: Arc<G::Socket>,
        peer: SocketAddr,
        accepted: G::Accepted,
        transport: crate::Transport,
    ) {
        let web = transport == crate::Transport::WebSocket && self.options.web.is_some();
        // Between the start of the drain and the hub's shutdown the hub
        // would still accept: refuse as it will.
        let stopping = self.stopping.holds_reads();
        let accepted_id = if stopping {
            Err(())
        } else {
            self.hub.accept(now, peer).map_err(drop)
        };
        let id = match accepted_id {
            Ok(id) => id,
            Err(_) => {
                // At the limit or shutting down: say so, then close
                // (invariant 12; no channel, no event: invariant 1).
                let refusal = match web {
                    true => Some(crate::Web::refusal()),
                    false => self.options.refuse_line.clone(),
                };
                if let Some(line) = &refusal {
                    let _ = socket.write_vectored(&[IoSlice::new(line)]);
                }
                self.counters.bump(Counter::RefusedFull);
                self.glue.refuse(&socket, accepted);
                return;
            }
        };
        // The reader is the first holder (invariant 5); a fresh channel
        // always takes one.
        let _ = self.hub.attach(now, id);
        let (inputs, ahead) = self.inputs.for_connection();
        let web_conn = if web {
            self.web_accepted(now, id)
        } else {
            None
        };
        let glue = match self.glue.open(id, &socket, accepted, &inputs) {
            Ok(conn) => Some(conn),
            Err(e) => {
                self.counters.bump(Counter::RefusedResources);
                let _ = self.hub.detach(now, id);
                let _ = self.hub.handle_io_error(now, id, e.kind());
                None
            }
        };
        self.conns.insert(
            id,
            Conn {
                socket,
                glue,
                out: Outbound::default(),
                waiting: false,
                dirty: false,
                dead: false,
                progress: now,
                refused_at: None,
                kicked_at: None,
                ahead,
                web: web_conn,
            },
        );
        let echo = web && self.options.web.as_ref().is_some_and(|w| w.echo);
        if let Some(greeting) = self.options.greeting.as_ref().filter(|_| !echo) {
            // Before the app hears of the channel, so before any of its
            // sends or broadcasts can reach it.
            let result = self.hub.send(now, id, (greeting.0)(id));
            self.rejected(result);
        }
    }

    /// Reading is held back: if by another shard's queue, listens for its
    /// drain (into `listeners`), then looks again. Whether reading is open
    /// after all (the listeners are then dropped).
    pub(super) fn listen_drained(&mut self, listeners: &mut Vec<EventListener>) -> bool {
        if self.stopping.holds_reads() {
            return false;
        }
        let Some(app) = &mut self.app else {
            return false;
        };
        if !app.remote_behind() {
            return false;
        }
        app.listen_remote(listeners);
        let open = self.reading_open();
        if open {
            listeners.clear();
        }
        open
    }
}
