//! The conformance harness for every runtime adapter. They all return the
//! same `tether-adapter` [`Handle`] and [`Events`], so one
//! [`ServerUnderTest`] serves them all; an [`Adapter`] only says how to
//! start its runtime.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use bytes::Bytes;
use tether_adapter::{Accept, Counter, Error, Events, Handle, Options};
use tether_core::{
    BroadcastReport, ChannelId, ChannelInfo, Config, Event, IdError, KickError, KickMode,
    SendError, Stats,
};

use crate::bounded::{STEP_LIMIT, within};
use crate::rig::{AcceptCounts, Adapter, ServerUnderTest};

/// A loopback listener as every server binds it: with `SO_REUSEPORT` when
/// every shard is to bind a listener of its own on its port.
fn loopback(reuse_port: bool) -> TcpListener {
    let addr = "127.0.0.1:0".parse().expect("address");
    let bound = if reuse_port {
        tether_adapter::listen::bind_reuse_port(addr, 1024)
    } else {
        tether_adapter::listen::bind(addr, 1024)
    };
    bound.expect("bind loopback")
}

/// `options` with `shards` hubs, accepting with one `SO_REUSEPORT` listener
/// per shard if `reuse_port`, else round-robin from one.
fn options(options: Options, shards: usize, reuse_port: bool) -> Options {
    let accept = if reuse_port {
        Accept::ReusePort
    } else {
        Accept::RoundRobin
    };
    options.with_shards(shards).with_accept(accept)
}

/// `tether-async-std` on async-std, with `N` shards (one `SO_REUSEPORT`
/// listener per shard if `REUSE_PORT`, else one round-robin acceptor).
pub struct AsyncStd<const N: usize = 1, const REUSE_PORT: bool = false>;
/// `tether-async-std` on smol, with `N` shards (per-shard `SO_REUSEPORT`
/// listeners if `REUSE_PORT`).
pub struct Smol<const N: usize = 1, const REUSE_PORT: bool = false>;
/// `tether-threads`, with `N` shards (per-shard `SO_REUSEPORT` listeners
/// and acceptor threads if `REUSE_PORT`).
pub struct Threads<const N: usize = 1, const REUSE_PORT: bool = false>;

/// `tether-async-std` on `runtime` (async-std and smol differ only there).
fn start_async_std<R: tether_async_std::Runtime>(
    runtime: R,
    config: Config,
    opts: Options,
) -> LayerServer {
    let reuse_port = matches!(opts.accept, Accept::ReusePort);
    let started = tether_async_std::start(runtime, loopback(reuse_port), config, opts);
    LayerServer::new(started.expect("server starts"))
}

impl<const N: usize, const REUSE_PORT: bool> Adapter for AsyncStd<N, REUSE_PORT> {
    const NAME: &'static str = "async-std";
    const SHARDS: usize = N;
    type Server = LayerServer;
    fn start_with(config: Config, opts: Options) -> LayerServer {
        start_async_std(
            tether_async_std::AsyncStd,
            config,
            options(opts, N, REUSE_PORT),
        )
    }
}

impl<const N: usize, const REUSE_PORT: bool> Adapter for Smol<N, REUSE_PORT> {
    const NAME: &'static str = "smol";
    const SHARDS: usize = N;
    type Server = LayerServer;
    fn start_with(config: Config, opts: Options) -> LayerServer {
        start_async_std(tether_async_std::Smol, config, options(opts, N, REUSE_PORT))
    }
}

impl<const N: usize, const REUSE_PORT: bool> Adapter for Threads<N, REUSE_PORT> {
    const NAME: &'static str = "threads";
    const SHARDS: usize = N;
    type Server = LayerServer;
    fn start_with(config: Config, opts: Options) -> LayerServer {
        let started =
            tether_threads::start(loopback(REUSE_PORT), config, options(opts, N, REUSE_PORT));
        LayerServer::new(started.expect("server starts"))
    }
}

/// `tether-tokio`, with `N` shards (per-shard `SO_REUSEPORT` listeners if
/// `REUSE_PORT`), on one multi-thread tokio runtime kept for the whole test
/// process.
pub struct Tokio<const N: usize = 1, const REUSE_PORT: bool = false>;

fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

impl<const N: usize, const REUSE_PORT: bool> Adapter for Tokio<N, REUSE_PORT> {
    const NAME: &'static str = "tokio";
    const SHARDS: usize = N;
    type Server = LayerServer;
    fn start_with(config: Config, opts: Options) -> LayerServer {
        let _entered = tokio_runtime().enter();
        let started =
            tether_tokio::start(loopback(REUSE_PORT), config, options(opts, N, REUSE_PORT));
        LayerServer::new(started.expect("server starts"))
    }
}

/// `tether-tokio`'s [`start_on_threads`](tether_tokio::start_on_threads)
/// (what `tether serve --runtime tokio` runs): a current-thread runtime per
/// shard on a thread of its own; with `N` > 1 and round-robin accepting,
/// every connection is handed to its shard's runtime unregistered.
pub struct TokioThreads<const N: usize = 1, const REUSE_PORT: bool = false>;

impl<const N: usize, const REUSE_PORT: bool> Adapter for TokioThreads<N, REUSE_PORT> {
    const NAME: &'static str = "tokio-threads";
    const SHARDS: usize = N;
    type Server = LayerServer;
    fn start_with(config: Config, opts: Options) -> LayerServer {
        let started = tether_tokio::start_on_threads(
            loopback(REUSE_PORT),
            config,
            options(opts, N, REUSE_PORT),
        );
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

impl LayerServer {
    /// The server's stats, within [`STEP_LIMIT`].
    fn server_stats(&self, step: &str) -> tether_adapter::ServerStats {
        within(step, STEP_LIMIT, self.handle.stats()).unwrap_or_else(stopped)
    }
}

/// Every call is bounded by [`STEP_LIMIT`] (`within`): a driver that never
/// answers fails the call naming it, e.g. `step kick #1.1: no answer within
/// 30s`.
impl ServerUnderTest for LayerServer {
    fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    fn next_event(&self, timeout: Duration) -> Option<Event> {
        if timeout.is_zero() {
            return self.events.try_next();
        }
        self.events.blocking().next_timeout(timeout)
    }

    fn send(&self, id: ChannelId, data: Bytes) -> Result<(), SendError> {
        match within(
            format!("send to {id}"),
            STEP_LIMIT,
            self.handle.send(id, data),
        ) {
            Ok(()) => Ok(()),
            Err(Error::Send(e)) => Err(e),
            Err(e) => stopped(e),
        }
    }

    fn broadcast(&self, data: Bytes) -> BroadcastReport {
        within("broadcast", STEP_LIMIT, self.handle.broadcast(data)).unwrap_or_else(stopped)
    }

    fn kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), KickError> {
        let step = format!("kick {id}");
        match within(step, STEP_LIMIT, self.handle.kick(id, mode, code)) {
            Ok(()) => Ok(()),
            Err(Error::Kick(e)) => Err(e),
            Err(e) => stopped(e),
        }
    }

    fn authenticate(&self, id: ChannelId) -> Result<(), IdError> {
        let step = format!("authenticate {id}");
        match within(step, STEP_LIMIT, self.handle.authenticate(id)) {
            Ok(()) => Ok(()),
            Err(Error::Id(e)) => Err(e),
            Err(e) => stopped(e),
        }
    }

    fn stats(&self) -> Stats {
        self.server_stats("stats").core
    }

    fn accept_counts(&self) -> AcceptCounts {
        let stats = self.server_stats("stats (accept counts)");
        AcceptCounts {
            accepted: stats.adapter.get(Counter::Accepted),
            // The hub's own refusals (`Stats::refused`) are among these:
            // the driver counts every refusal it answers with the line.
            refused_full: stats.adapter.get(Counter::RefusedFull),
            refused_resources: stats.adapter.get(Counter::RefusedResources),
            accept_errors: stats.adapter.get(Counter::AcceptErrors),
        }
    }

    fn channels(&self) -> Vec<ChannelInfo> {
        within("channels", STEP_LIMIT, self.handle.channels()).unwrap_or_else(stopped)
    }

    fn shutdown(&self, grace: Duration) {
        // Already stopped is fine: shutdown is idempotent.
        let _ = within("shutdown", STEP_LIMIT, self.handle.shutdown(grace));
    }

    fn wait_stopped(&self, timeout: Duration) -> bool {
        self.handle.blocking().wait_stopped(timeout)
    }
}
