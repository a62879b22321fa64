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
        /// What the runtime started for it (see [`Glue::Accepted`](crate::Glue::Accepted)).
        accepted: A,
    },
    /// A reader read bytes.
    Received(ChannelId, Bytes),
    /// A reader ended and dropped its socket reference: report how, then
    /// detach it.
    ReaderDone(ChannelId, ReadEnd),
    /// A waiter saw the socket writable again.
    Writable(ChannelId),
    /// A waiter ended and dropped its socket reference: detach it.
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

/// The sending ends of the driver's input queues, cloned into every task or
/// thread that reports socket events. Both async (`*_async`) and blocking
/// forms; both wait for room, never drop an input.
#[derive(Debug)]
pub struct Inputs<S, A> {
    pub(crate) reader: Sender<Input<S, A>>,
    pub(crate) control: Sender<Input<S, A>>,
}

impl<S, A> Clone for Inputs<S, A> {
    fn clone(&self) -> Self {
        Inputs {
            reader: self.reader.clone(),
            control: self.control.clone(),
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

    /// Posts `input`, waiting for room.
    pub async fn send(&self, input: Input<S, A>) -> Result<(), DriverGone<Input<S, A>>> {
        self.queue(&input)
            .send(input)
            .await
            .map_err(|e| DriverGone(e.into_inner()))
    }

    /// Posts `input`, blocking the thread while the queue is full.
    pub fn send_blocking(&self, input: Input<S, A>) -> Result<(), DriverGone<Input<S, A>>> {
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
        Inputs { reader, control },
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
