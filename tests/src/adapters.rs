//! The conformance harness implemented for the async adapter, on each of
//! its runtimes. (Another adapter implements [`Adapter`] in its own test
//! file; see `HARNESS.md`.)

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tether_async_std::{Error, Events, Handle, Runtime, Server};
use tether_core::{
    BroadcastReport, ChannelError, ChannelId, ChannelInfo, Config, Event, KickError, KickMode,
    SendError, Stats,
};

use crate::rig::{Adapter, ServerUnderTest};

/// `tether-async-std` on runtime `R` ([`tether_async_std::AsyncStd`] or
/// [`tether_async_std::Smol`]).
pub struct AsyncAdapter<R>(PhantomData<R>);

/// A running async server.
pub struct AsyncServer {
    handle: Handle,
    events: Events,
}

impl<R: Runtime + Default> Adapter for AsyncAdapter<R> {
    const NAME: &'static str = R::NAME;
    type Server = AsyncServer;

    fn start(config: Config) -> AsyncServer {
        let addr = "127.0.0.1:0".parse().expect("loopback address");
        let (handle, events) = Server::start(R::default(), addr, config).expect("server starts");
        AsyncServer { handle, events }
    }
}

fn stopped<T>(e: Error) -> T {
    panic!("server call failed unexpectedly: {e}")
}

impl ServerUnderTest for AsyncServer {
    fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    fn next_event(&self, timeout: Duration) -> Option<Event> {
        if timeout.is_zero() {
            return self.events.try_next();
        }
        self.events.next_blocking(timeout)
    }

    fn send(&self, id: ChannelId, data: Bytes) -> Result<(), SendError> {
        match self.handle.blocking().send(id, data) {
            Ok(()) => Ok(()),
            Err(Error::Send(e)) => Err(e),
            Err(e) => stopped(e),
        }
    }

    fn broadcast(&self, data: Bytes) -> BroadcastReport {
        self.handle
            .blocking()
            .broadcast(data)
            .unwrap_or_else(stopped)
    }

    fn kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), KickError> {
        match self.handle.blocking().kick(id, mode, code) {
            Ok(()) => Ok(()),
            Err(Error::Kick(e)) => Err(e),
            Err(e) => stopped(e),
        }
    }

    fn authenticate(&self, id: ChannelId) -> Result<(), ChannelError> {
        match self.handle.blocking().authenticate(id) {
            Ok(()) => Ok(()),
            Err(Error::Channel(e)) => Err(e),
            Err(e) => stopped(e),
        }
    }

    fn stats(&self) -> Stats {
        self.handle.blocking().stats().unwrap_or_else(stopped)
    }

    fn channels(&self) -> Vec<ChannelInfo> {
        self.handle.blocking().channels().unwrap_or_else(stopped)
    }

    fn shutdown(&self, grace: Duration) {
        // Already stopped is fine: shutdown is idempotent.
        let _ = self.handle.blocking().shutdown(grace);
    }

    fn wait_stopped(&self, timeout: Duration) -> bool {
        self.handle.blocking().wait_stopped(timeout)
    }
}
