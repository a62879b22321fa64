//! What a runtime adapter provides: the I/O glue. Everything else — the
//! hub, write accounting, flow control, batching, commands, events — is the
//! [driver](crate::driver)'s, written once.
//!
//! A runtime implements three small traits:
//!
//! * [`Socket`]: the operations the driver performs on a connected socket
//!   from its own task or thread. All of them return at once; the driver
//!   never blocks on a socket.
//! * [`Glue`]: starting a connection's reader, waiting for a socket to become
//!   writable again, waking a connection's holders, pausing the listener.
//! * [`Sleep`]: sleeping until an instant (the hub's next deadline).

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Instant;

use tether_core::ChannelId;

use crate::input::Inputs;

/// A connected socket, as the driver uses it.
pub trait Socket: Send + Sync + 'static {
    /// Writes as much of `bufs` as the kernel takes **without blocking**:
    /// `Err(WouldBlock)` when its send buffer is full — as the kernel says
    /// it at this call, never from a readiness cached by the runtime: the
    /// driver's probe of a slow but steady reader relies on it
    /// (docs/design.md §5.2; see the tokio glue).
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// `shutdown(2)`.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    /// `SO_LINGER` 0: the coming close sends RST.
    fn set_linger_zero(&self) -> io::Result<()>;
}

/// How a connection's holders are told to let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The channel is offline and its socket was shut down both ways: a
    /// reader blocked in `read` wakes with 0 by itself; cancel the rest.
    Offline,
    /// Abort: no FIN may be sent. Wake the reader without one (on Linux,
    /// `shutdown(Read)`, or cancel its task) and cancel every waiter.
    Abort,
}

/// The runtime's part of the adapter. Called only from the driver.
pub trait Glue: Send + 'static {
    /// The socket type.
    type Socket: Socket;
    /// What the acceptor hands over with a socket besides its address (for
    /// the threads adapter: a reader thread already started, waiting for
    /// its id).
    type Accepted: Send + 'static;
    /// The runtime's per-connection state (cancellation handles, threads).
    type Conn: Send + 'static;

    /// Starts the connection's reader, which the driver already attached as
    /// the channel's first holder. The reader posts
    /// [`Input::Received`](crate::runtime::Input::Received) for what it reads and, as
    /// its last act after dropping its socket reference,
    /// [`Input::ReaderDone`](crate::runtime::Input::ReaderDone) (which detaches it).
    /// An error refuses the connection (it is counted and closed).
    fn open(
        &mut self,
        id: ChannelId,
        socket: &Arc<Self::Socket>,
        accepted: Self::Accepted,
        inputs: &Inputs<Self::Socket, Self::Accepted>,
    ) -> io::Result<Self::Conn>;

    /// The hub refused the connection: make whatever `accepted` started end
    /// (the socket closes when the driver drops its reference).
    fn refuse(&mut self, socket: &Arc<Self::Socket>, accepted: Self::Accepted);

    /// Starts a waiter that, once the socket's send buffer has room again
    /// (or the connection is released), drops its socket reference and
    /// posts [`Input::WaiterDone`](crate::runtime::Input::WaiterDone): that
    /// one input both reports writability and detaches the waiter. The
    /// driver attached it as a holder before this call; an error detaches
    /// it again.
    fn wait_writable(
        &mut self,
        id: ChannelId,
        socket: &Arc<Self::Socket>,
        conn: &mut Self::Conn,
        inputs: &Inputs<Self::Socket, Self::Accepted>,
    ) -> io::Result<()>;

    /// Wakes every holder of the connection so it lets go.
    fn release(&mut self, socket: &Arc<Self::Socket>, conn: &mut Self::Conn, how: Release);

    /// This shard's shutdown is complete and its sockets are closed: end
    /// whatever the runtime still runs for it (join threads). The listener
    /// stops by itself once every shard has finished
    /// ([`ListenContext::stop`](crate::runtime::ListenContext::stop)).
    fn finish(&mut self);
}

/// Sleeping until an instant, the runtime's way.
pub trait Sleep: Send + 'static {
    /// A future that completes at `at` (or at once if it is past).
    fn sleep_until(&mut self, at: Instant) -> impl Future<Output = ()> + Send;
}
