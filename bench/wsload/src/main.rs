//! `wsload`: the WebSocket load client of `bench/web.sh`, with the modes of
//! `../shared/loadgen/pc.c` over `GET /ws` and pc's output keys, so the
//! script sets a WebSocket figure beside its TCP-line one:
//!
//! ```text
//! wsload churn  PORT SECS NTHREADS [SRCBASE]            connect, upgrade, greeting, one line, own reply, close
//! wsload fanout PORT NCLIENTS NLINES SIZE [SRVPID]      client 0 sends, every client reads every line
//! wsload idle   PORT N HOLD_SECS [SRVPID [NSRC SRCBASE]] hold N upgraded connections; VmRSS before/after
//! ```
//!
//! Only 127.0.0.1 destinations. A bench tool: no production crate depends on it.

#![forbid(unsafe_code)]

mod churn;
mod fanout;
mod frame;
mod idle;
mod procfs;

use std::process::ExitCode;
use std::str::FromStr;

const USAGE: &str = "usage: wsload churn PORT SECS NTHREADS [SRCBASE]\n\
                     \x20      wsload fanout PORT NCLIENTS NLINES SIZE [SRVPID]\n\
                     \x20      wsload idle PORT N HOLD_SECS [SRVPID [NSRC SRCBASE]]";

/// Argument `i`, parsed; `None` when absent or malformed.
fn arg<T: FromStr>(args: &[String], i: usize) -> Option<T> {
    args.get(i)?.parse().ok()
}

fn main() -> ExitCode {
    let a: Vec<String> = std::env::args().collect();
    let result = match a.get(1).map(String::as_str) {
        Some("churn") => (|| {
            churn::run(arg(&a, 2)?, arg(&a, 3)?, arg(&a, 4)?, arg(&a, 5));
            Some(Ok(()))
        })(),
        Some("fanout") => (|| {
            Some(fanout::run(
                arg(&a, 2)?,
                arg(&a, 3)?,
                arg(&a, 4)?,
                arg(&a, 5)?,
                arg(&a, 6),
            ))
        })(),
        Some("idle") => (|| {
            let srcs = (arg(&a, 6).unwrap_or(8), arg(&a, 7).unwrap_or(20));
            Some(idle::run(
                arg(&a, 2)?,
                arg(&a, 3)?,
                arg(&a, 4)?,
                arg(&a, 5),
                srcs,
            ))
        })(),
        _ => None,
    };
    match result {
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(1)
        }
        Some(Err(e)) => {
            println!("ERR {e}");
            ExitCode::from(1)
        }
        Some(Ok(())) => ExitCode::SUCCESS,
    }
}
