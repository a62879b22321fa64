//! # tether-threads
//!
//! Drives [`tether_core`] from blocking `std::net` sockets and std threads:
//! the seed's architecture (workers read, one thread decides and writes),
//! with no guesswork about when a socket may be closed. Like every adapter
//! it is only I/O glue: the hub's owner loop, write accounting, flow
//! control, commands and the [`Handle`]/[`Events`] API are
//! `tether-adapter`'s, the same for every runtime.
//!
//! ## Threads
//!
//! * **the driver** — the only thread that touches the hub. It runs the
//!   adapter layer's loop with [`tether_adapter::runtime::block_on`] (parking until
//!   an input or the hub's next deadline), and writes every socket itself
//!   with a non-blocking vectored `send` (`MSG_DONTWAIT`), one per socket
//!   per drain. It is also the only thread that shuts down or closes a
//!   socket.
//! * **the acceptor** — blocks in `accept`, starts the connection's reader
//!   (so the driver never spends a thread start) and hands both over.
//!   While the hub has paused accepting (at its channel limit), it refuses
//!   new connections itself with the refusal line. With several shards it
//!   hands connections round-robin to those that accept, or, with
//!   `Accept::ReusePort` ([`Options::accept`]), each shard has an acceptor
//!   and `SO_REUSEPORT` listener of its own. If a thread cannot be
//!   started (thread or memory-map limits), that connection is refused,
//!   counted and logged — the server keeps serving the rest.
//! * **a reader per channel** — blocks in `read`, posts what it reads
//!   (blocking while the driver's reader queue is full, so TCP pushes back
//!   on a flooder) and, at EOF or error, lets go.
//! * **a waiter per channel only while its peer's send buffer is full** —
//!   `poll(2)` for writability in 20 ms ticks, then lets go; the driver
//!   writes again.
//!
//! ## When the socket is closed, and why that is safe
//!
//! The seed closed a kicked socket 60 s after the kick, *hoping* its worker
//! threads were done with it by then. Here every thread that uses a socket
//! is a *holder*: the driver [`attach`](tether_core::Hub::attach)es it
//! before anything could close the socket, and it
//! [`detach`](tether_core::Hub::detach)es as the last thing it does. A kick
//! wakes holders at once: a graceful kick's FIN leads to the peer's EOF and
//! then `Shutdown(Both)` (or the flush deadline escalates to an abort), an
//! abort does `shutdown(Read)`; either makes a reader blocked in `read`
//! return 0. The reader drops its reference to the socket, *then* posts its
//! detach. The hub emits `CloseSocket` only when no holder is attached
//! (invariant 5), so the driver's reference is the last one and dropping
//! it closes the descriptor. No thread can be inside a call on that
//! descriptor, so it cannot be closed under a reader — the seed's race —
//! nor reused by the kernel for a new connection while an old reader still
//! uses the number.
//!
//! ## Limits
//!
//! * Each channel costs a thread; the channel budget is lowered to what
//!   `vm.max_map_count`, `kernel.threads-max` and the fd limit allow
//!   ([`thread_budget`]), so the process refuses clients instead of
//!   aborting when the kernel runs out of maps (about 16,400 threads at the
//!   default 65,530).
//! * Unix only: `MSG_DONTWAIT`/`MSG_NOSIGNAL` for the driver's writes,
//!   `shutdown(Read)` waking a blocked `read`, `shutdown` on a listener
//!   waking `accept` (Linux semantics).
//!
//! ## Example
//!
//! ```no_run
//! use tether_core::{Config, Event, KickMode};
//!
//! let listener = tether_adapter::listen::bind("127.0.0.1:7000".parse()?, 1024)?;
//! let (handle, events) = tether_threads::start(listener, Config::default(), Default::default())?;
//! let blocking = handle.blocking();
//! for event in events {
//!     match event {
//!         Event::Opened { id, .. } => blocking.send(id, format!("hello {id}\n"))?,
//!         Event::Received { id, data } if data.starts_with(b"bye") => {
//!             blocking.kick(id, KickMode::Graceful, 0)?
//!         }
//!         Event::Received { id, data } => blocking.send(id, data)?,
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg(unix)]

mod acceptor;
mod conn;

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tether_adapter::runtime::{Glue, Release, ThreadSleep};
use tether_core::{ChannelId, Config};

pub use conn::{Accepted, ThreadConn, ThreadSocket};
pub use tether_adapter::{
    Blocking, BlockingEvents, Counter, Error, Events, Handle, Options, ServerStats, StartError,
};
pub use tether_core;

use conn::{Graveyard, ThreadInputs, bury};

/// Settings of the threads themselves (the rest is [`Options`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadOptions {
    /// Stack size of every connection thread. Small on purpose: a reader
    /// keeps its buffer on the heap, so most of a default 2 MiB stack would
    /// only reserve address space.
    pub stack_size: usize,
    /// Set `TCP_NODELAY` on accepted sockets (line protocols want it).
    pub nodelay: bool,
}

impl Default for ThreadOptions {
    fn default() -> Self {
        ThreadOptions {
            stack_size: 128 << 10,
            nodelay: true,
        }
    }
}

/// Memory maps one thread costs: its stack and guard page, and the
/// signal stack and its guard page std sets up.
const MAPS_PER_THREAD: u64 = 4;
/// Maps and threads kept for everything else (the heap, libraries, the
/// driver, acceptor and console threads, waiters).
const RESERVE: u64 = 4096;

/// How many channels this machine's thread limits allow, one reader thread
/// each: the least of `vm.max_map_count` / `MAPS_PER_THREAD` (4) and
/// `kernel.threads-max` / 2 (a waiter may join a reader), minus a reserve.
/// `None` if neither can be read.
pub fn thread_budget() -> Option<usize> {
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let maps =
        read("/proc/sys/vm/max_map_count").map(|n| n.saturating_sub(RESERVE) / MAPS_PER_THREAD);
    let threads = read("/proc/sys/kernel/threads-max").map(|n| n.saturating_sub(RESERVE) / 2);
    let budget = [maps, threads].into_iter().flatten().min()?;
    usize::try_from(budget.max(1)).ok()
}

/// Starts a server on `listener` with default [`ThreadOptions`]: a driver
/// thread, an acceptor thread, and a reader thread per channel. Runs until
/// [`Handle::shutdown`] completes (or every handle is dropped); every
/// thread has ended by the time [`Handle::stopped`] resolves.
pub fn start(
    listener: TcpListener,
    config: Config,
    options: Options,
) -> Result<(Handle, Events), StartError> {
    start_with(listener, config, options, ThreadOptions::default())
}

/// [`start`] with explicit [`ThreadOptions`].
pub fn start_with(
    listener: TcpListener,
    config: Config,
    options: Options,
    threads: ThreadOptions,
) -> Result<(Handle, Events), StartError> {
    listener.set_nonblocking(false)?;
    let local_addr = listener.local_addr()?;
    let stack_size = threads.stack_size;
    let prepared = tether_adapter::runtime::prepare(
        config,
        options,
        local_addr,
        "threads",
        thread_budget(),
        |_| {
            Ok(ThreadGlue {
                graveyard: Graveyard::default(),
                options: threads.clone(),
            })
        },
    )?;
    // One acceptor, or one per shard (`Accept::ReusePort`), each on its
    // own listener (the others bound here on `listener`'s address).
    for (listener, context) in prepared.listen.bind(listener)? {
        listener.set_nonblocking(false)?;
        acceptor::start(listener, context, threads.clone())?;
    }
    for driver in prepared.drivers {
        // Each driver thread holds `stopped` until `run` has returned, so
        // that when `Handle::stopped` resolves the driver threads are ending.
        std::thread::Builder::new()
            .name("tether-driver".into())
            .stack_size(stack_size.max(512 << 10))
            .spawn(move || tether_adapter::runtime::block_on(driver.run(ThreadSleep)))?;
    }
    Ok((prepared.handle, prepared.events))
}

/// [`Glue`] for blocking sockets and std threads (one per shard).
#[derive(Debug)]
pub struct ThreadGlue {
    graveyard: Graveyard,
    options: ThreadOptions,
}

impl ThreadGlue {
    /// Joins finished threads of closed connections (all, if `all`).
    fn reap(&mut self, all: bool) {
        let threads = std::mem::take(
            &mut *self
                .graveyard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut alive = Vec::new();
        for thread in threads {
            if all || thread.is_finished() {
                let _ = thread.join();
            } else {
                alive.push(thread);
            }
        }
        bury(&self.graveyard, alive);
    }
}

impl Glue for ThreadGlue {
    type Socket = ThreadSocket;
    type Accepted = Accepted;
    type Conn = ThreadConn;

    fn open(
        &mut self,
        id: ChannelId,
        _socket: &Arc<ThreadSocket>,
        accepted: Accepted,
        inputs: &ThreadInputs,
    ) -> io::Result<ThreadConn> {
        self.reap(false);
        let conn = ThreadConn {
            threads: vec![accepted.thread],
            stop: Arc::new(AtomicBool::new(false)),
            graveyard: self.graveyard.clone(),
        };
        // The reader waits for its id; it cannot be gone before this.
        accepted
            .start
            .send((id, inputs.clone()))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(conn)
    }

    fn refuse(&mut self, socket: &Arc<ThreadSocket>, accepted: Accepted) {
        // The shutdown ends the reader's first read; dropping `start` ends
        // the reader, and with it its reference to the socket.
        let _ = socket.stream().shutdown(std::net::Shutdown::Both);
        drop(accepted.start);
        bury(&self.graveyard, [accepted.thread]);
    }

    fn wait_writable(
        &mut self,
        id: ChannelId,
        socket: &Arc<ThreadSocket>,
        conn: &mut ThreadConn,
        inputs: &ThreadInputs,
    ) -> io::Result<()> {
        // A finished waiter keeps its stack mapped until it is joined: join
        // this connection's finished waiters now, or a peer whose buffer
        // fills a thousand times holds a thousand stacks until it closes
        // (memory bounded by configuration, docs/design.md §4, 8).
        let (finished, alive): (Vec<_>, Vec<_>) = conn
            .threads
            .drain(..)
            .partition(std::thread::JoinHandle::is_finished);
        conn.threads = alive;
        for thread in finished {
            let _ = thread.join();
        }
        let (socket, stop, inputs) = (socket.clone(), conn.stop.clone(), inputs.clone());
        let thread = std::thread::Builder::new()
            .name("tether-wait".into())
            .stack_size(self.options.stack_size)
            .spawn(move || conn::run_waiter(id, socket, stop, inputs))?;
        conn.threads.push(thread);
        Ok(())
    }

    fn release(&mut self, socket: &Arc<ThreadSocket>, conn: &mut ThreadConn, how: Release) {
        conn.stop.store(true, Ordering::Release);
        if how == Release::Abort {
            socket.wake_reader();
        }
    }

    fn finish(&mut self) {
        self.reap(true);
    }
}
