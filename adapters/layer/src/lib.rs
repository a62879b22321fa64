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
//!   [`Options`] (with [`Accept`], [`Greeting`], [`RecordOptions`]),
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
//! [`Options::record`] turns on the flight recorder (docs/recording.md) on
//! any runtime: each shard's driver writes every hub input it makes, with
//! its time and result and a running checksum of the hub's outputs, to
//! its own file (`FILE` with one shard, `FILE.shard<k>` with more),
//! rotated to stay within `max_bytes` per shard. `tether replay FILE` (or
//! `tether_record::replay`) runs it again through a fresh hub. A recording
//! that cannot start fails the start ([`StartError::Record`]); one that
//! fails later (disk full) logs a warning once and stops, and the server
//! keeps running. `adapter.record_lines`, `record_bytes`,
//! `record_rotations` and `record_errors` count it ([`ServerStats`]).
//!
//! ```
//! use tether_adapter::{Options, RecordOptions};
//!
//! let options = Options::default().with_record(Some(
//!     RecordOptions::new("/var/log/tether/chat.rec")
//!         .with_max_bytes(64 << 20) // per shard, rotated files included
//!         .with_keep(3) // chat.rec.1 … chat.rec.3 besides chat.rec
//!         .with_bytes(false), // lengths only, no payloads (the default)
//! ));
//! # assert!(options.record.as_ref().is_some_and(|r| r.validate().is_ok()));
//! // Then any runtime, the same way: e.g.
//! // let (handle, events) = tether_tokio::start(listener, config, options)?;
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
mod driver;
mod exec;
mod glue;
mod handle;
mod input;
pub mod listen;
mod options;
mod outbound;
mod prepare;
pub mod runtime;
mod stats;
mod tasks;

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use std::time::Duration;

use tether_core::{ChannelId, ConfigError};
pub use tether_record::RecordOptions;

pub use accept::Accept;
pub use app::{APP_BACKLOG, App, AppFactory, AppOut, REMOTE_AHEAD};
pub use handle::{Blocking, BlockingEvents, Error, Events, Handle};
pub use stats::{AdapterStats, Counter, KICK_BUCKETS, ServerStats};

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
    /// The flight recorder (docs/recording.md): every hub input of every
    /// shard, with its time, result and a running checksum of the outputs,
    /// written to `path` (with N > 1 shards, shard *k* writes
    /// `path.shard<k>`), rotated to stay within `max_bytes` per shard.
    /// `tether replay` runs a recording again. `None`: nothing recorded
    /// (the driver forwards every call). See the crate docs' example.
    pub record: Option<RecordOptions>,
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
    /// The recording ([`Options::record`]) could not start: invalid
    /// options, or its file could not be created or written.
    #[error("cannot record: {}", record_error(.0))]
    Record(#[from] tether_record::RecordError),
}

/// A recording error without the "recording stopped" of a running
/// recorder: at start nothing was recording yet.
fn record_error(e: &tether_record::RecordError) -> String {
    match e {
        tether_record::RecordError::Io { op, path, source } => {
            format!("cannot {op} {}: {source}", path.display())
        }
        other => other.to_string(),
    }
}
