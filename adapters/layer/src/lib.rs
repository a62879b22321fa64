//! # tether-adapter
//!
//! The adapter layer, written once for every runtime. An adapter for
//! async-std, smol, tokio or blocking threads is only I/O glue: how to
//! accept, read, wait for writability, sleep. Everything that decides or
//! counts is here:
//!
//! * the [`Driver`](runtime::Driver), the hub's single owner: feeds it
//!   inputs in bounded batches, executes its actions, writes each socket
//!   with one vectored non-blocking write per drain and reports what the
//!   kernel took in the same step (so "slow" means the kernel refused
//!   bytes, docs/design.md §5.2);
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
//! ## Two audiences
//!
//! * **Applications** use the crate root: [`Handle`], [`Events`],
//!   [`Options`] (with [`Accept`], [`Greeting`], an [`ObserverFactory`]
//!   such as the flight recorder's `RecordOptions`),
//!   [`App`] for an application run inside the drivers, [`Error`],
//!   [`StartError`], [`ServerStats`], and [`listen`] to bind a listener.
//!   They start a server with a runtime crate's `start` (tether-tokio,
//!   tether-async-std, tether-threads), which re-exports what they need.
//! * **Runtime implementers** use [`runtime`]: the [`Glue`](runtime::Glue),
//!   [`Socket`](runtime::Socket) and [`Sleep`](runtime::Sleep) traits,
//!   [`prepare`](runtime::prepare), the [`Driver`](runtime::Driver), the
//!   input queues, and the shared async building blocks
//!   ([`TaskGlue`](runtime::TaskGlue), [`read_task`](runtime::read_task)…).
//!   Nothing there is needed to run a server.
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
//! let options = Options::default().with_record(Some(Arc::new(Counting)));
//! // Then any runtime, the same way: e.g.
//! // let (handle, events) = tether_tokio::start(listener, config, options)?;
//! # assert!(options.record.is_some());
//! ```
//!
//! ## Memory bound
//!
//! Per connection: the hub's queue limit (`Config::queue_limit`, which
//! charges `Config::message_overhead` per queued message) plus at most
//! [`READ_AHEAD`](runtime::READ_AHEAD) read chunks waiting for the driver (its reader stops
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
mod credit;
mod driver;
mod exec;
mod glue;
mod handle;
mod input;
pub mod listen;
mod observe;
mod options;
mod outbound;
mod prepare;
pub mod runtime;
mod stats;
mod tasks;
mod web;

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use std::time::Duration;

use tether_core::{ChannelId, ConfigError};

pub use accept::Accept;
pub use app::{APP_BACKLOG, App, AppFactory, AppOut, REMOTE_AHEAD};
pub use handle::{Blocking, BlockingEvents, Error, Events, Handle};
pub use observe::{HubObserver, ObserverError, ObserverFactory, ObserverStats, Step};
pub use stats::{AdapterStats, Counter, KICK_BUCKETS, ServerStats};
pub use web::{Route, Transport, Web, close_code};

/// Adapter settings that are not lifecycle policy (that is
/// [`tether_core::Config`]). The same for every runtime.
///
/// Built from [`Options::default`] with one `with_*` method per setting
/// (`Options::default().with_shards(4).with_refuse_line("error server
/// full\n")`); `#[non_exhaustive]`, so new settings are not breaking.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// Inputs fed to the hub per wake-up before its outputs are drained;
    /// a wake-up that let a reader waiting for read-ahead credit go on
    /// takes up to two batches more, after giving readers a scheduler turn
    /// each (docs/design.md §5.2).
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
    /// A second listener whose connections speak WebSocket, served by the
    /// same shards beside the TCP lines (see [`Web`]). `None`: TCP only.
    pub web: Option<Web>,
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
            web: None,
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
