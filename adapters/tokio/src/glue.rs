//! The tokio I/O glue: the listener task, one reader task per connection,
//! and a short-lived waiter task while a peer's send buffer is full, on
//! `tokio::net` sockets and `tokio::time` timers.
//!
//! The driver (in `tether-adapter`) writes every socket itself, without
//! blocking; these tasks only read, wait, and report.

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::future;
use tether_adapter::listen::AcceptErrors;
use tether_adapter::{
    AdapterCounters, Glue, Input, Inputs, ListenContext, ReadEnd, Release, Sleep,
};
use tether_core::ChannelId;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle as Runtime;

/// The largest read: a stack buffer, so an idle connection holds no
/// buffer memory at all. [`Options::read_buffer`](tether_adapter::Options::read_buffer)
/// may lower it.
const READ_CHUNK: usize = 16 * 1024;

/// A connected socket registered with tokio's reactor.
#[derive(Debug)]
pub struct TokioSocket {
    stream: TcpStream,
    /// tokio has reported this socket writable at least once (see
    /// [`write_vectored`](tether_adapter::Socket::write_vectored)).
    primed: AtomicBool,
}

impl TokioSocket {
    fn new(stream: TcpStream) -> Self {
        TokioSocket {
            stream,
            primed: AtomicBool::new(false),
        }
    }

    /// The tokio stream.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl tether_adapter::Socket for TokioSocket {
    /// `TcpStream::try_write_vectored`, which never blocks.
    ///
    /// tokio does not even try the write while its cached readiness says
    /// "not writable", and a socket's readiness is first learnt at the
    /// reactor's next turn after it was registered — unless tokio assumes
    /// it, as it does for accepted sockets since 1.54. So until tokio has
    /// taken one write, a refusal is checked with a direct write (`send`,
    /// bypassing the cache): otherwise, on an older tokio, the first
    /// transmit to a new connection — a greeting, or the refusal line of a
    /// full server just before the socket is closed — would wait for a
    /// waiter or be lost. A direct write leaves tokio's readiness as it is,
    /// which can only make a later `writable()` return early (the driver
    /// then writes again), never miss a wake-up.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let tried = self.stream.try_write_vectored(bufs);
        if self.primed.load(Ordering::Relaxed) {
            return tried;
        }
        match tried {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket2::SockRef::from(&self.stream).send_vectored(bufs)
            }
            other => {
                self.primed.store(true, Ordering::Relaxed);
                other
            }
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        socket2::SockRef::from(&self.stream).shutdown(how)
    }

    fn set_linger_zero(&self) -> io::Result<()> {
        // The close that follows is the driver's drop of a non-blocking
        // socket: with a zero linger it sends RST and never blocks.
        socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO))
    }
}

type TokioInputs = Inputs<TokioSocket, ()>;

/// Per connection: closing `cancel` makes its reader and waiter let go.
#[derive(Debug)]
pub struct TokioConn {
    cancel: Sender<()>,
    cancelled: Receiver<()>,
}

/// [`Glue`] for tokio (one per shard).
#[derive(Debug)]
pub struct TokioGlue {
    runtime: Runtime,
    /// Bytes one read takes at most.
    read_len: usize,
}

impl TokioGlue {
    /// The glue of one shard, spawning its tasks on `runtime`.
    pub(crate) fn new(runtime: Runtime, options: &tether_adapter::Options) -> TokioGlue {
        TokioGlue {
            runtime,
            read_len: options.read_buffer.clamp(1, READ_CHUNK),
        }
    }
}

impl Glue for TokioGlue {
    type Socket = TokioSocket;
    type Accepted = ();
    type Conn = TokioConn;

    fn open(
        &mut self,
        id: ChannelId,
        socket: &Arc<TokioSocket>,
        (): (),
        inputs: &TokioInputs,
    ) -> io::Result<TokioConn> {
        let (cancel, cancelled) = async_channel::bounded(1);
        drop(self.runtime.spawn(read_loop(
            id,
            socket.clone(),
            inputs.clone(),
            cancelled.clone(),
            self.read_len,
        )));
        Ok(TokioConn { cancel, cancelled })
    }

    fn refuse(&mut self, _socket: &Arc<TokioSocket>, (): ()) {}

    fn wait_writable(
        &mut self,
        id: ChannelId,
        socket: &Arc<TokioSocket>,
        conn: &mut TokioConn,
        inputs: &TokioInputs,
    ) -> io::Result<()> {
        drop(self.runtime.spawn(wait_writable(
            id,
            socket.clone(),
            inputs.clone(),
            conn.cancelled.clone(),
        )));
        Ok(())
    }

    fn release(&mut self, _socket: &Arc<TokioSocket>, conn: &mut TokioConn, _how: Release) {
        // Offline: the socket is already shut down both ways, so a reader
        // would see EOF anyway; abort: no FIN may be sent, so cancel.
        conn.cancel.close();
    }

    fn finish(&mut self) {}
}

/// [`Sleep`] on `tokio::time`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

impl Sleep for TokioSleep {
    async fn sleep_until(&mut self, at: Instant) {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Accepts until every shard's driver has ended, handing each connection
/// to the next shard that accepts. While every shard has paused accepting
/// (at its channel limit, or shutting down), it keeps accepting but refuses
/// each connection itself with the refusal line, so a full server says so
/// instead of leaving clients in the backlog.
pub(crate) async fn listen(listener: TcpListener, context: ListenContext<TokioSocket, ()>) {
    let ListenContext {
        mut router,
        counters,
        stopped,
        stop,
        options,
    } = context;
    let mut errors = AcceptErrors::new("chat");
    loop {
        // `accept` is cancel-safe: losing the race loses no connection.
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
                        // Directly, whatever tokio knows of its readiness yet.
                        let _ = socket2::SockRef::from(&stream).send(line);
                    }
                    AdapterCounters::bump(&counters.refused_full);
                    continue;
                };
                // Small chat lines and FINs should leave at once.
                let _ = stream.set_nodelay(true);
                let input = Input::Accepted {
                    socket: Arc::new(TokioSocket::new(stream)),
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
                    tokio::time::sleep(wait).await;
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
    socket: Arc<TokioSocket>,
    inputs: TokioInputs,
    cancel: Receiver<()>,
    read_len: usize,
) {
    // Whether the last read filled its buffer: read more at a time.
    let mut big = false;
    let end = loop {
        let ready = future::or(async { Some(socket.stream.readable().await) }, async {
            let _closed = cancel.recv().await;
            None
        })
        .await;
        match ready {
            None => break ReadEnd::Released,
            Some(Err(e)) => break ReadEnd::Error(e.kind()),
            Some(Ok(())) => {}
        }
        // The buffer lives only in this block, never across an await: an
        // idle connection's task holds no buffer. `try_read` clears tokio's
        // readiness when the kernel has nothing (a spurious wake-up).
        let read = tether_adapter::read_chunk(big, read_len, |buf| socket.stream.try_read(buf));
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
    socket: Arc<TokioSocket>,
    inputs: TokioInputs,
    cancel: Receiver<()>,
) {
    future::or(
        async {
            let _ = socket.stream.writable().await;
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = rt.enter();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let socket = Arc::new(TokioSocket::new(TcpStream::from_std(client).unwrap()));
        let (inputs, _queues) = tether_adapter::test_inputs::<TokioSocket, ()>();
        let (_cancel, cancelled) = async_channel::bounded(1);
        let id = ChannelId::from_parts(0, 0, 1).unwrap();
        let reader = read_loop(id, socket.clone(), inputs.clone(), cancelled.clone(), 1024);
        let size = std::mem::size_of_val(&reader);
        assert!(size <= MAX_READER_FUTURE, "{size}");
        let waiter = wait_writable(id, socket, inputs, cancelled);
        let size = std::mem::size_of_val(&waiter);
        assert!(size <= MAX_READER_FUTURE, "{size}");
    }

    /// A new socket's first write goes out even before tokio's reactor has
    /// seen it writable.
    #[test]
    fn the_first_write_does_not_wait_for_the_reactor() {
        use std::io::Read;
        use tether_adapter::Socket;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = rt.enter();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut client, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        // Registered, but the reactor never turned (nothing runs on `rt`).
        let socket = TokioSocket::new(TcpStream::from_std(server).unwrap());
        assert_eq!(
            socket.stream.try_write(b"x").unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "tokio refuses before its reactor turned"
        );
        let n = socket.write_vectored(&[IoSlice::new(b"hello\n")]).unwrap();
        assert_eq!(n, 6);
        let mut got = [0u8; 6];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello\n");
    }
}
