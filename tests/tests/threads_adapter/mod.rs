//! The conformance harness implemented for the blocking threads adapter
//! (`tether-threads`), shared by `threads.rs` and `threads_fd_cycles.rs`.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tether_conformance::{Adapter, ServerUnderTest};
use tether_core::{
    BroadcastReport, ChannelError, ChannelId, ChannelInfo, Config, Event, KickError, KickMode,
    SendError, Stats,
};
use tether_threads::{CallError, Events, Options, Server, Stopped};

/// `tether-threads` with default [`Options`].
pub struct Threads;

/// A running threads server. The event receiver is not `Sync`, hence the
/// mutex (only the rig's recorder thread reads it).
pub struct ThreadsServer {
    server: Server,
    events: Mutex<Events>,
}

impl Adapter for Threads {
    const NAME: &'static str = "threads";
    type Server = ThreadsServer;

    fn start(config: Config) -> ThreadsServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let (server, events) =
            Server::start(listener, config, Options::default()).expect("server starts");
        ThreadsServer {
            server,
            events: Mutex::new(events),
        }
    }
}

fn stopped<T>(_: Stopped) -> T {
    panic!("threads: the server stopped unexpectedly")
}

fn verdict<E: std::error::Error>(result: Result<(), CallError<E>>) -> Result<(), E> {
    match result {
        Ok(()) => Ok(()),
        Err(CallError::Rejected(e)) => Err(e),
        Err(CallError::Stopped) => stopped(Stopped),
    }
}

impl ServerUnderTest for ThreadsServer {
    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn next_event(&self, timeout: Duration) -> Option<Event> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if timeout.is_zero() {
            events.try_recv().ok()
        } else {
            events.recv_timeout(timeout).ok()
        }
    }

    fn send(&self, id: ChannelId, data: Bytes) -> Result<(), SendError> {
        verdict(self.server.handle().send(id, data))
    }

    fn broadcast(&self, data: Bytes) -> BroadcastReport {
        self.server.handle().broadcast(data).unwrap_or_else(stopped)
    }

    fn kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), KickError> {
        verdict(self.server.handle().kick(id, mode, code))
    }

    fn authenticate(&self, id: ChannelId) -> Result<(), ChannelError> {
        verdict(self.server.handle().authenticate(id))
    }

    fn stats(&self) -> Stats {
        self.server.handle().stats().unwrap_or_else(stopped).core
    }

    fn channels(&self) -> Vec<ChannelInfo> {
        self.server.handle().channels().unwrap_or_else(stopped)
    }

    fn shutdown(&self, grace: Duration) {
        // Already stopped is fine: shutdown is idempotent.
        let _ = self.server.handle().shutdown(grace);
    }

    fn wait_stopped(&self, timeout: Duration) -> bool {
        self.server.wait_stopped(timeout)
    }
}
