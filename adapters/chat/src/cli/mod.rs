//! The `tether` command line, parsed with clap into a [`Command`].
//!
//! ```text
//! tether [serve] [--runtime async-std|smol|threads|tokio] [--listen HOST:PORT] [--admin HOST:PORT]
//!                [--max-channels N] [--idle-timeout DUR|off] [--login-timeout DUR|off]
//!                [--queue-limit SIZE] [--stall-timeout DUR|off] [--flush-timeout DUR]
//!                [--shutdown-grace DUR] [--backlog N] [--shards N] [--accept round-robin|reuseport]
//!                [--admin-token TOKEN] [--admin-max N] [--admin-idle DUR|off] [--admin-login DUR|off]
//!                [--metrics HOST:PORT] [--echo]
//!                [--cluster redis://HOST:PORT[/DB] --node NAME [--cluster-heartbeat DUR]
//!                 [--cluster-ttl DUR] [--cluster-timeout DUR] [--cluster-outbox SIZE]]
//!                [--record FILE [--record-max SIZE] [--record-keep N] [--record-bytes]]
//! tether demo    [--runtime …] [--duration DUR] [--clients N]
//! tether --help | --version
//! ```
//!
//! `serve` is the default: `tether --listen :7000`-style flags without a
//! subcommand run the server. Every flag can also come from the
//! environment: `--max-channels` from `TETHER_MAX_CHANNELS`, and so on
//! (a flag on the command line wins). Durations are written like `500ms`,
//! `1.5s`, `1m30s`; `off` disables a timeout that can be disabled. Sizes
//! are written like `65536`, `64k`, `64KiB`, `1m`, `1g` — every prefix is
//! binary (`k` = 1024). Addresses may name a host (`localhost:7000`); they
//! are resolved when the server binds.
//!
//! ```
//! use std::time::Duration;
//! use tether_chat::cli::{Command, parse_from};
//! let Command::Serve(serve) = parse_from(["tether", "--idle-timeout", "1m30s", "--max-channels=100"]).unwrap()
//! else { panic!("serve is the default") };
//! assert_eq!(serve.config.idle_timeout, Some(Duration::from_secs(90)));
//! assert_eq!(serve.config.max_channels, 100);
//! assert_eq!(serve.listen.to_string(), "127.0.0.1:7000");
//! ```

mod args;
#[cfg(test)]
mod tests;
mod values;

use std::ffi::OsString;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use tether_adapter::Options;
use tether_core::{Config, ConfigError, OverflowPolicy};

pub use args::{AcceptMode, DemoArgs, Runtime, ServeArgs};
pub use values::{
    BadAddress, ByteSize, Dur, DurationError, HostPort, Secret, SizeError, Timeout, parse_duration,
};

/// The default chat address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7000";
/// The default admin console address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:7001";
/// What a client refused at the channel limit reads before the server
/// closes its connection.
pub const REFUSE_LINE: &[u8] = b"error server full\n";

/// The command line as clap sees it. Use [`parse_from`] (or
/// [`Cli::into_command`]) to get the validated [`Command`].
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tether",
    version,
    about = "A line-based chat server with an admin console, on the tether connection-lifecycle core.",
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "Without a subcommand, `tether` runs `serve` with the flags given.\n\
                  Every flag can also be set from the environment: --max-channels from TETHER_MAX_CHANNELS, …"
)]
pub struct Cli {
    /// What to run (default: serve).
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    /// The flags of `serve`, when no subcommand is named.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
// Parsed once per process: the size of `ServeArgs` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Subcommand)]
pub enum CliCommand {
    /// Run the chat server and its admin console (the default).
    Serve(ServeArgs),
    /// Run the chat server with simulated clients: a live table, then a summary.
    Demo(DemoArgs),
}

/// What to run, validated.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run the chat server (boxed: it is much the larger variant).
    Serve(Box<ServeOptions>),
    /// Run the demo.
    Demo(DemoOptions),
}

/// Options of `tether serve`, validated.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The runtime to start.
    pub runtime: Runtime,
    /// Where chat clients connect (resolved when binding).
    pub listen: HostPort,
    /// Where the admin console listens (resolved when binding).
    pub admin: HostPort,
    /// The hub's configuration (validated).
    pub config: Config,
    /// The adapter's settings: backlog, refusal line…
    pub options: Options,
    /// The flight recorder (`--record`, docs/recording.md): plugged into
    /// `options.record` when the server starts. `None`: nothing recorded.
    pub record: Option<tether_record::RecordOptions>,
    /// How long a signal or an admin `shutdown` without a deadline lets
    /// channels drain.
    pub shutdown_grace: Duration,
    /// The admin console's password, if any.
    pub admin_token: Option<Secret>,
    /// Most admin console sessions at once.
    pub admin_max: usize,
    /// An admin session without a complete line this long is closed.
    pub admin_idle: Option<Duration>,
    /// An admin session not established this long after it connected is
    /// closed (established: `auth TOKEN` accepted with `--admin-token`, else
    /// a command run).
    pub admin_login: Option<Duration>,
    /// Where `GET /metrics` is served, if anywhere (resolved when binding).
    pub metrics: Option<HostPort>,
    /// Lines go back to their sender only (`--echo`), not to every client.
    pub echo: bool,
    /// The cluster this node joins (`--cluster`, `--node`, `--cluster-*`);
    /// `None`: a single server, no Redis.
    pub cluster: Option<tether_redis::NodeOptions>,
}

impl ServeOptions {
    /// The defaults, on loopback addresses chosen by the kernel (port 0):
    /// what tests and the demo start from.
    pub fn ephemeral() -> ServeOptions {
        let mut options = ServeArgs::defaults()
            .into_options()
            .unwrap_or_else(|_| unreachable!("the defaults are valid"));
        options.listen = HostPort::loopback_any();
        options.admin = HostPort::loopback_any();
        options
    }
}

/// Options of `tether demo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// The runtime to start.
    pub runtime: Runtime,
    /// How long the demo runs before its summary.
    pub duration: Duration,
    /// How many simulated clients connect over the run.
    pub clients: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            runtime: Runtime::default(),
            duration: Duration::from_secs(15),
            clients: 60,
        }
    }
}

/// A command line that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// clap's own verdict: an unknown or misspelt flag (with a suggestion),
    /// a value that does not parse, or `--help`/`--version` (not errors,
    /// but they end the program too: see [`clap::Error::exit`]).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The values do not make a valid hub configuration.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The `--cluster-*` values do not make a working cluster configuration
    /// (e.g. `--cluster-ttl` not above `--cluster-heartbeat`).
    #[error(
        "invalid cluster configuration (--cluster-heartbeat, --cluster-ttl, --cluster-timeout, --cluster-outbox): {0}"
    )]
    Cluster(#[from] tether_cluster::ClusterConfigError),
    /// The recording flags do not make a usable recording (e.g.
    /// `--record-max` below 64 KiB per file).
    #[error("{flag} {value}: {source}")]
    Record {
        /// The flag at fault.
        flag: &'static str,
        /// Its value, as given.
        value: String,
        /// What is wrong.
        source: tether_record::OptionsError,
    },
}

impl CliError {
    /// Prints the error the way clap does (help and version to stdout with
    /// status 0, errors to stderr with status 2) and exits.
    pub fn exit(self) -> ! {
        match self {
            CliError::Clap(e) => e.exit(),
            CliError::Config(e) => Cli::command()
                .error(clap::error::ErrorKind::ValueValidation, e)
                .exit(),
            e @ (CliError::Record { .. } | CliError::Cluster(_)) => Cli::command()
                .error(clap::error::ErrorKind::ValueValidation, e)
                .exit(),
        }
    }
}

/// Parses a whole command line (the program name first) into a validated
/// [`Command`]. Environment variables fill in flags not given.
pub fn parse_from<I, T>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)?.into_command()
}

impl Cli {
    /// Validates the parsed flags.
    pub fn into_command(self) -> Result<Command, CliError> {
        Ok(match self.command {
            None => Command::Serve(Box::new(self.serve.into_options()?)),
            Some(CliCommand::Serve(args)) => Command::Serve(Box::new(args.into_options()?)),
            Some(CliCommand::Demo(args)) => Command::Demo(args.into_options()),
        })
    }
}

/// The chat server's default hub configuration: the core's defaults, with
/// slow consumers kicked rather than refused (one client that never reads
/// must not hold a megabyte per line forever).
// `Config` is `#[non_exhaustive]`: outside its crate it cannot be built
// with a struct literal, only assigned field by field.
#[allow(clippy::field_reassign_with_default)]
pub fn default_serve_config() -> Config {
    let mut config = Config::default();
    config.overflow = OverflowPolicy::KickSlowConsumer;
    config
}
