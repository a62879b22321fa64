//! What socket tasks and threads tell the driver, and the two bounded
//! queues it travels on.
//!
//! * **reader queue**: [`Input::Received`] and [`Input::ReaderDone`], in
//!   each reader's order. The driver stops taking from it while the
//!   application has too many received bytes unread (see
//!   [`Options::event_backlog`](crate::Options::event_backlog)); readers
//!   then wait, stop reading, and TCP pushes back on the peer.
//! * **control queue**: accepted connections and writability. Always
//!   served, so write progress is never stuck behind received data (the
//!   lag that once made the server evict its own prompt readers).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use tether_core::ChannelId;

use crate::credit::{self, Credit, ReadAhead};

/// One thing that happened on a socket.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<S, A> {
    /// The listener accepted a connection.
    Accepted {
        /// The socket.
        socket: Arc<S>,
        /// The peer's address.
        peer: SocketAddr,
        /// What the runtime started for it (see [`Glue::Accepted`](crate::runtime::Glue::Accepted)).
        accepted: A,
        /// The protocol of the listener that accepted it
        /// ([`ListenContext::transport`](crate::runtime::ListenContext::transport)).
        transport: crate::Transport,
    },
    /// A reader read bytes.
    Received(ChannelId, Bytes),
    /// A reader ended and dropped its socket reference: report how, then
    /// detach it.
    ReaderDone(ChannelId, ReadEnd),
    /// A writability waiter ended (the socket's send buffer has room again,
    /// or the connection was released) and dropped its socket reference:
    /// write what is queued, and detach it.
    WaiterDone(ChannelId),
}

/// How a reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadEnd {
    /// `read` returned 0: the peer's FIN (or our own shutdown).
    Eof,
    /// `read` failed.
    Error(io::ErrorKind),
    /// It was told to let go (abort or offline).
    Released,
}

/// Read chunks one connection may have posted that its driver has not yet
/// taken (docs/design.md §5.2). Its reader waits for the driver before
/// reading more, so the kernel's receive window, not server memory, holds
/// what a flooding peer sends beyond this: TCP pushes back on that peer
/// alone. (A shared reader queue is the second line: [`Options::reader_queue`](crate::Options::reader_queue).)
pub const READ_AHEAD: usize = 2;

/// The sending ends of the driver's input queues, cloned into every task or
/// thread that reports socket events. Both async (`*_async`) and blocking
/// forms; both wait for room, never drop an input.
///
/// The `Inputs` a connection's [`Glue::open`](crate::runtime::Glue::open) is given
/// carry that connection's read-ahead credit: posting an
/// [`Input::Received`] through them waits while [`READ_AHEAD`] chunks of
/// that connection are still waiting for the driver.
#[derive(Debug)]
pub struct Inputs<S, A> {
    pub(crate) reader: Sender<Input<S, A>>,
    pub(crate) control: Sender<Input<S, A>>,
    /// This connection's read-ahead credit (`None` on the shard-wide
    /// inputs).
    pub(crate) ahead: Option<Credit>,
}

impl<S, A> Clone for Inputs<S, A> {
    fn clone(&self) -> Self {
        Inputs {
            reader: self.reader.clone(),
            control: self.control.clone(),
            ahead: self.ahead.clone(),
        }
    }
}

/// The driver has stopped: nobody reads inputs any more. Carries the
/// input back (an accepted socket in it may need closing).
#[derive(Debug, thiserror::Error)]
#[error("the driver has stopped")]
pub struct DriverGone<T>(pub T);

impl<S, A> Inputs<S, A> {
    fn queue(&self, input: &Input<S, A>) -> &Sender<Input<S, A>> {
        match input {
            Input::Received(..) | Input::ReaderDone(..) => &self.reader,
            _ => &self.control,
        }
    }

    /// The same queues with a fresh read-ahead credit of [`READ_AHEAD`]
    /// chunks, for one connection; the driver keeps the returned end and
    /// hands a token back for each chunk it takes.
    pub(crate) fn for_connection(&self) -> (Self, ReadAhead) {
        let (ahead, taken) = credit::read_ahead();
        let inputs = Inputs {
            reader: self.reader.clone(),
            control: self.control.clone(),
            ahead: Some(ahead),
        };
        (inputs, taken)
    }

    /// The credit a `Received` needs, if this connection has one.
    fn credit(&self, input: &Input<S, A>) -> Option<&Credit> {
        match input {
            Input::Received(..) => self.ahead.as_ref(),
            _ => None,
        }
    }

    /// Posts `input`, waiting for room (and, for received bytes, for the
    /// driver to take this connection's earlier chunks).
    pub async fn send(&self, input: Input<S, A>) -> Result<(), DriverGone<Input<S, A>>> {
        if let Some(ahead) = self.credit(&input)
            && ahead.take().await.is_err()
        {
            return Err(DriverGone(input));
        }
        self.queue(&input)
            .send(input)
            .await
            .map_err(|e| DriverGone(e.into_inner()))
    }

    /// Posts `input`, blocking the thread while the queue is full (or, for
    /// received bytes, while this connection's earlier chunks wait).
    pub fn send_blocking(&self, input: Input<S, A>) -> Result<(), DriverGone<Input<S, A>>> {
        if let Some(ahead) = self.credit(&input)
            && ahead.take_blocking().is_err()
        {
            return Err(DriverGone(input));
        }
        self.queue(&input)
            .send_blocking(input)
            .map_err(|e| DriverGone(e.into_inner()))
    }
}

/// The receiving ends, owned by the driver.
pub(crate) struct InputQueues<S, A> {
    pub reader: Receiver<Input<S, A>>,
    pub control: Receiver<Input<S, A>>,
}

/// Makes the two queues: `reader` holds at most `reader_cap` inputs,
/// `control` at most `control_cap`.
pub(crate) fn queues<S, A>(
    reader_cap: usize,
    control_cap: usize,
) -> (Inputs<S, A>, InputQueues<S, A>) {
    let (reader, reader_rx) = async_channel::bounded(reader_cap.max(1));
    let (control, control_rx) = async_channel::bounded(control_cap.max(1));
    (
        Inputs {
            reader,
            control,
            ahead: None,
        },
        InputQueues {
            reader: reader_rx,
            control: control_rx,
        },
    )
}

/// Bytes a reader takes per read while its peer sends little: a stack
/// buffer this small costs next to nothing to zero, which matters when a
/// connection's whole life is a few short reads.
pub const SMALL_READ: usize = 2 << 10;

/// One read into a stack buffer, for async readers that keep no buffer
/// across an `await` (so an idle connection holds none): `SMALL_READ` bytes
/// at first, up to `max` (at most 16 KiB) once a read filled the small
/// buffer. Returns the bytes and whether they filled the buffer (pass that
/// as `big` next time).
pub fn read_chunk(
    big: bool,
    max: usize,
    read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
) -> std::io::Result<(Bytes, bool)> {
    fn with<const N: usize>(
        len: usize,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<(Bytes, bool)> {
        let mut buf = [0u8; N];
        let buf = &mut buf[..len.clamp(1, N)];
        let n = read(buf)?;
        Ok((Bytes::copy_from_slice(&buf[..n]), n == buf.len()))
    }
    if big && max > SMALL_READ {
        with::<{ 16 << 10 }>(max, read)
    } else {
        with::<SMALL_READ>(max, read)
    }
}
