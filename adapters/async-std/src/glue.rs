//! The async I/O glue: the listener task, one reader task per connection,
//! and a short-lived waiter task while a peer's send buffer is full. Written
//! against `async-io` (reactor, `Async` sockets, timers), which async-std
//! and smol both run on; only [`Runtime`] names a runtime.
//!
//! The driver (in `tether-adapter`) writes every socket itself, without
//! blocking; these tasks only read, wait, and report.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use futures_lite::future;
use tether_adapter::listen::AcceptErrors;
use tether_adapter::{
    AdapterCounters, Glue, Input, Inputs, ListenContext, ReadEnd, Release, Sleep,
};
use tether_core::ChannelId;

use crate::runtime::Runtime;

/// Bytes one read may take; a stack buffer, so an idle connection holds no
/// buffer memory at all.
const READ_CHUNK: usize = 16 * 1024;

/// A connected socket registered with the reactor.
#[derive(Debug)]
pub struct AsyncSocket(Async<TcpStream>);

impl tether_adapter::Socket for AsyncSocket {
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // The std socket inside `Async` is non-blocking.
        self.0.get_ref().write_vectored(bufs)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.get_ref().shutdown(how)
    }
    fn set_linger_zero(&self) -> io::Result<()> {
        socket2::SockRef::from(self.0.get_ref()).set_linger(Some(Duration::ZERO))
    }
}

type AsyncInputs = Inputs<AsyncSocket, ()>;

/// Per connection: closing `cancel` makes its reader and waiter let go.
#[derive(Debug)]
pub struct AsyncConn {
    cancel: Sender<()>,
    cancelled: Receiver<()>,
}

/// [`Glue`] for async-io based runtimes (one per shard).
#[derive(Debug)]
pub struct AsyncGlue<R> {
    pub(crate) runtime: R,
}

impl<R: Runtime> Glue for AsyncGlue<R> {
    type Socket = AsyncSocket;
    type Accepted = ();
    type Conn = AsyncConn;

    fn open(
        &mut self,
        id: ChannelId,
        socket: &Arc<AsyncSocket>,
        (): (),
        inputs: &AsyncInputs,
    ) -> io::Result<AsyncConn> {
        let (cancel, cancelled) = async_channel::bounded(1);
        self.runtime.spawn(read_loop(
            id,
            socket.clone(),
            inputs.clone(),
            cancelled.clone(),
        ));
        Ok(AsyncConn { cancel, cancelled })
    }

    fn refuse(&mut self, _socket: &Arc<AsyncSocket>, (): ()) {}

    fn wait_writable(
        &mut self,
        id: ChannelId,
        socket: &Arc<AsyncSocket>,
        conn: &mut AsyncConn,
        inputs: &AsyncInputs,
    ) -> io::Result<()> {
        self.runtime.spawn(wait_writable(
            id,
            socket.clone(),
            inputs.clone(),
            conn.cancelled.clone(),
        ));
        Ok(())
    }

    fn release(&mut self, _socket: &Arc<AsyncSocket>, conn: &mut AsyncConn, _how: Release) {
        // Offline: the socket is already shut down both ways, so a reader
        // would see EOF anyway; abort: no FIN may be sent, so cancel.
        conn.cancel.close();
    }

    fn finish(&mut self) {}
}

/// [`Sleep`] on async-io's timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncIoSleep;

impl Sleep for AsyncIoSleep {
    async fn sleep_until(&mut self, at: Instant) {
        Timer::at(at).await;
    }
}

/// Accepts until every shard's driver has ended, handing each connection
/// to the next shard that accepts. While every shard has paused accepting
/// (at its channel limit, or shutting down), it keeps accepting but refuses
/// each connection itself with the refusal line, so a full server says so
/// instead of leaving clients in the backlog.
pub(crate) async fn listen(listener: Async<TcpListener>, context: ListenContext<AsyncSocket, ()>) {
    let ListenContext {
        mut router,
        counters,
        stopped,
        stop,
        options,
    } = context;
    let mut errors = AcceptErrors::new("chat");
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            let _closed = stop.recv().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, peer))) => {
                errors.success();
                AdapterCounters::bump(&counters.accepted);
                let Some(inputs) = router.pick() else {
                    if let Some(line) = &options.refuse_line {
                        let _ = stream.get_ref().write(line);
                    }
                    AdapterCounters::bump(&counters.refused_full);
                    continue;
                };
                // Small chat lines and FINs should leave at once.
                let _ = stream.get_ref().set_nodelay(true);
                let input = Input::Accepted {
                    socket: Arc::new(AsyncSocket(stream)),
                    peer,
                    accepted: (),
                };
                // A shard that just ended refuses nothing more: the socket
                // in the returned input is dropped, i.e. closed.
                let _ = inputs.send(input).await;
            }
            Some(Err(e)) => {
                AdapterCounters::bump(&counters.accept_errors);
                let wait = errors.failed(&e);
                if !wait.is_zero() {
                    Timer::after(wait).await;
                }
            }
        }
    }
    // Closed before `stopped` is released: once a handle sees the server
    // stopped, nothing listens on its port.
    drop(listener);
    drop(stopped);
}

/// Reads until EOF, an error, or cancellation, posting bytes to the
/// driver (waiting while its reader queue is full: that is how TCP pushes
/// back on a flooding peer); then drops its socket and reports (which
/// detaches it, so the driver's close drops the last reference).
async fn read_loop(
    id: ChannelId,
    socket: Arc<AsyncSocket>,
    inputs: AsyncInputs,
    cancel: Receiver<()>,
) {
    // Whether the last read filled its buffer: read more at a time.
    let mut big = false;
    let end = loop {
        let ready = future::or(async { Some(socket.0.readable().await) }, async {
            let _closed = cancel.recv().await;
            None
        })
        .await;
        match ready {
            None => break ReadEnd::Released,
            Some(Err(e)) => break ReadEnd::Error(e.kind()),
            Some(Ok(())) => {}
        }
        // The buffer lives only inside `read_chunk`, never across an
        // await: an idle connection's task holds no buffer.
        let read = tether_adapter::read_chunk(big, READ_CHUNK, |buf| socket.0.get_ref().read(buf));
        match read {
            Ok((data, _)) if data.is_empty() => break ReadEnd::Eof,
            Ok((data, filled)) => {
                big = filled;
                if inputs.send(Input::Received(id, data)).await.is_err() {
                    break ReadEnd::Released;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break ReadEnd::Error(e.kind()),
        }
    };
    drop(socket);
    let _gone = inputs.send(Input::ReaderDone(id, end)).await;
}

/// Waits until the socket takes bytes again (or the connection is
/// released), then drops its reference and reports (which also detaches
/// it).
async fn wait_writable(
    id: ChannelId,
    socket: Arc<AsyncSocket>,
    inputs: AsyncInputs,
    cancel: Receiver<()>,
) {
    future::or(
        async {
            let _ = socket.0.writable().await;
        },
        async {
            let _closed = cancel.recv().await;
        },
    )
    .await;
    drop(socket);
    let _gone = inputs.send(Input::WaiterDone(id)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upper bound on a reader task's state: what an idle connection
    /// costs besides its socket.
    const MAX_READER_FUTURE: usize = 512;

    #[test]
    fn idle_tasks_hold_no_read_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let socket = Arc::new(AsyncSocket(Async::new(client).unwrap()));
        let (inputs, _queues) = tether_adapter::test_inputs::<AsyncSocket, ()>();
        let (_cancel, cancelled) = async_channel::bounded(1);
        let id = ChannelId::from_parts(0, 0, 1).unwrap();
        let reader = read_loop(id, socket.clone(), inputs.clone(), cancelled.clone());
        let size = std::mem::size_of_val(&reader);
        assert!(size <= MAX_READER_FUTURE, "{size}");
        let waiter = wait_writable(id, socket, inputs, cancelled);
        let size = std::mem::size_of_val(&waiter);
        assert!(size <= MAX_READER_FUTURE, "{size}");
    }
}
