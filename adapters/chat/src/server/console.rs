//! The admin console: a listener thread and one thread per session.
//!
//! A session is *established* once it authenticated (`auth TOKEN` with
//! `--admin-token`) or, without a token, ran a command. Until then it is
//! closed at `--admin-login` after it connected (counted in
//! `admin.login_timeouts`), and at `--admin-max` a newcomer evicts the
//! oldest such session (`admin.evicted`; it reads why, if its socket takes
//! it, then is shut down), so silent sockets never lock the operator out.
//! Established sessions are never evicted: with every slot established, a
//! newcomer reads [`admin::TOO_MANY`] and is closed (`admin.refused`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tether_adapter::listen::{self, AcceptErrors};
use tether_adapter::{Error, Handle};
use tether_core::KickMode;

use super::cluster::{self, ClusterNode, answers};
use super::slots::{Admission, SlotId, Slots};
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
/// | `kick NAME/<id> …` | on a cluster node: a local kick when NAME is this node, else the cluster's kick, answered once the owning node did it (`ok`, `error stale`, `error unknown node NAME`, `error cluster unavailable`) |
/// | `nodes` | the cluster's live nodes (see [`admin`]) |
/// | `shutdown [deadline]` | starts the drain (grace: the deadline, or `--shutdown-grace`); `ok` |
/// | `auth <token>` | `ok` (sessions check the token before this) |
#[derive(Debug, Clone)]
pub struct Console {
    pub(super) handle: Handle,
    shutdown_grace: Duration,
    counters: Arc<ChatCounters>,
    /// The cluster node (`--cluster`): `nodes`, `kick NAME/<id>`, and
    /// cluster-wide `list` and `stats`.
    pub(super) cluster: ClusterNode,
}

impl Console {
    /// A console for the server behind `handle`. `shutdown` without a
    /// deadline drains for `shutdown_grace`.
    pub fn new(handle: Handle, shutdown_grace: Duration, counters: Arc<ChatCounters>) -> Console {
        Console {
            handle,
            shutdown_grace,
            counters,
            cluster: None,
        }
    }

    /// The same console on a cluster node: `list`, `kick`, `stats` reach
    /// across nodes and `nodes` lists them.
    pub fn with_cluster(self, node: Arc<tether_redis::Node>) -> Console {
        self.with_node(Some(node))
    }

    pub(super) fn with_node(self, cluster: ClusterNode) -> Console {
        Console { cluster, ..self }
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
            AdminCommand::List => return self.list(),
            AdminCommand::Stats => super::call(handle, handle.stats()).map(|stats| {
                let chat = self.counters.snapshot();
                let chat = chat.iter().map(|(k, v)| ((*k).to_owned(), *v));
                let cluster = self.cluster_stats();
                let cluster = cluster.iter().map(|(k, v)| ((*k).to_owned(), *v));
                admin::format_stats(stats.counters().into_iter().chain(chat).chain(cluster))
            }),
            AdminCommand::Kick { id, mode, reason } => {
                cluster::local_kick(handle, id, mode, &reason).map(|()| admin::OK.to_owned())
            }
            AdminCommand::KickRemote {
                target,
                mode,
                reason,
            } => return self.kick_remote(target, mode, reason),
            AdminCommand::Nodes => {
                return match &self.cluster {
                    None => answers::NOT_CLUSTERED.to_owned(),
                    Some(node) => node
                        .nodes()
                        .map_or_else(|_| answers::UNAVAILABLE.to_owned(), |n| answers::nodes(&n)),
                };
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

/// A session's side of the `auth` rule, without I/O: it also says when the
/// session becomes *established* (never evicted by a newcomer, free of
/// `--admin-login`): `auth TOKEN` accepted with `--admin-token`, else its
/// first command.
#[derive(Debug)]
struct Gate {
    token: Option<Secret>,
    established: bool,
}

/// What a session does with a line.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Write this, keep serving.
    Answer(String),
    /// Write this, then close.
    Close(&'static str),
    /// Run this command; `establishes`: the session becomes established
    /// with it (mark it so first, or stop if it was evicted meanwhile).
    Run {
        command: AdminCommand,
        establishes: bool,
    },
}

impl Gate {
    fn new(token: Option<Secret>) -> Gate {
        Gate {
            token,
            established: false,
        }
    }

    /// Judges one framed line.
    fn line(&mut self, line: Result<Vec<u8>, LineError>, peer: SocketAddr) -> Verdict {
        let command = match line {
            Ok(line) => AdminCommand::parse_bytes(&line),
            Err(e) => return Verdict::Answer(admin::format_error(&e)),
        };
        let command = match (command, &self.token) {
            (Err(e), _) => return Verdict::Answer(admin::format_error(&e)),
            (Ok(command), _) if self.established => {
                return Verdict::Run {
                    command,
                    establishes: false,
                };
            }
            (Ok(command), None) => command,
            (Ok(AdminCommand::Auth { token }), Some(secret)) if secret.matches(&token) => {
                tracing::info!(%peer, "admin session authenticated");
                AdminCommand::Auth { token }
            }
            (Ok(AdminCommand::Auth { .. }), Some(_)) => {
                tracing::warn!(%peer, "admin session offered a bad token; closed");
                return Verdict::Close(admin::BAD_TOKEN);
            }
            (Ok(_), Some(_)) => return Verdict::Answer(admin::AUTH_REQUIRED.to_owned()),
        };
        self.established = true;
        Verdict::Run {
            command,
            establishes: true,
        }
    }
}

/// A command as logged (never a token).
fn describe(command: &AdminCommand) -> String {
    match command {
        AdminCommand::List => "list".into(),
        AdminCommand::Stats => "stats".into(),
        AdminCommand::Nodes => "nodes".into(),
        AdminCommand::KickRemote {
            target,
            mode,
            reason,
        } => format!("kick {target} {} {reason:?}", mode_name(*mode)),
        AdminCommand::Kick { id, mode, reason } => {
            format!("kick {id} {} {reason:?}", mode_name(*mode))
        }
        AdminCommand::Shutdown { deadline: None } => "shutdown".into(),
        AdminCommand::Shutdown { deadline: Some(d) } => {
            format!("shutdown {}", humantime::format_duration(*d))
        }
        AdminCommand::Auth { .. } => "auth".into(),
    }
}

fn mode_name(mode: KickMode) -> &'static str {
    match mode {
        KickMode::Graceful => "graceful",
        KickMode::Abort => "abort",
        _ => "other",
    }
}

/// What the listener thread and its sessions share.
#[derive(Debug)]
struct Shared {
    console: Console,
    token: Option<Secret>,
    idle: Option<Duration>,
    login: Option<Duration>,
    /// Open sessions, oldest first: at `--admin-max` a newcomer evicts the
    /// oldest one not established; all are shut down when the server stops.
    sessions: Slots,
}

/// What an evicted session reads before its socket is shut down.
const EVICTED: &[u8] =
    b"error evicted: the admin console is full and this session sent no command\n";

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
        idle: options.admin_idle,
        login: options.admin_login,
        sessions: Slots::new(options.admin_max),
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
    let mut logs = AdmitLogs::default();
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
                admit(stream, peer, shared, &mut logs);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => std::thread::sleep(errors.failed(&e)),
        }
    }
    // The server stopped: wake every session blocked in `read`. Only the
    // read side: a session still writing its answer (`ok` to the very
    // `shutdown` that stopped the server) gets it out, then sees EOF, ends
    // and closes its socket.
    shared.sessions.shutdown_reads();
    let deadline = Instant::now() + Duration::from_secs(2);
    while shared.sessions.len() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a session for a new connection: at `--admin-max`, in place of
/// the oldest session not established, or refused when every one is.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, logs: &mut AdmitLogs) {
    let counters = &shared.console.counters;
    let number = match shared.sessions.admit(&stream, EVICTED) {
        Admission::Admitted(number) => number,
        Admission::Evicted(number) => {
            counters.admin_evicted.fetch_add(1, Ordering::Relaxed);
            if let Some(count) = logs.evictions.hit() {
                tracing::warn!(
                    %peer,
                    evicted = count,
                    max = shared.sessions.max(),
                    "admin console full: the oldest session that sent no command was evicted \
                     (see --admin-max, --admin-login)"
                );
            }
            number
        }
        Admission::Full => {
            counters.admin_refused.fetch_add(1, Ordering::Relaxed);
            listen::refuse_std(stream, admin::TOO_MANY.as_bytes());
            if let Some(count) = logs.refusals.hit() {
                tracing::warn!(
                    %peer,
                    refused = count,
                    max = shared.sessions.max(),
                    "admin console full of established sessions: connection refused (see --admin-max)"
                );
            }
            return;
        }
        Admission::Unavailable => {
            listen::refuse_std(stream, b"error cannot serve this session\n");
            return;
        }
    };
    count_sessions(shared, shared.sessions.len());
    let session_shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("tether-admin-session".into())
        .spawn(move || {
            tracing::debug!(%peer, "admin session opened");
            session(stream, peer, number, &session_shared);
            count_sessions(&session_shared, session_shared.sessions.close(number));
            tracing::debug!(%peer, "admin session closed");
        });
    if let Err(e) = spawned {
        // The stream went with the closure: the slot's clone is all that is
        // left. Free the slot; dropping the clone closes the connection.
        tracing::warn!(%peer, "cannot start an admin session thread: {e}");
        count_sessions(shared, shared.sessions.close(number));
    }
}

/// Rate-limited log lines of the listener thread.
#[derive(Debug, Default)]
struct AdmitLogs {
    refusals: RateLimited,
    evictions: RateLimited,
}

fn count_sessions(shared: &Shared, open: usize) {
    shared
        .console
        .counters
        .admin_sessions
        .store(open as u64, Ordering::Relaxed);
}

/// One console connection: a line in, an answer out, until EOF, a bad
/// token, `--admin-login` without being established, `--admin-idle`
/// without a complete line, an eviction, or the server's stop.
fn session(mut stream: TcpStream, peer: SocketAddr, number: SlotId, shared: &Shared) {
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
    let opened = Instant::now();
    let mut last_line = opened;
    loop {
        while let Some(line) = lines.next_line() {
            last_line = Instant::now();
            let answer = match gate.line(line, peer) {
                Verdict::Answer(text) => text,
                Verdict::Close(text) => {
                    let _ = stream.write_all(text.as_bytes());
                    return;
                }
                Verdict::Run {
                    command,
                    establishes,
                } => {
                    // Established before it runs: a newcomer can no longer
                    // evict it mid-command. Evicted already: its socket is
                    // shut down, nothing runs.
                    if establishes && !shared.sessions.establish(number) {
                        return;
                    }
                    if !matches!(command, AdminCommand::Auth { .. }) {
                        tracing::info!(%peer, "admin: {}", describe(&command));
                    }
                    shared.console.execute(command)
                }
            };
            if stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
        let login_by = shared
            .login
            .filter(|_| !gate.established)
            .map(|login| (opened + login, login));
        match time_left(shared, login_by, last_line, shared.token.is_some()) {
            Ok(left) => {
                if stream.set_read_timeout(left).is_err() {
                    return;
                }
            }
            Err(goodbye) => {
                tracing::debug!(%peer, "{}", goodbye.trim_end());
                let _ = stream.write_all(goodbye.as_bytes());
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

/// How long a session may wait for its next line (`None`: no bound), or
/// the line it is closed with now: `login_by` (deadline, `--admin-login`)
/// while it is not established, `--admin-idle` after its last line.
fn time_left(
    shared: &Shared,
    login_by: Option<(Instant, Duration)>,
    last_line: Instant,
    token: bool,
) -> Result<Option<Duration>, String> {
    let now = Instant::now();
    if let Some((by, login)) = login_by
        && by <= now
    {
        shared
            .console
            .counters
            .admin_login_timeouts
            .fetch_add(1, Ordering::Relaxed);
        let what = if token { "auth" } else { "command" };
        return Err(format!(
            "error no {what} within {} (--admin-login); closing\n",
            humantime::format_duration(login)
        ));
    }
    let idle_by = shared.idle.map(|idle| (last_line + idle, idle));
    if let Some((by, idle)) = idle_by
        && by <= now
    {
        return Err(format!(
            "error no command for {}; closing\n",
            humantime::format_duration(idle)
        ));
    }
    let next = match (login_by, idle_by) {
        (Some((a, _)), Some((b, _))) => Some(a.min(b)),
        (a, b) => a.or(b).map(|(by, _)| by),
    };
    Ok(next.map(|by| by.saturating_duration_since(now)))
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

    fn line(gate: &mut Gate, text: &str) -> Verdict {
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        gate.line(Ok(text.as_bytes().to_vec()), peer)
    }

    #[test]
    fn a_session_is_established_by_its_first_command_or_its_auth() {
        let mut open = Gate::new(None);
        assert!(
            matches!(line(&mut open, "frobnicate"), Verdict::Answer(e) if e.starts_with("error "))
        );
        assert!(!open.established, "a bad line does not establish");
        assert!(matches!(
            line(&mut open, "stats"),
            Verdict::Run {
                command: AdminCommand::Stats,
                establishes: true
            }
        ));
        assert!(open.established);
        assert!(matches!(
            line(&mut open, "list"),
            Verdict::Run {
                command: AdminCommand::List,
                establishes: false
            }
        ));

        let mut locked = Gate::new(Some(Secret::new("t0k")));
        assert_eq!(
            line(&mut locked, "stats"),
            Verdict::Answer(admin::AUTH_REQUIRED.to_owned())
        );
        assert!(
            !locked.established,
            "a command before auth does not establish"
        );
        assert!(matches!(
            line(&mut locked, "auth t0k"),
            Verdict::Run {
                command: AdminCommand::Auth { .. },
                establishes: true
            }
        ));
        assert!(matches!(
            line(&mut locked, "stats"),
            Verdict::Run {
                command: AdminCommand::Stats,
                establishes: false
            }
        ));
        let mut wrong = Gate::new(Some(Secret::new("t0k")));
        assert_eq!(
            line(&mut wrong, "auth nope"),
            Verdict::Close(admin::BAD_TOKEN)
        );
        assert!(!wrong.established);
    }

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
