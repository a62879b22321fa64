//! # tether
//!
//! The `tether` binary's library: it maps `--runtime` to a runtime
//! adapter's start function and hands it to the runtime-neutral chat
//! server in [`tether_chat::server`]; it installs the log subscriber; and
//! it holds `tether demo`.
//!
//! ```text
//! tether [serve] [--runtime async-std|smol|threads|tokio] [flags…]  the chat server (default)
//! tether demo [--runtime …] [--duration 15s] [--clients 60]         server + simulated clients
//! tether replay FILE... [--channel ID] [--from T] [--to T] [--timeline|--quiet] [--shrink OUT]
//!                                                                     replay a flight recording
//! tether --help | --version
//! ```
//!
//! Exit status: 0 after a drain (console `shutdown`, SIGTERM, SIGINT);
//! 1 when the server cannot start (the message names the flag, e.g.
//! `--listen 127.0.0.1:7000: cannot listen on 127.0.0.1:7000: …`); 2 for a
//! bad command line, for a `--record FILE` that cannot be created or
//! written (`--record /no/such/dir/chat.rec: cannot create …`), for a
//! `--cluster` Redis that cannot be reached (`--cluster
//! redis://127.0.0.1:6379: cannot reach Redis at 127.0.0.1:6379: …`) and for
//! a `--node` name live on another node (`--node n1: the node name n1 is
//! live elsewhere …`); 128 + the
//! signal's number (130 for SIGINT, 143 for SIGTERM) when a second signal
//! cuts the drain short. `tether replay` has
//! its own (see [`replay`]): 0 match, 1 divergence or broken invariant, 2
//! unreadable or unparsable recording.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod demo;
pub mod replay;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Args as _, CommandFactory as _, FromArgMatches as _};
use tether_adapter::{Events, Handle, Options, StartError};
use tether_chat::cli::{Cli, CliError, Command, Runtime, ServeOptions};
use tether_chat::server::{self, ChatServer, ServeError};
use tether_core::Config;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Starts `runtime`'s adapter on `listener`: the function
/// [`tether_chat::server::start`] and [`serve`] are given.
pub fn start_adapter(
    runtime: Runtime,
    listener: TcpListener,
    config: Config,
    options: Options,
) -> Result<(Handle, Events), StartError> {
    match runtime {
        Runtime::AsyncStd => {
            tether_async_std::start(tether_async_std::AsyncStd, listener, config, options)
        }
        Runtime::Smol => tether_async_std::start(tether_async_std::Smol, listener, config, options),
        Runtime::Threads => tether_threads::start(listener, config, options),
        // A current-thread runtime per shard, on threads of its own (see
        // `start_on_threads` for why not one multi-thread runtime).
        Runtime::Tokio => tether_tokio::start_on_threads(listener, config, options),
    }
}

/// Starts the chat server on `options.runtime` and returns at once (for
/// tests and the demo); see [`tether_chat::server::start`].
pub fn start(options: &ServeOptions) -> Result<ChatServer, ServeError> {
    let runtime = options.runtime;
    server::start(options, |listener, config, adapter_options| {
        start_adapter(runtime, listener, config, adapter_options)
    })
}

/// `tether serve`: runs the chat server on `options.runtime` until it has
/// drained (see [`tether_chat::server::serve`]).
pub fn serve(options: &ServeOptions) -> Result<(), ServeError> {
    let runtime = options.runtime;
    server::serve(options, |listener, config, adapter_options| {
        start_adapter(runtime, listener, config, adapter_options)
    })
}

/// Installs the log subscriber: to stderr, with timestamps, filtered by
/// `RUST_LOG` (e.g. `RUST_LOG=debug` for a line per connection), at
/// `default` when `RUST_LOG` is unset. Colours only on a terminal. Does
/// nothing if a subscriber is already installed.
pub fn init_logging(default: LevelFilter) {
    let filter = EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// A parsed command line: one of the chat crate's commands, or `replay`.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// `serve` or `demo`.
    Command(Command),
    /// `tether replay`.
    Replay(replay::ReplayArgs),
}

/// Parses a whole command line (the program name first): the chat
/// crate's command line ([`tether_chat::cli::Cli`]) with the `replay`
/// subcommand added.
pub fn parse_from<I, T>(args: I) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let about = "Replay a flight recording through a fresh hub under the invariant checker; \
                 compare every outcome and output checksum with the recorded ones";
    let replay = replay::ReplayArgs::augment_args(clap::Command::new("replay")).about(about);
    let matches = Cli::command()
        .subcommand(replay)
        .try_get_matches_from(args)?;
    if let Some(("replay", sub)) = matches.subcommand() {
        return Ok(Parsed::Replay(replay::ReplayArgs::from_arg_matches(sub)?));
    }
    Cli::from_arg_matches(&matches)?
        .into_command()
        .map(Parsed::Command)
}

/// The whole program: parses `args` (the program name first), runs the
/// command, and returns the exit status. Help, version and command-line
/// errors exit the process from here, the way clap prints them.
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let command = match parse_from(args) {
        Ok(Parsed::Replay(args)) => return replay::run(&args),
        Ok(Parsed::Command(command)) => command,
        Err(e) => e.exit(),
    };
    let result = match command {
        Command::Serve(options) => {
            init_logging(LevelFilter::INFO);
            serve(&options)
        }
        Command::Demo(options) => {
            // The live table owns the terminal: only errors by default.
            init_logging(LevelFilter::ERROR);
            demo::run(&options)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether: {e}");
            match e {
                // A recording file that cannot be written is a usage
                // error, like a bad flag value; so is a --cluster that
                // cannot be reached, or a --node live elsewhere.
                ServeError::Record { .. } | ServeError::Cluster { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
