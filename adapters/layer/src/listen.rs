//! Listening sockets and resource limits, the same for every runtime:
//! the backlog, per-shard `SO_REUSEPORT` listeners
//! ([`Accept::ReusePort`](crate::Accept::ReusePort)), the channel budget
//! the fd limit allows, and accept errors that back off and log at most
//! once a second instead of spinning.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Binds a listening socket with `SO_REUSEADDR` (a restarted server binds
/// at once despite connections in TIME_WAIT) and a listen backlog of
/// `backlog` (std's default of 128 strands bursts of connects).
///
/// The error names the address; callers add the flag that chose it.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    bind_with(addr, backlog, false)
}

/// [`bind`] with `SO_REUSEPORT` as well: the first listener of a server
/// run with [`Accept::ReusePort`](crate::Accept::ReusePort), whose other
/// shards bind their own listeners on the address this one got
/// ([`reuse_port_siblings`]). Any listener must have it set before it binds
/// to join a reuseport group, and Linux lets only the same effective user
/// join (another user's process cannot take a share of the connections).
///
/// Unsupported (an error) where the platform has no `SO_REUSEPORT`.
pub fn bind_reuse_port(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    bind_with(addr, backlog, true)
}

/// The listening socket for `accept`: [`bind_reuse_port`] for
/// [`Accept::ReusePort`](crate::Accept::ReusePort), else [`bind`].
pub fn bind_for(addr: SocketAddr, backlog: u32, accept: crate::Accept) -> io::Result<TcpListener> {
    bind_with(addr, backlog, accept == crate::Accept::ReusePort)
}

/// `count` more listeners on the address `first` is bound to (its port
/// when it was bound to port 0), each with `SO_REUSEPORT`, so that the
/// kernel spreads new connections over all of them. `first` must have been
/// bound with `SO_REUSEPORT` ([`bind_reuse_port`]): otherwise the error
/// says so rather than "address in use".
pub fn reuse_port_siblings(
    first: &TcpListener,
    count: usize,
    backlog: u32,
) -> io::Result<Vec<TcpListener>> {
    let addr = first.local_addr()?;
    if count > 0 && !reuse_port::of(first)? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot add per-shard listeners on {addr}: its listener was bound without \
                 SO_REUSEPORT (bind it with tether_adapter::listen::bind_reuse_port)"
            ),
        ));
    }
    (0..count).map(|_| bind_with(addr, backlog, true)).collect()
}

fn bind_with(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<TcpListener> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(named)?;
    socket.set_reuse_address(true).map_err(named)?;
    if reuse_port {
        reuse_port::set(&socket).map_err(named)?;
    }
    socket.bind(&addr.into()).map_err(named)?;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(named)?;
    Ok(socket.into())
}

cfg_if::cfg_if! {
    // Where socket2 offers `SO_REUSEPORT`: unix but for a few targets.
    if #[cfg(all(
        unix,
        not(any(
            target_os = "solaris",
            target_os = "illumos",
            target_os = "cygwin",
            target_os = "nuttx",
            target_os = "wasi"
        ))
    ))] {
        mod reuse_port {
            use std::io;
            use std::net::TcpListener;

            pub(super) fn set(socket: &socket2::Socket) -> io::Result<()> {
                socket.set_reuse_port(true)
            }

            pub(super) fn of(listener: &TcpListener) -> io::Result<bool> {
                socket2::SockRef::from(listener).reuse_port()
            }
        }
    } else {
        /// No `SO_REUSEPORT`: setting it is an error, and no listener has it.
        mod reuse_port {
            use std::io;
            use std::net::TcpListener;

            pub(super) fn set(_socket: &socket2::Socket) -> io::Result<()> {
                Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "SO_REUSEPORT is not available on this platform (use --accept round-robin)",
                ))
            }

            pub(super) fn of(_listener: &TcpListener) -> io::Result<bool> {
                Ok(false)
            }
        }
    }
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
    fn reuse_port_siblings_share_the_first_listeners_port() {
        let first = bind_reuse_port("127.0.0.1:0".parse().unwrap(), 64).unwrap();
        let addr = first.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let siblings = reuse_port_siblings(&first, 3, 64).unwrap();
        assert_eq!(siblings.len(), 3);
        for sibling in &siblings {
            assert_eq!(sibling.local_addr().unwrap(), addr);
        }
        // A listener bound without SO_REUSEPORT has no siblings, and the
        // error says why.
        let plain = bind("127.0.0.1:0".parse().unwrap(), 64).unwrap();
        let err = reuse_port_siblings(&plain, 1, 64).unwrap_err();
        assert!(err.to_string().contains("SO_REUSEPORT"), "{err}");
        assert!(reuse_port_siblings(&plain, 0, 64).unwrap().is_empty());
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
