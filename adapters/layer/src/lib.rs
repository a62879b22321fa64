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
//!   same step (so "slow" means the kernel refused bytes, DESIGN §5.1);
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
//! ## Memory bound
//!
//! Per connection: the hub's queue limit (`Config::queue_limit`, which
//! charges `Config::message_overhead` per queued message) plus one read
//! buffer in flight. Per server: that × `max_channels`, plus
//! [`Options::event_backlog`] received bytes waiting for the application,
//! plus at most [`Options::reader_queue`] read chunks and
//! [`Options::command_queue`] commands in flight.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod driver;
mod exec;
mod glue;
mod handle;
mod input;
pub mod listen;
mod outbound;
mod stats;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tether_core::{Config, ConfigError, Hub};

pub use driver::Driver;
pub use exec::{ThreadSleep, block_on};
pub use glue::{Glue, Release, Sleep, Socket};
pub use handle::{Blocking, Error, Events, Handle};
pub use input::{DriverGone, Input, Inputs, ReadEnd};
pub use stats::{AdapterCounters, ServerStats};

/// Adapter settings that are not lifecycle policy (that is
/// [`tether_core::Config`]). The same for every runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// What a runtime's glue is built from.
#[derive(Debug)]
pub struct GlueContext<S, A> {
    /// Where its tasks or threads post inputs.
    pub inputs: Inputs<S, A>,
    /// The adapter's counters.
    pub counters: Arc<AdapterCounters>,
    /// Hold a clone until the listener is closed: [`Handle::stopped`]
    /// resolves only when every clone is dropped.
    pub stopped: async_channel::Sender<()>,
    /// The adapter settings.
    pub options: Options,
}

/// A server ready to run: the application's ends and the driver, which
/// the runtime adapter spawns (`driver.run(sleep)`).
#[derive(Debug)]
pub struct Prepared<G: Glue> {
    /// The handle.
    pub handle: Handle,
    /// The event stream.
    pub events: Events,
    /// The driver, to be spawned.
    pub driver: Driver<G>,
    /// The channel budget in force (see [`ServerStats::channel_budget`]).
    pub budget: usize,
}

/// Builds a server's hub, queues, handle and driver around a runtime's
/// glue. `max_channels` is lowered to what the fd limit (and
/// `runtime_cap`, e.g. the threads adapter's thread budget) allows, and
/// the lowering is logged.
pub fn prepare<G: Glue>(
    mut config: Config,
    options: Options,
    local_addr: SocketAddr,
    runtime: &'static str,
    runtime_cap: Option<usize>,
    make_glue: impl FnOnce(GlueContext<G::Socket, G::Accepted>) -> io::Result<G>,
) -> Result<Prepared<G>, StartError> {
    let configured = config.max_channels;
    let budget = [
        Some(configured),
        listen::fd_budget(options.fd_reserve),
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
        config.max_channels = budget;
        if config.accept_resume_at.is_some_and(|at| at >= budget) {
            config.accept_resume_at = None;
        }
    }
    let hub = Hub::new(config)?;
    let (inputs, queues) = input::queues(options.reader_queue, options.control_queue);
    let (stopped, stopped_rx) = async_channel::bounded::<()>(1);
    let (handle, handle_queues) = Handle::new(local_addr, options.command_queue, stopped_rx);
    let (events_tx, events, unread) = Events::new();
    let counters = Arc::new(AdapterCounters::default());
    let glue = make_glue(GlueContext {
        inputs: inputs.clone(),
        counters: counters.clone(),
        stopped: stopped.clone(),
        options: options.clone(),
    })?;
    let driver = Driver::new(driver::Parts {
        hub,
        glue,
        inputs,
        queues,
        handle: handle_queues,
        events: events_tx,
        unread,
        counters,
        options,
        runtime,
        budget,
        stopped,
    });
    Ok(Prepared {
        handle,
        events,
        driver,
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
