//! Listening sockets and resource limits, the same for every runtime:
//! the backlog, the channel budget the fd limit allows, and accept errors
//! that back off and log at most once a second instead of spinning.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Binds a listening socket with `SO_REUSEADDR` (a restarted server binds
/// at once despite connections in TIME_WAIT) and a listen backlog of
/// `backlog` (std's default of 128 strands bursts of connects).
///
/// The error names the address; callers add the flag that chose it.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(named)?;
    socket.set_reuse_address(true).map_err(named)?;
    socket.bind(&addr.into()).map_err(named)?;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(named)?;
    Ok(socket.into())
}

/// File descriptors kept free of chat channels for everything else the
/// process needs: stdio, listeners, the admin console's connections, the
/// reactor, log files.
pub const FD_RESERVE: u64 = 64;

/// The most channels the process's fd limit allows (soft `RLIMIT_NOFILE`
/// minus `reserve`), or `None` when unlimited or unknown. A server lowers
/// `max_channels` to this, so that at the fd limit it refuses new chat
/// clients with its refusal line, while its admin console stays reachable.
pub fn fd_budget(reserve: u64) -> Option<usize> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let soft = limit.current?;
    // Each channel uses one descriptor.
    usize::try_from(soft.saturating_sub(reserve).max(1)).ok()
}

/// Refuses a connection from the listener itself (while the hub has asked
/// to pause accepting): writes `line` without waiting, then closes.
pub fn refuse_std(stream: TcpStream, line: &[u8]) {
    if stream.set_nonblocking(true).is_ok() {
        let _ = (&stream).write(line);
    }
    drop(stream);
}

/// What to do after an `accept` error: back off (doubling from 1 ms to
/// 100 ms, reset by the next success) and log at most once a second with
/// the count of errors since the last line.
#[derive(Debug)]
pub struct AcceptErrors {
    backoff: Duration,
    last_log: Option<Instant>,
    unlogged: u64,
    what: &'static str,
}

impl AcceptErrors {
    /// For the listener named `what` (e.g. `chat`, `admin`).
    pub fn new(what: &'static str) -> Self {
        AcceptErrors {
            backoff: Duration::from_millis(1),
            last_log: None,
            unlogged: 0,
            what,
        }
    }

    /// A successful accept: the next error starts the backoff afresh.
    pub fn success(&mut self) {
        self.backoff = Duration::from_millis(1);
    }

    /// An accept failed: logs (rate-limited) and returns how long to wait
    /// before accepting again. `Interrupted` and `ConnectionAborted` (a
    /// peer gone before we took it) retry at once.
    pub fn failed(&mut self, error: &io::Error) -> Duration {
        if matches!(
            error.kind(),
            io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
        ) {
            return Duration::ZERO;
        }
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            tracing::warn!(
                listener = self.what,
                errors = self.unlogged,
                "accept failed: {error}; backing off (out of file descriptors? raise `ulimit -n`)"
            );
            self.last_log = Some(now);
            self.unlogged = 0;
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_millis(100));
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_names_the_address_and_takes_a_deep_backlog() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), 2048).unwrap();
        let addr = listener.local_addr().unwrap();
        // The port is taken now (SO_REUSEADDR does not allow two listeners).
        let err = bind(addr, 16).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    #[test]
    fn accept_errors_back_off_and_reset() {
        let mut errors = AcceptErrors::new("test");
        let emfile = io::Error::from_raw_os_error(24);
        let waits: Vec<_> = (0..10).map(|_| errors.failed(&emfile)).collect();
        assert_eq!(waits[0], Duration::from_millis(1));
        assert!(waits.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*waits.last().unwrap(), Duration::from_millis(100));
        errors.success();
        assert_eq!(errors.failed(&emfile), Duration::from_millis(1));
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(errors.failed(&aborted), Duration::ZERO);
    }

    #[test]
    fn the_fd_budget_leaves_the_reserve() {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        match (soft, fd_budget(FD_RESERVE)) {
            (Some(soft), Some(budget)) => {
                assert_eq!(budget as u64, soft.saturating_sub(FD_RESERVE).max(1))
            }
            (None, None) => {}
            other => panic!("inconsistent: {other:?}"),
        }
    }
}
