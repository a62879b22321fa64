//! `tether serve` on the blocking threads adapter: the same chat line
//! protocol, admin console and command-line flags (all from `tether-chat`).
//!
//! ```text
//! cargo run --release -p tether-threads --example chat -- --listen 127.0.0.1:7000 --admin 127.0.0.1:7001
//! nc 127.0.0.1 7000        # chat
//! nc 127.0.0.1 7001        # list | kick <id> [graceful|abort] [reason] | stats | shutdown [ms]
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

use tether_chat::admin::{self, AdminCommand};
use tether_chat::cli::USAGE;
use tether_chat::{ChatOutput, ChatRoom, Cli, Command, LineBuffer, ServeOptions};
use tether_threads::tether_core::{Bytes, ChannelId, KickMode, SendError};
use tether_threads::{CallError, Events, Handle, Options, Server};

/// Longest admin console line.
const MAX_ADMIN_LINE: usize = 1024;

/// Feeds the room's output to the server without waiting for verdicts:
/// refusals (a member that just left) are counted by the hub.
struct HandleOutput<'a>(&'a Handle);

impl ChatOutput for HandleOutput<'_> {
    fn send(&mut self, id: ChannelId, data: Bytes) {
        let _ = self.0.send_no_reply(id, data);
    }
    fn broadcast(&mut self, data: Bytes) {
        let _ = self.0.broadcast_no_reply(data);
    }
    fn authenticate(&mut self, id: ChannelId) {
        let _ = self.0.authenticate_no_reply(id);
    }
}

/// The chat room over the server's events, until the server stops.
fn run_room(handle: &Handle, events: Events) {
    let mut room = ChatRoom::default();
    for event in events {
        if let Some(line) = tether_chat::log_line(&event) {
            eprintln!("{line}");
        }
        room.handle_event(&event, &mut HandleOutput(handle));
    }
}

/// Executes one console command and returns its answer.
fn execute(handle: &Handle, command: AdminCommand) -> String {
    match command {
        AdminCommand::List => match handle.channels() {
            Ok(list) => admin::format_list(&list),
            Err(e) => admin::format_error(&e),
        },
        AdminCommand::Stats => match handle.stats() {
            Ok(stats) => {
                // The shared core counters, then this adapter's own.
                let text = admin::format_stats(&stats.core);
                let mut text = text.strip_suffix(".\n").unwrap_or(&text).to_owned();
                for (key, value) in stats.iter().filter(|(k, _)| k.starts_with("threads.")) {
                    text.push_str(&format!("{key}={value}\n"));
                }
                text + ".\n"
            }
            Err(e) => admin::format_error(&e),
        },
        AdminCommand::Kick { id, mode, reason } => {
            // A graceful kick's notice is queued first, so the client reads
            // it before EOF. A stale or forged id is answered from that send
            // and never tried again (one rejected call, one stale count); any
            // other refusal (already closing) is the kick's to explain.
            let notice = match mode {
                KickMode::Graceful => handle.send(id, admin::kick_notice(&reason)),
                KickMode::Abort => Ok(()),
            };
            if let Err(e @ CallError::Rejected(SendError::Id(_))) = notice {
                return admin::format_error(&e);
            }
            match handle.kick(id, mode, admin::ADMIN_KICK_CODE) {
                Ok(()) => admin::OK.to_owned(),
                Err(e) => admin::format_error(&e),
            }
        }
        AdminCommand::Shutdown { deadline } => match handle.shutdown(deadline) {
            Ok(()) => admin::OK.to_owned(),
            Err(e) => admin::format_error(&e),
        },
    }
}

/// One console connection: a line in, an answer out, until EOF.
fn admin_session(mut stream: TcpStream, handle: Handle) {
    let mut lines = LineBuffer::new(MAX_ADMIN_LINE);
    let mut buf = [0u8; 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        lines.push(&buf[..n]);
        while let Some(line) = lines.next_line() {
            let answer = match line {
                Ok(line) => match AdminCommand::parse_bytes(&line) {
                    Ok(command) => execute(&handle, command),
                    Err(e) => admin::format_error(&e),
                },
                Err(e) => admin::format_error(&e),
            };
            if stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Accepts console connections, one thread each, for the process's life.
fn run_admin(listener: TcpListener, handle: Handle) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let handle = handle.clone();
                let _ = std::thread::Builder::new()
                    .name("tether-admin".into())
                    .spawn(move || admin_session(stream, handle));
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

fn serve(options: &ServeOptions) -> io::Result<()> {
    let listener = TcpListener::bind(options.listen)?;
    let admin_listener = TcpListener::bind(options.admin)?;
    let (server, events) = Server::start(listener, options.config.clone(), Options::default())
        .map_err(io::Error::other)?;
    let chat_addr = server.local_addr();
    let admin_addr = admin_listener.local_addr()?;
    println!(
        "tether: chat on {chat_addr}, admin console on {admin_addr} (threads)\n\
         \x20 chat:    nc {} {}\n\
         \x20 console: nc {} {}   then: list | kick <id> [graceful|abort] [reason] | stats | shutdown [deadline-ms]",
        chat_addr.ip(),
        chat_addr.port(),
        admin_addr.ip(),
        admin_addr.port(),
    );
    let handle = server.handle();
    std::thread::Builder::new()
        .name("tether-admin-accept".into())
        .spawn({
            let handle = handle.clone();
            move || run_admin(admin_listener, handle)
        })?;
    // The event stream ends when the server has shut down.
    run_room(&handle, events);
    server.wait();
    println!("tether: shut down");
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::parse(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve(options) => match serve(&options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tether: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Demo(_) => {
            eprintln!("tether: the demo runs on the async adapter: cargo run --release -- demo");
            ExitCode::from(2)
        }
    }
}
