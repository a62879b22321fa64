//! The `tether` command line, parsed without I/O into a [`Cli`].
//!
//! ```text
//! tether [serve] [--listen ADDR] [--admin ADDR] [--max-channels N]
//!                [--idle-timeout DUR|off] [--queue-limit BYTES]
//!                [--flush-timeout DUR] [--login-timeout DUR|off]
//! tether demo    [--duration DUR] [--clients N]
//! tether help
//! ```
//!
//! Flags take their value as the next word or after `=`. Durations are
//! written like `500ms`, `30s`, `2m`; byte counts like `65536`, `64k`, `1m`.

use std::net::SocketAddr;
use std::time::Duration;

use tether_core::{Config, ConfigError, OverflowPolicy};

use crate::duration::{DurationError, parse_duration};

/// The usage text printed by `tether help`.
pub const USAGE: &str = "\
usage:
  tether [serve] [options]   line-based chat server with an admin console (default)
  tether demo [--duration 15s] [--clients 60]
                             server + simulated clients, live table, summary
  tether help

serve options:
  --listen ADDR          chat port (default 127.0.0.1:7000)
  --admin ADDR           admin console port (default 127.0.0.1:7001)
  --max-channels N       most channels alive at once (default 10000)
  --idle-timeout DUR     kick clients silent this long, e.g. 30s (default off)
  --queue-limit BYTES    per-client outbound queue, e.g. 64k, 1m (default 1m);
                         a client past it is kicked as a slow consumer
  --flush-timeout DUR    how long a graceful kick may flush (default 5s)
  --login-timeout DUR    kick clients that send no line this long (default off)
";

/// The default chat address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7000";
/// The default admin console address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:7001";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// What to run.
    pub command: Command,
}

/// The subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the chat server.
    Serve(ServeOptions),
    /// Run the demo.
    Demo(DemoOptions),
    /// Print [`USAGE`].
    Help,
}

/// Options of `tether serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Where chat clients connect.
    pub listen: SocketAddr,
    /// Where the admin console listens.
    pub admin: SocketAddr,
    /// The hub's configuration (validated).
    pub config: Config,
}

/// Options of `tether demo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// How long the demo runs before its summary.
    pub duration: Duration,
    /// How many simulated clients connect over the run.
    pub clients: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: Duration::from_secs(15),
            clients: 60,
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

/// A command line that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// Not `serve`, `demo` or `help`.
    #[error("unknown command {0:?} (try `tether help`)")]
    UnknownCommand(String),
    /// A flag this command does not take.
    #[error("unknown option {0:?} (try `tether help`)")]
    UnknownFlag(String),
    /// A flag without its value.
    #[error("option {0} needs a value")]
    MissingValue(String),
    /// A value that does not parse.
    #[error("option {flag}: {why}")]
    BadValue {
        /// The flag.
        flag: String,
        /// What is wrong with its value.
        why: String,
    },
    /// The values do not make a valid configuration.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
}

impl Cli {
    /// Parses the arguments after the program name.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tether_chat::{Cli, Command};
    /// let cli = Cli::parse(["--idle-timeout", "30s", "--max-channels=100"]).unwrap();
    /// let Command::Serve(serve) = cli.command else { panic!() };
    /// assert_eq!(serve.config.idle_timeout, Some(Duration::from_secs(30)));
    /// assert_eq!(serve.config.max_channels, 100);
    /// assert_eq!(serve.listen.to_string(), "127.0.0.1:7000");
    /// ```
    pub fn parse<I, S>(args: I) -> Result<Cli, CliError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let (command, flags) = match args.first().map(String::as_str) {
            None => ("serve", &args[..]),
            Some(first) if first.starts_with('-') => ("serve", &args[..]),
            Some(first) => (first, &args[1..]),
        };
        let flags = split_flags(flags)?;
        if flags
            .iter()
            .any(|(flag, _)| flag == "--help" || flag == "-h")
        {
            return Ok(Cli {
                command: Command::Help,
            });
        }
        let command = match command {
            "serve" => Command::Serve(parse_serve(flags)?),
            "demo" => Command::Demo(parse_demo(flags)?),
            "help" | "--help" | "-h" => Command::Help,
            other => return Err(CliError::UnknownCommand(other.chars().take(40).collect())),
        };
        Ok(Cli { command })
    }
}

/// Pairs each flag with its value (`--flag value` or `--flag=value`).
fn split_flags(args: &[String]) -> Result<Vec<(String, Option<String>)>, CliError> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if !arg.starts_with('-') {
            return Err(CliError::UnknownFlag(arg.chars().take(40).collect()));
        }
        if arg == "--help" || arg == "-h" {
            out.push((arg.clone(), None));
            continue;
        }
        match arg.split_once('=') {
            Some((flag, value)) => out.push((flag.to_owned(), Some(value.to_owned()))),
            None => out.push((arg.clone(), iter.next().cloned())),
        }
    }
    Ok(out)
}

fn value(flag: &str, value: Option<String>) -> Result<String, CliError> {
    value.ok_or_else(|| CliError::MissingValue(flag.to_owned()))
}

fn bad(flag: &str, why: impl ToString) -> CliError {
    CliError::BadValue {
        flag: flag.to_owned(),
        why: why.to_string(),
    }
}

fn duration(flag: &str, text: &str) -> Result<Duration, CliError> {
    let d = parse_duration(text).map_err(|e: DurationError| bad(flag, e))?;
    if d.is_zero() {
        return Err(bad(
            flag,
            "must be greater than zero (use `off` to disable)",
        ));
    }
    Ok(d)
}

fn optional_duration(flag: &str, text: &str) -> Result<Option<Duration>, CliError> {
    match text {
        "off" | "none" => Ok(None),
        _ => duration(flag, text).map(Some),
    }
}

/// `65536`, `64k` (KiB) or `1m` (MiB).
fn bytes(flag: &str, text: &str) -> Result<usize, CliError> {
    let lower = text.to_ascii_lowercase();
    let (number, scale) = if let Some(n) = lower.strip_suffix('k') {
        (n, 1usize << 10)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 1 << 20)
    } else {
        (lower.as_str(), 1)
    };
    let n: usize = number.parse().map_err(|_| {
        bad(
            flag,
            format!("{text:?} is not a byte count like 65536, 64k or 1m"),
        )
    })?;
    n.checked_mul(scale).ok_or_else(|| bad(flag, "too large"))
}

fn address(flag: &str, text: &str) -> Result<SocketAddr, CliError> {
    text.parse().map_err(|_| {
        bad(
            flag,
            format!("{text:?} is not an address like 127.0.0.1:7000"),
        )
    })
}

fn parse_serve(flags: Vec<(String, Option<String>)>) -> Result<ServeOptions, CliError> {
    let mut listen = address("--listen", DEFAULT_LISTEN)?;
    let mut admin = address("--admin", DEFAULT_ADMIN)?;
    let mut config = default_serve_config();
    for (flag, v) in flags {
        let v = value(&flag, v)?;
        match flag.as_str() {
            "--listen" => listen = address(&flag, &v)?,
            "--admin" => admin = address(&flag, &v)?,
            "--max-channels" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| bad(&flag, "expected a whole number"))?;
                config = config.with_max_channels(n);
            }
            "--idle-timeout" => config.idle_timeout = optional_duration(&flag, &v)?,
            "--login-timeout" => config.login_timeout = optional_duration(&flag, &v)?,
            "--flush-timeout" => config.flush_timeout = duration(&flag, &v)?,
            "--queue-limit" => config = config.with_queue_limit(bytes(&flag, &v)?),
            _ => return Err(CliError::UnknownFlag(flag.chars().take(40).collect())),
        }
    }
    config.validate()?;
    Ok(ServeOptions {
        listen,
        admin,
        config,
    })
}

fn parse_demo(flags: Vec<(String, Option<String>)>) -> Result<DemoOptions, CliError> {
    let mut options = DemoOptions::default();
    for (flag, v) in flags {
        let v = value(&flag, v)?;
        match flag.as_str() {
            "--duration" => options.duration = duration(&flag, &v)?,
            "--clients" => {
                options.clients = v
                    .parse()
                    .ok()
                    .filter(|&n| (1..=5_000).contains(&n))
                    .ok_or_else(|| bad(&flag, "expected a number from 1 to 5000"))?;
            }
            _ => return Err(CliError::UnknownFlag(flag.chars().take(40).collect())),
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeOptions, CliError> {
        match Cli::parse(args)?.command {
            Command::Serve(s) => Ok(s),
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_every_flag() {
        let s = serve(&[]).unwrap();
        assert_eq!(s.admin.to_string(), DEFAULT_ADMIN);
        assert_eq!(s.config, default_serve_config());
        let s = serve(&[
            "serve",
            "--listen",
            "127.0.0.1:9000",
            "--admin=127.0.0.1:9001",
            "--max-channels",
            "50",
            "--idle-timeout",
            "2m",
            "--queue-limit",
            "64k",
            "--flush-timeout",
            "500ms",
            "--login-timeout",
            "10s",
        ])
        .unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.admin.port(), 9001);
        assert_eq!(s.config.max_channels, 50);
        assert_eq!(s.config.idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(s.config.queue_limit, 65536);
        assert_eq!(s.config.flush_timeout, Duration::from_millis(500));
        assert_eq!(s.config.login_timeout, Some(Duration::from_secs(10)));
        let s = serve(&["--idle-timeout", "off"]).unwrap();
        assert_eq!(s.config.idle_timeout, None);
    }

    #[test]
    fn bad_command_lines_are_typed_errors() {
        assert!(matches!(
            serve(&["--port", "1"]),
            Err(CliError::UnknownFlag(_))
        ));
        assert!(matches!(
            serve(&["--listen"]),
            Err(CliError::MissingValue(_))
        ));
        assert!(matches!(
            serve(&["--listen", "nowhere"]),
            Err(CliError::BadValue { .. })
        ));
        assert!(matches!(
            serve(&["--idle-timeout", "30"]),
            Err(CliError::BadValue { .. })
        ));
        assert!(matches!(
            serve(&["--flush-timeout", "0s"]),
            Err(CliError::BadValue { .. })
        ));
        assert!(matches!(
            serve(&["--max-channels", "0"]),
            Err(CliError::Config(_))
        ));
        assert!(matches!(
            serve(&["--queue-limit", "lots"]),
            Err(CliError::BadValue { .. })
        ));
        assert!(matches!(
            Cli::parse(["launch"]),
            Err(CliError::UnknownCommand(_))
        ));
        assert!(matches!(
            Cli::parse(["serve", "stray"]),
            Err(CliError::UnknownFlag(_))
        ));
    }

    #[test]
    fn demo_and_help() {
        assert_eq!(Cli::parse(["help"]).unwrap().command, Command::Help);
        assert_eq!(Cli::parse(["serve", "-h"]).unwrap().command, Command::Help);
        let Command::Demo(d) = Cli::parse(["demo", "--duration", "5s"]).unwrap().command else {
            panic!("expected demo");
        };
        assert_eq!(d.duration, Duration::from_secs(5));
        assert!(Cli::parse(["demo", "--clients", "0"]).is_err());
    }
}
