//! One connection's socket and the threads that hold it: a blocking reader
//! for every channel, and a waiter only while the peer's send buffer is
//! full.
//!
//! Both are *holders* of the socket (the driver attached them before they
//! started). Each drops its `Arc<ThreadSocket>` **before** posting the
//! input that detaches it, so when the hub emits `CloseSocket` the driver holds
//! the last reference and dropping it really closes the descriptor.

use std::io::{self, IoSlice, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::SockRef;
use tether_adapter::runtime::{Input, Inputs, ReadEnd};
use tether_core::{Bytes, ChannelId};

/// `send(2)` flags for the driver's writes: never block (the socket itself
/// stays blocking for its reader), never raise SIGPIPE.
#[cfg(unix)]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

/// How often a waiter checks whether it was told to let go.
const WAITER_TICK: Duration = Duration::from_millis(20);

/// One connection's socket, shared by the driver and the holders.
#[derive(Debug)]
pub struct ThreadSocket {
    stream: TcpStream,
    /// Set before we shut our own sending side (or abort): from then on a
    /// failed zero-length send says nothing about the peer.
    shut_by_us: AtomicBool,
}

impl ThreadSocket {
    pub(crate) fn new(stream: TcpStream) -> Arc<ThreadSocket> {
        Arc::new(ThreadSocket {
            stream,
            shut_by_us: AtomicBool::new(false),
        })
    }

    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub(crate) fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// After `read` returned 0: was that the peer's FIN, or its RST?
    ///
    /// A reset can reach a reader as 0 rather than `ECONNRESET` when a
    /// driver write took the socket's pending error first (the kernel hands
    /// it to one caller only). A zero-length send tells them apart without
    /// sending anything: after a FIN it succeeds, on a reset socket it
    /// fails — unless we shut our own sending side, flagged first.
    fn was_reset(&self) -> bool {
        !self.shut_by_us.load(Ordering::SeqCst)
            && SockRef::from(&self.stream)
                .send_with_flags(&[], SEND_FLAGS)
                .is_err()
    }

    /// Wakes a reader blocked in `read` without sending FIN (abort).
    pub(crate) fn wake_reader(&self) {
        self.shut_by_us.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Read);
    }
}

impl tether_adapter::runtime::Socket for ThreadSocket {
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        SockRef::from(&self.stream).send_vectored_with_flags(bufs, SEND_FLAGS)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.shut_by_us.store(true, Ordering::SeqCst);
        self.stream.shutdown(how)
    }
    fn set_linger_zero(&self) -> io::Result<()> {
        SockRef::from(&self.stream).set_linger(Some(Duration::ZERO))
    }
}

pub(crate) type ThreadInputs = Inputs<ThreadSocket, Accepted>;

/// What the acceptor hands over: the reader thread, already started and
/// blocked in its first `read`, waiting for its id and inputs on `start`.
#[derive(Debug)]
pub struct Accepted {
    pub(crate) start: std::sync::mpsc::SyncSender<(ChannelId, ThreadInputs)>,
    pub(crate) thread: JoinHandle<()>,
}

/// Threads of closed connections, joined at the end (or reaped as they
/// finish), so no thread outlives the server.
pub(crate) type Graveyard = Arc<Mutex<Vec<JoinHandle<()>>>>;

pub(crate) fn bury(graveyard: &Graveyard, threads: impl IntoIterator<Item = JoinHandle<()>>) {
    graveyard
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(threads);
}

/// The threads adapter's per-connection state.
#[derive(Debug)]
pub struct ThreadConn {
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// Set when the connection is released: waiters exit at their next tick.
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) graveyard: Graveyard,
}

impl Drop for ThreadConn {
    fn drop(&mut self) {
        // The driver drops this at `CloseSocket`: every holder has detached, so
        // these threads are exiting; the glue joins them.
        bury(&self.graveyard, self.threads.drain(..));
    }
}

/// Reads until EOF or an error, posting what it reads (blocking while the
/// driver's reader queue is full, so TCP pushes back on the peer); then
/// lets go.
///
/// The first `read` starts before the id is known: the driver attaches this
/// reader in the same step as the hub accepts the connection, and sends the
/// id with the connection's inputs (which carry its read-ahead credit). If
/// the hub refuses it, the socket is shut down, which ends that read, and
/// `started` is dropped, which ends this thread.
pub(crate) fn run_reader(
    socket: Arc<ThreadSocket>,
    started: Receiver<(ChannelId, ThreadInputs)>,
    buffer_size: usize,
) {
    let mut buf = vec![0u8; buffer_size.max(1)];
    let mut result = (&socket.stream).read(&mut buf);
    let Ok((id, inputs)) = started.recv() else {
        return; // refused: no channel, nothing to report
    };
    let end = loop {
        match result {
            Ok(0) if socket.was_reset() => {
                break ReadEnd::Error(io::ErrorKind::ConnectionReset);
            }
            Ok(0) => break ReadEnd::Eof,
            Ok(n) => {
                let data = Bytes::copy_from_slice(&buf[..n]);
                if inputs.send_blocking(Input::Received(id, data)).is_err() {
                    break ReadEnd::Released; // the driver is gone
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break ReadEnd::Error(e.kind()),
        }
        result = (&socket.stream).read(&mut buf);
    };
    drop(socket); // before the detach: the driver must hold the last reference
    let _ = inputs.send_blocking(Input::ReaderDone(id, end));
}

/// Waits (in `poll(2)` ticks) until the socket takes bytes again or the
/// connection is released; then lets go.
pub(crate) fn run_waiter(
    id: ChannelId,
    socket: Arc<ThreadSocket>,
    stop: Arc<AtomicBool>,
    inputs: ThreadInputs,
) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: i64::try_from(WAITER_TICK.as_nanos()).unwrap_or(20_000_000),
    };
    while !stop.load(Ordering::Acquire) {
        let mut fds = [PollFd::new(&socket.stream, PollFlags::OUT)];
        match rustix::event::poll(&mut fds, Some(&tick)) {
            // Writable, or an error/hangup the next write will report.
            Ok(n) if n > 0 => break,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    drop(socket);
    let _ = inputs.send_blocking(Input::WaiterDone(id));
}
