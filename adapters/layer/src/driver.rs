//! The driver: the hub's single owner, written once for every runtime.
//!
//! One loop, in the style of quinn-proto's and str0m's run loops:
//!
//! 1. wait for a control input (accepts, writability), reader data (only
//!    while the application keeps up with its events), an application
//!    command (only while no send is waiting for backpressure), a query,
//!    or the hub's next deadline;
//! 2. feed it and up to a batch more to the hub;
//! 3. `handle_timeout(now)` (early is harmless);
//! 4. drain: execute every action (transmits are queued per socket), write
//!    every socket that got transmits with **one vectored non-blocking
//!    write**, report what the kernel took (`handle_written`) in the same
//!    step, start a writability waiter where it took less, deliver every
//!    event; repeat until the hub is quiet.
//!
//! Because writes are reported at once, the hub's queue for a channel is
//! exactly what its peer's kernel refused: a prompt reader is never
//! mistaken for a slow one, and `Config::stall_timeout` evicts only peers
//! whose send buffer stays full (docs/design.md §5.2).

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_channel::Sender;
use bytes::Bytes;
use futures_lite::future;
use tether_core::{Action, ChannelId, Event, Hub, ShutdownHow};

use crate::Options;
use crate::accept::Gates;
use crate::app::{APP_BACKLOG, AppState};
use crate::glue::{Glue, Release, Sleep, Socket};
use crate::handle::{Command, HandleQueues, Query};
use crate::input::{Input, InputQueues, Inputs, ReadEnd};
use crate::outbound::{Flushed, Outbound};
use crate::stats::{AdapterCounters, ServerStats};

/// The driver's record of one connection.
struct Conn<G: Glue> {
    socket: Arc<G::Socket>,
    /// `None` if the runtime could not start its reader.
    glue: Option<G::Conn>,
    out: Outbound,
    /// A writability waiter is running: do not write until it reports.
    waiting: bool,
    /// Listed in `dirty` already.
    dirty: bool,
    /// Aborted or failed: transmits are dropped (the hub counted them).
    dead: bool,
    /// When the kernel last took bytes (or the queue last became
    /// non-empty): a backpressured channel that took nothing for
    /// `Options::send_wait` no longer holds sends up.
    progress: Instant,
    /// When the application kicked it, until its FIN or RST is out.
    kicked_at: Option<Instant>,
}

/// What the driver waits for.
enum Wake<S, A> {
    Input(Input<S, A>),
    Command(Command),
    Query(Query),
    Deadline,
    /// Every handle is gone.
    Orphaned,
}

/// The hub's owner. Built by [`crate::prepare`]; run with
/// [`Driver::run`] on the runtime's executor (or a thread, see
/// [`crate::block_on`]).
pub struct Driver<G: Glue> {
    hub: Hub,
    glue: G,
    conns: HashMap<ChannelId, Conn<G>>,
    inputs: Inputs<G::Socket, G::Accepted>,
    queues: InputQueues<G::Socket, G::Accepted>,
    handle: HandleQueues,
    events: Sender<Event>,
    /// Received bytes delivered as events and not yet read by the app.
    unread: Arc<AtomicUsize>,
    counters: Arc<AdapterCounters>,
    options: Options,
    runtime: &'static str,
    budget: usize,
    dirty: Vec<ChannelId>,
    /// A send or broadcast waiting while its target is backpressured, and
    /// when to look again even if nothing else happens.
    held: Option<(Command, Instant)>,
    /// Whether the last wait found reading held back (for the counter).
    reading_held: bool,
    orphaned: bool,
    done: bool,
    shard: usize,
    gates: Arc<Gates>,
    /// Shards whose hub has not completed its shutdown yet: the last one
    /// forwards `ShutdownComplete`, so the application sees it once.
    remaining: Arc<AtomicUsize>,
    /// Dropped when the driver ends: part of `Handle::stopped`.
    _stopped: Sender<()>,
    /// Dropped when the driver ends: the listener stops once every shard's
    /// is gone.
    listener_alive: Option<Sender<()>>,
    /// The in-driver application, if the server runs one.
    app: Option<AppState>,
}

impl<G: Glue> std::fmt::Debug for Driver<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("runtime", &self.runtime)
            .field("conns", &self.conns.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Everything a driver is made from (see [`crate::prepare`]).
pub(crate) struct Parts<G: Glue> {
    pub hub: Hub,
    pub glue: G,
    pub inputs: Inputs<G::Socket, G::Accepted>,
    pub queues: InputQueues<G::Socket, G::Accepted>,
    pub handle: HandleQueues,
    pub events: Sender<Event>,
    pub unread: Arc<AtomicUsize>,
    pub counters: Arc<AdapterCounters>,
    pub options: Options,
    pub runtime: &'static str,
    pub budget: usize,
    pub shard: usize,
    pub gates: Arc<Gates>,
    pub remaining: Arc<AtomicUsize>,
    pub stopped: Sender<()>,
    pub listener_alive: Sender<()>,
    pub app: Option<AppState>,
}

impl<G: Glue> Driver<G> {
    pub(crate) fn new(parts: Parts<G>) -> Self {
        Driver {
            hub: parts.hub,
            glue: parts.glue,
            conns: HashMap::new(),
            inputs: parts.inputs,
            queues: parts.queues,
            handle: parts.handle,
            events: parts.events,
            unread: parts.unread,
            counters: parts.counters,
            options: parts.options,
            runtime: parts.runtime,
            budget: parts.budget,
            dirty: Vec::new(),
            held: None,
            reading_held: false,
            orphaned: false,
            done: false,
            shard: parts.shard,
            gates: parts.gates,
            remaining: parts.remaining,
            _stopped: parts.stopped,
            listener_alive: Some(parts.listener_alive),
            app: parts.app,
        }
    }

    /// Whether reader data may be taken: the application keeps up with
    /// its events (or nobody listens, or the server is draining anyway).
    fn reading_open(&self) -> bool {
        let app_keeps_up = self
            .app
            .as_ref()
            .is_none_or(|app| app.backlog() < APP_BACKLOG);
        (app_keeps_up
            && (self.unread.load(Ordering::Acquire) < self.options.event_backlog
                || self.events.receiver_count() == 0))
            || self.hub.is_shutting_down()
    }

    /// Runs until the hub's shutdown completes, then lets the runtime stop
    /// its listener and threads ([`Glue`]'s `finish`).
    pub async fn run<T: Sleep>(mut self, mut sleep: T) {
        while !self.done {
            let reading = self.reading_open();
            if !reading && !self.reading_held {
                AdapterCounters::bump(&self.counters.reads_held);
            }
            self.reading_held = !reading;
            let commanding = self.held.is_none() && !self.orphaned;
            let mut deadline = match (self.hub.poll_timeout(), &self.held) {
                (Some(at), Some((_, until))) => Some(at.min(*until)),
                (at, held) => at.or(held.as_ref().map(|(_, until)| *until)),
            };
            if self.app.as_ref().is_some_and(AppState::has_remote_pending) {
                // Another shard's queue was full: look again soon (nothing
                // else may wake this driver while its reads are held).
                let retry = Instant::now() + Duration::from_millis(1);
                deadline = Some(deadline.map_or(retry, |at| at.min(retry)));
            }
            let wake = {
                let q = &self.queues;
                let h = &self.handle;
                let sleep = &mut sleep;
                future::or(
                    async {
                        // The driver holds a sender of each input queue, so
                        // neither ever closes while it runs.
                        q.control.recv().await.map_or(Wake::Orphaned, Wake::Input)
                    },
                    future::or(
                        async {
                            if !reading {
                                future::pending::<()>().await;
                            }
                            q.reader.recv().await.map_or(Wake::Orphaned, Wake::Input)
                        },
                        future::or(
                            async {
                                if !commanding {
                                    future::pending::<()>().await;
                                }
                                h.commands
                                    .recv()
                                    .await
                                    .map_or(Wake::Orphaned, Wake::Command)
                            },
                            future::or(
                                async {
                                    match h.queries.recv().await {
                                        Ok(query) => Wake::Query(query),
                                        Err(_) => future::pending().await,
                                    }
                                },
                                async {
                                    match deadline {
                                        Some(at) => sleep.sleep_until(at).await,
                                        None => future::pending().await,
                                    }
                                    Wake::Deadline
                                },
                            ),
                        ),
                    ),
                )
                .await
            };
            let now = Instant::now();
            match wake {
                Wake::Input(input) => self.input(now, input),
                Wake::Command(command) => self.command(now, command),
                Wake::Query(query) => self.query(now, query),
                Wake::Deadline => {}
                Wake::Orphaned => {
                    // Nobody can command the hub any more: shut it down so
                    // its sockets and tasks do not outlive every handle.
                    self.orphaned = true;
                    self.hub.shutdown(now, Duration::ZERO);
                }
            }
            self.batch(now);
            // Invariant 7: every due deadline is acted on at the first
            // wake-up at or after it (an early call does nothing).
            self.hub.handle_timeout(now);
            self.drain(now);
            self.release_held(now);
            self.run_app(now);
        }
        // No more accepts or waiter reports: a sender blocked on a full
        // queue fails and gets its input back. Connections accepted but
        // never seen are refused, so whatever the runtime started for them
        // ends too.
        self.queues.control.close();
        while let Ok(input) = self.queues.control.try_recv() {
            if let Input::Accepted {
                socket, accepted, ..
            } = input
            {
                self.glue.refuse(&socket, accepted);
            }
        }
        // Calls queued as the driver ends get no answer: closing and
        // draining their queues drops the reply slots, so every caller
        // sees `Error::Stopped` instead of waiting forever.
        self.handle.commands.close();
        self.handle.queries.close();
        while self.handle.commands.try_recv().is_ok() {}
        while self.handle.queries.try_recv().is_ok() {}
        self.held = None;
        self.glue.finish();
        self.gates.set(self.shard, false);
        drop(self.listener_alive.take());
    }

    /// Takes up to a batch of further inputs without waiting, alternating
    /// sources so none starves.
    fn batch(&mut self, now: Instant) {
        for _ in 1..self.options.batch {
            let mut idle = true;
            if let Ok(input) = self.queues.control.try_recv() {
                self.input(now, input);
                idle = false;
            }
            if self.reading_open()
                && let Ok(input) = self.queues.reader.try_recv()
            {
                self.input(now, input);
                idle = false;
            }
            if self.held.is_none()
                && !self.orphaned
                && let Ok(command) = self.handle.commands.try_recv()
            {
                self.command(now, command);
                idle = false;
            }
            if let Ok(query) = self.handle.queries.try_recv() {
                self.query(now, query);
                idle = false;
            }
            if idle {
                break;
            }
        }
    }

    /// Counts (and logs, at debug level) an adapter input the hub
    /// rejected: an input that arrived after the channel moved on (bytes
    /// after an abort, a detach after release…). The hub counts it by kind
    /// too (`rejected_input.*`).
    fn rejected<E: std::fmt::Display>(&self, result: Result<(), E>) {
        if let Err(e) = result {
            AdapterCounters::bump(&self.counters.inputs_rejected);
            tracing::debug!(shard = self.shard, "hub rejected an adapter input: {e}");
        }
    }

    fn input(&mut self, now: Instant, input: Input<G::Socket, G::Accepted>) {
        match input {
            Input::Accepted {
                socket,
                peer,
                accepted,
            } => self.accepted(now, socket, peer, accepted),
            Input::Received(id, data) => {
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
            Input::Writable(id) => self.writable(id),
            Input::WaiterDone(id) => {
                self.writable(id);
                let result = self.hub.detach(now, id);
                self.rejected(result);
            }
        }
    }

    fn writable(&mut self, id: ChannelId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.waiting = false;
            if !conn.out.is_empty() && !conn.dirty {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    fn accepted(
        &mut self,
        now: Instant,
        socket: Arc<G::Socket>,
        peer: SocketAddr,
        accepted: G::Accepted,
    ) {
        let id = match self.hub.accept(now, peer) {
            Ok(id) => id,
            Err(_) => {
                // At the limit or shutting down: say so, then close
                // (invariant 12; no channel, no event: invariant 1).
                if let Some(line) = &self.options.refuse_line {
                    let _ = socket.write_vectored(&[IoSlice::new(line)]);
                }
                AdapterCounters::bump(&self.counters.refused_full);
                self.glue.refuse(&socket, accepted);
                return;
            }
        };
        // The reader is the first holder (invariant 5); a fresh channel
        // always takes one.
        let _ = self.hub.attach(now, id);
        let glue = match self.glue.open(id, &socket, accepted, &self.inputs) {
            Ok(conn) => Some(conn),
            Err(e) => {
                AdapterCounters::bump(&self.counters.refused_resources);
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
                kicked_at: None,
            },
        );
        if let Some(greeting) = &self.options.greeting {
            // Before the app hears of the channel, so before any of its
            // sends or broadcasts can reach it.
            let result = self.hub.send(now, id, (greeting.0)(id));
            self.rejected(result);
        }
    }

    /// Until when `command` must wait for backpressure to clear, if it
    /// must: a send while its channel is backpressured, a broadcast while
    /// any usable channel is — as long as that channel's peer is taking
    /// bytes (it made progress within `Options::send_wait`). The wait ends
    /// when the channel drains to its low watermark, ends, is evicted, or
    /// stops taking bytes for `send_wait`.
    fn wait_until(&self, now: Instant, command: &Command) -> Option<Instant> {
        let holds = |id: ChannelId| -> Option<Instant> {
            if !self.hub.is_backpressured(id).unwrap_or(false) {
                return None;
            }
            let conn = self.conns.get(&id)?;
            let until = conn.progress + self.options.send_wait;
            (until > now).then_some(until)
        };
        match command {
            Command::Send { id, .. } => holds(*id),
            Command::Broadcast { .. } if self.hub.backpressured() > 0 => {
                // O(channels), only while some channel is backpressured
                // (its transmits may still wait in the hub's action queue,
                // so the connection's own queue cannot tell).
                self.conns.keys().filter_map(|id| holds(*id)).min()
            }
            _ => None,
        }
    }

    fn command(&mut self, now: Instant, command: Command) {
        if let Some(until) = self.wait_until(now, &command) {
            AdapterCounters::bump(&self.counters.sends_held);
            self.held = Some((command, until));
            return;
        }
        let hub = &mut self.hub;
        // A caller that stopped waiting for its reply is not an error.
        match command {
            Command::Send { id, data, reply } => {
                let result = hub.send(now, id, data);
                if let Some(reply) = reply {
                    let _ = reply.try_send(result);
                }
            }
            Command::Broadcast { data, reply } => {
                let report = hub.broadcast(now, data);
                if let Some(reply) = reply {
                    let _ = reply.try_send(report);
                }
            }
            Command::Kick {
                id,
                mode,
                code,
                reply,
            } => {
                let result = hub.kick(now, id, mode, code);
                if result.is_ok()
                    && let Some(conn) = self.conns.get_mut(&id)
                {
                    conn.kicked_at = Some(now);
                }
                // The answer follows the wire: an abort's RST or a graceful
                // kick's FIN (when nothing is queued) is out when it arrives
                // (invariant 3).
                self.drain(now);
                if let Some(reply) = reply {
                    let _ = reply.try_send(result);
                }
            }
            Command::Authenticate { id, reply } => {
                let result = hub.authenticate(now, id);
                if let Some(reply) = reply {
                    let _ = reply.try_send(result);
                }
            }
        }
    }

    /// Executes what the in-driver application asked for, in order, until
    /// a send must wait for backpressure (it stays first in line) or
    /// nothing is left; what it asked of other shards goes to their queues.
    fn run_app(&mut self, now: Instant) {
        loop {
            let Some(app) = &mut self.app else {
                return;
            };
            app.flush_remote();
            if self.held.is_some() {
                return;
            }
            let Some(command) = app.queues.local.pop_front() else {
                return;
            };
            self.command(now, command);
            self.drain(now);
        }
    }

    /// Runs the held command once its wait is over (it stays held, and the
    /// command queue stays closed, otherwise).
    fn release_held(&mut self, now: Instant) {
        let Some((command, _)) = self.held.take() else {
            return;
        };
        if let Some(until) = self.wait_until(now, &command) {
            self.held = Some((command, until));
            return;
        }
        self.command(now, command);
        self.drain(now);
    }

    fn query(&mut self, now: Instant, query: Query) {
        match query {
            Query::Stats(reply) => {
                let (kick_latency, kick_latency_sum_seconds, kick_latency_count) =
                    self.counters.kick_latency.snapshot();
                let stats = ServerStats {
                    core: self.hub.stats(),
                    adapter: self.counters.snapshot(),
                    runtime: self.runtime,
                    channel_budget: self.budget,
                    kick_latency,
                    kick_latency_sum_seconds,
                    kick_latency_count,
                };
                let _ = reply.try_send(stats);
            }
            Query::Channels(reply) => {
                let _ = reply.try_send(self.hub.channels().collect());
            }
            Query::Offline(reply) => {
                let _ = reply.try_send(self.hub.offline().collect());
            }
            Query::Shutdown { grace, reply } => {
                self.hub.shutdown(now, grace);
                let _ = reply.try_send(());
            }
        }
    }

    /// Executes every action, writes every socket with new transmits,
    /// delivers every event; until the hub has nothing more.
    fn drain(&mut self, now: Instant) {
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
    }

    fn deliver(&mut self, event: Event) {
        if event == Event::ShutdownComplete {
            self.done = true;
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

    fn execute(&mut self, now: Instant, action: Action) {
        match action {
            Action::Transmit { id, data } => self.transmit(now, id, data),
            Action::Shutdown { id, how } => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    // The hub emits `Shutdown` only once every earlier
                    // transmit was reported written (or dropped), and
                    // writes are reported as they happen: nothing is left.
                    let how = match how {
                        ShutdownHow::Write => std::net::Shutdown::Write,
                        _ => std::net::Shutdown::Both,
                    };
                    // ENOTCONN after a peer reset is fine: the wire is done.
                    let _ = conn.socket.shutdown(how);
                    if let Some(at) = conn.kicked_at.take() {
                        self.counters.kick_latency.observe(at.elapsed());
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
                        self.counters.kick_latency.observe(at.elapsed());
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
            Action::ResumeAccept => self.gates.set(self.shard, true),
            _ => {}
        }
    }

    fn transmit(&mut self, now: Instant, id: ChannelId, data: Bytes) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.dead {
            return;
        }
        if conn.out.is_empty() && !conn.waiting {
            conn.progress = now;
        }
        conn.out.push(data);
        if !conn.dirty && !conn.waiting {
            conn.dirty = true;
            self.dirty.push(id);
        }
    }

    /// One vectored write per socket with new transmits; reports progress
    /// to the hub at once and waits for writability where the kernel
    /// refused bytes.
    fn write_dirty(&mut self, now: Instant) {
        let dirty = std::mem::take(&mut self.dirty);
        for id in &dirty {
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            conn.dirty = false;
            if conn.waiting || conn.dead {
                continue;
            }
            let report = conn.out.flush(&*conn.socket);
            if report.bytes > 0 {
                conn.progress = now;
            }
            let c = &self.counters;
            c.write_calls.fetch_add(report.calls, Ordering::Relaxed);
            c.messages_written
                .fetch_add(report.messages, Ordering::Relaxed);
            if report.bytes > 0 {
                let result = self.hub.handle_written(now, *id, report.bytes);
                self.rejected(result);
            }
            match report.outcome {
                Flushed::Drained => {}
                Flushed::Full => self.wait_writable(now, *id),
                Flushed::Failed(kind) => {
                    if let Some(conn) = self.conns.get_mut(id) {
                        conn.dead = true;
                        conn.out.clear();
                    }
                    let _ended = self.hub.handle_io_error(now, *id, kind);
                }
            }
        }
        // Reuse the allocation.
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    fn wait_writable(&mut self, now: Instant, id: ChannelId) {
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
                AdapterCounters::bump(&self.counters.write_waits);
            }
            Err(e) => {
                let _ = self.hub.detach(now, id);
                AdapterCounters::bump(&self.counters.refused_resources);
                conn.dead = true;
                conn.out.clear();
                let _ended = self.hub.handle_io_error(now, id, e.kind());
            }
        }
    }
}
