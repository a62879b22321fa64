//! The driver task: the hub's single owner. Every other task sends it an
//! [`Input`]; it feeds the hub, executes the hub's actions on sockets,
//! forwards events, and serves the hub's deadlines.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::future;
use tether_core::{
    Action, BroadcastReport, ChannelError, ChannelId, ChannelInfo, Event, Hub, KickError, KickMode,
    OfflineEntry, SendError, ShutdownHow, Stats,
};

use crate::conn::{self, ReadEnd, Socket, WriteEnd};
use crate::runtime::Runtime;

/// Inputs processed per wake-up before the hub's outputs are drained, so a
/// flood of inputs cannot delay actions and deadlines indefinitely.
const BATCH: usize = 256;

/// Socket inputs queued at most, across all connections. Readers wait when
/// it is full, so a flood of received bytes pushes back through TCP instead
/// of growing memory.
const INPUT_QUEUE: usize = 1024;

/// Everything the socket tasks tell the driver.
#[derive(Debug)]
pub(crate) enum Input {
    /// The listener accepted a connection.
    Accepted(Async<TcpStream>, SocketAddr),
    /// A reader read bytes.
    Received(ChannelId, Bytes),
    /// A reader finished (and dropped its socket).
    ReaderDone(ChannelId, ReadEnd),
    /// A writer wrote this many bytes of the channel's transmits.
    Written(ChannelId, usize),
    /// A writer finished (and dropped its socket).
    WriterDone(ChannelId, WriteEnd),
}

/// What the driver waits for.
enum Wake {
    Input(Input),
    Command(Command),
    Deadline,
    /// Every handle is gone and nothing can command the hub any more.
    Orphaned,
}

/// An application call. `reply` gets the answer; a dropped reply is fine.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        id: ChannelId,
        data: Bytes,
        reply: Option<Sender<Result<(), SendError>>>,
    },
    Broadcast {
        data: Bytes,
        reply: Option<Sender<BroadcastReport>>,
    },
    Kick {
        id: ChannelId,
        mode: KickMode,
        code: u32,
        reply: Sender<Result<(), KickError>>,
    },
    Authenticate {
        id: ChannelId,
        reply: Option<Sender<Result<(), ChannelError>>>,
    },
    Stats(Sender<Stats>),
    Channels(Sender<Vec<ChannelInfo>>),
    Offline(Sender<Vec<OfflineEntry>>),
    Shutdown {
        grace: Duration,
        reply: Sender<()>,
    },
}

/// The driver's view of one connection.
struct Conn {
    socket: Socket,
    /// The writer task's queue. Unbounded as a channel, bounded in bytes by
    /// the hub's queue limit: the hub refuses sends past it.
    writer: Sender<Bytes>,
    /// Closing it cancels both tasks (abort, or offline).
    cancel: Sender<()>,
}

pub(crate) struct Driver<R> {
    runtime: R,
    hub: Hub,
    conns: HashMap<ChannelId, Conn>,
    inputs: Sender<Input>,
    events: Sender<Event>,
    listener: Sender<bool>,
    /// Dropped when the driver exits: wakes `Handle::stopped`.
    _stopped: Sender<()>,
    done: bool,
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn spawn(
        runtime: R,
        hub: Hub,
        listener: Async<TcpListener>,
        commands: Receiver<Command>,
        events: Sender<Event>,
        stopped: Sender<()>,
    ) {
        let (inputs, input_rx) = async_channel::bounded(INPUT_QUEUE);
        let (control, control_rx) = async_channel::unbounded();
        // The listener holds a clone of `stopped` too: `Handle::stopped`
        // resolves only once the listening socket is closed as well.
        runtime.spawn(conn::listen(
            listener,
            inputs.clone(),
            control_rx,
            stopped.clone(),
        ));
        let driver = Driver {
            runtime: runtime.clone(),
            hub,
            conns: HashMap::new(),
            inputs,
            events,
            listener: control,
            _stopped: stopped,
            done: false,
        };
        runtime.spawn(driver.run(input_rx, commands));
    }

    async fn run(mut self, inputs: Receiver<Input>, commands: Receiver<Command>) {
        let mut timer = Timer::never();
        let mut orphaned = false;
        while !self.done {
            match self.hub.poll_timeout() {
                Some(at) => timer.set_at(at),
                None => timer = Timer::never(),
            }
            let wake = future::or(
                async {
                    // The driver holds an input sender itself, so this
                    // channel never closes while it runs.
                    inputs.recv().await.map_or(Wake::Orphaned, Wake::Input)
                },
                future::or(
                    async {
                        if orphaned {
                            future::pending::<()>().await;
                        }
                        commands.recv().await.map_or(Wake::Orphaned, Wake::Command)
                    },
                    async {
                        (&mut timer).await;
                        Wake::Deadline
                    },
                ),
            )
            .await;
            let now = Instant::now();
            match wake {
                Wake::Input(input) => self.handle(now, input),
                Wake::Command(command) => self.command(now, command),
                Wake::Deadline => {}
                Wake::Orphaned => {
                    // Nobody can shut the server down any more: do it now,
                    // so its sockets and tasks do not outlive every handle.
                    orphaned = true;
                    self.hub.shutdown(now, Duration::ZERO);
                }
            }
            // Bounded batches, alternating sources, so neither starves.
            for _ in 1..BATCH {
                let mut idle = true;
                if let Ok(input) = inputs.try_recv() {
                    self.handle(now, input);
                    idle = false;
                }
                if let Ok(command) = commands.try_recv() {
                    self.command(now, command);
                    idle = false;
                }
                if idle {
                    break;
                }
            }
            // Invariant 7: every due deadline is acted on at the first wake-up after it.
            self.hub.handle_timeout(now);
            self.drain(now);
        }
        // The listener stops when its control channel closes; the sockets
        // are all closed (shutdown completes only when every channel is
        // released).
        self.listener.close();
        self.events.close();
    }

    fn handle(&mut self, now: Instant, input: Input) {
        let hub = &mut self.hub;
        match input {
            Input::Accepted(stream, peer) => self.accepted(now, stream, peer),
            Input::Received(id, data) => {
                let _after_eof_or_stale = hub.handle_received(now, id, data);
            }
            Input::ReaderDone(id, end) => {
                let _already_known = match end {
                    ReadEnd::Eof => hub.handle_peer_eof(now, id),
                    ReadEnd::Error(kind) => hub.handle_io_error(now, id, kind),
                    ReadEnd::Cancelled => Ok(()),
                };
                let _ = hub.detach(now, id);
            }
            Input::Written(id, n) => {
                let _ = hub.handle_written(now, id, n);
            }
            Input::WriterDone(id, end) => {
                if let WriteEnd::Error(kind) = end {
                    let _ = hub.handle_io_error(now, id, kind);
                }
                let _ = hub.detach(now, id);
            }
        }
    }

    fn accepted(&mut self, now: Instant, stream: Async<TcpStream>, peer: SocketAddr) {
        let Ok(id) = self.hub.accept(now, peer) else {
            return; // refused (limit or shutdown): dropping the socket closes it
        };
        // Small chat lines and FINs should leave at once.
        let _ = stream.get_ref().set_nodelay(true);
        let socket: Socket = Arc::new(stream);
        let (writer, queue) = async_channel::unbounded();
        let (cancel, cancelled) = async_channel::bounded::<()>(1);
        // Two holders: the reader and the writer (invariant 5).
        let attached = self.hub.attach(id).and_then(|()| self.hub.attach(id));
        debug_assert!(attached.is_ok(), "a fresh channel accepts holders");
        let inputs = self.inputs.clone();
        self.runtime.spawn(conn::read_loop(
            id,
            socket.clone(),
            inputs,
            cancelled.clone(),
        ));
        let inputs = self.inputs.clone();
        self.runtime.spawn(conn::write_loop(
            id,
            socket.clone(),
            queue,
            inputs,
            cancelled,
        ));
        self.conns.insert(
            id,
            Conn {
                socket,
                writer,
                cancel,
            },
        );
    }

    fn command(&mut self, now: Instant, command: Command) {
        let hub = &mut self.hub;
        match command {
            Command::Send { id, data, reply } => {
                let result = hub.send(now, id, data);
                if let Some(reply) = reply {
                    let _ = reply.try_send(result);
                }
            }
            Command::Broadcast { data, reply } => {
                let report = hub.broadcast(now, data);
                if let Some(reply) = reply {
                    let _ = reply.try_send(report);
                }
            }
            Command::Kick {
                id,
                mode,
                code,
                reply,
            } => {
                let _ = reply.try_send(hub.kick(now, id, mode, code));
            }
            Command::Authenticate { id, reply } => {
                let result = hub.authenticate(now, id);
                if let Some(reply) = reply {
                    let _ = reply.try_send(result);
                }
            }
            Command::Stats(reply) => {
                let _ = reply.try_send(hub.stats());
            }
            Command::Channels(reply) => {
                let _ = reply.try_send(hub.channels().collect());
            }
            Command::Offline(reply) => {
                let _ = reply.try_send(hub.offline().collect());
            }
            Command::Shutdown { grace, reply } => {
                hub.shutdown(now, grace);
                let _ = reply.try_send(());
            }
        }
    }

    /// Executes every action and forwards every event.
    fn drain(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(action) = self.hub.poll_action() {
                progressed = true;
                self.execute(now, action);
            }
            while let Some(event) = self.hub.poll_event() {
                progressed = true;
                if event == Event::ShutdownComplete {
                    self.done = true;
                }
                let _no_listener = self.events.try_send(event);
            }
            if !progressed {
                break;
            }
        }
    }

    fn execute(&mut self, now: Instant, action: Action) {
        match action {
            Action::Transmit { id, data } => {
                if let Some(conn) = self.conns.get(&id) {
                    // A closed queue means the writer already failed and
                    // reported it; the hub dropped the bytes (invariant 5).
                    let _ = conn.writer.try_send(data);
                }
            }
            Action::Shutdown { id, how } => {
                if let Some(conn) = self.conns.get(&id) {
                    let how = match how {
                        ShutdownHow::Write => Shutdown::Write,
                        ShutdownHow::Both => Shutdown::Both,
                    };
                    // ENOTCONN after a peer reset is fine: the wire is done.
                    let _ = conn.socket.get_ref().shutdown(how);
                    if how == Shutdown::Both {
                        // Offline: every holder lets go (nothing is left to write).
                        conn.writer.close();
                        conn.cancel.close();
                    }
                }
            }
            Action::Abort { id } => {
                if let Some(conn) = self.conns.get(&id) {
                    // Zero linger: the close that follows sends RST.
                    let _ = socket2::SockRef::from(conn.socket.get_ref())
                        .set_linger(Some(Duration::ZERO));
                    conn.writer.close();
                    conn.cancel.close();
                }
            }
            Action::Close { id } => {
                // Both tasks dropped their clones before detaching: this is
                // the last one, so the fd is closed here.
                drop(self.conns.remove(&id));
                let _ = self.hub.handle_closed(now, id);
            }
            Action::PauseAccept => {
                let _ = self.listener.try_send(false);
            }
            Action::ResumeAccept => {
                let _ = self.listener.try_send(true);
            }
            _ => {}
        }
    }
}
