//! The tasks around sockets: the listener, and one reader and one writer
//! per connection. They hold no policy: they move bytes and report what
//! happened to the driver, which owns the hub.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::future;
use tether_core::ChannelId;

use crate::driver::Input;

/// Bytes one read may take; a stack buffer, so an idle connection costs
/// no buffer memory at all.
const READ_CHUNK: usize = 16 * 1024;

/// A socket shared by the driver and the connection's two tasks. The fd is
/// closed when the last clone drops.
pub(crate) type Socket = Arc<Async<TcpStream>>;

/// An upper bound on a reader task's state, checked in tests: what an
/// idle connection costs besides its socket.
#[cfg(test)]
const MAX_READER_FUTURE: usize = 512;

/// How a reader task ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadEnd {
    /// `read` returned 0: the peer's FIN (or our own shutdown of the read side).
    Eof,
    /// `read` failed.
    Error(io::ErrorKind),
    /// The driver told it to let go (abort or offline).
    Cancelled,
}

/// How a writer task ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteEnd {
    /// Its queue was closed or it was cancelled.
    Released,
    /// `write` failed.
    Error(io::ErrorKind),
}

/// Accepts connections until the driver goes away. `control` carries
/// `false` to pause accepting and `true` to resume (invariant 12: the hub
/// decides, the listener obeys).
pub(crate) async fn listen(
    listener: Async<TcpListener>,
    inputs: Sender<Input>,
    control: Receiver<bool>,
    stopped: Sender<()>,
) {
    accept_until_stopped(&listener, inputs, control).await;
    // Closed before `stopped` is released: once a handle sees the server
    // stopped, nothing listens on its port.
    drop(listener);
    drop(stopped);
}

async fn accept_until_stopped(
    listener: &Async<TcpListener>,
    inputs: Sender<Input>,
    control: Receiver<bool>,
) {
    let mut accepting = true;
    loop {
        if !accepting {
            match control.recv().await {
                Ok(resume) => accepting = resume,
                Err(_) => return,
            }
            continue;
        }
        enum Step {
            Accepted(io::Result<(Async<TcpStream>, SocketAddr)>),
            Control(Option<bool>),
        }
        let step = future::or(async { Step::Control(control.recv().await.ok()) }, async {
            Step::Accepted(listener.accept().await)
        })
        .await;
        match step {
            Step::Accepted(Ok((stream, peer))) => {
                if inputs.send(Input::Accepted(stream, peer)).await.is_err() {
                    return;
                }
            }
            // Out of fds or a connection reset before accept: retry soon,
            // without spinning.
            Step::Accepted(Err(_)) => {
                Timer::after(Duration::from_millis(5)).await;
            }
            Step::Control(Some(resume)) => accepting = resume,
            Step::Control(None) => return,
        }
    }
}

/// Reads until EOF, an error, or cancellation, forwarding bytes to the
/// driver; then drops its socket and detaches (in that order, so the
/// driver's `Close` drops the last clone).
pub(crate) async fn read_loop(
    id: ChannelId,
    socket: Socket,
    inputs: Sender<Input>,
    cancel: Receiver<()>,
) {
    let end = loop {
        let ready = future::or(async { Some(socket.readable().await) }, async {
            let _closed = cancel.recv().await;
            None
        })
        .await;
        match ready {
            None => break ReadEnd::Cancelled,
            Some(Err(e)) => break ReadEnd::Error(e.kind()),
            Some(Ok(())) => {}
        }
        // The buffer lives only in this block, never across an await, so
        // it is on the poller's stack and not in the task: an idle
        // connection costs no buffer.
        let read = {
            let mut buf = [0u8; READ_CHUNK];
            let mut stream = socket.get_ref();
            stream
                .read(&mut buf)
                .map(|n| Bytes::copy_from_slice(&buf[..n]))
        };
        match read {
            Ok(data) if data.is_empty() => break ReadEnd::Eof,
            Ok(data) => {
                // Waits while the driver is behind: TCP pushes back on the peer.
                if inputs.send(Input::Received(id, data)).await.is_err() {
                    break ReadEnd::Cancelled;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break ReadEnd::Error(e.kind()),
        }
    };
    drop(socket);
    // Must arrive (it detaches the holder): wait for room, never drop it.
    let _gone = inputs.send(Input::ReaderDone(id, end)).await;
}

/// Writes the channel's transmits in order, reporting each write's size,
/// until its queue closes, it is cancelled, or a write fails. A peer that
/// does not read blocks this task only.
pub(crate) async fn write_loop(
    id: ChannelId,
    socket: Socket,
    queue: Receiver<Bytes>,
    inputs: Sender<Input>,
    cancel: Receiver<()>,
) {
    let end = 'outer: loop {
        let next = future::or(async { queue.recv().await.ok() }, async {
            let _closed = cancel.recv().await;
            None
        })
        .await;
        let Some(data) = next else {
            break WriteEnd::Released;
        };
        let mut offset = 0;
        while offset < data.len() {
            let written = future::or(
                async {
                    Some(
                        socket
                            .write_with(|s| {
                                let mut s = s;
                                s.write(&data[offset..])
                            })
                            .await,
                    )
                },
                async {
                    let _closed = cancel.recv().await;
                    None
                },
            )
            .await;
            match written {
                None => break 'outer WriteEnd::Released,
                Some(Ok(0)) => break 'outer WriteEnd::Error(io::ErrorKind::WriteZero),
                Some(Ok(n)) => {
                    offset += n;
                    let _gone = inputs.send(Input::Written(id, n)).await;
                }
                Some(Err(e)) => break 'outer WriteEnd::Error(e.kind()),
            }
        }
    };
    drop(socket);
    let _gone = inputs.send(Input::WriterDone(id, end)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_tasks_hold_no_read_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let socket: Socket = Arc::new(Async::new(client).unwrap());
        let (inputs, _rx) = async_channel::bounded(1);
        let (_cancel, cancelled) = async_channel::bounded(1);
        let id = ChannelId::from_parts(0, 0, 1).unwrap();
        let reader = read_loop(id, socket.clone(), inputs.clone(), cancelled.clone());
        assert!(
            std::mem::size_of_val(&reader) <= MAX_READER_FUTURE,
            "{}",
            std::mem::size_of_val(&reader)
        );
        let (_queue_tx, queue) = async_channel::unbounded();
        let writer = write_loop(id, socket, queue, inputs, cancelled);
        assert!(
            std::mem::size_of_val(&writer) <= MAX_READER_FUTURE * 2,
            "{}",
            std::mem::size_of_val(&writer)
        );
    }
}
