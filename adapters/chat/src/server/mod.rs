//! The chat server, written once for every runtime, on top of
//! [`tether_adapter::Handle`] and [`tether_adapter::Events`] only.
//!
//! The binary picks a runtime and hands [`serve`] (or [`start`]) a function
//! that starts that runtime's adapter on a bound listener. Everything else
//! runs on plain std threads, which work under every runtime (the room and
//! the admin console are low-volume):
//!
//! * **the room** (thread `tether-room`): takes events with
//!   [`Events::blocking`], feeds the [`ChatRoom`](crate::ChatRoom), and
//!   makes its sends, broadcasts and logins with the *blocking, posting*
//!   forms ([`Blocking::post_send`](tether_adapter::Blocking::post_send)…).
//!   Those wait for room in the adapter's bounded command queue, which is
//!   the flow-control chain: a slow room leaves events unread, the driver
//!   stops reading sockets, TCP pushes back on the senders. Nothing is
//!   dropped: a post fails only once the server has stopped.
//! * **the admin console** (thread `tether-admin` and one thread per
//!   session): at most `--admin-max` sessions, each closed after
//!   `--admin-idle` without a complete line, `auth TOKEN` first when
//!   `--admin-token` is set. A session is *established* once it
//!   authenticated (with a token) or ran a command (without one); one not
//!   established within `--admin-login` (2 s) is closed, and at
//!   `--admin-max` a newcomer evicts the oldest session not established
//!   (as sshd's `MaxStartups` drops unauthenticated connections), so silent
//!   sockets never lock the operator out. Established sessions are never
//!   evicted; when all are, the newcomer reads
//!   `error too many admin connections`. See [`Console`] for the commands.
//! * **the watcher** (thread `tether-watch`): once a second, logs
//!   connections refused because the server is full or out of resources,
//!   and accept pauses, at warn/info.
//! * **metrics** (`--metrics ADDR` only, thread `tether-metrics` and one
//!   short-lived thread per scrape, at most
//!   [`METRICS_MAX_CONNECTIONS`] at once): `GET /metrics` answers every
//!   counter of `stats` in the Prometheus text format, plus the queued
//!   bytes and a kick → FIN latency histogram; anything else gets a 404
//!   (a 400, 408 or 431 for what is not a timely, bounded HTTP request).
//!   At the cap a newcomer evicts the oldest connection whose request
//!   head has not arrived, so silent sockets never starve a scrape.
//! * **signals** ([`serve`] only, thread `tether-signals`): SIGTERM or
//!   SIGINT runs the same drain as the console's `shutdown`, with grace
//!   `--shutdown-grace`; the process then exits 0. A second signal exits at
//!   once with status 128 + the signal's number (130 for SIGINT, 143 for
//!   SIGTERM).
//!
//! * **the cluster** (`--cluster`/`--node` only; [`tether_redis::Node`]'s
//!   threads `tether-cluster*`): the node is started (Redis reached, the
//!   name claimed) before the adapter, so a start that cannot join fails
//!   before any client connects. Each shard's room hands it opens, closes
//!   and lines without blocking; remote lines come back as posting
//!   broadcasts (paced by the flow control like the room's), remote kicks
//!   as the console's local kick. The console's `nodes`, `list`, `kick
//!   NAME/<id>` and `stats` ask it, each within `--cluster-timeout`. After
//!   the drain the node says goodbye and deletes its name's claim.
//!
//! Logging goes through `tracing`: per-connection lines
//! ([`log_line`](crate::log_line)) at debug, the server's lifecycle at info
//! and warn. The binary installs the subscriber.

mod cluster;
mod console;
mod metrics;
mod presence;
mod room;
mod setup;
mod signals;
mod slots;
mod stop;
mod watch;
mod web;

use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tether_adapter::{Error, Events, Handle, Options, StartError, listen};
use tether_core::Config;

use crate::cli::{HostPort, Runtime, ServeOptions};

pub use console::{Console, MAX_ADMIN_LINE};
pub use metrics::{
    CONTENT_TYPE as METRICS_CONTENT_TYPE, MAX_CONNECTIONS as METRICS_MAX_CONNECTIONS,
};

/// Listen backlog of the admin console's port.
pub const ADMIN_BACKLOG: u32 = 64;

/// Why the chat server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// An address did not resolve or could not be bound. Displayed as
    /// `--listen 127.0.0.1:7000: cannot listen on 127.0.0.1:7000: Address in use`.
    #[error("{flag} {address}: {source}")]
    Bind {
        /// The flag that chose the address (`--listen`, `--admin`).
        flag: &'static str,
        /// The address as written.
        address: HostPort,
        /// What went wrong.
        source: io::Error,
    },
    /// The admin console would be reachable from other hosts without a
    /// token.
    #[error(
        "--admin {address}: refusing to expose the admin console on {resolved} (not a loopback address) \
         without a password; set --admin-token TOKEN (or TETHER_ADMIN_TOKEN), or listen on 127.0.0.1"
    )]
    ExposedConsole {
        /// The address as written.
        address: HostPort,
        /// The non-loopback address it resolved to.
        resolved: SocketAddr,
    },
    /// The recording (`--record`) could not start: its file (or a shard's
    /// `FILE.shard<k>`) could not be created or written. Displayed as
    /// `--record /var/log/chat.rec: cannot create /var/log/chat.rec: Permission denied`.
    #[error("{flag} {}: {source}", path.display())]
    Record {
        /// The flag (`--record`).
        flag: &'static str,
        /// The path as given.
        path: std::path::PathBuf,
        /// What went wrong: the recorder's start error
        /// (`tether_record::RecordStartError`, boxed by the adapter layer).
        source: tether_adapter::ObserverError,
    },
    /// The runtime's adapter did not start.
    #[error("cannot start the {runtime} server: {source}")]
    Start {
        /// The runtime.
        runtime: Runtime,
        /// Why.
        source: StartError,
    },
    /// A thread of the chat server could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot handle SIGTERM/SIGINT: {0}")]
    Signals(io::Error),
    /// The cluster node did not start: Redis unreachable (`--cluster
    /// redis://127.0.0.1:6379: cannot reach Redis at 127.0.0.1:6379: …`), or
    /// the name live on another node (`--node n1: the node name n1 is live
    /// elsewhere …`).
    #[error("{flag} {value}: {source}")]
    Cluster {
        /// The flag at fault: `--cluster` or `--node`.
        flag: &'static str,
        /// Its value (a URL without its password, or the name).
        value: String,
        /// Why.
        source: tether_redis::StartError,
    },
}

/// The chat server's own counters, printed by `stats` after the adapter's.
#[derive(Debug, Default)]
pub struct ChatCounters {
    /// Channels in the room now.
    pub members: AtomicU64,
    /// Lines broadcast.
    pub lines_relayed: AtomicU64,
    /// Overlong lines dropped.
    pub lines_dropped: AtomicU64,
    /// Admin console sessions open now.
    pub admin_sessions: AtomicU64,
    /// Admin console connections refused: `--admin-max` sessions open, every
    /// one established.
    pub admin_refused: AtomicU64,
    /// Admin console sessions evicted at `--admin-max` by a newcomer: the
    /// oldest session not yet established (never authenticated, never ran a
    /// command) makes room.
    pub admin_evicted: AtomicU64,
    /// Admin console sessions closed at `--admin-login`: not established in
    /// time.
    pub admin_login_timeouts: AtomicU64,
    /// `--metrics` connections evicted at the connection cap by a newcomer:
    /// the oldest one whose request head had not arrived makes room.
    pub metrics_evicted: AtomicU64,
    /// `--metrics` connections refused: every slot busy answering a request.
    pub metrics_refused: AtomicU64,
    /// `--metrics` connections answered 408: no complete request head in
    /// time.
    pub metrics_timeouts: AtomicU64,
    /// A drain was requested (console `shutdown`, a signal,
    /// [`ChatServer::shutdown`]): accept pauses and refusals from now on
    /// are the drain's, not a full server's.
    pub draining: AtomicBool,
}

impl ChatCounters {
    /// Every counter as `(key, value)`, in a fixed order.
    pub fn snapshot(&self) -> [(&'static str, u64); 10] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("chat.members", get(&self.members)),
            ("chat.lines_relayed", get(&self.lines_relayed)),
            ("chat.lines_dropped", get(&self.lines_dropped)),
            ("admin.sessions", get(&self.admin_sessions)),
            ("admin.refused", get(&self.admin_refused)),
            ("admin.evicted", get(&self.admin_evicted)),
            ("admin.login_timeouts", get(&self.admin_login_timeouts)),
            ("metrics.evicted", get(&self.metrics_evicted)),
            ("metrics.refused", get(&self.metrics_refused)),
            ("metrics.timeouts", get(&self.metrics_timeouts)),
        ]
    }
}

/// A running chat server (see [`start`]).
#[derive(Debug)]
pub struct ChatServer {
    /// The server's handle (stats, shutdown…).
    pub handle: Handle,
    /// Where chat clients connect.
    pub chat_addr: SocketAddr,
    /// Where the admin console listens.
    pub admin_addr: SocketAddr,
    /// Where `GET /metrics` is served (`--metrics`), if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Where browsers connect (`--web`), if anywhere.
    pub web_addr: Option<SocketAddr>,
    /// The runtime it runs on.
    pub runtime: Runtime,
    console: Console,
    threads: Vec<JoinHandle<()>>,
    cluster: cluster::ClusterNode,
}

impl ChatServer {
    /// The admin console's command executor (what a session runs).
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Starts the drain: every channel is kicked with `ServerShutdown`,
    /// what is still closing after `grace` is aborted.
    pub fn shutdown(&self, grace: Duration) -> Result<(), Error> {
        self.console.shutdown(grace)
    }

    /// Blocks until the server has stopped and the room, console and
    /// watcher threads have ended (every event read, every console session
    /// closed); on a cluster node, then leaves the cluster (the goodbye,
    /// the name's claim deleted).
    pub fn wait(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
        if let Some(node) = self.cluster {
            node.shutdown();
        }
    }

    /// This node's name, on a cluster node.
    pub fn node(&self) -> Option<&tether_cluster::NodeName> {
        self.cluster.as_deref().map(tether_redis::Node::name)
    }
}

/// Starts the chat server: binds `--listen` and `--admin`, starts the
/// runtime's adapter with `start_adapter` on the chat listener, then the
/// room, console and watcher threads. Returns at once. No signal handling
/// (that is [`serve`]'s).
///
/// ```no_run
/// # fn adapter(_: std::net::TcpListener, _: tether_core::Config, _: tether_adapter::Options)
/// #     -> Result<(tether_adapter::Handle, tether_adapter::Events), tether_adapter::StartError> {
/// #     // A real server passes a runtime adapter's start, e.g. `tether_tokio::start`.
/// #     Err(std::io::Error::other("no runtime in this example").into())
/// # }
/// use std::time::Duration;
/// use tether_chat::cli::ServeOptions;
/// let server = tether_chat::server::start(&ServeOptions::ephemeral(), adapter).unwrap();
/// println!("chat on {}", server.chat_addr);
/// server.shutdown(Duration::from_secs(1)).unwrap();
/// server.wait();
/// ```
pub fn start<F>(options: &ServeOptions, start_adapter: F) -> Result<ChatServer, ServeError>
where
    F: FnOnce(TcpListener, Config, Options) -> Result<(Handle, Events), StartError>,
{
    check_console_exposure(options)?;
    // With `--accept reuseport` the adapter binds every other shard's
    // listener on the address this one got.
    let chat = bind_chat(&options.listen, &options.options)?;
    let admin = bind("--admin", &options.admin, ADMIN_BACKLOG)?;
    let admin_addr = admin.local_addr().map_err(|source| ServeError::Bind {
        flag: "--admin",
        address: options.admin.clone(),
        source,
    })?;
    let metrics = match &options.metrics {
        Some(address) => {
            let listener = bind("--metrics", address, ADMIN_BACKLOG)?;
            let addr = listener.local_addr().map_err(|source| ServeError::Bind {
                flag: "--metrics",
                address: address.clone(),
                source,
            })?;
            Some((listener, addr))
        }
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|(_, addr)| *addr);
    let presence = Arc::new(presence::Presence::default());
    let web = web::bind_web(options, options.options.backlog, &presence)?;
    let web_addr = web.as_ref().map(|(_, addr)| *addr);
    // Only the web page reads presence: without it, the rooms keep no set
    // (one lock shared by every shard at each connect and disconnect).
    let presence = web.is_some().then_some(presence);
    let counters = Arc::new(ChatCounters::default());
    // The cluster node first: a Redis that cannot be reached or a name live
    // elsewhere stops the start before any client connects.
    let (local, node) = cluster::start_node(options, &counters)?;
    let mut adapter_options = setup::adapter_options(options, &counters, presence.as_ref(), &node);
    adapter_options.web = web.map(|(web, _)| web);
    let started = start_adapter(chat, web::config(options), adapter_options);
    if let (Err(_), Some(node)) = (&started, &node) {
        node.shutdown();
    }
    let (handle, events) = started.map_err(|source| setup::adapter_error(source, options))?;
    // Every event is handled by the room inside the drivers.
    drop(events);
    let _ = local.handle.set(handle.clone());
    let console = Console::new(handle.clone(), options.shutdown_grace, counters.clone())
        .with_node(node.clone());
    let mut threads = Vec::with_capacity(4);
    let spawned = (|| {
        let (stopped, stop_writer) = stop::stop_pipe().map_err(|source| ServeError::Thread {
            what: "room",
            source,
        })?;
        threads.push(room::spawn_stop_watch(handle.clone(), stop_writer)?);
        threads.push(console::spawn(
            admin,
            console.clone(),
            options,
            stopped.clone(),
        )?);
        if let Some((listener, _)) = metrics {
            threads.push(metrics::spawn(
                listener,
                console.clone(),
                options.admin_token.clone(),
                counters.clone(),
                stopped.clone(),
            )?);
        }
        threads.push(watch::spawn(handle.clone(), counters.clone(), stopped)?);
        Ok(())
    })();
    if let Err(e) = spawned {
        // Do not leave a server running that nobody serves.
        let _ = call(&handle, handle.shutdown(Duration::ZERO));
        if let Some(node) = &node {
            node.shutdown();
        }
        return Err(e);
    }
    Ok(ChatServer {
        chat_addr: handle.local_addr(),
        handle,
        admin_addr,
        metrics_addr,
        web_addr,
        runtime: options.runtime,
        console,
        threads,
        cluster: node,
    })
}

/// `tether serve`: starts the server (see [`start`]), handles SIGTERM and
/// SIGINT, prints the banner whose first line is exactly
/// `tether: chat on <ADDR>, admin console on <ADDR> (<runtime>)`, and
/// returns once the server has drained and stopped (after a signal or
/// the console's `shutdown`). A second signal exits the process at once
/// with status 128 + its number.
pub fn serve<F>(options: &ServeOptions, start_adapter: F) -> Result<(), ServeError>
where
    F: FnOnce(TcpListener, Config, Options) -> Result<(Handle, Events), StartError>,
{
    let server = start(options, start_adapter)?;
    let signals = match signals::spawn(server.console.clone(), options.shutdown_grace) {
        Ok(signals) => signals,
        Err(e) => {
            let _ = server.shutdown(Duration::ZERO);
            server.wait();
            return Err(e);
        }
    };
    let (chat, admin) = (server.chat_addr, server.admin_addr);
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "tether: chat on {chat}, admin console on {admin} ({})\n\
         \x20 chat:    nc {} {}\n\
         \x20 console: nc {} {}   then: {}list | kick <id> [graceful|abort] [reason] | stats | shutdown [deadline]",
        server.runtime,
        chat.ip(),
        chat.port(),
        admin.ip(),
        admin.port(),
        if options.admin_token.is_some() {
            "auth <token>, "
        } else {
            ""
        },
    );
    if let Some(metrics) = server.metrics_addr {
        let _ = writeln!(out, "  metrics: http://{metrics}/metrics");
        let _ = writeln!(out, "  admin dashboard: http://{metrics}/");
    }
    if let Some(web) = server.web_addr {
        let _ = writeln!(out, "  web:     http://{web}/ (WebSocket: ws://{web}/ws)");
    }
    if let (Some(node), Some(cluster)) = (server.node(), &options.cluster) {
        let _ = writeln!(
            out,
            "  cluster: node {node} on {}   console: nodes | list | kick NAME/<id> …",
            cluster.url
        );
    }
    let _ = out.flush();
    drop(out);
    tracing::info!(
        %chat,
        %admin,
        runtime = %server.runtime,
        shards = options.options.shards,
        accept = ?options.options.accept,
        max_channels = options.config.max_channels,
        metrics = ?server.metrics_addr,
        "listening"
    );
    server.wait();
    signals.close();
    tracing::info!("shut down");
    println!("tether: shut down");
    Ok(())
}

/// Resolves an address as written (`localhost:7000`).
fn resolve(flag: &'static str, address: &HostPort) -> Result<Vec<SocketAddr>, ServeError> {
    let named = |source| ServeError::Bind {
        flag,
        address: address.clone(),
        source,
    };
    let addrs: Vec<SocketAddr> = address
        .as_str()
        .to_socket_addrs()
        .map_err(|e| named(io::Error::new(e.kind(), format!("cannot resolve it: {e}"))))?
        .collect();
    if addrs.is_empty() {
        return Err(named(io::Error::new(
            io::ErrorKind::NotFound,
            "it resolves to no address",
        )));
    }
    Ok(addrs)
}

/// Binds the first address `address` resolves to that can be bound.
fn bind(flag: &'static str, address: &HostPort, backlog: u32) -> Result<TcpListener, ServeError> {
    bind_with(flag, address, backlog, tether_adapter::Accept::RoundRobin)
}

/// Binds the chat port as `options.accept` needs it (`SO_REUSEPORT` for
/// per-shard listeners).
fn bind_chat(address: &HostPort, options: &Options) -> Result<TcpListener, ServeError> {
    bind_with("--listen", address, options.backlog, options.accept)
}

fn bind_with(
    flag: &'static str,
    address: &HostPort,
    backlog: u32,
    accept: tether_adapter::Accept,
) -> Result<TcpListener, ServeError> {
    let mut last = None;
    for addr in resolve(flag, address)? {
        match listen::bind_for(addr, backlog, accept) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(ServeError::Bind {
        flag,
        address: address.clone(),
        source: last.unwrap_or_else(|| io::Error::other("no address to bind")),
    })
}

/// A console reachable from other hosts needs a token.
fn check_console_exposure(options: &ServeOptions) -> Result<(), ServeError> {
    if options.admin_token.is_some() {
        return Ok(());
    }
    match resolve("--admin", &options.admin)?
        .into_iter()
        .find(|addr| !addr.ip().is_loopback())
    {
        Some(resolved) => Err(ServeError::ExposedConsole {
            address: options.admin.clone(),
            resolved,
        }),
        None => Ok(()),
    }
}

/// Runs a [`Handle`] call on this thread, bounded by the server's stop: a
/// call that meets the stop returns [`Error::Stopped`] rather than waiting
/// for an answer a stopped driver will never give.
pub(crate) fn call<T>(
    handle: &Handle,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    futures_lite::future::block_on(futures_lite::future::or(call, async {
        handle.stopped().await;
        Err(Error::Stopped)
    }))
}

/// Spawns a named thread, naming it in the error too.
fn spawn_thread(
    what: &'static str,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, ServeError> {
    std::thread::Builder::new()
        .name(format!("tether-{what}"))
        .spawn(f)
        .map_err(|source| ServeError::Thread { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Secret;

    #[test]
    fn bind_errors_name_the_flag_and_the_address() {
        let taken = listen::bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = HostPort::from(taken.local_addr().unwrap());
        let err = bind("--listen", &addr, 16).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("--listen {addr}: cannot listen on {addr}: ")),
            "{err}"
        );
        let nowhere: HostPort = "nowhere.invalid:7000".parse().unwrap();
        let err = bind("--admin", &nowhere, 16).unwrap_err().to_string();
        assert!(
            err.starts_with("--admin nowhere.invalid:7000: cannot resolve it"),
            "{err}"
        );
        // Host names resolve.
        let local: HostPort = "localhost:0".parse().unwrap();
        let listener = bind("--listen", &local, 16).unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
    }

    #[test]
    fn an_exposed_console_needs_a_token() {
        let mut options = ServeOptions::ephemeral();
        options.admin = "0.0.0.0:0".parse().unwrap();
        let err = check_console_exposure(&options).unwrap_err();
        assert!(matches!(err, ServeError::ExposedConsole { .. }), "{err}");
        assert!(err.to_string().contains("--admin-token"), "{err}");
        options.admin_token = Some(Secret::new("t"));
        check_console_exposure(&options).unwrap();
        options.admin_token = None;
        options.admin = "localhost:0".parse().unwrap();
        check_console_exposure(&options).unwrap();
        options.admin = "[::1]:0".parse().unwrap();
        check_console_exposure(&options).unwrap();
    }
}
