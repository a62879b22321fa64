//! Draining the hub: actions executed on sockets (one vectored write per socket per drain), events delivered.
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tether_core::{Action, ChannelId, Event, ShutdownHow};

use super::Driver;
use crate::glue::{Glue, Release, Socket};
use crate::outbound::Flushed;
use crate::stats::Counter;

impl<G: Glue> Driver<G> {
    /// Executes every action, writes every socket with new transmits,
    /// delivers every event; until the hub has nothing more.
    pub(super) fn drain(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(action) = self.hub.poll_action() {
                progressed = true;
                self.execute(now, action);
            }
            if !self.dirty.is_empty() {
                progressed = true;
                self.write_dirty(now);
            }
            while let Some(event) = self.hub.poll_event() {
                progressed = true;
                self.deliver(event);
            }
            if !progressed {
                break;
            }
        }
        // The cache holds a broadcast's bytes alive: not past the drain.
        self.frame_cache = None;
    }

    pub(super) fn deliver(&mut self, event: Event) {
        if event == Event::ShutdownComplete {
            self.done = true;
            drop(self.completing.take());
            // Shutdown is complete when every shard's is.
            if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
                return;
            }
        }
        if let Some(app) = &mut self.app {
            app.on_event(&event);
        }
        if self.events.receiver_count() == 0 {
            return; // nobody else listens
        }
        if let Event::Received { data, .. } = &event {
            self.unread.fetch_add(data.len(), Ordering::AcqRel);
        }
        if let Err(async_channel::TrySendError::Closed(Event::Received { data, .. })) =
            self.events.try_send(event)
        {
            // Nobody listens: the bytes are not waiting to be read.
            self.unread.fetch_sub(data.len(), Ordering::AcqRel);
        }
    }

    pub(super) fn execute(&mut self, now: Instant, action: Action) {
        match action {
            Action::Transmit { id, data } => self.transmit(now, id, data),
            Action::Shutdown { id, how } => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    // The hub emits `Shutdown` only once every earlier
                    // transmit was reported written (or dropped), and
                    // writes are reported as they happen: nothing is left.
                    let how = match how {
                        ShutdownHow::Write => std::net::Shutdown::Write,
                        ShutdownHow::Both => std::net::Shutdown::Both,
                    };
                    let fin_waits = conn.web.is_some() && self.web_close(id, how);
                    let Some(conn) = self.conns.get_mut(&id) else {
                        return;
                    };
                    // ENOTCONN after a peer reset is fine: the wire is done.
                    if !fin_waits {
                        let _ = conn.socket.shutdown(how);
                    }
                    if let Some(at) = conn.kicked_at.take() {
                        self.counters.kick_latency().observe(at.elapsed());
                    }
                    if how == std::net::Shutdown::Both {
                        conn.out.clear();
                        if let Some(glue) = &mut conn.glue {
                            self.glue.release(&conn.socket, glue, Release::Offline);
                        }
                    }
                }
            }
            Action::Abort { id } => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.dead = true;
                    conn.out.clear();
                    let _ = conn.socket.set_linger_zero();
                    if let Some(at) = conn.kicked_at.take() {
                        self.counters.kick_latency().observe(at.elapsed());
                    }
                    if let Some(glue) = &mut conn.glue {
                        self.glue.release(&conn.socket, glue, Release::Abort);
                    }
                }
            }
            Action::CloseSocket { id } => {
                // Every holder dropped its reference before detaching
                // (invariant 5), so this drop closes the descriptor.
                drop(self.conns.remove(&id));
                let result = self.hub.handle_closed(now, id);
                self.rejected(result);
            }
            Action::PauseAccept => self.gates.set(self.shard, false),
            // A draining shard's gate stays shut (docs/design.md §5.5).
            Action::ResumeAccept if self.stopping == super::Stopping::No => {
                self.gates.set(self.shard, true);
            }
            Action::ResumeAccept => {}
        }
    }

    pub(super) fn transmit(&mut self, now: Instant, id: ChannelId, data: Bytes) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.dead {
            return;
        }
        if conn.out.is_empty() && !conn.waiting {
            conn.progress = now;
            conn.refused_at = None;
        }
        let queued = if conn.web.is_some() {
            self.web_transmit(now, id, data)
        } else {
            conn.out.push(data);
            true
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if queued && !conn.dirty && !conn.waiting {
            conn.dirty = true;
            self.dirty.push(id);
        }
    }

    /// One vectored write per socket with new transmits; reports progress
    /// to the hub at once and waits for writability where the kernel
    /// refused bytes.
    pub(super) fn write_dirty(&mut self, now: Instant) {
        let dirty = std::mem::take(&mut self.dirty);
        for id in &dirty {
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            conn.dirty = false;
            if conn.waiting || conn.dead {
                continue;
            }
            self.write_conn(now, *id);
        }
        // Reuse the allocation.
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Until when `id` holds sends up, asked of the kernel: writes what its
    /// connection has queued, even while a writability waiter runs (the
    /// bytes stay in order: the driver is their only writer). Bytes taken:
    /// the peer reads, hold `send_wait` more. Nothing taken: the peer is
    /// let go only once the kernel has refused it for a whole `send_wait`
    /// of real time since the first refusal seen (`Conn::refused_at`), so a
    /// peer starved of CPU for a moment on a loaded machine is not taken for
    /// one that stopped reading. With nothing queued in the connection its
    /// bytes still wait in the hub's actions, i.e. the driver has not
    /// offered them yet: that is no sign of a stalled peer either.
    pub(super) fn probe(&mut self, now: Instant, id: ChannelId) -> Option<Instant> {
        let wait = self.options.send_wait;
        let conn = self.conns.get_mut(&id)?;
        if conn.dead {
            return None;
        }
        if conn.out.is_empty() {
            conn.progress = now;
            return Some(now + wait);
        }
        self.counters.bump(Counter::WriteProbes);
        if self.write_conn(now, id) > 0 {
            return Some(now + wait);
        }
        let conn = self.conns.get_mut(&id)?;
        let until = *conn.refused_at.get_or_insert(now) + wait;
        (until > now).then_some(until)
    }

    /// One flush of `id`'s connection: counts it, reports what the kernel
    /// took to the hub in the same step, and starts a writability waiter
    /// (unless one runs) where it took less than everything. Returns the
    /// bytes taken.
    fn write_conn(&mut self, now: Instant, id: ChannelId) -> usize {
        if !self.web_writable(&id) {
            return 0;
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return 0;
        };
        let report = conn.out.flush(&*conn.socket);
        if report.wire > 0 {
            conn.progress = now;
            conn.refused_at = None;
        }
        let waiting = conn.waiting;
        self.counters.add(Counter::WriteCalls, report.calls);
        self.counters.add(Counter::MessagesWritten, report.messages);
        if report.bytes > 0 {
            let result = self.hub.handle_written(now, id, report.bytes);
            self.rejected(result);
        }
        match report.outcome {
            Flushed::Drained => self.web_drained(id),
            Flushed::Full if waiting => {}
            Flushed::Full => self.wait_writable(now, id),
            Flushed::Failed(kind) => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.dead = true;
                    conn.out.clear();
                }
                let _ended = self.hub.handle_io_error(now, id, kind);
            }
        }
        report.wire
    }

    pub(super) fn wait_writable(&mut self, now: Instant, id: ChannelId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // The waiter holds the socket: a holder, so the socket is not
        // closed under it (invariant 5). Attaching fails only once the
        // channel is offline: its queue is dropped then.
        if self.hub.attach(now, id).is_err() {
            conn.out.clear();
            return;
        }
        let Some(glue) = &mut conn.glue else {
            let _ = self.hub.detach(now, id);
            return;
        };
        match self
            .glue
            .wait_writable(id, &conn.socket, glue, &self.inputs)
        {
            Ok(()) => {
                conn.waiting = true;
                self.counters.bump(Counter::WriteWaits);
            }
            Err(e) => {
                let _ = self.hub.detach(now, id);
                self.counters.bump(Counter::RefusedResources);
                conn.dead = true;
                conn.out.clear();
                let _ended = self.hub.handle_io_error(now, id, e.kind());
            }
        }
    }
}
