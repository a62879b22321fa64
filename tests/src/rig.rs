//! The adapter-neutral harness: what an adapter must provide, and the rig
//! that records a server's events while scenarios drive it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_adapter::Options;
use tether_core::{
    BroadcastReport, ChannelId, ChannelInfo, Config, DisconnectReason, Event, IdError, KickError,
    KickMode, SendError, Stats,
};

/// An adapter under test: how to start one of its servers.
pub trait Adapter: 'static {
    /// Shown in failure messages.
    const NAME: &'static str;
    /// How many shards (hubs) its servers run.
    const SHARDS: usize;
    /// The running server.
    type Server: ServerUnderTest;
    /// Starts a server listening on `127.0.0.1:0` with `config`. Panics if
    /// it cannot (this is test code).
    fn start(config: Config) -> Self::Server {
        Self::start_with(config, Options::default())
    }
    /// [`Adapter::start`] with adapter options (e.g. a recording,
    /// `Options::record`); the adapter applies its own shard count.
    fn start_with(config: Config, options: Options) -> Self::Server;
}

/// A running server, driven through blocking calls from test threads.
/// Implementations may panic when the server has stopped unexpectedly, and
/// bound every call: one that gets no answer in time panics naming its
/// step (as [`LayerServer`](crate::adapters::LayerServer) does with
/// [`bounded::within`](crate::bounded::within)), so a hung server fails
/// the test rather than hanging it.
pub trait ServerUnderTest: Send + Sync + 'static {
    /// The address clients connect to.
    fn addr(&self) -> SocketAddr;
    /// The next event, waiting at most `timeout` (never longer: the
    /// recorder relies on it to stop); `None` on timeout or once the server
    /// stopped and every event was read.
    fn next_event(&self, timeout: Duration) -> Option<Event>;
    /// `Hub::send`.
    fn send(&self, id: ChannelId, data: Bytes) -> Result<(), SendError>;
    /// `Hub::broadcast`.
    fn broadcast(&self, data: Bytes) -> BroadcastReport;
    /// `Hub::kick`.
    fn kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), KickError>;
    /// `Hub::authenticate`.
    fn authenticate(&self, id: ChannelId) -> Result<(), IdError>;
    /// `Hub::stats`.
    fn stats(&self) -> Stats;
    /// `Hub::channels`.
    fn channels(&self) -> Vec<ChannelInfo>;
    /// Starts `Hub::shutdown(grace)`; returns at once.
    fn shutdown(&self, grace: Duration);
    /// Waits until the server stopped (shutdown complete, listener closed,
    /// every socket closed); `false` after `timeout`.
    fn wait_stopped(&self, timeout: Duration) -> bool;
    /// What the server's listeners and drivers counted of the connections
    /// they accepted, so far.
    fn accept_counts(&self) -> AcceptCounts;
    /// Connections refused so far with the refusal line, by the hub (at the
    /// limit, shutting down) or by the listener itself (every shard full).
    fn refused(&self) -> u64 {
        self.accept_counts().refused_full
    }
}

/// The server's own tally of the connections it took from its listeners
/// (`adapter.*` in `tether serve`'s `stats`). Every accepted connection
/// becomes exactly one channel (`Stats::opened`) or one refusal, so while
/// no shutdown runs and every accepted connection has reached its shard,
/// `accepted == opened + refused_full + refused_resources`. A connection
/// the kernel dropped before any `accept` (reset in the backlog, a backlog
/// overflow) is in none of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptCounts {
    /// Connections `accept(2)` returned.
    pub accepted: u64,
    /// Refused with the refusal line: every shard full, or the hub at its
    /// limit or shutting down.
    pub refused_full: u64,
    /// Refused before reaching a hub because a resource ran out (a reader
    /// thread could not be started).
    pub refused_resources: u64,
    /// Failed `accept(2)` calls (e.g. `ECONNABORTED`, `EMFILE`).
    pub accept_errors: u64,
}

impl AcceptCounts {
    /// What was counted since `before`.
    pub fn since(self, before: AcceptCounts) -> AcceptCounts {
        AcceptCounts {
            accepted: self.accepted - before.accepted,
            refused_full: self.refused_full - before.refused_full,
            refused_resources: self.refused_resources - before.refused_resources,
            accept_errors: self.accept_errors - before.accept_errors,
        }
    }
}

/// Everything the recorder saw, with indexes scenarios wait on.
#[derive(Debug, Default)]
pub struct Log {
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Opened channels not yet claimed by [`Rig::connect`], by peer address.
    unclaimed: HashMap<SocketAddr, VecDeque<ChannelId>>,
    /// Every `Disconnected`, by channel.
    pub disconnected: HashMap<ChannelId, DisconnectReason>,
    /// Every `Released` channel.
    pub released: HashSet<ChannelId>,
    /// Channels opened.
    pub opened: usize,
    /// Whether `ShutdownComplete` was seen.
    pub shutdown_complete: bool,
    /// Invariant violations seen (1: a second `Disconnected`; 2: an event
    /// after `Disconnected`; a `Released` without `Disconnected`).
    pub violations: Vec<String>,
    /// Every event with its payload, `Received` included, in order: kept
    /// only when the rig was started with [`Rig::start_keeping_every_event`]
    /// (a recorded run compares it with its replay).
    pub every_event: Option<Vec<Event>>,
}

impl Log {
    fn record(&mut self, event: Event) {
        if let Some(every) = &mut self.every_event {
            every.push(event.clone());
        }
        match &event {
            Event::Opened { id, peer } => {
                self.opened += 1;
                self.unclaimed.entry(*peer).or_default().push_back(*id);
            }
            Event::Received { id, .. } | Event::Writable { id } | Event::ReadClosed { id }
                if self.disconnected.contains_key(id) =>
            {
                self.violations
                    .push(format!("invariant 2: {event:?} after Disconnected"));
            }
            Event::Disconnected { id, reason } => {
                if let Some(first) = self.disconnected.insert(*id, *reason) {
                    self.violations.push(format!(
                        "invariant 1: {id} disconnected twice ({first}, {reason})"
                    ));
                }
            }
            Event::Released { id } => {
                if !self.disconnected.contains_key(id) {
                    self.violations
                        .push(format!("invariant 1: {id} released without Disconnected"));
                }
                self.released.insert(*id);
            }
            Event::ShutdownComplete => self.shutdown_complete = true,
            _ => {}
        }
        // Bound memory in long runs: payloads are not needed after the fact.
        if !matches!(event, Event::Received { .. }) {
            self.events.push(event);
        }
    }

    /// How many `Disconnected` events `id` got.
    pub fn disconnects_of(&self, id: ChannelId) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Disconnected { id: i, .. } if *i == id))
            .count()
    }

    /// Whether any event of this kind was seen for `id`.
    pub fn saw(&self, id: ChannelId, what: impl Fn(&Event) -> bool) -> bool {
        self.events
            .iter()
            .any(|e| e.channel() == Some(id) && what(e))
    }
}

/// How long the recorder thread may take to stop once asked.
const RECORDER_STOP: Duration = Duration::from_secs(5);

struct Shared {
    log: Mutex<Log>,
    changed: Condvar,
    stop: AtomicBool,
}

/// A started server and its event recorder. Dropping it shuts the server
/// down; [`Rig::finish`] also asserts the invariants held.
pub struct Rig<A: Adapter> {
    server: Arc<A::Server>,
    shared: Arc<Shared>,
    recorder: Option<JoinHandle<()>>,
}

impl<A: Adapter> Rig<A> {
    /// Starts a server with `config` and its recorder.
    pub fn start(config: Config) -> Rig<A> {
        Self::launch(A::start(config), Log::default())
    }

    /// Starts a server with `config` and adapter `options` (the adapter
    /// applies its own shard count and accept mode) and its recorder.
    pub fn start_with(config: Config, options: Options) -> Rig<A> {
        Self::launch(A::start_with(config, options), Log::default())
    }

    /// Starts a server with `config` and adapter `options`, whose log
    /// keeps every event with its payload ([`Log::every_event`]).
    pub fn start_keeping_every_event(config: Config, options: Options) -> Rig<A> {
        let log = Log {
            every_event: Some(Vec::new()),
            ..Log::default()
        };
        Self::launch(A::start_with(config, options), log)
    }

    fn launch(server: A::Server, log: Log) -> Rig<A> {
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            log: Mutex::new(log),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let recorder = {
            let server = server.clone();
            let shared = shared.clone();
            std::thread::spawn(move || {
                while !shared.stop.load(Ordering::Relaxed) {
                    let Some(event) = server.next_event(Duration::from_millis(20)) else {
                        continue;
                    };
                    let mut log = shared.log.lock().unwrap_or_else(|e| e.into_inner());
                    log.record(event);
                    while let Some(event) = server.next_event(Duration::ZERO) {
                        log.record(event);
                    }
                    drop(log);
                    shared.changed.notify_all();
                }
            })
        };
        Rig {
            server,
            shared,
            recorder: Some(recorder),
        }
    }

    /// The server.
    pub fn server(&self) -> &A::Server {
        &self.server
    }

    /// The server, shared (for a scenario's own threads).
    pub fn server_arc(&self) -> Arc<A::Server> {
        self.server.clone()
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The log, locked.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `done(log)` holds; `false` after `timeout`.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&Log) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut log = self.log();
        loop {
            if done(&log) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            log = self
                .shared
                .changed
                .wait_timeout(log, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Connects a client ([`client::connect`](crate::client::connect)) and
    /// waits for its `Opened`; panics after 5 s.
    pub fn connect(&self) -> (TcpStream, ChannelId) {
        let stream = crate::client::connect(self.addr());
        let id = self.opened_id(&stream, Duration::from_secs(5));
        (
            stream,
            id.unwrap_or_else(|| panic!("{}: no Opened for a new client", A::NAME)),
        )
    }

    /// The channel the server opened for this client, waiting at most
    /// `timeout` (`None`: not accepted in that time).
    pub fn opened_id(&self, stream: &TcpStream, timeout: Duration) -> Option<ChannelId> {
        let local = stream.local_addr().expect("client address");
        let mut id = None;
        self.wait_until(timeout, |log| {
            id = log.unclaimed.get(&local).and_then(|q| q.front().copied());
            id.is_some()
        });
        if id.is_some()
            && let Some(queue) = self.log().unclaimed.get_mut(&local)
        {
            queue.pop_front();
        }
        id
    }

    /// The reason `id` was disconnected, waiting at most 5 s; panics if none.
    pub fn disconnected(&self, id: ChannelId) -> DisconnectReason {
        let mut reason = None;
        self.wait_until(Duration::from_secs(5), |log| {
            reason = log.disconnected.get(&id).copied();
            reason.is_some()
        });
        reason.unwrap_or_else(|| panic!("{}: no Disconnected for {id}", A::NAME))
    }

    /// Waits for `Released` of `id`; panics after 5 s.
    pub fn released(&self, id: ChannelId) {
        let ok = self.wait_until(Duration::from_secs(5), |log| log.released.contains(&id));
        assert!(ok, "{}: {id} not released within 5 s", A::NAME);
    }

    /// Waits until no channel is alive; panics after `timeout`.
    pub fn drained(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let live = self.server.stats().live;
            if live == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {live} channels still alive",
                A::NAME
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Shuts the server down, waits for it to stop, and asserts that every
    /// invariant the recorder checks held and every opened channel got
    /// exactly one `Disconnected` and was released. Returns the log.
    pub fn finish(mut self) -> Log {
        self.server.shutdown(Duration::from_secs(2));
        assert!(
            self.server.wait_stopped(Duration::from_secs(10)),
            "{}: server did not stop",
            A::NAME
        );
        self.wait_until(Duration::from_secs(5), |log| log.shutdown_complete);
        assert!(
            self.stop_recorder(),
            "{}: step stop the recorder: no answer within {RECORDER_STOP:?}",
            A::NAME
        );
        let log = self.log();
        assert!(
            log.violations.is_empty(),
            "{}: {:?}",
            A::NAME,
            log.violations
        );
        assert!(log.shutdown_complete, "{}: no ShutdownComplete", A::NAME);
        assert_eq!(
            log.disconnected.len(),
            log.opened,
            "{}: invariant 1",
            A::NAME
        );
        assert_eq!(
            log.released.len(),
            log.opened,
            "{}: not every channel released",
            A::NAME
        );
        drop(log);
        std::mem::take(&mut *self.log())
    }

    /// Stops the recorder thread: whether it ended within
    /// [`RECORDER_STOP`] (it waits for events 20 ms at a time, so only a
    /// `next_event` that ignores its timeout keeps it). One that did not is
    /// left running, detached.
    fn stop_recorder(&mut self) -> bool {
        self.shared.stop.store(true, Ordering::Relaxed);
        let Some(recorder) = self.recorder.take() else {
            return true;
        };
        let deadline = Instant::now() + RECORDER_STOP;
        while !recorder.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = recorder.join();
        true
    }
}

impl<A: Adapter> Drop for Rig<A> {
    fn drop(&mut self) {
        if self.recorder.is_some() {
            self.server.shutdown(Duration::ZERO);
            let _ = self.server.wait_stopped(Duration::from_secs(5));
            let _ = self.stop_recorder();
        }
    }
}
