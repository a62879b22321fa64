//! The driver: the hub's single owner, written once for every runtime.
//!
//! One loop, in the style of quinn-proto's and str0m's run loops:
//!
//! 1. wait for a control input (accepts, writability), reader data (only
//!    while the application keeps up with its events), an application
//!    command (only while no send is waiting for backpressure), a query,
//!    or the hub's next deadline;
//! 2. feed it and up to a batch more to the hub;
//! 3. `handle_timeout(now)` when the hub's next deadline is due (only
//!    then: a recording holds one `timeout` line per call);
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

mod commands;
mod conns;
mod inputs;
mod outputs;
mod stop;
mod web;
use std::collections::VecDeque;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::observe::{ObservedHub, ObserverError, ObserverStats};
use async_channel::{Receiver, Sender};
use futures_lite::{Stream, future};
use tether_core::{ChannelId, Event, KickError};

use self::conns::Conns;
pub(crate) use self::stop::Barrier;
use self::stop::Stopping;
use crate::Options;
use crate::accept::Gates;
use crate::app::{APP_BACKLOG, AppState, QueueDrained};
use crate::credit::ReadAhead;
use crate::glue::{Glue, Sleep};
use crate::handle::{Command, HandleQueues, Query};
use crate::input::{Input, InputQueues, Inputs};
use crate::outbound::Outbound;
use crate::stats::{AdapterCounters, Counter};

/// How long recorded lines may wait in the recorder's buffer (it also
/// writes out on its own whenever the buffer fills).
const RECORD_FLUSH: Duration = Duration::from_millis(100);

/// How many scheduler turns a step may give readers it let go on before
/// it writes (see [`Driver::run`]): each turn adds at most a batch of
/// inputs to the step, so the step stays bounded.
const READ_TURNS: usize = 2;

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
    /// When a write probe first found the kernel taking nothing since the
    /// last progress (see `Driver::probe`).
    refused_at: Option<Instant>,
    /// When the application kicked it, until its FIN or RST is out.
    kicked_at: Option<Instant>,
    /// Its reader's read-ahead credit (`input::READ_AHEAD` chunks at
    /// most); dropping it wakes a reader waiting for credit.
    ahead: ReadAhead,
    /// Its WebSocket transport, if it came from the web listener.
    web: Option<Box<crate::web::WebConn>>,
}

/// A receiving end, pinned once (`async_channel::Receiver` is `!Unpin`)
/// so that the driver's wait can poll it as a `Stream`.
type Rx<T> = Pin<Box<Receiver<T>>>;

/// The driver's ends of its queues: the inputs of its sockets' tasks and
/// the application's commands and queries.
struct Queues<S, A> {
    control: Rx<Input<S, A>>,
    reader: Rx<Input<S, A>>,
    commands: Rx<Command>,
    queries: Rx<Query>,
}

impl<S, A> Queues<S, A> {
    fn new(inputs: InputQueues<S, A>, handle: HandleQueues) -> Self {
        Queues {
            control: Box::pin(inputs.control),
            reader: Box::pin(inputs.reader),
            commands: Box::pin(handle.commands),
            queries: Box::pin(handle.queries),
        }
    }
}

/// Where a kick's verdict goes.
type KickReply = crate::handle::Reply<Result<(), KickError>>;

/// What the driver waits for.
enum Wake<S, A> {
    Input(Input<S, A>),
    Command(Command),
    Query(Query),
    Deadline,
    /// Every handle is gone.
    Orphaned,
}

/// The hub's owner. Built by [`crate::runtime::prepare`]; run with
/// [`Driver::run`] on the runtime's executor (or a thread, see
/// [`crate::runtime::block_on`]).
pub struct Driver<G: Glue> {
    /// The hub, observed (recorded) when `Options::record` is set (else
    /// every call is forwarded).
    hub: ObservedHub,
    /// What the recorder had done at the last [`Driver::sync_record`].
    recorded: ObserverStats,
    /// When the recorder was last flushed, and what it had done then.
    flushed_at: Instant,
    flushed: ObserverStats,
    /// This step took a chunk whose reader was waiting for credit: that
    /// reader has more bytes ready (see [`Driver::run`]).
    freed_reader: bool,
    glue: G,
    conns: Conns<Conn<G>>,
    inputs: Inputs<G::Socket, G::Accepted>,
    queues: Queues<G::Socket, G::Accepted>,
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
    /// Commands from the queue that came while `held` waits and must keep
    /// their place after it (see `Driver::command`); bounded by
    /// `Options::command_queue` (the queue is not polled beyond).
    behind: VecDeque<Command>,
    /// Kicks of this step, answered after its drain (the wire first).
    kick_replies: Vec<(KickReply, Result<(), KickError>)>,
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
    /// Dropped when this shard's shutdown completes; `all_complete` closes
    /// once every shard's is. Until then a shard that finished first keeps
    /// answering queries, so `stats` works for the whole drain.
    completing: Option<Sender<()>>,
    all_complete: Rx<()>,
    /// Dropped when the driver ends: the listener stops once every shard's
    /// is gone.
    listener_alive: Option<Sender<()>>,
    /// The in-driver application, if the server runs one.
    app: Option<AppState>,
    /// Where this shard is in the two-phase drain.
    stopping: Stopping,
    /// Shared by every shard: who may still relay to the others.
    barrier: Arc<Barrier>,
    /// Shared by every shard: this one notifies its own event when it has
    /// taken its command queue short, waking an application's driver held
    /// back by it (see `AppState::remote_behind`). `None` where nobody can
    /// be held back (no application, or one shard): a step then pays no
    /// fence for it.
    drained: Option<Arc<QueueDrained>>,
    /// This shard has left the barrier.
    left_barrier: bool,
    /// Handshake deadlines and ping timers of WebSocket connections.
    web_timers: web::WebTimers,
    /// The last transmit framed for WebSocket (one broadcast, framed once).
    frame_cache: web::FrameCache,
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

/// Everything a driver is made from (see [`crate::runtime::prepare`]).
pub(crate) struct Parts<G: Glue> {
    pub hub: ObservedHub,
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
    pub completing: Sender<()>,
    pub all_complete: Receiver<()>,
    pub listener_alive: Sender<()>,
    pub app: Option<AppState>,
    pub barrier: Arc<Barrier>,
    pub drained: Option<Arc<QueueDrained>>,
}

impl<G: Glue> Driver<G> {
    pub(crate) fn new(parts: Parts<G>) -> Self {
        Driver {
            hub: parts.hub,
            recorded: ObserverStats::default(),
            flushed_at: Instant::now(),
            flushed: ObserverStats::default(),
            freed_reader: false,
            glue: parts.glue,
            conns: Conns::new(),
            inputs: parts.inputs,
            queues: Queues::new(parts.queues, parts.handle),
            events: parts.events,
            unread: parts.unread,
            counters: parts.counters,
            options: parts.options,
            runtime: parts.runtime,
            budget: parts.budget,
            dirty: Vec::new(),
            held: None,
            behind: VecDeque::new(),
            kick_replies: Vec::new(),
            reading_held: false,
            orphaned: false,
            done: false,
            shard: parts.shard,
            gates: parts.gates,
            remaining: parts.remaining,
            _stopped: parts.stopped,
            completing: Some(parts.completing),
            all_complete: Box::pin(parts.all_complete),
            listener_alive: Some(parts.listener_alive),
            app: parts.app,
            stopping: Stopping::No,
            barrier: parts.barrier,
            drained: parts.drained,
            left_barrier: false,
            web_timers: web::WebTimers::new(),
            frame_cache: None,
        }
    }

    /// Whether reader data may be taken: the application keeps up with
    /// its events (or nobody listens, or the server is draining anyway).
    /// An in-driver application keeps up only while none of its commands
    /// waits for backpressure, here or in another shard's queue: a relay is
    /// then paced by its slowest reader, never queued past it
    /// (docs/design.md §5.2).
    fn reading_open(&self) -> bool {
        if self.stopping.holds_reads() {
            return false;
        }
        let app_keeps_up = self.app.as_ref().is_none_or(|app| {
            self.held.is_none() && app.backlog() < APP_BACKLOG && !app.remote_behind()
        });
        (app_keeps_up
            && (self.unread.load(Ordering::Acquire) < self.options.event_backlog
                || self.events.receiver_count() == 0))
            || self.hub.is_shutting_down()
    }

    /// Whether commands may be taken from the queue: a handle is left, and
    /// the commands waiting behind a held send are not a queue's worth.
    fn commanding(&self) -> bool {
        !self.orphaned && self.behind.len() < self.options.command_queue.max(1)
    }

    /// Runs until the hub's shutdown completes (and every other shard's),
    /// then lets the runtime stop its listener and threads ([`Glue`]'s
    /// `finish`). One loop: wait for something, then one step.
    pub async fn run<T: Sleep>(mut self, mut sleep: T) {
        while !(self.done && self.all_complete.is_closed()) {
            let wake = self.wait(&mut sleep).await;
            self.feed(Instant::now(), wake);
            // A reader this step let go on (it waited for read-ahead
            // credit) has more bytes ready: one scheduler turn lets it post
            // them, so they go out in this step's writes instead of in one
            // write pass per pair of chunks (a flood relayed to many
            // clients costs a write per client per pass). At most
            // READ_TURNS turns, then the step writes.
            for _ in 0..READ_TURNS {
                if !std::mem::take(&mut self.freed_reader) {
                    break;
                }
                future::yield_now().await;
                self.batch(Instant::now());
            }
            self.freed_reader = false;
            self.act(Instant::now());
        }
        self.finish();
    }

    /// When to wake up if nothing arrives: the hub's next deadline, the
    /// held send's, the recorder's flush, or soon while the drain waits
    /// for the other shards (nothing else may wake this driver then).
    fn next_deadline(&mut self) -> Option<Instant> {
        let held = self.held.as_ref().map(|(_, until)| *until);
        let retry = self
            .stopping
            .holds_reads()
            .then(|| Instant::now() + Duration::from_millis(1));
        let web = self.web_deadline();
        [self.hub.poll_timeout(), held, self.record_due(), retry, web]
            .into_iter()
            .flatten()
            .min()
    }

    /// Waits for a control input (accepts, writability), reader data
    /// (while reading is open), an application command (while a handle is
    /// left and not a queue's worth wait behind a held send), a query,
    /// another shard's drain of the queue that holds reading back, or the
    /// next deadline.
    async fn wait<T: Sleep>(&mut self, sleep: &mut T) -> Wake<G::Socket, G::Accepted> {
        let mut drained = Vec::new();
        let reading = self.reading_open() || self.listen_drained(&mut drained);
        if !reading && !self.reading_held {
            self.counters.bump(Counter::ReadsHeld);
        }
        self.reading_held = !reading;
        let commanding = self.commanding();
        let deadline = self.next_deadline();
        // One hand-written wait instead of a `future::or` of fresh `recv()`
        // futures: each queue is polled as a `Stream`, which keeps its
        // listener inside the receiver from one wake-up to the next, so a
        // queue that stays empty costs no new listener (an allocation and a
        // locked list insert, removed again on drop) at every wake-up.
        // Polled in this order, the first one ready wins: control, reader
        // data, commands, queries, the last shard's completion, the deadline.
        let q = &mut self.queues;
        let all_complete = &mut self.all_complete;
        let drained = &mut drained;
        let done = self.done;
        let mut sleeping = pin!(async {
            match deadline {
                Some(at) => sleep.sleep_until(at).await,
                None => future::pending().await,
            }
        });
        future::poll_fn(|cx| {
            // The driver holds a sender of each input queue, so neither
            // ever closes while it runs.
            if let Poll::Ready(input) = q.control.as_mut().poll_next(cx) {
                return Poll::Ready(input.map_or(Wake::Orphaned, Wake::Input));
            }
            if reading && let Poll::Ready(input) = q.reader.as_mut().poll_next(cx) {
                return Poll::Ready(input.map_or(Wake::Orphaned, Wake::Input));
            }
            if commanding && let Poll::Ready(command) = q.commands.as_mut().poll_next(cx) {
                return Poll::Ready(command.map_or(Wake::Orphaned, Wake::Command));
            }
            // Closed (every handle gone), the query queue wakes nothing:
            // the command queue's end says so.
            if let Poll::Ready(Some(query)) = q.queries.as_mut().poll_next(cx) {
                return Poll::Ready(Wake::Query(query));
            }
            // Nothing is sent on it: it only closes, with the last shard's
            // shutdown.
            if done && all_complete.as_mut().poll_next(cx).is_ready() {
                return Poll::Ready(Wake::Deadline);
            }
            // Another shard took its queue short: look again.
            for listener in drained.iter_mut() {
                if Pin::new(listener).poll(cx).is_ready() {
                    return Poll::Ready(Wake::Deadline);
                }
            }
            sleeping.as_mut().poll(cx).map(|()| Wake::Deadline)
        })
        .await
    }

    /// A step's first half: feed what woke the driver and up to a batch
    /// more to the hub.
    fn feed(&mut self, now: Instant, wake: Wake<G::Socket, G::Accepted>) {
        match wake {
            Wake::Input(input) => self.input(now, input),
            Wake::Command(command) => self.command(now, command),
            Wake::Query(query) => self.query(now, query),
            Wake::Deadline => {}
            Wake::Orphaned => {
                // Nobody can command the hub any more: shut it down so its
                // sockets and tasks do not outlive every handle.
                self.orphaned = true;
                self.stop_now(now);
            }
        }
        self.batch(now);
    }

    /// A step's second half: act on due deadlines, then drain — the one
    /// place outputs are executed and delivered — after it and after each
    /// run of commands whose turn came, until nothing is left to do.
    fn act(&mut self, now: Instant) {
        // Invariant 7: every due deadline is acted on at the first wake-up
        // at or after it. Only then: an early call would do nothing but
        // fill a recording with no-op `timeout` lines.
        if self.hub.poll_timeout().is_some_and(|at| at <= now) {
            self.hub.handle_timeout(now);
        }
        self.web_timeouts(now);
        loop {
            self.drain(now);
            self.answer_kicks();
            if !self.next_commands(now) && !self.advance_stop(now) {
                break;
            }
        }
        if self.record_due().is_some_and(|at| at <= now) {
            self.flush_record(now);
        }
    }

    /// After `ShutdownComplete` (every shard's): completes the recording,
    /// refuses what was accepted but never seen, and lets every caller
    /// still waiting see `Error::Stopped`.
    fn finish(mut self) {
        self.finish_record();
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
        self.queues.commands.close();
        self.queues.queries.close();
        while self.queues.commands.try_recv().is_ok() {}
        while self.queues.queries.try_recv().is_ok() {}
        if let Some(drained) = &self.drained {
            drained.took(self.shard, 0);
        }
        self.held = None;
        self.behind.clear();
        self.answer_kicks();
        self.glue.finish();
        self.gates.set(self.shard, false);
        drop(self.listener_alive.take());
    }

    /// Takes up to a batch of further inputs without waiting, alternating
    /// sources so none starves.
    fn batch(&mut self, now: Instant) {
        // Whether reading is open changes only with a command (a held send,
        // a shutdown) or a drain (events to the application, its commands
        // to other shards), so it is asked once and again after a command,
        // not at every input (it reads other shards' queues).
        let mut reading = self.reading_open();
        for _ in 1..self.options.batch {
            let mut idle = true;
            if let Ok(input) = self.queues.control.try_recv() {
                self.input(now, input);
                idle = false;
            }
            if reading && let Ok(input) = self.queues.reader.try_recv() {
                self.input(now, input);
                idle = false;
            }
            if self.commanding()
                && let Ok(command) = self.queues.commands.try_recv()
            {
                self.command(now, command);
                reading = self.reading_open();
                idle = false;
            }
            if let Ok(query) = self.queues.queries.try_recv() {
                self.query(now, query);
                idle = false;
            }
            if idle {
                break;
            }
        }
        // Commands taken here or by the wake: an application's driver may
        // wait for this queue to be short (a fence and a load if not).
        if let Some(drained) = &self.drained {
            drained.took(self.shard, self.queues.commands.len());
        }
    }

    /// When the recorder must be written out: [`RECORD_FLUSH`] after the
    /// last flush, if lines were recorded since (or an error stopped it,
    /// to be logged); `None` without a recorder or with nothing to do.
    fn record_due(&self) -> Option<Instant> {
        let stats = self.hub.observer_stats()?;
        let pending = (self.hub.is_observed() && stats.bytes > self.flushed.bytes)
            || stats.errors > self.flushed.errors;
        pending.then(|| self.flushed_at + RECORD_FLUSH)
    }

    /// Writes out what the recorder buffered, logs an error that stopped
    /// it (once: the recording ends there, the server keeps running), and
    /// brings the `adapter.record_*` counters up to date.
    fn flush_record(&mut self, now: Instant) {
        self.flushed_at = now;
        let flushed = self.hub.flush();
        self.record_failed(flushed);
        self.flushed = self.hub.observer_stats().unwrap_or_default();
        self.sync_record();
    }

    /// Flushes and closes the recording (the driver is ending).
    fn finish_record(&mut self) {
        let finished = self.hub.finish();
        self.record_failed(finished);
        self.sync_record();
    }

    fn record_failed(&mut self, result: Result<(), ObserverError>) {
        for e in result.err().into_iter().chain(self.hub.take_error()) {
            tracing::warn!(shard = self.shard, "flight recorder: {e}");
        }
    }

    /// Adds what the recorder did since the last call to the shared
    /// `adapter.record_*` counters.
    pub(super) fn sync_record(&mut self) {
        let Some(now) = self.hub.observer_stats() else {
            return;
        };
        let was = std::mem::replace(&mut self.recorded, now);
        let add = |counter, new: u64, old: u64| self.counters.add(counter, new.saturating_sub(old));
        add(Counter::RecordLines, now.lines, was.lines);
        add(Counter::RecordBytes, now.bytes, was.bytes);
        add(Counter::RecordRotations, now.rotations, was.rotations);
        add(Counter::RecordErrors, now.errors, was.errors);
    }

    /// Counts (and logs, at debug level) an adapter input the hub
    /// rejected: an input that arrived after the channel moved on (bytes
    /// after an abort, a detach after release…). The hub counts it by kind
    /// too (`rejected_input.*`).
    fn rejected<E: std::fmt::Display>(&self, result: Result<(), E>) {
        if let Err(e) = result {
            self.counters.bump(Counter::InputsRejected);
            tracing::debug!(shard = self.shard, "hub rejected an adapter input: {e}");
        }
    }
}
