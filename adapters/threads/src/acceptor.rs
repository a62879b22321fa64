//! The acceptor thread and the gate the owner uses to pause, resume and stop
//! it.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::conn;
use crate::owner::Input;
use crate::server::Options;

#[derive(Debug, Default)]
struct GateState {
    paused: bool,
    stopping: bool,
}

/// Shared between the owner (which decides) and the acceptor (which obeys).
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

impl Gate {
    fn update(&self, f: impl FnOnce(&mut GateState)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state);
        self.changed.notify_all();
    }

    /// Blocks while paused; `false` once stopping.
    fn wait_open(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.paused && !state.stopping {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        !state.stopping
    }

    fn is_stopping(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopping
    }
}

/// The running acceptor: its gate, its listener and its thread.
pub(crate) struct Acceptor {
    gate: Arc<Gate>,
    listener: Arc<TcpListener>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    pub fn start(
        listener: TcpListener,
        tx: Sender<Input>,
        options: &Options,
    ) -> io::Result<Acceptor> {
        let gate = Arc::new(Gate::default());
        let listener = Arc::new(listener);
        let thread = std::thread::Builder::new()
            .name("tether-accept".into())
            .stack_size(options.stack_size)
            .spawn({
                let gate = gate.clone();
                let listener = listener.clone();
                let options = options.clone();
                move || run(&listener, &gate, &tx, &options)
            })?;
        Ok(Acceptor {
            gate,
            listener,
            thread: Some(thread),
        })
    }

    /// Stop calling `accept` until resumed. A call already blocked in
    /// `accept` may still hand over one connection, which the hub refuses.
    pub fn pause(&self) {
        self.gate.update(|s| s.paused = true);
    }

    /// Call `accept` again.
    pub fn resume(&self) {
        self.gate.update(|s| s.paused = false);
    }

    /// Stops the thread and waits for it. `shutdown` on a listening socket
    /// wakes a blocked `accept` on Linux; a connection to ourselves is the
    /// portable fallback.
    pub fn stop(&mut self) {
        self.gate.update(|s| s.stopping = true);
        let _ = socket2::SockRef::from(&*self.listener).shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            if !thread.is_finished()
                && let Ok(addr) = self.listener.local_addr()
            {
                let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(100));
            }
            let _ = thread.join();
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(listener: &TcpListener, gate: &Gate, tx: &Sender<Input>, options: &Options) {
    // Backoff after an accept error (e.g. EMFILE), so a full fd table does
    // not spin this thread; reset by the next success.
    let mut backoff = Duration::from_millis(1);
    while gate.wait_open() {
        match listener.accept() {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(1);
                if gate.is_stopping() {
                    break;
                }
                match spawn_reader(stream, peer, tx, options) {
                    Ok(input) => {
                        if tx.send(input).is_err() {
                            break;
                        }
                    }
                    // No thread for it: closing it is all we can do.
                    Err(_) => {
                        if tx.send(Input::AcceptFailed).is_err() {
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                if gate.is_stopping() {
                    break;
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if tx.send(Input::AcceptFailed).is_err() {
                    break;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
        }
    }
}

/// Starts the connection's reader here, off the owner thread (a thread
/// start costs tens of microseconds the owner would otherwise spend not
/// deciding). The reader learns the id the hub gives the connection from
/// `start` (see [`conn::run_reader`]).
fn spawn_reader(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    tx: &Sender<Input>,
    options: &Options,
) -> io::Result<Input> {
    if options.nodelay {
        let _ = stream.set_nodelay(true);
    }
    let stream = conn::Sock::new(stream);
    let (start, started) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("tether-read".into())
        .stack_size(options.stack_size)
        .spawn({
            let (stream, tx, buffer) = (stream.clone(), tx.clone(), options.read_buffer);
            move || conn::run_reader(stream, started, tx, buffer)
        })?;
    Ok(Input::Accepted {
        stream,
        peer,
        start,
        thread,
    })
}
