//! # tether-adapter
//!
//! The adapter layer, written once for every runtime. An adapter for
//! async-std, smol, tokio or blocking threads is only I/O glue (see
//! [`Glue`], [`Socket`], [`Sleep`]): how to accept, read, wait for
//! writability, sleep. Everything that decides or counts is here:
//!
//! * the [`Driver`], the hub's single owner: feeds it inputs in bounded
//!   batches, executes its actions, writes each socket with one vectored
//!   non-blocking write per drain and reports what the kernel took in the
//!   same step (so "slow" means the kernel refused bytes, docs/design.md §5.2);
//! * flow control end to end: every queue is bounded or gated —
//!   readers wait while the application has [`Options::event_backlog`]
//!   bytes unread, sends wait while their channel is backpressured, so TCP
//!   pushes back on a flooder instead of memory growing;
//! * the one application API: [`Handle`] (async and [`Blocking`] forms, one
//!   [`Error`] type) and [`Events`];
//! * one stats key list ([`ServerStats::counters`]), listeners with a deep
//!   backlog ([`listen::bind`]), a channel budget that respects the fd
//!   limit ([`listen::fd_budget`]), accept errors that back off and log
//!   once a second ([`listen::AcceptErrors`]).
//!
//! ## Recording a live server
//!
//! [`Options::record`] plugs an observer into every shard's hub
//! ([`ObserverFactory`], [`HubObserver`]): each shard's driver shows it
//! every hub input it makes, as a value ([`tether_core::Input`]) with its
//! time, its [`tether_core::Outcome`] and the outputs it produced. The
//! layer knows no file or format: the flight recorder (`tether-record`,
//! docs/recording.md) implements [`ObserverFactory`] for its
//! `RecordOptions`, and writes each shard's inputs to its own file, which
//! `tether replay` runs again through a fresh hub. An observer that
//! cannot start fails the start ([`StartError::Observer`]); one that
//! fails later (disk full) is logged once and stops, and the server keeps
//! running. `adapter.record_lines`, `record_bytes`, `record_rotations`
//! and `record_errors` count what the observers did ([`ServerStats`],
//! from [`ObserverStats`]).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use tether_adapter::{
//!     HubObserver, ObserverError, ObserverFactory, ObserverStats, Options, Step,
//! };
//! use tether_core::Hub;
//!
//! /// Counts the inputs of each shard.
//! #[derive(Debug)]
//! struct Count(u64);
//!
//! impl HubObserver for Count {
//!     fn is_active(&self) -> bool { true }
//!     fn before_input(&mut self, _hub: &Hub) {}
//!     fn after_input(&mut self, _step: Step<'_>) { self.0 += 1; }
//!     fn flush(&mut self) -> Result<(), ObserverError> { Ok(()) }
//!     fn finish(&mut self) -> Result<(), ObserverError> { Ok(()) }
//!     fn take_error(&mut self) -> Option<ObserverError> { None }
//!     fn stats(&self) -> ObserverStats {
//!         ObserverStats { lines: self.0, ..ObserverStats::default() }
//!     }
//! }
//!
//! #[derive(Debug)]
//! struct Counting;
//!
//! impl ObserverFactory for Counting {
//!     fn start(&self, _shard: usize, _shards: usize, _epoch: Instant, _hub: &Hub)
//!         -> Result<Box<dyn HubObserver>, ObserverError> {
//!         Ok(Box::new(Count(0)))
//!     }
//! }
//!
//! let options = Options { record: Some(Arc::new(Counting)), ..Options::default() };
//! // Then any runtime, the same way: e.g.
//! // let (handle, events) = tether_tokio::start(listener, config, options)?;
//! # assert!(options.record.is_some());
//! ```
//!
//! ## Memory bound
//!
//! Per connection: the hub's queue limit (`Config::queue_limit`, which
//! charges `Config::message_overhead` per queued message) plus at most
//! [`READ_AHEAD`] read chunks waiting for the driver (its reader stops
//! reading until the driver takes them). Per server: that ×
//! `max_channels`, plus [`Options::event_backlog`] received bytes waiting
//! for the application, plus per shard at most [`Options::reader_queue`]
//! read chunks and [`Options::command_queue`] commands in flight (of which
//! an in-driver [`App`] keeps at most [`REMOTE_AHEAD`] in each other
//! shard's queue before its shard stops reading).
//!
//! ## Shutdown
//!
//! [`Handle::shutdown`] (what `tether serve` runs on SIGTERM, SIGINT and
//! the console's `shutdown`) drains in two phases across shards
//! (docs/design.md §5.5): every shard stops reading and accepting, every
//! relay already between shards reaches its shard's hub, then each hub
//! flushes its queues gracefully and closes. A line accepted before the
//! drain began reaches every client connected then, on every shard.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod accept;
mod app;
mod driver;
mod exec;
mod glue;
mod handle;
mod input;
pub mod listen;
mod observe;
mod outbound;
mod stats;
mod tasks;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use std::time::Duration;

use tether_core::{ChannelId, Config, ConfigError, Hub};

pub use accept::{Accept, AcceptRouter, ListenContext, Listeners};
pub use app::{APP_BACKLOG, App, AppFactory, AppOut, REMOTE_AHEAD};
pub use driver::Driver;
pub use exec::{ThreadSleep, block_on};
pub use glue::{Glue, Release, Sleep, Socket};
pub use handle::{Blocking, Error, Events, Handle};
pub use input::{DriverGone, Input, Inputs, READ_AHEAD, ReadEnd, SMALL_READ, read_chunk};
pub use observe::{HubObserver, ObservedHub, ObserverError, ObserverFactory, ObserverStats, Step};
pub use stats::{AdapterCounters, Histogram, KICK_BUCKETS, ServerStats};
pub use tasks::{
    AsyncListener, AsyncSocket, Spawn, TaskConn, TaskGlue, listen_task, read_task, wait_task,
};

/// Adapter settings that are not lifecycle policy (that is
/// [`tether_core::Config`]). The same for every runtime.
#[derive(Debug, Clone)]
pub struct Options {
    /// Listen backlog: connections the kernel holds completed but not yet
    /// accepted.
    pub backlog: u32,
    /// Received bytes delivered as events and not yet read by the
    /// application, beyond which the driver stops taking data from readers.
    pub event_backlog: usize,
    /// Application commands (sends, kicks…) queued at most.
    pub command_queue: usize,
    /// Read chunks queued at most between readers and the driver.
    pub reader_queue: usize,
    /// Accepts and writability reports queued at most.
    pub control_queue: usize,
    /// Inputs fed to the hub per wake-up before its outputs are drained.
    pub batch: usize,
    /// Bytes one read may take.
    pub read_buffer: usize,
    /// Written to a connection refused because the server is full or
    /// shutting down, before it is closed (e.g. `error server full\n`).
    pub refuse_line: Option<Bytes>,
    /// File descriptors kept free of channels (see [`listen::fd_budget`]).
    pub fd_reserve: u64,
    /// Hubs run side by side, each owned by its own driver task or thread,
    /// sharing nothing; ids carry their shard. 1 to 256.
    pub shards: usize,
    /// How connections reach the shards: one round-robin acceptor, or one
    /// `SO_REUSEPORT` listener per shard (see [`Accept`]).
    pub accept: Accept,
    /// How long a send or broadcast waits for a backpressured channel whose
    /// peer takes no bytes at all. A peer that reads slowly paces the
    /// senders (TCP pushes back end to end); one that reads nothing for
    /// this long no longer holds anyone up: sends to it go ahead and its
    /// queue limit and overflow policy decide (reject and count, or evict),
    /// until `Config::stall_timeout` evicts it.
    pub send_wait: Duration,
    /// Queued on every new channel before anything else can be sent to it
    /// (e.g. a protocol's greeting): the first bytes its peer reads.
    pub greeting: Option<Greeting>,
    /// An application run inside each shard's driver (see [`App`]): it sees
    /// every event in the step that produced it and answers without a
    /// queue or a thread hop in between. [`Events`] still carries every
    /// event to whoever reads it (nothing is queued if nobody does).
    pub app: Option<AppFactory>,
    /// An observer of every hub input of every shard: the flight recorder
    /// (`tether-record`'s `RecordOptions`, docs/recording.md) plugs in
    /// here. `None`: nothing observed (the driver forwards every call).
    /// See the crate docs' example.
    pub record: Option<Arc<dyn ObserverFactory>>,
}

/// Makes a channel's greeting from its id (see [`Options::greeting`]).
#[derive(Clone)]
pub struct Greeting(pub Arc<dyn Fn(ChannelId) -> Bytes + Send + Sync>);

impl std::fmt::Debug for Greeting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Greeting(..)")
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backlog: 1024,
            event_backlog: 1 << 20,
            command_queue: 1024,
            reader_queue: 1024,
            control_queue: 4096,
            batch: 256,
            read_buffer: 16 << 10,
            refuse_line: None,
            fd_reserve: listen::FD_RESERVE,
            shards: 1,
            accept: Accept::RoundRobin,
            send_wait: Duration::from_secs(1),
            greeting: None,
            app: None,
            record: None,
        }
    }
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The hub's configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Binding the listener or starting a task or thread failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The observer ([`Options::record`], e.g. the flight recorder) could
    /// not start: its error, as [`ObserverFactory::start`] returned it
    /// (`downcast_ref` recovers the observer's own type).
    #[error("cannot record: {0}")]
    Observer(ObserverError),
}

/// What a runtime's glue (one per shard) is built from.
#[derive(Debug, Clone)]
pub struct GlueContext {
    /// The shard this glue serves (0-based).
    pub shard: u8,
    /// The adapter's counters, shared by every shard.
    pub counters: Arc<AdapterCounters>,
    /// The adapter settings.
    pub options: Options,
}

/// A server ready to run: the application's ends, one driver per shard
/// (spawn each: `driver.run(sleep)`), and what the runtime's listener needs.
#[derive(Debug)]
pub struct Prepared<G: Glue> {
    /// The handle.
    pub handle: Handle,
    /// The event stream (every shard's events, merged).
    pub events: Events,
    /// The drivers, one per shard, to be spawned.
    pub drivers: Vec<Driver<G>>,
    /// For the listeners: one, or one per shard with
    /// [`Accept::ReusePort`] (see [`Listeners::bind`]).
    pub listen: Listeners<G::Socket, G::Accepted>,
    /// The channel budget in force, over all shards (see
    /// [`ServerStats::channel_budget`]).
    pub budget: usize,
}

/// Builds a server's hubs (one per [`Options::shards`]), queues, handle and
/// drivers around a runtime's glue. `max_channels` is lowered to what the
/// fd limit (and `runtime_cap`, e.g. the threads adapter's thread budget)
/// allows, the lowering logged, and the budget split over the shards.
pub fn prepare<G: Glue>(
    config: Config,
    options: Options,
    local_addr: SocketAddr,
    runtime: &'static str,
    runtime_cap: Option<usize>,
    mut make_glue: impl FnMut(GlueContext) -> io::Result<G>,
) -> Result<Prepared<G>, StartError> {
    let configured = config.max_channels;
    // Per-shard listeners take descriptors of their own.
    let listeners = match options.accept {
        Accept::RoundRobin => 0,
        Accept::ReusePort => options.shards.clamp(1, 256) as u64 - 1,
    };
    let budget = [
        Some(configured),
        listen::fd_budget(options.fd_reserve + listeners),
        runtime_cap,
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(configured)
    .max(1);
    if budget < configured {
        tracing::warn!(
            configured,
            budget,
            "max-channels lowered to what the fd/thread limits allow; clients beyond it are refused"
        );
    }
    // Every shard holds at least one channel: never more shards than the
    // budget, so the configured limit holds over all of them.
    let shards = options.shards.clamp(1, 256).min(budget);
    // One epoch for every shard's observer: a recording's times are
    // nanoseconds since the server started.
    let epoch = std::time::Instant::now();
    config.validate()?;
    let (stopped, stopped_rx) = async_channel::bounded::<()>(1);
    let (listener_alive, stop) = async_channel::bounded::<()>(1);
    let (events_tx, events, unread) = Events::new();
    let counters = Arc::new(AdapterCounters::default());
    let gates = accept::Gates::new(shards);
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(shards));
    let barrier = driver::Barrier::new(shards);
    // Closes once every shard's shutdown completed (each driver holds a
    // sender until its own did).
    let (completing, all_complete) = async_channel::bounded::<()>(1);
    // Every shard's queues first: an in-driver application may command any
    // shard.
    let mut handle_queues = Vec::with_capacity(shards);
    let mut receivers = Vec::with_capacity(shards);
    for _ in 0..shards {
        let ((senders, commands), queries) = handle::shard_queues(options.command_queue);
        handle_queues.push(senders);
        receivers.push((commands, queries));
    }
    let mut drivers = Vec::with_capacity(shards);
    let mut shard_inputs = Vec::with_capacity(shards);
    for (shard, (commands, queries)) in receivers.into_iter().enumerate() {
        // Invariant 12 holds per shard: each gets its share of the budget.
        let share = budget / shards + usize::from(shard < budget % shards);
        let shard_id = u8::try_from(shard).unwrap_or(u8::MAX);
        let mut shard_config = config.clone();
        shard_config.shard = shard_id;
        shard_config.max_channels = share.max(1);
        if shard_config
            .accept_resume_at
            .is_some_and(|at| at >= shard_config.max_channels)
        {
            shard_config.accept_resume_at = None;
        }
        let hub = Hub::new(shard_config)?;
        let hub = match &options.record {
            Some(record) => {
                ObservedHub::observed(hub, |hub| record.start(shard, shards, epoch, hub))
                    .map_err(StartError::Observer)?
            }
            None => ObservedHub::new(hub),
        };
        let (inputs, queues) = input::queues(options.reader_queue, options.control_queue);
        let glue = make_glue(GlueContext {
            shard: shard_id,
            counters: counters.clone(),
            options: options.clone(),
        })?;
        let app = options.app.as_ref().map(|factory| {
            // Other shards' queues only: a driver holding its own sender
            // would keep its queue open after every handle is gone.
            let remote = handle_queues
                .iter()
                .enumerate()
                .map(|(i, senders)| (i != shard).then(|| senders.commands().clone()))
                .collect();
            app::AppState::new((factory.0)(shard_id), shard, remote)
        });
        shard_inputs.push(inputs.clone());
        drivers.push(Driver::new(driver::Parts {
            hub,
            glue,
            inputs,
            queues,
            handle: handle::HandleQueues { commands, queries },
            events: events_tx.clone(),
            unread: unread.clone(),
            counters: counters.clone(),
            options: options.clone(),
            runtime,
            budget,
            shard,
            gates: gates.clone(),
            remaining: remaining.clone(),
            stopped: stopped.clone(),
            completing: completing.clone(),
            all_complete: all_complete.clone(),
            listener_alive: listener_alive.clone(),
            app,
            barrier: barrier.clone(),
        }));
    }
    drop(completing);
    let handle = Handle::new(local_addr, handle_queues, stopped_rx);
    let listen = Listeners::new(shard_inputs, gates, counters, stopped, stop, options);
    Ok(Prepared {
        handle,
        events,
        drivers,
        listen,
        budget,
    })
}

/// Input queues with nobody behind them, for adapters' unit tests (e.g.
/// measuring a reader task's size). Keep the second value alive as long as
/// the queues should stay open.
#[doc(hidden)]
pub fn test_inputs<S, A>() -> (Inputs<S, A>, impl Sized) {
    let (inputs, queues) = input::queues::<S, A>(1, 1);
    (inputs, (queues.reader, queues.control))
}
