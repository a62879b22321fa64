//! The conformance harness for every runtime adapter. They all return the
//! same `tether-adapter` [`Handle`] and [`Events`], so one
//! [`ServerUnderTest`] serves them all; an [`Adapter`] only says how to
//! start its runtime.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use bytes::Bytes;
use tether_adapter::{Error, Events, Handle, Options};
use tether_core::{
    BroadcastReport, ChannelId, ChannelInfo, Config, Event, IdError, KickError, KickMode,
    SendError, Stats,
};

use crate::rig::{Adapter, ServerUnderTest};

/// A loopback listener as every server binds it.
fn loopback() -> TcpListener {
    tether_adapter::listen::bind("127.0.0.1:0".parse().expect("address"), 1024)
        .expect("bind loopback")
}

/// `options` with `shards` hubs.
fn options(options: Options, shards: usize) -> Options {
    Options { shards, ..options }
}

/// `tether-async-std` on async-std, with `N` shards.
pub struct AsyncStd<const N: usize = 1>;
/// `tether-async-std` on smol, with `N` shards.
pub struct Smol<const N: usize = 1>;
/// `tether-threads`, with `N` shards.
pub struct Threads<const N: usize = 1>;

impl<const N: usize> Adapter for AsyncStd<N> {
    const NAME: &'static str = "async-std";
    type Server = LayerServer;
    fn start_with(config: Config, opts: Options) -> LayerServer {
        let runtime = tether_async_std::AsyncStd;
        let started = tether_async_std::start(runtime, loopback(), config, options(opts, N));
        LayerServer::new(started.expect("server starts"))
    }
}

impl<const N: usize> Adapter for Smol<N> {
    const NAME: &'static str = "smol";
    type Server = LayerServer;
    fn start_with(config: Config, opts: Options) -> LayerServer {
        let runtime = tether_async_std::Smol;
        let started = tether_async_std::start(runtime, loopback(), config, options(opts, N));
        LayerServer::new(started.expect("server starts"))
    }
}

impl<const N: usize> Adapter for Threads<N> {
    const NAME: &'static str = "threads";
    type Server = LayerServer;
    fn start_with(config: Config, opts: Options) -> LayerServer {
        let started = tether_threads::start(loopback(), config, options(opts, N));
        LayerServer::new(started.expect("server starts"))
    }
}

/// `tether-tokio`, with `N` shards, on one multi-thread tokio runtime kept
/// for the whole test process.
pub struct Tokio<const N: usize = 1>;

fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

impl<const N: usize> Adapter for Tokio<N> {
    const NAME: &'static str = "tokio";
    type Server = LayerServer;
    fn start_with(config: Config, opts: Options) -> LayerServer {
        let _entered = tokio_runtime().enter();
        let started = tether_tokio::start(loopback(), config, options(opts, N));
        LayerServer::new(started.expect("server starts"))
    }
}

/// A running server of any adapter.
pub struct LayerServer {
    handle: Handle,
    events: Events,
}

impl LayerServer {
    fn new((handle, events): (Handle, Events)) -> Self {
        LayerServer { handle, events }
    }
}

fn stopped<T>(e: Error) -> T {
    panic!("server call failed unexpectedly: {e}")
}

impl ServerUnderTest for LayerServer {
    fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    fn next_event(&self, timeout: Duration) -> Option<Event> {
        if timeout.is_zero() {
            return self.events.try_next();
        }
        self.events.next_timeout(timeout)
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

    fn authenticate(&self, id: ChannelId) -> Result<(), IdError> {
        match self.handle.blocking().authenticate(id) {
            Ok(()) => Ok(()),
            Err(Error::Id(e)) => Err(e),
            Err(e) => stopped(e),
        }
    }

    fn stats(&self) -> Stats {
        self.handle.blocking().stats().unwrap_or_else(stopped).core
    }

    fn refused(&self) -> u64 {
        let stats = self.handle.blocking().stats().unwrap_or_else(stopped);
        stats.core.refused + stats.adapter("adapter.refused_full")
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
