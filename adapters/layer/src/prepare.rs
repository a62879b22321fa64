//! Building a server around a runtime's glue: [`prepare`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use async_channel::{Receiver, Sender};
use tether_core::{Config, Event, Hub};

use crate::accept::{self, Accept, Listeners};
use crate::driver::{self, Driver};
use crate::glue::Glue;
use crate::handle::{self, Events, Handle};
use crate::input::Inputs;
use crate::observe::ObservedHub;
use crate::stats::AdapterCounters;
use crate::{Options, StartError, app, input, listen};

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
    /// [`Accept::ReusePort`](crate::Accept::ReusePort) (see [`Listeners::bind`](crate::runtime::Listeners::bind)).
    pub listen: Listeners<G::Socket, G::Accepted>,
    /// The channel budget in force, over all shards (see
    /// [`ServerStats::channel_budget`](crate::ServerStats::channel_budget)).
    pub budget: usize,
}

/// Builds a server's hubs (one per [`Options::shards`](crate::Options::shards)), queues, handle and
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
    let budget = channel_budget(&config, &options, runtime_cap);
    // Every shard holds at least one channel: never more shards than the
    // budget, so the configured limit holds over all of them.
    let shards = options.shards.clamp(1, 256).min(budget);
    let epoch = Instant::now();
    config.validate()?;
    let (stopped, stopped_rx) = async_channel::bounded::<()>(1);
    let (listener_alive, stop) = async_channel::bounded::<()>(1);
    let (events_tx, events, unread) = Events::new();
    let (completing, all_complete) = async_channel::bounded::<()>(1);
    // Every shard's queues first: an in-driver application may command any
    // shard.
    let (handle_queues, receivers) = shard_queues(shards, options.command_queue);
    let shared = Shared {
        options,
        runtime,
        budget,
        epoch,
        events: events_tx,
        unread,
        counters: Arc::new(AdapterCounters::default()),
        gates: accept::Gates::new(shards),
        remaining: Arc::new(AtomicUsize::new(shards)),
        stopped,
        completing,
        all_complete,
        listener_alive,
        barrier: driver::Barrier::new(shards),
        drained: app::QueueDrained::new(shards),
    };
    let mut drivers = Vec::with_capacity(shards);
    let mut shard_inputs = Vec::with_capacity(shards);
    for (shard, queues) in receivers.into_iter().enumerate() {
        let (driver, inputs) = shard_driver(
            &shared,
            &config,
            (shard, shards),
            queues,
            &handle_queues,
            &mut make_glue,
        )?;
        shard_inputs.push(inputs);
        drivers.push(driver);
    }
    drop(shared.completing);
    let handle = Handle::new(local_addr, handle_queues, stopped_rx);
    let (gates, counters, options) = (shared.gates, shared.counters, shared.options);
    let listen = Listeners::new(shard_inputs, gates, counters, shared.stopped, stop, options);
    Ok(Prepared {
        handle,
        events,
        drivers,
        listen,
        budget,
    })
}

/// What every shard's driver is built with besides its own hub, glue,
/// queues and application: the settings, and what the shards share.
struct Shared {
    options: Options,
    runtime: &'static str,
    budget: usize,
    /// One epoch for every shard's observer: a recording's times are
    /// nanoseconds since the server started.
    epoch: Instant,
    events: Sender<Event>,
    unread: Arc<AtomicUsize>,
    counters: Arc<AdapterCounters>,
    gates: Arc<accept::Gates>,
    remaining: Arc<AtomicUsize>,
    stopped: Sender<()>,
    /// Closes once every shard's shutdown completed (each driver holds a
    /// sender until its own did).
    completing: Sender<()>,
    all_complete: Receiver<()>,
    listener_alive: Sender<()>,
    barrier: Arc<driver::Barrier>,
    /// Notified by each shard when its command queue has been taken short.
    drained: Arc<app::QueueDrained>,
}

/// Every shard's command and query queues: the handle's ends (in shard
/// order) and the drivers' ends.
fn shard_queues(
    shards: usize,
    command_queue: usize,
) -> (Vec<handle::ShardSenders>, Vec<handle::HandleQueues>) {
    let mut handle_queues = Vec::with_capacity(shards);
    let mut receivers = Vec::with_capacity(shards);
    for _ in 0..shards {
        let ((senders, commands), queries) = handle::shard_queues(command_queue);
        handle_queues.push(senders);
        receivers.push(handle::HandleQueues { commands, queries });
    }
    (handle_queues, receivers)
}

/// A shard's input queues, for a runtime's glue `G`.
type GlueInputs<G> = Inputs<<G as Glue>::Socket, <G as Glue>::Accepted>;

/// Shard `shard` of `shards`' driver, and the input queues its listener
/// feeds: its hub, then its queues, then its glue, then its application.
fn shard_driver<G: Glue>(
    shared: &Shared,
    config: &Config,
    (shard, shards): (usize, usize),
    handle: handle::HandleQueues,
    handle_queues: &[handle::ShardSenders],
    make_glue: &mut impl FnMut(GlueContext) -> io::Result<G>,
) -> Result<(Driver<G>, GlueInputs<G>), StartError> {
    let options = &shared.options;
    let shard_id = u8::try_from(shard).unwrap_or(u8::MAX);
    let hub = shard_hub(
        config,
        options,
        (shard, shards),
        shared.budget,
        shared.epoch,
    )?;
    let (inputs, queues) = input::queues(options.reader_queue, options.control_queue);
    let glue = make_glue(GlueContext {
        shard: shard_id,
        counters: shared.counters.clone(),
        options: options.clone(),
    })?;
    let app = shard_app(options, shard, handle_queues, &shared.drained);
    let listener_inputs = inputs.clone();
    let driver = Driver::new(driver::Parts {
        hub,
        glue,
        inputs,
        queues,
        handle,
        events: shared.events.clone(),
        unread: shared.unread.clone(),
        counters: shared.counters.clone(),
        options: options.clone(),
        runtime: shared.runtime,
        budget: shared.budget,
        shard,
        gates: shared.gates.clone(),
        remaining: shared.remaining.clone(),
        stopped: shared.stopped.clone(),
        completing: shared.completing.clone(),
        all_complete: shared.all_complete.clone(),
        listener_alive: shared.listener_alive.clone(),
        app,
        barrier: shared.barrier.clone(),
        // Only an application's driver waits for another shard's queue.
        drained: (options.app.is_some() && shards > 1).then(|| shared.drained.clone()),
    });
    Ok((driver, listener_inputs))
}

/// The channels the server may hold: `Config::max_channels`, lowered to
/// what the fd limit (minus a reserve and per-shard listeners) and
/// `runtime_cap` allow, the lowering logged; at least 1.
fn channel_budget(config: &Config, options: &Options, runtime_cap: Option<usize>) -> usize {
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
    budget
}

/// Shard `shard` of `shards`' hub, with its share of the channel budget
/// (invariant 12 holds per shard), observed if `Options::record` says so.
fn shard_hub(
    config: &Config,
    options: &Options,
    (shard, shards): (usize, usize),
    budget: usize,
    epoch: Instant,
) -> Result<ObservedHub, StartError> {
    let share = budget / shards + usize::from(shard < budget % shards);
    let mut shard_config = config.clone();
    shard_config.shard = u8::try_from(shard).unwrap_or(u8::MAX);
    shard_config.max_channels = share.max(1);
    if shard_config
        .accept_resume_at
        .is_some_and(|at| at >= shard_config.max_channels)
    {
        shard_config.accept_resume_at = None;
    }
    let hub = Hub::new(shard_config)?;
    Ok(match &options.record {
        Some(record) => ObservedHub::observed(hub, |hub| record.start(shard, shards, epoch, hub))
            .map_err(StartError::Observer)?,
        None => ObservedHub::new(hub),
    })
}

/// Shard `shard`'s in-driver application, if the server runs one, with the
/// other shards' command queues (only theirs: a driver holding its own
/// sender would keep its queue open after every handle is gone).
fn shard_app(
    options: &Options,
    shard: usize,
    handle_queues: &[handle::ShardSenders],
    drained: &Arc<app::QueueDrained>,
) -> Option<app::AppState> {
    let factory = options.app.as_ref()?;
    let remote = handle_queues
        .iter()
        .enumerate()
        .map(|(i, senders)| (i != shard).then(|| senders.commands().clone()))
        .collect();
    let shard_id = u8::try_from(shard).unwrap_or(u8::MAX);
    Some(app::AppState::new(
        (factory.0)(shard_id),
        shard,
        remote,
        drained.clone(),
    ))
}

/// Input queues with nobody behind them, for adapters' unit tests (e.g.
/// measuring a reader task's size). Keep the second value alive as long as
/// the queues should stay open.
#[doc(hidden)]
pub fn test_inputs<S, A>() -> (Inputs<S, A>, impl Sized) {
    let (inputs, queues) = input::queues::<S, A>(1, 1);
    (inputs, (queues.reader, queues.control))
}
