//! # tether-async-std
//!
//! Drives a [`tether_core::Hub`] over real TCP from async tasks, on
//! async-std or smol (see [`Runtime`]). This crate is only I/O glue: the
//! hub's owner loop, write accounting, flow control, commands and the
//! [`Handle`]/[`Events`] API are the runtime-neutral `tether-adapter`'s,
//! shared with every other adapter.
//!
//! ## Tasks
//!
//! * **the driver** (from `tether-adapter`) owns the hub — no lock: it
//!   feeds inputs in batches, executes actions, writes every socket itself
//!   with one vectored non-blocking write per drain, delivers events, and
//!   sleeps on the hub's `poll_timeout`.
//! * **the listener** accepts connections and hands each to the next shard
//!   that accepts; while every shard has paused accepting it refuses them
//!   itself with the refusal line. With `Accept::ReusePort`
//!   ([`Options::accept`]) each shard has a listener of its own that feeds
//!   only its shard.
//! * **a reader per connection**, a holder of the channel: reads, posts the
//!   bytes (waiting while the driver's reader queue is full, so TCP pushes
//!   back on a flooder), and detaches after dropping its socket.
//! * **a waiter** only while a peer's send buffer is full: waits for
//!   writability, then lets go.
//!
//! ```no_run
//! use tether_async_std::{AsyncStd, Runtime};
//! use tether_core::{Config, Event};
//!
//! let listener = tether_adapter::listen::bind("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
//! let (handle, events) =
//!     tether_async_std::start(AsyncStd, listener, Config::default(), Default::default()).unwrap();
//! AsyncStd.block_on(async {
//!     while let Some(event) = events.next().await {
//!         if let Event::Received { id, data } = event {
//!             let _ = handle.send(id, data).await; // echo
//!         }
//!     }
//! });
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod glue;
mod runtime;

use std::net::TcpListener;
use std::sync::Arc;

use async_io::Async;
use tether_core::Config;

pub use glue::{AsyncIoSleep, AsyncListener, AsyncSocket};

use tether_adapter::runtime::TaskGlue;

/// Bytes one read may take at most (on the stack, only while reading).
const READ_CHUNK: usize = 16 * 1024;
pub use runtime::{AsyncStd, Runtime, Smol};
pub use tether_adapter::{
    Blocking, BlockingEvents, Counter, Error, Events, Handle, Options, ServerStats, StartError,
};

/// Starts a server on `listener` (see `tether_adapter::listen::bind` for
/// one with a deep backlog, and `listen::bind_reuse_port` for
/// [`Options::accept`] `ReusePort`, whose other shards' listeners are bound
/// here on its address): spawns the drivers and the listeners on
/// `runtime` and returns the handle and the event stream. Runs until
/// [`Handle::shutdown`] completes, or every handle is dropped.
pub fn start<R: Runtime>(
    runtime: R,
    listener: TcpListener,
    config: Config,
    options: Options,
) -> Result<(Handle, Events), StartError> {
    let local_addr = listener.local_addr()?;
    // One executor per shard, if the runtime runs shards on threads of
    // their own (made as `prepare` asks for each shard's glue).
    let mut executors = Vec::new();
    let prepared =
        tether_adapter::runtime::prepare(config, options, local_addr, R::NAME, None, |_| {
            let spawner = if R::THREAD_PER_SHARD {
                let executor = Arc::new(smol::Executor::new());
                executors.push(executor.clone());
                Spawner::Shard(executor)
            } else {
                Spawner::Runtime(runtime.clone())
            };
            Ok(TaskGlue::new(spawner, READ_CHUNK))
        })?;
    // One listener, or one per shard (`Accept::ReusePort`): registered
    // before anything is spawned, so a failure leaves nothing running.
    let listeners = prepared
        .listen
        .bind(listener)?
        .into_iter()
        .map(|(listener, context)| Ok((AsyncListener(Async::new(listener)?), context)))
        .collect::<std::io::Result<Vec<_>>>()?;
    for (shard, (listener, context)) in listeners.into_iter().enumerate() {
        // The WebSocket listener (last, round-robin) beside the last shard.
        let web = context.transport == tether_adapter::Transport::WebSocket;
        let shard = if web {
            executors.len().saturating_sub(1)
        } else {
            shard
        };
        let task = tether_adapter::runtime::listen_task(listener, context, AsyncIoSleep);
        // A reuseport listener feeds only its shard: it runs there. The one
        // round-robin listener runs beside shard 0's driver: with one shard
        // an accepted connection reaches its driver without a thread hop.
        match executors.get(shard) {
            Some(executor) => executor.spawn(task).detach(),
            None => Runtime::spawn(&runtime, task),
        }
    }
    if executors.is_empty() {
        for driver in prepared.drivers {
            Runtime::spawn(&runtime, driver.run(AsyncIoSleep));
        }
    } else {
        for (shard, (driver, executor)) in prepared.drivers.into_iter().zip(executors).enumerate() {
            let runtime = runtime.clone();
            std::thread::Builder::new()
                .name(format!("tether-{}-{shard}", R::NAME))
                .spawn(move || run_shard(&runtime, &executor, driver.run(AsyncIoSleep)))?;
        }
    }
    Ok((prepared.handle, prepared.events))
}

/// Where a shard's tasks are spawned.
#[derive(Debug, Clone)]
enum Spawner<R> {
    /// The runtime's own executor.
    Runtime(R),
    /// The shard's executor, run by its thread.
    Shard(Arc<smol::Executor<'static>>),
}

impl<R: Runtime> tether_adapter::runtime::Spawn for Spawner<R> {
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        match self {
            Spawner::Runtime(runtime) => Runtime::spawn(runtime, future),
            Spawner::Shard(executor) => executor.spawn(future).detach(),
        }
    }
}

/// A shard's thread: runs its executor until the driver ends, then until
/// its other tasks (readers and waiters the driver let go, which end at
/// once) are done too — at most a second — so their sockets are closed.
fn run_shard<R: Runtime>(
    runtime: &R,
    executor: &smol::Executor<'static>,
    driver: impl Future<Output = ()>,
) {
    runtime.block_on(executor.run(driver));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !executor.is_empty() && std::time::Instant::now() < until {
        runtime
            .block_on(executor.run(async_io::Timer::after(std::time::Duration::from_millis(10))));
    }
}
