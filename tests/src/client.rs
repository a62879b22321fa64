//! Blocking test clients and process helpers.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// How a client's reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `read` returned 0: the server's FIN.
    Eof,
    /// The server reset the connection (RST).
    Reset,
    /// Another error.
    Error(io::ErrorKind),
    /// Nothing conclusive within the timeout.
    Timeout,
}

/// Reads until EOF, an error or `timeout`; returns the bytes and the end.
pub fn read_to_end(stream: &mut TcpStream, timeout: Duration) -> (Vec<u8>, End) {
    let deadline = Instant::now() + timeout;
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (data, End::Timeout);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => return (data, End::Eof),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => {
                let end = match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => End::Timeout,
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => End::Reset,
                    other => End::Error(other),
                };
                return (data, end);
            }
        }
    }
}

/// Reads exactly `n` bytes or fails after `timeout`.
pub fn read_exact(stream: &mut TcpStream, n: usize, timeout: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut data = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("read {got} of {n}"),
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut data[got..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {got} of {n}"),
                ));
            }
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(data)
}

/// Whether nothing arrives (no data, no EOF) for `wait`.
pub fn stays_silent(stream: &mut TcpStream, wait: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(wait));
    let mut buf = [0u8; 1];
    matches!(stream.read(&mut buf), Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// How long a client's connect may take, and then each of its writes.
/// Loopback connects complete at once while the listen backlog has room;
/// a write blocks only while the server reads nothing.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(10);

/// Connects a blocking client whose writes fail after [`CLIENT_LIMIT`]
/// instead of blocking for ever; panics with `step connect to <addr>: no
/// answer within 10s` if the connect does not complete in that time, and
/// with the error if it fails.
pub fn connect(addr: SocketAddr) -> TcpStream {
    bounded_stream(addr, TcpStream::connect_timeout(&addr, CLIENT_LIMIT))
}

/// Connects with a small receive buffer, so a client that does not read
/// pushes back on the server quickly; bounded like [`connect`].
pub fn connect_small_window(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let connected = socket.connect_timeout(&addr.into(), CLIENT_LIMIT);
    bounded_stream(addr, connected.map(|()| socket.into()))
}

fn bounded_stream(addr: SocketAddr, connected: io::Result<TcpStream>) -> TcpStream {
    let stream = match connected {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            panic!("step connect to {addr}: no answer within {CLIENT_LIMIT:?}")
        }
        Err(e) => panic!("step connect to {addr}: {e}"),
    };
    stream
        .set_write_timeout(Some(CLIENT_LIMIT))
        .expect("SO_SNDTIMEO");
    stream
}

/// Closes the client with RST (`SO_LINGER` 0).
pub fn reset(stream: TcpStream) {
    let socket = Socket::from(stream);
    socket.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    drop(socket);
}

/// File descriptors open in this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// Raises the soft fd limit to at least `want` (up to the hard limit; as
/// root, the hard limit too). Returns the soft limit in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let soft = current.current.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    let hard = current.maximum.unwrap_or(u64::MAX);
    let raised_hard = Rlimit {
        current: Some(want),
        maximum: Some(hard.max(want)),
    };
    if setrlimit(Resource::Nofile, raised_hard).is_ok() {
        return want;
    }
    let capped = Rlimit {
        current: Some(want.min(hard)),
        maximum: current.maximum,
    };
    let _ = setrlimit(Resource::Nofile, capped);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}
