//! # tether-tokio
//!
//! Drives a [`tether_core::Hub`] over real TCP from tokio tasks, on
//! `tokio::net` sockets and `tokio::time` timers — a native adapter, not a
//! shim over another reactor. Like every tether adapter it is only I/O
//! glue: the hub's owner loop, write accounting, flow control, commands and
//! the [`Handle`]/[`Events`] API are the runtime-neutral `tether-adapter`'s,
//! shared with the async-std, smol and threads adapters.
//!
//! ## Tasks
//!
//! * **the drivers** (from `tether-adapter`), one per shard
//!   ([`Options::shards`]), each the single owner of its hub — no lock: it
//!   feeds inputs in batches, executes actions, writes every socket itself
//!   with one vectored non-blocking write per drain
//!   (`TcpStream::try_write_vectored`), delivers events, and sleeps on the
//!   hub's `poll_timeout` with `tokio::time::sleep_until`.
//! * **the listener** accepts connections and hands each to the next shard
//!   that accepts; while every shard has paused accepting it refuses them
//!   itself with [`Options::refuse_line`], and it backs off on accept
//!   errors (EMFILE…). With `Accept::ReusePort` ([`Options::accept`]) each
//!   shard has a listener of its own that feeds only its shard.
//! * **a reader per connection**, a holder of the channel: waits with
//!   `readable()`, reads with `try_read` into a stack buffer (an idle
//!   connection's task holds no buffer), posts the bytes (waiting while the
//!   driver's reader queue is full, so TCP pushes back on a flooder), and
//!   detaches after dropping its socket.
//! * **a waiter** only while a peer's send buffer is full: `writable()`
//!   raced against the connection's cancel, then it lets go.
//!
//! ## The runtime
//!
//! [`start`] must be called **inside a tokio runtime** — from a task, from
//! `#[tokio::main]`, or after [`Runtime::enter`](tokio::runtime::Runtime::enter)
//! — whose I/O and time drivers are enabled (`enable_all()`). Every task is
//! spawned on that runtime, which must keep running as long as the server
//! does. Without one, `start` returns an error (see [`RuntimeError`])
//! instead of panicking.
//!
//! The [`Handle`]'s async methods work from any task. Its
//! [`blocking`](Handle::blocking) forms park the calling thread: use them
//! from plain threads (or `spawn_blocking`), never from a task of a
//! current-thread runtime, which would then never run the driver.
//!
//! **Worker threads.** Each shard's driver is one task, woken by every
//! reader task of its connections. On a multi-thread runtime the scheduler
//! spreads readers and drivers over the workers and each read becomes a
//! cross-thread wake-up: with one shard on 2 cores, churn was 18,900
//! conn/s on 2 workers and 23,700 on 1 (a bare tokio echo server ran
//! 21,000–24,800 in the same run), and 2 shards on 2 workers made fan-out
//! only 1.21× of one (1.57× on a runtime each). [`start_on_threads`]
//! therefore runs each shard on a current-thread runtime of its own, on
//! its own thread; it is what `tether serve --runtime tokio` runs.
//! [`start`] is for an application that keeps everything on its own
//! runtime.
//!
//! ## Dependencies
//!
//! tokio (`net`, `rt`, `time`; the application picks the scheduler) and
//! the runtime-free `async-channel`/`futures-lite` that `tether-adapter`
//! uses: `cargo tree -p tether-tokio` lists no async-std, smol or
//! async-io.
//!
//! ## Example
//!
//! ```no_run
//! use tether_core::{Config, Event, KickMode};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let listener = tether_adapter::listen::bind("127.0.0.1:7000".parse()?, 1024)?;
//!     let (handle, events) =
//!         tether_tokio::start(listener, Config::default(), Default::default())?;
//!     while let Some(event) = events.next().await {
//!         match event {
//!             Event::Opened { id, .. } => handle.send(id, format!("hello {id}\n")).await?,
//!             Event::Received { id, data } if data.starts_with(b"bye") => {
//!                 handle.kick(id, KickMode::Graceful, 0).await?
//!             }
//!             Event::Received { id, data } => handle.send(id, data).await?, // echo
//!             _ => {}
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The sans-IO core does not need this crate at all: `examples/embed.rs`
//! drives a [`tether_core::Hub`] directly from a tokio application, and
//! `examples/mio_loop.rs` from a hand-written `mio` poll loop.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod glue;

use std::io;
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tether_core::Config;

pub use glue::{TokioListener, TokioSleep, TokioSocket, TokioSpawn};
use tether_adapter::runtime::TaskGlue;
pub use tether_adapter::{
    Blocking, BlockingEvents, Counter, Error, Events, Handle, Options, ServerStats, StartError,
};

/// Why [`start`] could not use a tokio runtime. It reaches the caller as
/// [`StartError::Io`] (kind `Other`); [`RuntimeError::of`] finds it there.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No tokio runtime is current on the calling thread.
    #[error(
        "tether_tokio::start must be called inside a tokio runtime (in a task, or after Runtime::enter): {0}"
    )]
    NoRuntime(tokio::runtime::TryCurrentError),
    /// The runtime was built without its I/O driver.
    #[error("the tokio runtime has no I/O driver: build it with enable_io() or enable_all()")]
    IoDisabled,
    /// The runtime was built without its timer.
    #[error("the tokio runtime has no timer: build it with enable_time() or enable_all()")]
    TimeDisabled,
}

impl RuntimeError {
    /// The runtime error inside `error`, if that is why [`start`] failed.
    pub fn of(error: &StartError) -> Option<&RuntimeError> {
        match error {
            StartError::Io(e) => e.get_ref()?.downcast_ref(),
            _ => None,
        }
    }
}

impl From<RuntimeError> for StartError {
    fn from(error: RuntimeError) -> Self {
        StartError::Io(io::Error::other(error))
    }
}

/// Starts a server on `listener` (see `tether_adapter::listen::bind` for
/// one with a deep backlog, and `listen::bind_reuse_port` for
/// [`Options::accept`] `ReusePort`, whose other shards' listeners are bound
/// here on its address): spawns the listeners and the drivers on the
/// current tokio runtime and returns the handle and the event stream. Runs
/// until [`Handle::shutdown`] completes, or every handle is dropped.
///
/// Must be called inside a tokio runtime with I/O and time enabled (see
/// the [crate docs](crate#the-runtime)); otherwise returns a
/// [`RuntimeError`] wrapped in [`StartError::Io`].
pub fn start(
    listener: TcpListener,
    config: Config,
    options: Options,
) -> Result<(Handle, Events), StartError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(RuntimeError::NoRuntime)?;
    // tokio has no query for its drivers; registering a socket or making a
    // timer panics (before changing anything) when one is missing.
    catch_unwind(|| drop(tokio::time::sleep(std::time::Duration::ZERO)))
        .map_err(|_| RuntimeError::TimeDisabled)?;
    let local_addr = listener.local_addr()?;
    let prepared =
        tether_adapter::runtime::prepare(config, options, local_addr, "tokio", None, |context| {
            Ok(shard_glue(runtime.clone(), &context))
        })?;
    // One listener, or one per shard (`Accept::ReusePort`): registered
    // before anything is spawned, so a failure leaves nothing running.
    let mut listeners = Vec::new();
    for (listener, context) in prepared.listen.bind(listener)? {
        listener.set_nonblocking(true)?;
        let listener = catch_unwind(AssertUnwindSafe(|| {
            tokio::net::TcpListener::from_std(listener)
        }))
        .map_err(|_| RuntimeError::IoDisabled)??;
        listeners.push((TokioListener::new(listener), context));
    }
    for (listener, context) in listeners {
        drop(runtime.spawn(tether_adapter::runtime::listen_task(
            listener, context, TokioSleep,
        )));
    }
    for driver in prepared.drivers {
        drop(runtime.spawn(driver.run(TokioSleep)));
    }
    Ok((prepared.handle, prepared.events))
}

/// A shard's glue: its tasks spawned on `runtime`, reading at most 16 KiB
/// at a time (on the stack, only while reading).
fn shard_glue(
    runtime: tokio::runtime::Handle,
    context: &tether_adapter::runtime::GlueContext,
) -> TaskGlue<TokioSpawn, TokioSocket> {
    let read_len = context.options.read_buffer.clamp(1, 16 << 10);
    TaskGlue::new(TokioSpawn(runtime), read_len)
}

/// Starts a server on threads of its own: **one current-thread tokio
/// runtime per shard** (thread `tether-tokio-<shard>`), each running its
/// shard's driver, the reader and waiter tasks of its connections and, with
/// [`Accept::ReusePort`](tether_adapter::Accept::ReusePort), its own
/// listener; the round-robin listener runs beside shard 0's driver and
/// hands each connection to its shard's runtime unregistered, so that its
/// readiness wakes its own shard's thread (see [`TokioListener::handing_off`]).
/// `tether serve --runtime tokio` runs this.
///
/// Why not the application's runtime, as [`start`] does: on a multi-thread
/// runtime the scheduler moves a shard's readers and its driver between
/// workers, making each read a cross-thread wake-up, and two shards never
/// run on a core each for long. Measured on 2 cores with `pc fanout`
/// (BENCHMARKS.md): 2 shards / 1 shard was 1.21× on one 2-worker runtime,
/// 1.57× with a runtime per shard.
///
/// Needs no runtime of the caller's: call it from anywhere, `main`
/// included. The [`Handle`] works from any thread or task (its async
/// methods on any executor). The threads end after [`Handle::shutdown`] has
/// completed, or every handle is dropped; each drops its runtime then,
/// closing whatever sockets its tasks still held.
///
/// ```no_run
/// use tether_core::{Config, Event};
///
/// let listener = tether_adapter::listen::bind("127.0.0.1:7000".parse().unwrap(), 1024).unwrap();
/// let options = tether_tokio::Options::default().with_shards(2);
/// let (handle, events) =
///     tether_tokio::start_on_threads(listener, Config::default(), options).unwrap();
/// for event in events {
///     if let Event::Received { id, data } = event {
///         let _ = handle.blocking().send(id, data); // echo
///     }
/// }
/// ```
pub fn start_on_threads(
    listener: TcpListener,
    config: Config,
    options: Options,
) -> Result<(Handle, Events), StartError> {
    let local_addr = listener.local_addr()?;
    let mut runtimes = Vec::new();
    let prepared =
        tether_adapter::runtime::prepare(config, options, local_addr, "tokio", None, |context| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let glue = shard_glue(runtime.handle().clone(), &context);
            runtimes.push(runtime);
            Ok(glue)
        })?;
    let listen = prepared.listen;
    // One round-robin listener for several shards hands its connections
    // off; a shard's own listener (one shard, or reuseport) keeps them.
    let hand_off = listen.len() == 1 && runtimes.len() > 1;
    let bind = listen.bind(listener)?;
    let mut listeners: Vec<Vec<_>> = runtimes.iter().map(|_| Vec::new()).collect();
    // The round-robin listener on shard 0's runtime, a reuseport listener
    // on its own shard's, the WebSocket listener (last, round-robin) on
    // the last shard's.
    for (i, (listener, context)) in bind.into_iter().enumerate() {
        let web = context.transport == tether_adapter::Transport::WebSocket;
        let at = if web { runtimes.len() - 1 } else { i };
        let Some(runtime) = runtimes.get(at) else {
            continue;
        };
        listener.set_nonblocking(true)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let listener = if hand_off || (web && runtimes.len() > 1) {
            TokioListener::handing_off(listener)
        } else {
            TokioListener::new(listener)
        };
        listeners[at].push(runtime.spawn(tether_adapter::runtime::listen_task(
            listener, context, TokioSleep,
        )));
    }
    let mut listeners = listeners.into_iter();
    for (shard, (driver, runtime)) in prepared.drivers.into_iter().zip(runtimes).enumerate() {
        // The listeners spawned on this runtime must outlive the driver:
        // they close once every shard's driver has ended.
        let listener = listeners.next().unwrap_or_default();
        std::thread::Builder::new()
            .name(format!("tether-tokio-{shard}"))
            .spawn(move || {
                runtime.block_on(async move {
                    driver.run(TokioSleep).await;
                    for listener in listener {
                        let _ = listener.await;
                    }
                });
                // Dropping the runtime drops the tasks still held (readers
                // and waiters the driver let go), closing their sockets.
                drop(runtime);
            })?;
    }
    Ok((prepared.handle, prepared.events))
}
