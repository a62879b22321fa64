//! The `tether` binary: `tether serve` (the default), `tether demo`,
//! `tether help`. See `tether_chat::cli` for the flags.

use std::process::ExitCode;

use tether_async_std::{AsyncStd, chat, demo};
use tether_chat::cli::USAGE;
use tether_chat::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::parse(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(options) => chat::serve(AsyncStd, &options).map_err(|e| e.to_string()),
        Command::Demo(options) => demo::run(AsyncStd, &options).map_err(|e| e.to_string()),
        Command::Help => {
            print!("{USAGE}");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether: {e}");
            ExitCode::FAILURE
        }
    }
}
