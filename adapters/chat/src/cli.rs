//! The `tether` command line, parsed with clap into a [`Command`].
//!
//! ```text
//! tether [serve] [--runtime async-std|smol|threads|tokio] [--listen HOST:PORT] [--admin HOST:PORT]
//!                [--max-channels N] [--idle-timeout DUR|off] [--login-timeout DUR|off]
//!                [--queue-limit SIZE] [--stall-timeout DUR|off] [--flush-timeout DUR]
//!                [--shutdown-grace DUR] [--backlog N]
//!                [--admin-token TOKEN] [--admin-max N] [--admin-idle DUR|off]
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

use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use tether_adapter::Options;
use tether_core::{Config, ConfigError, OverflowPolicy};

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
#[derive(Debug, Clone, Subcommand)]
pub enum CliCommand {
    /// Run the chat server and its admin console (the default).
    Serve(ServeArgs),
    /// Run the chat server with simulated clients: a live table, then a summary.
    Demo(DemoArgs),
}

/// The runtime a server runs on. Every runtime takes the same flags and
/// serves the same protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, ValueEnum)]
pub enum Runtime {
    /// async-std tasks (tether-async-std).
    #[default]
    #[value(name = "async-std")]
    AsyncStd,
    /// smol tasks (tether-async-std on smol's executor).
    Smol,
    /// Blocking std::net sockets and std threads (tether-threads).
    Threads,
    /// tokio tasks on a multi-thread runtime (tether-tokio).
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

/// The flags of `tether serve`, as written. [`ServeArgs::into_options`]
/// validates them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServeArgs {
    /// Which runtime drives the server.
    #[arg(long, env = "TETHER_RUNTIME", value_enum, default_value_t = Runtime::AsyncStd)]
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
    /// Admin console password: when set, a session's first line must be `auth TOKEN`.
    #[arg(
        long,
        env = "TETHER_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// Most admin console sessions at once.
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
}

/// The flags of `tether demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Which runtime drives the demo's server.
    #[arg(long, env = "TETHER_RUNTIME", value_enum, default_value_t = Runtime::AsyncStd)]
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
    /// How long a signal or an admin `shutdown` without a deadline lets
    /// channels drain.
    pub shutdown_grace: Duration,
    /// The admin console's password, if any.
    pub admin_token: Option<Secret>,
    /// Most admin console sessions at once.
    pub admin_max: usize,
    /// An admin session without a complete line this long is closed.
    pub admin_idle: Option<Duration>,
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

impl ServeArgs {
    /// Every flag at its default (ignoring the environment).
    pub fn defaults() -> ServeArgs {
        ServeArgs {
            runtime: Runtime::AsyncStd,
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
            admin_token: None,
            admin_max: 16,
            admin_idle: Timeout(Some(Duration::from_secs(60))),
        }
    }

    /// Validates the flags into a hub [`Config`] and adapter [`Options`].
    pub fn into_options(self) -> Result<ServeOptions, ConfigError> {
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
        let options = Options {
            backlog: self.backlog,
            shards,
            refuse_line: Some(bytes::Bytes::from_static(REFUSE_LINE)),
            // The greeting is the first line a client reads, before any
            // broadcast can reach it.
            greeting: Some(tether_adapter::Greeting(std::sync::Arc::new(
                crate::protocol::hello_line,
            ))),
            ..Options::default()
        };
        Ok(ServeOptions {
            runtime: self.runtime,
            listen: self.listen,
            admin: self.admin,
            shutdown_grace: self.shutdown_grace.map_or(config.flush_timeout, |d| d.0),
            config,
            options,
            admin_token: self.admin_token.map(Secret),
            admin_max: usize::from(self.admin_max),
            admin_idle: self.admin_idle.0,
        })
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

/// A listening address as written: `HOST:PORT`, where HOST is an IP
/// address (`[::1]` for IPv6) or a name resolved when binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    text: String,
}

impl HostPort {
    /// `127.0.0.1:0`: loopback, any free port.
    pub fn loopback_any() -> HostPort {
        HostPort {
            text: "127.0.0.1:0".to_owned(),
        }
    }

    /// The address as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<std::net::SocketAddr> for HostPort {
    fn from(addr: std::net::SocketAddr) -> HostPort {
        HostPort {
            text: addr.to_string(),
        }
    }
}

/// An address that is not `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not HOST:PORT (like 127.0.0.1:7000, localhost:7000 or [::1]:7000)")]
pub struct BadAddress(String);

impl FromStr for HostPort {
    type Err = BadAddress;
    fn from_str(text: &str) -> Result<HostPort, BadAddress> {
        let bad = || BadAddress(clip(text));
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        port.parse::<u16>().map_err(|_| bad())?;
        let host_ok = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
            None => {
                !host.is_empty()
                    && host.len() <= 253
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
            }
        };
        if !host_ok {
            return Err(bad());
        }
        Ok(HostPort {
            text: text.to_owned(),
        })
    }
}

/// A duration greater than zero: `500ms`, `1.5s`, `1m30s`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// A duration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration humantime reads.
    #[error("{text:?} is not a duration like 500ms, 1.5s or 1m30s: {why}")]
    Malformed {
        /// The text.
        text: String,
        /// humantime's reason.
        why: String,
    },
    /// Zero, which would fire before anything could happen.
    #[error("must be greater than zero")]
    Zero,
    /// Zero where `off` is allowed.
    #[error("must be greater than zero (use `off` to disable)")]
    ZeroUseOff,
}

impl FromStr for Dur {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Dur, DurationError> {
        match parse_duration(text)? {
            d if d.is_zero() => Err(DurationError::Zero),
            d => Ok(Dur(d)),
        }
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A timeout that may be `off` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

impl FromStr for Timeout {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Timeout, DurationError> {
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(Timeout(None));
        }
        match parse_duration(text)? {
            d if d.is_zero() => Err(DurationError::ZeroUseOff),
            d => Ok(Timeout(Some(d))),
        }
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(d) => Dur(d).fmt(f),
        }
    }
}

/// Parses a duration with humantime (`250us`, `500ms`, `1.5s`, `1m30s`,
/// `2h`); zero is allowed here.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text.trim()).map_err(|e| DurationError::Malformed {
        text: clip(text),
        why: e.to_string(),
    })
}

/// A byte count: `65536`, `64k`, `64KiB`, `1m`, `1.5MB`, `1g`. Every
/// prefix is binary (`k` = 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

/// A size that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a size like 65536, 64k, 64KiB or 1m: {why}")]
pub struct SizeError {
    text: String,
    why: String,
}

impl FromStr for ByteSize {
    type Err = SizeError;
    fn from_str(text: &str) -> Result<ByteSize, SizeError> {
        let err = |why: String| SizeError {
            text: clip(text),
            why,
        };
        let n = parse_size::Config::new()
            .with_binary()
            .parse_size(text.trim())
            .map_err(|e| err(e.to_string()))?;
        let n = usize::try_from(n).map_err(|_| err("too large".into()))?;
        Ok(ByteSize(n))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A password that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from its text.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// Whether `guess` is the secret, comparing every byte whatever the
    /// first difference (no early exit to time).
    pub fn matches(&self, guess: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), guess.as_bytes());
        let mut diff = u8::from(a.len() != b.len());
        for (i, &x) in a.iter().enumerate() {
            diff |= x ^ b.get(i).copied().unwrap_or(!x);
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Bad input is echoed back in errors, but never more than a screenful.
fn clip(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn serve(args: &[&str]) -> Result<ServeOptions, CliError> {
        let mut argv = vec!["tether"];
        argv.extend_from_slice(args);
        match parse_from(argv)? {
            Command::Serve(s) => Ok(*s),
            other => panic!("expected serve, got {other:?}"),
        }
    }

    fn clap_kind(result: Result<ServeOptions, CliError>) -> ErrorKind {
        match result {
            Err(CliError::Clap(e)) => e.kind(),
            other => panic!("expected a clap error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let s = serve(&[]).unwrap();
        // `Debug` stands in for equality: the greeting is a function.
        let same = |a: &ServeOptions, b: &ServeOptions| format!("{a:?}") == format!("{b:?}");
        assert!(same(&s, &serve(&["serve"]).unwrap()));
        assert_eq!(s.runtime, Runtime::AsyncStd);
        assert!(s.options.shards >= 1);
        assert!(s.options.greeting.is_some());
        assert_eq!(s.listen.as_str(), DEFAULT_LISTEN);
        assert_eq!(s.admin.as_str(), DEFAULT_ADMIN);
        assert_eq!(s.config, default_serve_config());
        assert_eq!(s.shutdown_grace, s.config.flush_timeout);
        assert_eq!(s.options.backlog, 1024);
        assert_eq!(s.options.refuse_line.as_deref(), Some(REFUSE_LINE));
        assert_eq!(s.admin_max, 16);
        assert_eq!(s.admin_idle, Some(Duration::from_secs(60)));
        assert_eq!(s.admin_token, None);
        assert!(same(&s, &ServeArgs::defaults().into_options().unwrap()));
        let two = serve(&["--shards", "2"]).unwrap();
        assert_eq!(two.options.shards, 2);
        assert!(serve(&["--shards", "0"]).is_err());
    }

    #[test]
    fn every_flag() {
        let s = serve(&[
            "serve",
            "--runtime",
            "threads",
            "--listen",
            "localhost:9000",
            "--admin=[::1]:9001",
            "--max-channels",
            "50",
            "--idle-timeout",
            "2m",
            "--login-timeout",
            "1.5s",
            "--queue-limit",
            "64KiB",
            "--stall-timeout",
            "off",
            "--flush-timeout",
            "500ms",
            "--shutdown-grace",
            "1m30s",
            "--backlog",
            "4096",
            "--admin-token",
            "hunter2",
            "--admin-max",
            "3",
            "--admin-idle",
            "off",
        ])
        .unwrap();
        assert_eq!(s.runtime, Runtime::Threads);
        assert_eq!(s.listen.as_str(), "localhost:9000");
        assert_eq!(s.admin.as_str(), "[::1]:9001");
        assert_eq!(s.config.max_channels, 50);
        assert_eq!(s.config.idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(s.config.login_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(s.config.queue_limit, 65536);
        assert_eq!(s.config.high_watermark, 65536 / 4);
        assert_eq!(s.config.stall_timeout, None);
        assert_eq!(s.config.flush_timeout, Duration::from_millis(500));
        assert_eq!(s.shutdown_grace, Duration::from_secs(90));
        assert_eq!(s.options.backlog, 4096);
        assert!(s.admin_token.as_ref().is_some_and(|t| t.matches("hunter2")));
        assert!(
            !format!("{s:?}").contains("hunter2"),
            "the token is redacted"
        );
        assert_eq!(s.admin_max, 3);
        assert_eq!(s.admin_idle, None);
        // The grace follows the flush timeout unless given.
        let s = serve(&["--flush-timeout", "2s"]).unwrap();
        assert_eq!(s.shutdown_grace, Duration::from_secs(2));
        let s = serve(&["--stall-timeout", "3s"]).unwrap();
        assert_eq!(s.config.stall_timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn sizes() {
        for (text, n) in [
            ("65536", 65536),
            ("64k", 65536),
            ("64K", 65536),
            ("64KiB", 65536),
            ("64kb", 65536),
            ("1m", 1 << 20),
            ("1.5m", 3 << 19),
            ("1g", 1 << 30),
            ("1_000", 1000),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(n)), "{text}");
        }
        for bad in ["lots", "", "-1k", "1q", "64 kilo"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?}");
        }
        assert_eq!(
            clap_kind(serve(&["--queue-limit", "lots"])),
            ErrorKind::ValueValidation
        );
        // Parses, but leaves no room for the per-message overhead.
        assert!(matches!(
            serve(&["--queue-limit", "64"]),
            Err(CliError::Config(ConfigError::MessageOverhead { .. }))
        ));
    }

    #[test]
    fn durations() {
        for (text, d) in [
            ("250us", Duration::from_micros(250)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m30s", Duration::from_secs(90)),
            ("1m 30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
        ] {
            assert_eq!(text.parse::<Dur>(), Ok(Dur(d)), "{text}");
            assert_eq!(text.parse::<Timeout>(), Ok(Timeout(Some(d))), "{text}");
        }
        assert_eq!("off".parse::<Timeout>(), Ok(Timeout(None)));
        assert_eq!("OFF".parse::<Timeout>(), Ok(Timeout(None)));
        assert_eq!("0s".parse::<Dur>(), Err(DurationError::Zero));
        assert_eq!("0s".parse::<Timeout>(), Err(DurationError::ZeroUseOff));
        for bad in ["30", "off5", "5 parsecs", "-1s", "", "1e400s"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad:?}");
        }
        // `off` only where a timeout can be disabled.
        assert_eq!(
            clap_kind(serve(&["--flush-timeout", "off"])),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            clap_kind(serve(&["--idle-timeout", "30"])),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            clap_kind(serve(&["--flush-timeout", "0s"])),
            ErrorKind::ValueValidation
        );
        assert_eq!(Dur(Duration::from_millis(1500)).to_string(), "1s 500ms");
    }

    #[test]
    fn addresses() {
        for good in [
            "127.0.0.1:7000",
            "localhost:7000",
            "chat.example.com:0",
            "[::1]:7000",
            "0.0.0.0:65535",
        ] {
            assert_eq!(
                good.parse::<HostPort>().map(|h| h.to_string()).as_deref(),
                Ok(good)
            );
        }
        for bad in [
            "nowhere",
            "localhost",
            ":7000",
            "host:port",
            "host:70000",
            "[::1:7000",
            "::1:7000",
            "a b:1",
            "[nope]:1",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad:?}");
        }
        let err = serve(&["--listen", "nowhere"]).unwrap_err().to_string();
        assert!(
            err.contains("--listen") && err.contains("HOST:PORT"),
            "{err}"
        );
    }

    #[test]
    fn misspelt_and_unknown_flags_are_clap_errors_with_suggestions() {
        let Err(CliError::Clap(e)) = serve(&["--lisen", "127.0.0.1:1"]) else {
            panic!("expected an error");
        };
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        assert!(e.to_string().contains("--listen"), "suggests --listen: {e}");
        let Err(CliError::Clap(e)) = serve(&["serve", "--max-chanels", "5"]) else {
            panic!("expected an error");
        };
        assert!(e.to_string().contains("--max-channels"), "{e}");
        let Err(CliError::Clap(e)) = parse_from(["tether", "sevre"]) else {
            panic!("expected an error");
        };
        assert!(e.to_string().contains("serve"), "suggests serve: {e}");
        assert_eq!(clap_kind(serve(&["--listen"])), ErrorKind::InvalidValue);
        assert_eq!(
            clap_kind(serve(&["--runtime", "tokyo"])),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            clap_kind(serve(&["--admin-max", "0"])),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            clap_kind(serve(&["--backlog", "-1"])),
            ErrorKind::UnknownArgument
        );
        assert!(matches!(
            serve(&["--max-channels", "0"]),
            Err(CliError::Config(ConfigError::MaxChannels(0)))
        ));
        // Server flags do not go with `demo`.
        assert!(parse_from(["tether", "--listen", "127.0.0.1:1", "demo"]).is_err());
    }

    #[test]
    fn help_and_version_end_the_program() {
        for flag in ["--help", "-h", "--version", "-V"] {
            let Err(CliError::Clap(e)) = parse_from(["tether", flag]) else {
                panic!("{flag}: expected help");
            };
            assert!(!e.use_stderr(), "{flag} prints to stdout and exits 0");
        }
        let Err(CliError::Clap(e)) = parse_from(["tether", "serve", "--help"]) else {
            panic!("expected help");
        };
        let help = e.to_string();
        assert!(
            help.contains("TETHER_ADMIN_TOKEN") && help.contains("--stall-timeout"),
            "{help}"
        );
    }

    #[test]
    fn every_flag_has_its_environment_variable() {
        let cli = Cli::command();
        let mut checked = 0;
        for command in [
            &cli,
            cli.find_subcommand("serve").unwrap(),
            cli.find_subcommand("demo").unwrap(),
        ] {
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if matches!(long, "help" | "version") {
                    continue;
                }
                let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or("");
                let expected = match long {
                    "duration" | "clients" => format!("TETHER_DEMO_{}", long.to_uppercase()),
                    _ => format!("TETHER_{}", long.to_uppercase().replace('-', "_")),
                };
                assert_eq!(env, expected, "--{long}");
                checked += 1;
            }
        }
        assert_eq!(checked, 15 * 2 + 3);
    }

    #[test]
    fn demo() {
        let Command::Demo(d) =
            parse_from(["tether", "demo", "--duration", "5s", "--runtime", "smol"]).unwrap()
        else {
            panic!("expected demo");
        };
        assert_eq!(
            d,
            DemoOptions {
                runtime: Runtime::Smol,
                duration: Duration::from_secs(5),
                clients: 60
            }
        );
        assert!(parse_from(["tether", "demo", "--clients", "0"]).is_err());
        assert!(parse_from(["tether", "demo", "--clients", "5001"]).is_err());
        assert!(parse_from(["tether", "demo", "--max-channels", "5"]).is_err());
    }

    #[test]
    fn secrets_compare_whole() {
        let s = Secret::new("abc");
        assert!(s.matches("abc"));
        for wrong in ["", "ab", "abd", "abcd", "xbc"] {
            assert!(!s.matches(wrong), "{wrong:?}");
        }
        assert!(Secret::new("").matches(""));
    }
}
