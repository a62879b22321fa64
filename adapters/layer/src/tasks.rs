//! The per-connection tasks of every async runtime, written once: a reader
//! (the channel's first holder) and a waiter while a peer's send buffer is
//! full. A runtime only says how its socket waits for readiness
//! ([`AsyncSocket`]).

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;

use async_channel::Receiver;
use futures_lite::{StreamExt, future};
use tether_core::ChannelId;

use crate::glue::Socket;
use crate::input::{Input, Inputs, ReadEnd, read_chunk};

/// A socket registered with an async runtime's reactor.
pub trait AsyncSocket: Socket {
    /// Completes when the socket may have bytes to read (or an error).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;
    /// Completes when the socket may take bytes again (or an error).
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;
    /// Reads without waiting: `Err(WouldBlock)` when nothing is there (a
    /// spurious wake-up; the runtime clears its readiness).
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
}

/// Reads until EOF, an error, or `cancel` closes, posting what it reads
/// (waiting while the driver's reader queue is full: that is how TCP pushes
/// back on a flooding peer); then drops its socket and reports, which
/// detaches it, so the driver's close drops the last reference. No buffer
/// is held across an `await`: an idle connection's task holds none.
pub async fn read_task<S: AsyncSocket, A>(
    id: ChannelId,
    socket: Arc<S>,
    inputs: Inputs<S, A>,
    cancel: Receiver<()>,
    read_len: usize,
) {
    // Whether the last read filled its buffer: read more at a time.
    let mut big = false;
    // Polled as a `Stream`, the receiver keeps its listener from one wait
    // to the next: one registration per connection, not one per read (a
    // fresh `recv()` each time costs an allocation and a locked list
    // insert and removal). Nothing is ever sent on it: it only closes.
    let mut cancel = pin!(cancel);
    let end = loop {
        let ready = future::or(async { Some(socket.readable().await) }, async {
            let _closed = cancel.next().await;
            None
        })
        .await;
        match ready {
            None => break ReadEnd::Released,
            Some(Err(e)) => break ReadEnd::Error(e.kind()),
            Some(Ok(())) => {}
        }
        match read_chunk(big, read_len, |buf| socket.try_read(buf)) {
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

/// Waits until the socket takes bytes again (or `cancel` closes), then
/// drops its reference and reports (which also detaches it).
pub async fn wait_task<S: AsyncSocket, A>(
    id: ChannelId,
    socket: Arc<S>,
    inputs: Inputs<S, A>,
    cancel: Receiver<()>,
) {
    future::or(
        async {
            let _ = socket.writable().await;
        },
        async {
            let _closed = cancel.recv().await;
        },
    )
    .await;
    drop(socket);
    let _gone = inputs.send(Input::WaiterDone(id)).await;
}

/// How an async runtime runs a task in the background.
pub trait Spawn: Clone + Send + 'static {
    /// Runs `future` detached.
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static);
}

/// Per connection: closing `cancel` makes its reader and waiter let go.
#[derive(Debug)]
pub struct TaskConn {
    cancel: async_channel::Sender<()>,
    cancelled: Receiver<()>,
}

/// The [`Glue`](crate::runtime::Glue) of every async runtime (one per shard): a
/// reader task per connection and a waiter task while a send buffer is
/// full, spawned with `R`, on sockets of type `S`.
#[derive(Debug)]
pub struct TaskGlue<R, S> {
    runtime: R,
    read_len: usize,
    _socket: std::marker::PhantomData<fn() -> S>,
}

impl<R: Spawn, S: AsyncSocket> TaskGlue<R, S> {
    /// Spawns on `runtime`; reads take at most `read_len` bytes (≤ 16 KiB).
    pub fn new(runtime: R, read_len: usize) -> Self {
        TaskGlue {
            runtime,
            read_len,
            _socket: std::marker::PhantomData,
        }
    }
}

impl<R: Spawn, S: AsyncSocket> crate::runtime::Glue for TaskGlue<R, S> {
    type Socket = S;
    type Accepted = ();
    type Conn = TaskConn;

    fn open(
        &mut self,
        id: ChannelId,
        socket: &Arc<S>,
        (): (),
        inputs: &Inputs<S, ()>,
    ) -> io::Result<TaskConn> {
        let (cancel, cancelled) = async_channel::bounded(1);
        let reader = read_task(
            id,
            socket.clone(),
            inputs.clone(),
            cancelled.clone(),
            self.read_len,
        );
        self.runtime.spawn(reader);
        Ok(TaskConn { cancel, cancelled })
    }

    fn refuse(&mut self, _socket: &Arc<S>, (): ()) {}

    fn wait_writable(
        &mut self,
        id: ChannelId,
        socket: &Arc<S>,
        conn: &mut TaskConn,
        inputs: &Inputs<S, ()>,
    ) -> io::Result<()> {
        let waiter = wait_task(id, socket.clone(), inputs.clone(), conn.cancelled.clone());
        self.runtime.spawn(waiter);
        Ok(())
    }

    fn release(&mut self, _socket: &Arc<S>, conn: &mut TaskConn, _how: crate::runtime::Release) {
        // Offline: the socket is already shut down both ways, so a reader
        // would see EOF anyway; abort: no FIN may be sent, so cancel.
        conn.cancel.close();
    }

    fn finish(&mut self) {}
}

/// An async runtime's listening socket.
pub trait AsyncListener: Send + 'static {
    /// The socket [`AsyncListener::accept`] gives.
    type Socket: AsyncSocket;
    /// The next connection (cancel-safe: losing a race loses none).
    fn accept(
        &self,
    ) -> impl Future<Output = io::Result<(Self::Socket, std::net::SocketAddr)>> + Send + '_;
    /// Writes `line` to a connection being refused, without waiting.
    fn refuse(socket: &Self::Socket, line: &[u8]);
}

/// Accepts until every shard's driver has ended, handing each connection
/// to the next shard that accepts. While every shard has paused accepting
/// (at its channel limit, or shutting down), it keeps accepting but refuses
/// each connection itself with the refusal line, so a full server says so
/// instead of leaving clients in the backlog. Accept errors (EMFILE…) back
/// off and are logged at most once a second.
pub async fn listen_task<L: AsyncListener, T: crate::runtime::Sleep>(
    listener: L,
    context: crate::runtime::ListenContext<L::Socket, ()>,
    mut sleep: T,
) {
    let crate::runtime::ListenContext {
        mut router,
        counters,
        stopped,
        stop,
        options,
        transport,
    } = context;
    let refusal = match transport {
        crate::Transport::WebSocket => Some(crate::Web::refusal()),
        _ => options.refuse_line.clone(),
    };
    let mut errors = crate::listen::AcceptErrors::new("listener");
    // As in `read_task`: one listener for the whole loop, not one per
    // accepted connection. Nothing is sent on it: it only closes.
    let mut stop = pin!(stop);
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            let _closed = stop.next().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((socket, peer))) => {
                errors.success();
                counters.bump(crate::Counter::Accepted);
                let Some(inputs) = router.pick() else {
                    if let Some(line) = &refusal {
                        L::refuse(&socket, line);
                    }
                    counters.bump(crate::Counter::RefusedFull);
                    continue;
                };
                let input = Input::Accepted {
                    socket: Arc::new(socket),
                    peer,
                    accepted: (),
                    transport,
                };
                // A shard that just ended refuses nothing more: the socket
                // in the returned input is dropped, i.e. closed.
                let _ = inputs.send(input).await;
            }
            Some(Err(e)) => {
                counters.bump(crate::Counter::AcceptErrors);
                let wait = errors.failed(&e);
                if !wait.is_zero() {
                    sleep.sleep_until(std::time::Instant::now() + wait).await;
                }
            }
        }
    }
    // Closed before `stopped` is released: once a handle sees the server
    // stopped, nothing listens on its port.
    drop(listener);
    drop(stopped);
}
