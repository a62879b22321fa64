//! The flags as clap reads them, and their validation into options.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tether_adapter::Options;
use tether_cluster::{ClusterConfig, NodeName};
use tether_record::{OptionsError, RecordOptions};
use tether_redis::{NodeOptions, RedisUrl};

use super::{
    ByteSize, CliError, DEFAULT_ADMIN, DEFAULT_LISTEN, DemoOptions, Dur, HostPort, REFUSE_LINE,
    Secret, ServeOptions, Timeout, default_serve_config,
};

/// The runtime a server runs on. Every runtime takes the same flags and
/// serves the same protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, ValueEnum)]
pub enum Runtime {
    /// async-std tasks (tether-async-std).
    #[value(name = "async-std")]
    AsyncStd,
    /// smol tasks (tether-async-std on smol's executor), an executor thread
    /// per shard.
    Smol,
    /// Blocking std::net sockets and std threads (tether-threads).
    Threads,
    /// tokio tasks on a current-thread runtime per shard (tether-tokio's
    /// `start_on_threads`). The default: at the default shard count (one
    /// per core) the fastest or within the spread of the fastest at churn,
    /// fan-out and kick latency in BENCHMARKS.md, where smol churned 5–10%
    /// slower with 2 shards in two runs (async-std, as fast at churn, is
    /// discontinued upstream and slower at fan-out).
    #[default]
    Tokio,
}

impl Runtime {
    /// Its name on the command line and in logs: `async-std`, `smol`, `threads`, `tokio`.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::AsyncStd => "async-std",
            Runtime::Smol => "smol",
            Runtime::Threads => "threads",
            Runtime::Tokio => "tokio",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How connections reach the shards (`--accept`; see
/// [`tether_adapter::Accept`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, ValueEnum)]
pub enum AcceptMode {
    /// One acceptor hands each connection to the next shard with room: a
    /// client is refused only when every shard is full.
    #[default]
    #[value(name = "round-robin")]
    RoundRobin,
    /// One SO_REUSEPORT listener per shard, each feeding only its shard:
    /// the kernel hashes each connection to a shard, so a full shard refuses
    /// it even while another has room (and another process of the same user
    /// may bind the port too and take a share).
    #[value(name = "reuseport", alias = "reuse-port")]
    ReusePort,
}

impl AcceptMode {
    /// Its name on the command line: `round-robin`, `reuseport`.
    pub fn name(self) -> &'static str {
        match self {
            AcceptMode::RoundRobin => "round-robin",
            AcceptMode::ReusePort => "reuseport",
        }
    }
}

impl fmt::Display for AcceptMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<AcceptMode> for tether_adapter::Accept {
    fn from(mode: AcceptMode) -> Self {
        match mode {
            AcceptMode::RoundRobin => tether_adapter::Accept::RoundRobin,
            AcceptMode::ReusePort => tether_adapter::Accept::ReusePort,
        }
    }
}

/// The flags of `tether serve`, as written. [`ServeArgs::into_options`]
/// validates them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServeArgs {
    /// Which runtime drives the server.
    #[arg(long, env = "TETHER_RUNTIME", value_enum, default_value_t = Runtime::Tokio)]
    pub runtime: Runtime,
    /// Where chat clients connect (HOST:PORT; a host name is resolved when binding).
    #[arg(long, env = "TETHER_LISTEN", default_value = DEFAULT_LISTEN, value_name = "HOST:PORT")]
    pub listen: HostPort,
    /// Where the admin console listens. A non-loopback address needs --admin-token.
    #[arg(long, env = "TETHER_ADMIN", default_value = DEFAULT_ADMIN, value_name = "HOST:PORT")]
    pub admin: HostPort,
    /// Most chat channels alive at once (lowered to what the fd limit allows);
    /// a client beyond it reads `error server full` and is closed.
    #[arg(
        long,
        env = "TETHER_MAX_CHANNELS",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub max_channels: usize,
    /// Kick clients that send nothing this long (e.g. 30s), or `off`.
    #[arg(
        long,
        env = "TETHER_IDLE_TIMEOUT",
        default_value = "off",
        value_name = "DUR|off"
    )]
    pub idle_timeout: Timeout,
    /// Kick clients that send no complete line this long after connecting, or `off`.
    #[arg(
        long,
        env = "TETHER_LOGIN_TIMEOUT",
        default_value = "off",
        value_name = "DUR|off"
    )]
    pub login_timeout: Timeout,
    /// Per-client outbound queue (e.g. 64k, 1m); a client past it is kicked as
    /// a slow consumer. Sends wait above a quarter of it.
    #[arg(
        long,
        env = "TETHER_QUEUE_LIMIT",
        default_value = "1m",
        value_name = "SIZE"
    )]
    pub queue_limit: ByteSize,
    /// Evict a client whose socket takes none of its queued bytes this long, or `off`
    /// [default: the core's, 10s].
    #[arg(long, env = "TETHER_STALL_TIMEOUT", value_name = "DUR|off")]
    pub stall_timeout: Option<Timeout>,
    /// How long a graceful kick may flush before it becomes an abort.
    #[arg(
        long,
        env = "TETHER_FLUSH_TIMEOUT",
        default_value = "5s",
        value_name = "DUR"
    )]
    pub flush_timeout: Dur,
    /// How long SIGTERM, SIGINT or `shutdown` lets channels drain [default: --flush-timeout].
    #[arg(long, env = "TETHER_SHUTDOWN_GRACE", value_name = "DUR")]
    pub shutdown_grace: Option<Dur>,
    /// Listen backlog of the chat port.
    #[arg(long, env = "TETHER_BACKLOG", default_value_t = 1024, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub backlog: u32,
    /// Hubs run side by side, one per core by default, each owned by its own
    /// task or thread (ids carry their shard: `#shard:slot.gen`).
    #[arg(long, env = "TETHER_SHARDS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub shards: Option<u16>,
    /// How connections reach the shards: one acceptor handing them out
    /// round-robin to shards with room, or one SO_REUSEPORT listener per
    /// shard (the kernel spreads them, and a full shard refuses even while
    /// another has room).
    #[arg(long, env = "TETHER_ACCEPT", value_enum, default_value_t = AcceptMode::RoundRobin)]
    pub accept: AcceptMode,
    /// Admin console password: when set, a session's first line must be `auth TOKEN`.
    #[arg(
        long,
        env = "TETHER_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// Most admin console sessions at once. At the cap a new connection evicts
    /// the oldest session not yet established (see --admin-login); when every
    /// session is established, it is refused.
    #[arg(long, env = "TETHER_ADMIN_MAX", default_value_t = 16, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub admin_max: u16,
    /// Close an admin session that sends no complete line this long, or `off`.
    #[arg(
        long,
        env = "TETHER_ADMIN_IDLE",
        default_value = "60s",
        value_name = "DUR|off"
    )]
    pub admin_idle: Timeout,
    /// Close an admin session not established this long after it connected
    /// (with --admin-token: `auth TOKEN` accepted; without: a command run), or
    /// `off`. At --admin-max, a new session evicts the oldest one not yet
    /// established.
    #[arg(
        long,
        env = "TETHER_ADMIN_LOGIN",
        default_value = "2s",
        value_name = "DUR|off"
    )]
    pub admin_login: Timeout,
    /// Serve `GET /metrics` (Prometheus text format) on this address: every
    /// counter and gauge of `stats`, plus a kick → FIN latency histogram.
    #[arg(long, env = "TETHER_METRICS", value_name = "HOST:PORT")]
    pub metrics: Option<HostPort>,
    /// Send each line back to its sender only, instead of to every client:
    /// the accept / greeting / line / close cycle of a bare echo server,
    /// for benchmarks that compare against one.
    #[arg(long, env = "TETHER_ECHO")]
    pub echo: bool,
    /// Join a cluster through this Redis (redis://HOST:PORT[/DB]): every node
    /// started with the same Redis shares presence (`nodes`, `list`), relays
    /// lines to every client of every node, and kicks clients of any node.
    /// Needs --node. Without it nothing changes and no Redis is needed.
    #[arg(
        long,
        env = "TETHER_CLUSTER",
        value_name = "redis://HOST:PORT[/DB]",
        requires = "node",
        help_heading = "Cluster"
    )]
    pub cluster: Option<RedisUrl>,
    /// This node's name in the cluster: 1 to 32 characters of A-Z a-z 0-9 _ -,
    /// not live on another node. Client ids read `NAME/<id>`. Needs --cluster.
    #[arg(
        long,
        env = "TETHER_NODE",
        value_name = "NAME",
        requires = "cluster",
        help_heading = "Cluster"
    )]
    pub node: Option<NodeName>,
    /// How often this node tells the others it is alive (and renews its name).
    #[arg(
        long,
        env = "TETHER_CLUSTER_HEARTBEAT",
        default_value = "1s",
        value_name = "DUR",
        help_heading = "Cluster"
    )]
    pub cluster_heartbeat: Dur,
    /// A node not heard from this long stops being live: it leaves `nodes`,
    /// `list` and presence. Must exceed --cluster-heartbeat.
    #[arg(
        long,
        env = "TETHER_CLUSTER_TTL",
        default_value = "3s",
        value_name = "DUR",
        help_heading = "Cluster"
    )]
    pub cluster_ttl: Dur,
    /// A cross-node request (a kick, `nodes`) with no answer this long
    /// answers `error cluster unavailable`.
    #[arg(
        long,
        env = "TETHER_CLUSTER_TIMEOUT",
        default_value = "1s",
        value_name = "DUR",
        help_heading = "Cluster"
    )]
    pub cluster_timeout: Dur,
    /// While Redis is unreachable, lines for the other nodes wait in an outbox
    /// of this size and go out in order once it is back; beyond it they are
    /// counted lost (`cluster.lines_lost`) and logged.
    #[arg(
        long,
        env = "TETHER_CLUSTER_OUTBOX",
        default_value = "1MiB",
        value_name = "SIZE",
        help_heading = "Cluster"
    )]
    pub cluster_outbox: ByteSize,
    /// Record every input of every shard's hub, with its time and result, to
    /// FILE (the flight recorder, docs/recording.md; with several shards,
    /// shard k writes `FILE.shard<k>`); `tether replay FILE` runs it again.
    #[arg(long, env = "TETHER_RECORD", value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Most bytes one shard's recording files hold together: FILE is rotated
    /// to `FILE.1` … `FILE.<keep>` at SIZE / (keep + 1), the oldest deleted.
    #[arg(
        long,
        env = "TETHER_RECORD_MAX",
        default_value = "256MiB",
        value_name = "SIZE",
        requires = "record"
    )]
    pub record_max: ByteSize,
    /// Rotated recording files kept besides the one being written.
    #[arg(
        long,
        env = "TETHER_RECORD_KEEP",
        default_value_t = 3,
        value_name = "N",
        requires = "record"
    )]
    pub record_keep: u32,
    /// Record payloads (bytes received and sent, as hex) too; by default only
    /// their lengths are recorded, for privacy.
    #[arg(long, env = "TETHER_RECORD_BYTES", requires = "record")]
    pub record_bytes: bool,
}

/// The flags of `tether demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Which runtime drives the demo's server.
    #[arg(long, env = "TETHER_RUNTIME", value_enum, default_value_t = Runtime::Tokio)]
    pub runtime: Runtime,
    /// How long the demo runs before its summary.
    #[arg(
        long,
        env = "TETHER_DEMO_DURATION",
        default_value = "15s",
        value_name = "DUR"
    )]
    pub duration: Dur,
    /// How many simulated clients connect over the run (1 to 5000).
    #[arg(long, env = "TETHER_DEMO_CLIENTS", default_value_t = 60, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub clients: u16,
}

impl ServeArgs {
    /// Every flag at its default (ignoring the environment).
    pub fn defaults() -> ServeArgs {
        ServeArgs {
            runtime: Runtime::Tokio,
            listen: HostPort::from_str(DEFAULT_LISTEN).unwrap_or_else(|_| HostPort::loopback_any()),
            admin: HostPort::from_str(DEFAULT_ADMIN).unwrap_or_else(|_| HostPort::loopback_any()),
            max_channels: 10_000,
            idle_timeout: Timeout(None),
            login_timeout: Timeout(None),
            queue_limit: ByteSize(1 << 20),
            stall_timeout: None,
            flush_timeout: Dur(Duration::from_secs(5)),
            shutdown_grace: None,
            backlog: 1024,
            shards: None,
            accept: AcceptMode::RoundRobin,
            admin_token: None,
            admin_max: 16,
            admin_idle: Timeout(Some(Duration::from_secs(60))),
            admin_login: Timeout(Some(Duration::from_secs(2))),
            metrics: None,
            echo: false,
            cluster: None,
            node: None,
            cluster_heartbeat: Dur(Duration::from_secs(1)),
            cluster_ttl: Dur(Duration::from_secs(3)),
            cluster_timeout: Dur(Duration::from_secs(1)),
            cluster_outbox: ByteSize(1 << 20),
            record: None,
            record_max: ByteSize(256 << 20),
            record_keep: 3,
            record_bytes: false,
        }
    }

    /// Validates the flags into a hub [`Config`](tether_core::Config) and adapter [`Options`].
    pub fn into_options(self) -> Result<ServeOptions, CliError> {
        let mut config = default_serve_config()
            .with_max_channels(self.max_channels)
            .with_queue_limit(self.queue_limit.0);
        config.idle_timeout = self.idle_timeout.0;
        config.login_timeout = self.login_timeout.0;
        if let Some(stall) = self.stall_timeout {
            config.stall_timeout = stall.0;
        }
        config.flush_timeout = self.flush_timeout.0;
        config.validate()?;
        let shards = self.shards.map_or_else(
            || std::thread::available_parallelism().map_or(1, usize::from),
            usize::from,
        );
        let options = Options::default()
            .with_backlog(self.backlog)
            .with_shards(shards)
            .with_accept(self.accept.into())
            .with_refuse_line(bytes::Bytes::from_static(REFUSE_LINE))
            // The greeting is the first line a client reads, before any
            // broadcast can reach it.
            .with_greeting(crate::protocol::hello_line);
        let record = self.record_options()?;
        let cluster = self.cluster_options()?;
        // On a cluster node, ids read NAME/<id> from the greeting on.
        let options = match &cluster {
            Some(cluster) => {
                let name = cluster.name.clone();
                options.with_greeting(move |id| crate::protocol::hello_line_on(name.as_str(), id))
            }
            None => options,
        };
        Ok(ServeOptions {
            runtime: self.runtime,
            listen: self.listen,
            admin: self.admin,
            shutdown_grace: self.shutdown_grace.map_or(config.flush_timeout, |d| d.0),
            config,
            options,
            record,
            admin_token: self.admin_token.map(Secret::new),
            admin_max: usize::from(self.admin_max),
            admin_idle: self.admin_idle.0,
            admin_login: self.admin_login.0,
            metrics: self.metrics,
            echo: self.echo,
            cluster,
        })
    }
}

impl ServeArgs {
    /// `--record`, `--record-max`, `--record-keep`, `--record-bytes`,
    /// validated (the file is created when the server starts).
    fn record_options(&self) -> Result<Option<RecordOptions>, CliError> {
        let Some(path) = &self.record else {
            return Ok(None);
        };
        let options = RecordOptions::new(path)
            .with_max_bytes(self.record_max.0 as u64)
            .with_keep(self.record_keep)
            .with_bytes(self.record_bytes);
        options.validate().map_err(|source| {
            let (flag, value) = match source {
                OptionsError::EmptyPath => ("--record", String::new()),
                OptionsError::TooManyKept(_) => ("--record-keep", self.record_keep.to_string()),
                _ => ("--record-max", self.record_max.to_string()),
            };
            CliError::Record {
                flag,
                value,
                source,
            }
        })?;
        Ok(Some(options))
    }
}

impl ServeArgs {
    /// `--cluster`, `--node` and the `--cluster-*` settings, validated (clap
    /// already made sure `--cluster` and `--node` come together).
    fn cluster_options(&self) -> Result<Option<NodeOptions>, CliError> {
        let (Some(url), Some(name)) = (&self.cluster, &self.node) else {
            return Ok(None);
        };
        let mut config = ClusterConfig::default();
        config.heartbeat = self.cluster_heartbeat.0;
        config.ttl = self.cluster_ttl.0;
        config.timeout = self.cluster_timeout.0;
        config.outbox_bytes = self.cluster_outbox.0;
        config.validate()?;
        Ok(Some(NodeOptions::new(url.clone(), name.clone(), config)))
    }
}

impl DemoArgs {
    /// The demo's options.
    pub fn into_options(self) -> DemoOptions {
        DemoOptions {
            runtime: self.runtime,
            duration: self.duration.0,
            clients: usize::from(self.clients),
        }
    }
}
