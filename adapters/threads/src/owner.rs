//! The owner thread: the only thread that touches the hub, and the only one
//! that shuts down or closes a socket.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::SockRef;
use tether_core::{Action, Bytes, ChannelId, Event, Hub, ShutdownHow};

use crate::acceptor::Acceptor;
use crate::conn::{self, Sock, WriterJob, WriterLink};
use crate::handle::{AdapterStats, Command};
use crate::server::Options;

/// Everything the owner thread hears about, from every other thread.
pub(crate) enum Input {
    /// A connection, its reader thread already started and waiting for the
    /// id on `start` (dropped unsent if the hub refuses the connection).
    Accepted {
        stream: Arc<Sock>,
        peer: SocketAddr,
        start: SyncSender<ChannelId>,
        thread: JoinHandle<()>,
    },
    AcceptFailed,
    Received {
        id: ChannelId,
        data: Bytes,
    },
    PeerEof {
        id: ChannelId,
    },
    ReadError {
        id: ChannelId,
        kind: io::ErrorKind,
    },
    Written {
        id: ChannelId,
        n: usize,
    },
    WriteError {
        id: ChannelId,
        kind: io::ErrorKind,
    },
    Detach {
        id: ChannelId,
    },
    Command(Command),
}

/// The owner's record of one channel's socket.
struct Conn {
    /// The owner's reference. Holders have their own clones and drop them
    /// before detaching, so at `Close` this is the last one.
    stream: Arc<Sock>,
    /// Present once the peer did not take a write at once.
    writer: Option<WriterLink>,
    threads: Vec<JoinHandle<()>>,
}

pub(crate) struct Owner {
    hub: Hub,
    conns: HashMap<ChannelId, Conn>,
    rx: Receiver<Input>,
    /// Cloned into every connection thread.
    tx: Sender<Input>,
    events: Sender<Event>,
    acceptor: Acceptor,
    options: Options,
    stats: AdapterStats,
    /// Threads of closed channels: they posted their detach and are exiting.
    finished: Vec<JoinHandle<()>>,
    spawned: usize,
    joined: usize,
}

impl Owner {
    pub fn new(
        hub: Hub,
        rx: Receiver<Input>,
        tx: Sender<Input>,
        events: Sender<Event>,
        acceptor: Acceptor,
        options: Options,
    ) -> Owner {
        Owner {
            hub,
            conns: HashMap::new(),
            rx,
            tx,
            events,
            acceptor,
            options,
            stats: AdapterStats::default(),
            finished: Vec::new(),
            spawned: 0,
            joined: 0,
        }
    }

    /// The loop: wait for an input or the hub's next deadline, feed it,
    /// execute the actions, deliver the events; until shutdown completes.
    pub fn run(mut self) {
        loop {
            let input = match self.hub.poll_timeout() {
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    None => None, // already due
                    Some(wait) => match self.rx.recv_timeout(wait) {
                        Ok(input) => Some(input),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    },
                },
                None => match self.rx.recv() {
                    Ok(input) => Some(input),
                    Err(_) => break,
                },
            };
            let now = Instant::now();
            if let Some(input) = input {
                self.input(now, input);
            }
            if self.hub.poll_timeout().is_some_and(|at| at <= now) {
                self.hub.handle_timeout(now);
            }
            self.drain(now);
            self.reap(false);
            if self.hub.is_shutdown_complete() {
                break;
            }
        }
        self.finish();
    }

    fn input(&mut self, now: Instant, input: Input) {
        // Errors from the hub on adapter inputs mean the input arrived after
        // the channel moved on (bytes after an abort, a write reported after
        // the queue was dropped): the hub counts them and is unchanged.
        match input {
            Input::Accepted {
                stream,
                peer,
                start,
                thread,
            } => self.accepted(now, stream, peer, start, thread),
            Input::AcceptFailed => self.stats.accept_errors += 1,
            Input::Received { id, data } => {
                let _ = self.hub.handle_received(now, id, data);
            }
            Input::PeerEof { id } => {
                let _ = self.hub.handle_peer_eof(now, id);
            }
            Input::ReadError { id, kind } | Input::WriteError { id, kind } => {
                let _ = self.hub.handle_io_error(now, id, kind);
            }
            Input::Written { id, n } => {
                let _ = self.hub.handle_written(now, id, n);
            }
            Input::Detach { id, .. } => {
                let _ = self.hub.detach(now, id);
            }
            Input::Command(command) => self.command(now, command),
        }
    }

    fn command(&mut self, now: Instant, command: Command) {
        // A caller that stopped waiting for its reply is not an error.
        match command {
            Command::Send { id, data, reply } => {
                let result = self.hub.send(now, id, data);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Command::Broadcast { data, reply } => {
                let report = self.hub.broadcast(now, data);
                if let Some(reply) = reply {
                    let _ = reply.send(report);
                }
            }
            Command::Kick {
                id,
                mode,
                code,
                reply,
            } => {
                let result = self.hub.kick(now, id, mode, code);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Command::Authenticate { id, reply } => {
                let result = self.hub.authenticate(now, id);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Command::Channels { reply } => {
                let _ = reply.send(self.hub.channels().collect());
            }
            Command::Offline { reply } => {
                let _ = reply.send(self.hub.offline().collect());
            }
            Command::Stats { reply } => {
                let mut stats = self.stats.clone();
                stats.core = self.hub.stats();
                stats.io_threads = self.spawned - self.joined;
                let _ = reply.send(stats);
            }
            Command::Shutdown { grace } => self.hub.shutdown(now, grace),
        }
    }

    fn accepted(
        &mut self,
        now: Instant,
        stream: Arc<Sock>,
        peer: SocketAddr,
        start: SyncSender<ChannelId>,
        thread: JoinHandle<()>,
    ) {
        self.stats.accepted += 1;
        self.spawned += 1;
        let Ok(id) = self.hub.accept(now, peer) else {
            // Refused (limit or shutdown): no channel, no event (invariant
            // 1). The shutdown ends the reader's first read, dropping
            // `start` ends the reader, and with it the last reference to
            // the socket: closed.
            let _ = stream.stream.shutdown(Shutdown::Both);
            self.stats.refused_closed += 1;
            self.finished.push(thread);
            return;
        };
        // The reader is this channel's first holder; a fresh channel is
        // open, so attaching cannot fail.
        let _ = self.hub.attach(id);
        self.conns.insert(
            id,
            Conn {
                stream,
                writer: None,
                threads: vec![thread],
            },
        );
        if start.send(id).is_err() {
            // The reader is gone before it started (it cannot be: it waits
            // for this): treat it as a failed socket.
            let _ = self.hub.detach(now, id);
            let _ = self.hub.handle_io_error(now, id, io::ErrorKind::BrokenPipe);
        }
    }

    fn spawn(
        &mut self,
        id: ChannelId,
        name: &str,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), io::ErrorKind> {
        let thread = std::thread::Builder::new()
            .name(name.into())
            .stack_size(self.options.stack_size)
            .spawn(body)
            .map_err(|e| e.kind())?;
        self.spawned += 1;
        match self.conns.get_mut(&id) {
            Some(conn) => conn.threads.push(thread),
            None => self.finished.push(thread),
        }
        Ok(())
    }

    /// Executes every action, then hands every event to the application.
    fn drain(&mut self, now: Instant) {
        while let Some(action) = self.hub.poll_action() {
            self.execute(now, action);
        }
        while let Some(event) = self.hub.poll_event() {
            // An application that dropped its receiver just misses events.
            let _ = self.events.send(event);
        }
    }

    fn execute(&mut self, now: Instant, action: Action) {
        match action {
            Action::Transmit { id, data } => self.transmit(now, id, data),
            Action::Shutdown { id, how } => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    // The hub emits `Shutdown` only once every earlier
                    // transmit was reported written (or the queue dropped),
                    // so it need not queue behind the writer.
                    let how = match how {
                        ShutdownHow::Write => Shutdown::Write,
                        ShutdownHow::Both => Shutdown::Both,
                    };
                    conn.stream.shut_by_us.store(true, Ordering::SeqCst);
                    let _ = conn.stream.stream.shutdown(how);
                    if how == Shutdown::Both {
                        stop_writer(conn);
                    }
                }
            }
            Action::Abort { id } => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    // Zero linger makes the coming close send RST; a read
                    // shutdown wakes the reader without sending FIN.
                    conn.stream.shut_by_us.store(true, Ordering::SeqCst);
                    let _ = SockRef::from(&conn.stream.stream).set_linger(Some(Duration::ZERO));
                    let _ = conn.stream.stream.shutdown(Shutdown::Read);
                    stop_writer(conn);
                }
            }
            Action::Close { id } => {
                if let Some(mut conn) = self.conns.remove(&id) {
                    conn.writer = None;
                    // Every holder dropped its reference before detaching
                    // (invariant 5), so this drop closes the descriptor.
                    debug_assert_eq!(
                        Arc::strong_count(&conn.stream),
                        1,
                        "a holder outlived Close"
                    );
                    drop(conn.stream);
                    self.finished.append(&mut conn.threads);
                    self.stats.sockets_closed += 1;
                }
                let _ = self.hub.handle_closed(now, id);
            }
            Action::PauseAccept => self.acceptor.pause(),
            Action::ResumeAccept => self.acceptor.resume(),
            _ => {}
        }
    }

    /// Writes without waiting while the peer takes the bytes; hands the rest
    /// to the channel's writer thread, started on first need.
    fn transmit(&mut self, now: Instant, id: ChannelId, data: Bytes) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(writer) = &conn.writer {
            // A writer that already exited means the channel is offline: the
            // hub dropped these bytes from its count.
            let _ = writer.jobs.send(WriterJob::Write(data));
            return;
        }
        let socket = SockRef::from(&conn.stream.stream);
        let mut written = 0;
        let mut failed = None;
        while written < data.len() {
            match socket.send_with_flags(&data[written..], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
            {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    failed = Some(e.kind());
                    break;
                }
            }
        }
        self.stats.direct_writes += 1;
        if written > 0 {
            let _ = self.hub.handle_written(now, id, written);
        }
        if let Some(kind) = failed {
            let _ = self.hub.handle_io_error(now, id, kind);
        } else if written < data.len() {
            self.start_writer(now, id, data.slice(written..));
        }
    }

    fn start_writer(&mut self, now: Instant, id: ChannelId, rest: Bytes) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // Attaching fails only if the channel went offline since this
        // transmit was queued (an abort right behind it): drop the bytes,
        // the hub already counted them dropped.
        if self.hub.attach(id).is_err() {
            return;
        }
        let stream = conn.stream.clone();
        let _ = conn::set_write_tick(&stream, self.options.write_tick);
        let (jobs, job_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        conn.writer = Some(WriterLink {
            jobs,
            stop: stop.clone(),
        });
        self.stats.writers_started += 1;
        let tx = self.tx.clone();
        if let Err(kind) = self.spawn(id, "tether-write", move || {
            conn::run_writer(id, stream, job_rx, stop, tx, rest);
        }) {
            let _ = self.hub.detach(now, id);
            let _ = self.hub.handle_io_error(now, id, kind);
        }
    }

    /// Joins connection threads that have exited; all of them if `all`.
    fn reap(&mut self, all: bool) {
        let mut i = 0;
        while i < self.finished.len() {
            if all || self.finished[i].is_finished() {
                let _ = self.finished.swap_remove(i).join();
                self.joined += 1;
            } else {
                i += 1;
            }
        }
    }

    /// After shutdown completed: stop the acceptor, join every thread.
    fn finish(mut self) {
        self.acceptor.stop();
        // A connection the acceptor took just before it stopped may still
        // be in the queue, its reader blocked in its first read: refuse it
        // like any other, so that reader ends too.
        while let Ok(input) = self.rx.try_recv() {
            if let Input::Accepted { stream, thread, .. } = input {
                let _ = stream.stream.shutdown(Shutdown::Both);
                self.finished.push(thread);
            }
        }
        for (_, mut conn) in self.conns.drain() {
            // Only reached if the loop ended early; wake and collect holders.
            let _ = conn.stream.stream.shutdown(Shutdown::Both);
            stop_writer(&conn);
            self.finished.append(&mut conn.threads);
        }
        self.reap(true);
    }
}

/// Tells a channel's writer (if any) to drop what is left and let go.
fn stop_writer(conn: &Conn) {
    if let Some(writer) = &conn.writer {
        writer.stop.store(true, Ordering::Release);
        let _ = writer.jobs.send(WriterJob::Stop);
    }
}
