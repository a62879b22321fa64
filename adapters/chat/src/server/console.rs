//! The admin console: a listener thread and one thread per session.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tether_adapter::listen::{self, AcceptErrors};
use tether_adapter::{Error, Handle};
use tether_core::{KickMode, SendError};

use super::stop::{StopReader, Wake};
use super::{ChatCounters, ServeError, spawn_thread};
use crate::admin::{self, AdminCommand};
use crate::cli::{Secret, ServeOptions};
use crate::{LineBuffer, LineError};

/// Longest admin console line, in bytes.
pub const MAX_ADMIN_LINE: usize = 1024;

/// How often the listener thread checks whether the server stopped, should
/// the stop pipe stay silent.
const STOP_CHECK: Duration = Duration::from_secs(1);

/// How long an answer may take to write when `--admin-idle` is `off`.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Executes admin console commands against a running server. Cloneable;
/// every session has one.
///
/// | command | answer |
/// |---|---|
/// | `list` | [`admin::format_list`] of the live channels |
/// | `stats` | [`ServerStats::counters`](tether_adapter::ServerStats::counters), then the chat server's own ([`ChatCounters`]), then `.` |
/// | `kick <id> graceful [reason]` | the notice [`admin::kick_notice`] is sent first, with the verdict-returning send: a stale or forged id is answered from that send and not tried again (one rejected call, one `stale_calls`); then the kick; `ok` |
/// | `kick <id> abort` | the kick; `ok` |
/// | `shutdown [deadline]` | starts the drain (grace: the deadline, or `--shutdown-grace`); `ok` |
/// | `auth <token>` | `ok` (sessions check the token before this) |
#[derive(Debug, Clone)]
pub struct Console {
    handle: Handle,
    shutdown_grace: Duration,
    counters: Arc<ChatCounters>,
}

impl Console {
    /// A console for the server behind `handle`. `shutdown` without a
    /// deadline drains for `shutdown_grace`.
    pub fn new(handle: Handle, shutdown_grace: Duration, counters: Arc<ChatCounters>) -> Console {
        Console {
            handle,
            shutdown_grace,
            counters,
        }
    }

    /// Starts the drain (what `shutdown` and the signals do): every channel
    /// is kicked with `ServerShutdown`, what is still closing after `grace`
    /// is aborted. Idempotent.
    pub fn shutdown(&self, grace: Duration) -> Result<(), Error> {
        self.counters.draining.store(true, Ordering::Relaxed);
        super::call(&self.handle, self.handle.shutdown(grace))
    }

    /// Executes one command and returns its answer (one line, or lines
    /// ending with `.`), never panicking: a refusal is an `error <why>` line.
    pub fn execute(&self, command: AdminCommand) -> String {
        let handle = &self.handle;
        let result = match command {
            AdminCommand::List => {
                super::call(handle, handle.channels()).map(|list| admin::format_list(&list))
            }
            AdminCommand::Stats => super::call(handle, handle.stats()).map(|stats| {
                let chat = self.counters.snapshot();
                let chat = chat.iter().map(|(k, v)| ((*k).to_owned(), *v));
                admin::format_stats(stats.counters().into_iter().chain(chat))
            }),
            AdminCommand::Kick { id, mode, reason } => {
                // A graceful kick's notice is queued first, so the client
                // reads it before EOF. A stale or forged id is answered from
                // that send and never tried again (one rejected call, one
                // stale count); any other refusal (already closing) is the
                // kick's to explain.
                let notice = match mode {
                    KickMode::Graceful => {
                        super::call(handle, handle.send(id, admin::kick_notice(&reason)))
                    }
                    _ => Ok(()), // an abort: no notice, the RST is the news
                };
                match notice {
                    Err(e @ Error::Send(SendError::Id(_))) => Err(e),
                    _ => super::call(handle, handle.kick(id, mode, admin::ADMIN_KICK_CODE))
                        .map(|()| admin::OK.to_owned()),
                }
            }
            AdminCommand::Shutdown { deadline } => {
                let grace = deadline.unwrap_or(self.shutdown_grace);
                tracing::info!(
                    grace = %humantime::format_duration(grace),
                    "shutdown requested from the admin console"
                );
                self.shutdown(grace).map(|()| admin::OK.to_owned())
            }
            AdminCommand::Auth { .. } => Ok(admin::OK.to_owned()),
        };
        result.unwrap_or_else(|e| admin::format_error(&e))
    }
}

/// A session's side of the `auth` rule, without I/O.
#[derive(Debug)]
struct Gate {
    token: Option<Secret>,
    authenticated: bool,
}

/// What a session does after a line.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// Write this, keep serving.
    Answer(String),
    /// Write this, then close.
    Close(&'static str),
}

impl Gate {
    fn new(token: Option<Secret>) -> Gate {
        Gate {
            authenticated: token.is_none(),
            token,
        }
    }

    /// Answers one framed line.
    fn line(
        &mut self,
        line: Result<Vec<u8>, LineError>,
        console: &Console,
        peer: SocketAddr,
    ) -> Reply {
        let command = match line {
            Ok(line) => AdminCommand::parse_bytes(&line),
            Err(e) => return Reply::Answer(admin::format_error(&e)),
        };
        if !self.authenticated {
            return match (command, &self.token) {
                (Ok(AdminCommand::Auth { token }), Some(secret)) if secret.matches(&token) => {
                    self.authenticated = true;
                    tracing::info!(%peer, "admin session authenticated");
                    Reply::Answer(admin::OK.to_owned())
                }
                (Ok(AdminCommand::Auth { .. }), _) => {
                    tracing::warn!(%peer, "admin session offered a bad token; closed");
                    Reply::Close(admin::BAD_TOKEN)
                }
                _ => Reply::Answer(admin::AUTH_REQUIRED.to_owned()),
            };
        }
        match command {
            Ok(command) => {
                if !matches!(command, AdminCommand::Auth { .. }) {
                    tracing::info!(%peer, "admin: {}", describe(&command));
                }
                Reply::Answer(console.execute(command))
            }
            Err(e) => Reply::Answer(admin::format_error(&e)),
        }
    }
}

/// A command as logged (never a token).
fn describe(command: &AdminCommand) -> String {
    match command {
        AdminCommand::List => "list".into(),
        AdminCommand::Stats => "stats".into(),
        AdminCommand::Kick { id, mode, reason } => {
            let mode = match mode {
                KickMode::Graceful => "graceful",
                KickMode::Abort => "abort",
                _ => "other",
            };
            format!("kick {id} {mode} {reason:?}")
        }
        AdminCommand::Shutdown { deadline: None } => "shutdown".into(),
        AdminCommand::Shutdown { deadline: Some(d) } => {
            format!("shutdown {}", humantime::format_duration(*d))
        }
        AdminCommand::Auth { .. } => "auth".into(),
    }
}

/// What the listener thread and its sessions share.
#[derive(Debug)]
struct Shared {
    console: Console,
    token: Option<Secret>,
    max: usize,
    idle: Option<Duration>,
    /// Open sessions, by number: a clone of each socket, shut down when the
    /// server stops so a session blocked in `read` wakes and ends.
    sessions: Mutex<Sessions>,
}

#[derive(Debug, Default)]
struct Sessions {
    next: u64,
    open: HashMap<u64, TcpStream>,
}

impl Shared {
    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts the console's listener thread.
pub(super) fn spawn(
    listener: TcpListener,
    console: Console,
    options: &ServeOptions,
    stopped: StopReader,
) -> Result<JoinHandle<()>, ServeError> {
    let shared = Arc::new(Shared {
        console,
        token: options.admin_token.clone(),
        max: options.admin_max.max(1),
        idle: options.admin_idle,
        sessions: Mutex::new(Sessions::default()),
    });
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Thread {
            what: "admin",
            source,
        })?;
    spawn_thread("admin", move || run(&listener, &shared, &stopped))
}

/// Accepts console connections until the server stops, then closes every
/// session.
fn run(listener: &TcpListener, shared: &Arc<Shared>, stopped: &StopReader) {
    let mut errors = AcceptErrors::new("admin");
    let mut refusals = RateLimited::default();
    loop {
        match stopped.wait(Some(listener), STOP_CHECK) {
            Wake::Stopped => break,
            Wake::Timeout if shared.console.handle.is_stopped() => break,
            Wake::Timeout => continue,
            Wake::Ready => {}
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                errors.success();
                admit(stream, peer, shared, &mut refusals);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => std::thread::sleep(errors.failed(&e)),
        }
    }
    // The server stopped: wake every session blocked in `read`. Only the
    // read side: a session still writing its answer (`ok` to the very
    // `shutdown` that stopped the server) gets it out, then sees EOF, ends
    // and closes its socket.
    for stream in shared.sessions().open.values() {
        let _ = stream.shutdown(Shutdown::Read);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !shared.sessions().open.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a session for a new connection, or refuses it beyond `--admin-max`.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, refusals: &mut RateLimited) {
    let counters = &shared.console.counters;
    let number = {
        let mut sessions = shared.sessions();
        if sessions.open.len() >= shared.max {
            drop(sessions);
            counters.admin_refused.fetch_add(1, Ordering::Relaxed);
            listen::refuse_std(stream, admin::TOO_MANY.as_bytes());
            if let Some(count) = refusals.hit() {
                tracing::warn!(
                    %peer,
                    refused = count,
                    max = shared.max,
                    "admin console full: connection refused (see --admin-max)"
                );
            }
            return;
        }
        let Ok(clone) = stream.try_clone() else {
            listen::refuse_std(stream, b"error cannot serve this session\n");
            return;
        };
        sessions.next += 1;
        let number = sessions.next;
        sessions.open.insert(number, clone);
        counters
            .admin_sessions
            .store(sessions.open.len() as u64, Ordering::Relaxed);
        number
    };
    let session_shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("tether-admin-session".into())
        .spawn(move || {
            tracing::debug!(%peer, "admin session opened");
            session(stream, peer, &session_shared);
            close_session(&session_shared, number);
            tracing::debug!(%peer, "admin session closed");
        });
    if let Err(e) = spawned {
        tracing::warn!(%peer, "cannot start an admin session thread: {e}");
        if let Some(stream) = shared.sessions().open.get(&number) {
            let _ = (&*stream).write(b"error cannot serve this session\n");
            let _ = stream.shutdown(Shutdown::Both);
        }
        close_session(shared, number);
    }
}

fn close_session(shared: &Shared, number: u64) {
    let mut sessions = shared.sessions();
    sessions.open.remove(&number);
    shared
        .console
        .counters
        .admin_sessions
        .store(sessions.open.len() as u64, Ordering::Relaxed);
}

/// One console connection: a line in, an answer out, until EOF, a bad
/// token, `--admin-idle` without a complete line, or the server's stop.
fn session(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_write_timeout(Some(shared.idle.unwrap_or(WRITE_TIMEOUT)))
            .is_err()
    {
        return;
    }
    let mut gate = Gate::new(shared.token.clone());
    let mut lines = LineBuffer::new(MAX_ADMIN_LINE);
    let mut buf = [0u8; 1024];
    let mut last_line = Instant::now();
    loop {
        while let Some(line) = lines.next_line() {
            last_line = Instant::now();
            match gate.line(line, &shared.console, peer) {
                Reply::Answer(text) => {
                    if stream.write_all(text.as_bytes()).is_err() {
                        return;
                    }
                }
                Reply::Close(text) => {
                    let _ = stream.write_all(text.as_bytes());
                    return;
                }
            }
        }
        if let Some(idle) = shared.idle {
            let left = idle.saturating_sub(last_line.elapsed());
            if left.is_zero() {
                tracing::debug!(%peer, "admin session idle; closed");
                let text = format!(
                    "error no command for {}; closing\n",
                    humantime::format_duration(idle)
                );
                let _ = stream.write_all(text.as_bytes());
                return;
            }
            if stream.set_read_timeout(Some(left)).is_err() {
                return;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => lines.push(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// Counts events and says when to log: at most once a second, with the
/// count since the last line.
#[derive(Debug, Default)]
struct RateLimited {
    last: Option<Instant>,
    unlogged: u64,
}

impl RateLimited {
    fn hit(&mut self) -> Option<u64> {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            self.last = Some(now);
            Some(std::mem::take(&mut self.unlogged))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_a_second_with_their_count() {
        let mut r = RateLimited::default();
        assert_eq!(r.hit(), Some(1));
        assert_eq!(r.hit(), None);
        assert_eq!(r.hit(), None);
        r.last = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(r.hit(), Some(3));
    }
}
