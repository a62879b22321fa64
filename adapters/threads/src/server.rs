//! Starting and stopping a server: the listener, the owner thread, the
//! event stream.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tether_core::{Config, ConfigError, Event, Hub};

use crate::acceptor::Acceptor;
use crate::handle::Handle;
use crate::owner::Owner;

/// The application's event stream: every [`Event`] of the hub, in order.
/// Unbounded on purpose: the owner thread must never block on a slow
/// application, or an application thread waiting for a [`Handle`] reply
/// while the owner waits for it to take an event would deadlock.
pub type Events = Receiver<Event>;

/// Adapter settings that are not lifecycle policy (that is [`Config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Stack size of every connection thread. Small on purpose: a reader
    /// keeps its buffer on the heap, so most of a default 2 MiB stack would
    /// only reserve address space.
    pub stack_size: usize,
    /// Size of each reader's buffer: the most bytes one `Received` carries.
    pub read_buffer: usize,
    /// Write timeout of a writer thread's socket: how often a writer blocked
    /// on a peer that does not read checks whether it was told to stop (the
    /// longest an abort of such a channel waits for its writer).
    pub write_tick: Duration,
    /// Set `TCP_NODELAY` on accepted sockets (line protocols want it).
    pub nodelay: bool,
    /// Grace given to open channels when a [`Server`] is dropped without
    /// [`Server::shutdown`].
    pub drop_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stack_size: 128 << 10,
            read_buffer: 8 << 10,
            write_tick: Duration::from_millis(20),
            nodelay: true,
            drop_grace: Duration::from_millis(100),
        }
    }
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The hub's configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Binding the listener or spawning a thread failed.
    #[error("cannot start the server: {0}")]
    Io(#[from] io::Error),
}

/// Set by the owner thread as its last act: shutdown complete, listener
/// closed, every socket closed and every connection thread joined.
#[derive(Debug, Default)]
pub(crate) struct StopLatch {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl StopLatch {
    pub(crate) fn set(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_all();
    }

    fn wait(&self, timeout: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (stopped, _) = self
            .changed
            .wait_timeout_while(stopped, timeout, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }
}

/// A running server: an acceptor thread, an owner thread that runs the hub,
/// and per channel a reader thread (plus a writer thread while a peer lags).
///
/// Dropping it shuts the server down with [`Options::drop_grace`] and waits
/// for every thread to end.
#[derive(Debug)]
pub struct Server {
    handle: Handle,
    owner: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
    drop_grace: Duration,
    stopped: Arc<StopLatch>,
}

impl Server {
    /// Binds `addr` and starts serving with default [`Options`].
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> Result<(Server, Events), StartError> {
        Server::start(TcpListener::bind(addr)?, config, Options::default())
    }

    /// Starts serving on `listener`.
    pub fn start(
        listener: TcpListener,
        config: Config,
        options: Options,
    ) -> Result<(Server, Events), StartError> {
        let hub = Hub::new(config)?;
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let acceptor = Acceptor::start(listener, tx.clone(), &options)?;
        let handle = Handle::new(tx.clone());
        let drop_grace = options.drop_grace;
        let stopped = Arc::new(StopLatch::default());
        let owner = Owner::new(hub, rx, tx, events_tx, acceptor, options);
        let owner = std::thread::Builder::new()
            .name("tether-owner".into())
            .spawn({
                let stopped = stopped.clone();
                move || {
                    owner.run();
                    stopped.set();
                }
            })?;
        let server = Server {
            handle,
            owner: Some(owner),
            local_addr,
            drop_grace,
            stopped,
        };
        Ok((server, events))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to command the server from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Shuts down (see [`Handle::shutdown`]) and waits until every thread
    /// has ended.
    pub fn shutdown(mut self, grace: Duration) {
        let _ = self.handle.shutdown(grace);
        self.join();
    }

    /// Waits at most `timeout` for the server to stop (shutdown complete,
    /// listener and every socket closed, every connection thread joined);
    /// whether it did.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        self.stopped.wait(timeout)
    }

    /// Waits until the server stopped (after a [`Handle::shutdown`] from
    /// anywhere, e.g. the admin console) and every thread has ended.
    pub fn wait(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.owner.is_some() {
            let _ = self.handle.shutdown(self.drop_grace);
            self.join();
        }
    }
}
