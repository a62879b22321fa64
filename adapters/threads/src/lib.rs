//! # tether-threads
//!
//! Drives [`tether_core`] from blocking `std::net` sockets and std threads:
//! the seed's architecture (workers read, one thread decides and writes),
//! with no guesswork about when a socket may be closed.
//!
//! ## Threads
//!
//! * **owner** — the only thread that touches the [`Hub`](tether_core::Hub).
//!   It waits on one `mpsc` channel with `recv_timeout` set to the hub's
//!   [`poll_timeout`](tether_core::Hub::poll_timeout), feeds every input,
//!   executes every action and sends every event to the application's
//!   [`Events`] receiver. It is also the only thread that calls `shutdown`
//!   or closes a socket.
//! * **acceptor** — blocks in `accept`, starts the connection's reader
//!   thread (so the owner never spends a thread start's tens of
//!   microseconds) and hands both to the owner. On `PauseAccept` it stops
//!   calling `accept` (it waits on a condition variable) until
//!   `ResumeAccept`; the kernel backlog holds new connections meanwhile. A
//!   call already blocked in `accept` when the pause comes may still take
//!   one connection, which the hub refuses and the owner closes.
//! * **reader**, one per channel — blocks in `read`, posts what it reads
//!   (tagged with the id the hub gave its connection, which the owner sends
//!   it), and at EOF or error lets go (detaches).
//! * **writer**, one per channel *only while its peer lags* — see below.
//! * the application's own threads, which command the server through a
//!   cloneable [`Handle`]: it posts a command to the owner and, for calls
//!   with a verdict, waits on a one-shot reply. No lock is shared with the
//!   owner, so 8 threads kicking one id at once get exactly one `Ok`.
//!
//! ## Writes: never blocked by a slow peer
//!
//! The owner writes a transmit itself with a non-blocking send
//! (`MSG_DONTWAIT`): a peer that reads keeps up, and the common case costs
//! no thread and no hand-off. When the kernel's send buffer is full, the
//! rest goes to a **writer thread started for that channel**, which writes
//! with blocking calls and reports progress
//! ([`handle_written`](tether_core::Hub::handle_written)); every later
//! transmit of the channel queues behind it, so bytes stay in order. The
//! writer's queue is bounded by the hub: a transmit exists only for bytes
//! the hub accepted under [`Config::queue_limit`](tether_core::Config),
//! so a peer that never reads costs at most that much memory, and then is
//! rejected or evicted by the overflow policy.
//!
//! Why not write timeouts on the owner thread alone? A timeout of `t` would
//! stall *every* channel for `t` whenever one peer lags. Why not a writer
//! thread for every channel from the start? It doubles threads and
//! hand-offs per connection for peers that never need it.
//!
//! A writer blocked on a full buffer is woken by `shutdown(Both)` (EPIPE)
//! when its channel goes offline. An abort must not send FIN, so it cannot
//! use that: the writer's socket carries a short write timeout
//! ([`Options::write_tick`]) so it checks a stop flag at least once per tick.
//!
//! A peer's reset can reach a reader as a plain EOF (`read` returns 0) when
//! a writer blocked in `send` took the socket's pending `ECONNRESET` first;
//! the reader then tells FIN from RST with a zero-length non-blocking send,
//! which fails only on a reset socket (or one whose sending side we shut,
//! which the owner flags before it does so). So a reset is reported as
//! `PeerReset` whichever thread woke first.
//!
//! ## When the socket is closed, and why that is safe
//!
//! The seed closed a kicked socket 60 s after the kick, *hoping* its worker
//! threads were done with it by then. Here every thread that uses a socket
//! is a *holder*: the owner [`attach`](tether_core::Hub::attach)es it before
//! anything could close the socket (the reader in the same step as the hub
//! accepts the connection; a writer before it is started), and it
//! [`detach`](tether_core::Hub::detach)es as the last thing it does. A kick
//! wakes holders at once: a graceful kick's FIN leads to the peer's EOF and
//! then `Shutdown(Both)` (or, if the peer never answers, the flush deadline
//! escalates to an abort), an abort does `shutdown(Read)`; either makes a
//! reader blocked in `read` return 0. The
//! reader drops its reference to the socket, *then* posts its detach. The
//! hub emits `Close` only when no holder is attached (invariant 5), so when
//! the owner executes it, its own reference to the socket is the last one and
//! dropping it closes the descriptor. No thread can be inside a call on that
//! descriptor, so it cannot be closed under a reader — the seed's race —
//! nor reused by the kernel for a new connection while an old reader still
//! uses the number. The delay is exactly as long as the holders need, in
//! practice microseconds after the peer's EOF, not 60 s.
//!
//! ## Limits
//!
//! * Inbound data is not flow-controlled: a reader reads as fast as its peer
//!   sends, and [`Events`] is unbounded (see there for why). An application
//!   that cannot keep up with a flooding peer should kick it.
//! * Linux semantics are relied on: `shutdown(Read)` wakes a blocked
//!   `read`, `shutdown` on a listening socket wakes a blocked `accept` (a
//!   self-connection is the fallback), `MSG_DONTWAIT` for the owner's sends.
//!
//! ## Example
//!
//! ```no_run
//! use tether_core::{Config, Event, KickMode};
//! use tether_threads::Server;
//!
//! let (server, events) = Server::bind("127.0.0.1:7000", Config::default())?;
//! let handle = server.handle();
//! for event in events {
//!     match event {
//!         Event::Opened { id, .. } => handle.send(id, format!("hello {id}\n"))?,
//!         Event::Received { id, data } if data.starts_with(b"bye") => {
//!             handle.kick(id, KickMode::Graceful, 0)?
//!         }
//!         Event::Received { id, data } => handle.send(id, data)?,
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod acceptor;
mod conn;
mod handle;
mod owner;
mod server;

pub use handle::{AdapterStats, CallError, Handle, Stopped};
pub use server::{Events, Options, Server, StartError};

pub use tether_core;
