//! The chat server and its admin console, on top of [`Handle`] and
//! [`Events`]. The protocol and console grammar are in `tether-chat`;
//! this module only moves them between sockets and the handle.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use async_io::Async;
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use tether_chat::admin::{self, AdminCommand};
use tether_chat::{ChatOutput, ChatRoom, LineBuffer, ServeOptions};
use tether_core::{ChannelId, KickMode, SendError};

use crate::runtime::Runtime;
use crate::server::{Error, Events, Handle, Server, StartError};

/// Longest admin console line.
const MAX_ADMIN_LINE: usize = 1024;

/// Feeds the room's output to the server without waiting for answers:
/// refusals (a member that just left) are counted by the hub.
struct HandleOutput<'a>(&'a Handle);

impl ChatOutput for HandleOutput<'_> {
    fn send(&mut self, id: ChannelId, data: Bytes) {
        self.0.send_nowait(id, data);
    }
    fn broadcast(&mut self, data: Bytes) {
        self.0.broadcast_nowait(data);
    }
    fn authenticate(&mut self, id: ChannelId) {
        self.0.authenticate_nowait(id);
    }
}

/// Runs the chat room over the server's events until the server stops.
/// `log` prints one line per connect and disconnect to stderr.
pub async fn run_room(handle: Handle, events: Events, log: bool) {
    let mut room = ChatRoom::default();
    while let Some(event) = events.next().await {
        if log && let Some(line) = tether_chat::log_line(&event) {
            eprintln!("{line}");
        }
        room.handle_event(&event, &mut HandleOutput(&handle));
    }
}

/// Serves the admin console on `listener` until the server stops.
pub async fn run_admin<R: Runtime>(runtime: R, listener: Async<TcpListener>, handle: Handle) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            handle.stopped().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, _peer))) => runtime.spawn(admin_session(stream, handle.clone())),
            Some(Err(_)) => {
                async_io::Timer::after(Duration::from_millis(5)).await;
            }
        }
    }
}

/// One console connection: a line in, an answer out, until EOF.
async fn admin_session(mut stream: Async<TcpStream>, handle: Handle) {
    let mut lines = LineBuffer::new(MAX_ADMIN_LINE);
    let mut buf = [0u8; 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        lines.push(&buf[..n]);
        while let Some(line) = lines.next_line() {
            let answer = match line {
                Ok(line) => match AdminCommand::parse_bytes(&line) {
                    Ok(command) => execute(&handle, command).await,
                    Err(e) => admin::format_error(&e),
                },
                Err(e) => admin::format_error(&e),
            };
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// Executes one console command and returns its answer.
pub async fn execute(handle: &Handle, command: AdminCommand) -> String {
    let result = match command {
        AdminCommand::List => handle
            .channels()
            .await
            .map(|list| admin::format_list(&list)),
        AdminCommand::Stats => handle
            .stats()
            .await
            .map(|stats| admin::format_stats(&stats)),
        AdminCommand::Kick { id, mode, reason } => {
            // A graceful kick's notice is queued first, so the client reads
            // it before EOF. A stale or forged id is answered from that send
            // and never tried again (one rejected call, one stale count); any
            // other refusal (already closing) is the kick's to explain.
            let notice = match mode {
                KickMode::Graceful => handle.send(id, admin::kick_notice(&reason)).await,
                KickMode::Abort => Ok(()),
            };
            match notice {
                Err(e @ Error::Send(SendError::Id(_))) => Err(e),
                _ => handle
                    .kick(id, mode, admin::ADMIN_KICK_CODE)
                    .await
                    .map(|()| admin::OK.to_owned()),
            }
        }
        AdminCommand::Shutdown { deadline } => handle
            .shutdown(deadline)
            .await
            .map(|()| admin::OK.to_owned()),
    };
    result.unwrap_or_else(|e| admin::format_error(&e))
}

/// A running chat server: its handle and where it listens.
#[derive(Debug, Clone)]
pub struct ChatServer {
    /// The server's handle (shutdown, stats…).
    pub handle: Handle,
    /// Where chat clients connect.
    pub chat_addr: SocketAddr,
    /// Where the admin console listens.
    pub admin_addr: SocketAddr,
}

/// Starts the chat server, its room and its admin console on `runtime`,
/// and returns at once. `log` prints connects and disconnects to stderr.
pub fn start<R: Runtime>(
    runtime: R,
    options: &ServeOptions,
    log: bool,
) -> Result<ChatServer, StartError> {
    let (handle, events) = Server::start(runtime.clone(), options.listen, options.config.clone())?;
    let admin = Async::new(crate::server::listen(options.admin)?)?;
    let admin_addr = admin.get_ref().local_addr()?;
    runtime.spawn(run_room(handle.clone(), events, log));
    runtime.spawn(run_admin(runtime.clone(), admin, handle.clone()));
    Ok(ChatServer {
        chat_addr: handle.local_addr(),
        handle,
        admin_addr,
    })
}

/// `tether serve`: the chat server and its console, until `shutdown`.
pub fn serve<R: Runtime>(runtime: R, options: &ServeOptions) -> Result<(), StartError> {
    let server = start(runtime.clone(), options, true)?;
    let (chat, admin) = (server.chat_addr, server.admin_addr);
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "tether: chat on {chat}, admin console on {admin} ({})\n\
         \x20 chat:    nc {} {}\n\
         \x20 console: nc {} {}   then: list | kick <id> [graceful|abort] [reason] | stats | shutdown [deadline-ms]",
        R::NAME,
        chat.ip(),
        chat.port(),
        admin.ip(),
        admin.port(),
    );
    drop(out);
    runtime.block_on(server.handle.stopped());
    println!("tether: shut down");
    Ok(())
}
