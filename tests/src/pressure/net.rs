//! Client-side plumbing: a buffered line reader with deadlines, greetings,
//! and connects that do not wait for the server.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::client::End;

/// How a read error ends a stream (`None`: interrupted, try again).
pub fn end_of(e: &io::Error) -> Option<End> {
    match e.kind() {
        io::ErrorKind::Interrupted => None,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Some(End::Timeout),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Some(End::Reset),
        other => Some(End::Error(other)),
    }
}

/// Reads `\n`-terminated lines from a socket through one large buffer,
/// every read bounded by a deadline.
#[derive(Debug)]
pub struct LineReader {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unread bytes.
    pos: usize,
    /// End of the bytes read.
    len: usize,
    /// Bytes before this index (and after `pos`) hold no `\n`.
    scan: usize,
    /// Total bytes read from the socket.
    read_total: u64,
}

impl LineReader {
    /// A reader over `stream` (256 KiB buffer, grown for longer lines).
    pub fn new(stream: TcpStream) -> LineReader {
        LineReader::with_capacity(stream, 256 * 1024)
    }

    /// A reader with a `capacity`-byte buffer (grown for longer lines).
    pub fn with_capacity(stream: TcpStream, capacity: usize) -> LineReader {
        LineReader {
            stream,
            buf: vec![0; capacity.max(64)],
            pos: 0,
            len: 0,
            scan: 0,
            read_total: 0,
        }
    }

    /// The socket (for writing, cloning, shutting down).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The next line without its `\n`, or how the stream ended (or
    /// [`End::Timeout`] at `deadline`). Bytes of an unfinished line stay in
    /// [`partial`](Self::partial).
    pub fn next_line(&mut self, deadline: Instant) -> Result<&[u8], End> {
        let newline = loop {
            if let Some(offset) = self.buf[self.scan..self.len]
                .iter()
                .position(|&b| b == b'\n')
            {
                break self.scan + offset;
            }
            self.scan = self.len;
            self.fill(deadline)?;
        };
        let start = self.pos;
        self.pos = newline + 1;
        self.scan = self.pos;
        Ok(&self.buf[start..newline])
    }

    /// Bytes read after the last complete line.
    pub fn partial(&self) -> &[u8] {
        &self.buf[self.pos..self.len]
    }

    /// Total bytes read from the socket so far.
    pub fn read_total(&self) -> u64 {
        self.read_total
    }

    /// The socket and the bytes read but not yet returned as lines.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        let rest = self.buf[self.pos..self.len].to_vec();
        (self.stream, rest)
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), End> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.scan -= self.pos;
            self.pos = 0;
        }
        if self.len == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(End::Timeout);
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut self.buf[self.len..]) {
                Ok(0) => return Err(End::Eof),
                Ok(n) => {
                    self.len += n;
                    self.read_total += n as u64;
                    return Ok(());
                }
                Err(e) => {
                    if let Some(end) = end_of(&e) {
                        return Err(end);
                    }
                }
            }
        }
    }
}

/// The id of a greeting, `hello #<shard>:<slot>.<gen>` or `hello
/// #<slot>.<gen>`: `#…`.
pub fn parse_hello(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?;
    let id = line.strip_prefix("hello ")?;
    let body = id.strip_prefix('#')?;
    let local = match body.split_once(':') {
        Some((shard, local)) if is_number(shard) => local,
        Some(_) => return None,
        None => body,
    };
    let (slot, generation) = local.split_once('.')?;
    (is_number(slot) && is_number(generation)).then(|| id.to_owned())
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Connects within `timeout`.
pub fn connect_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1)))
}

/// A greeted chat client.
#[derive(Debug)]
pub struct Client {
    /// Its id, from the greeting (`#…`).
    pub id: String,
    /// Its socket, with whatever was read after the greeting.
    pub reader: LineReader,
}

impl Client {
    /// Connects and reads the greeting, all before `deadline`.
    pub fn connect(addr: SocketAddr, deadline: Instant) -> Result<Client, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let stream = connect_timeout(addr, left).map_err(|e| format!("connect: {e}"))?;
        Client::greet(stream, deadline)
    }

    /// Reads the greeting of a connected socket before `deadline`.
    pub fn greet(stream: TcpStream, deadline: Instant) -> Result<Client, String> {
        let _ = stream.set_nodelay(true);
        let mut reader = LineReader::new(stream);
        let line = reader
            .next_line(deadline)
            .map_err(|end| format!("no greeting: {end:?}"))?;
        let id = parse_hello(line)
            .ok_or_else(|| format!("not a greeting: {:?}", String::from_utf8_lossy(line)))?;
        Ok(Client { id, reader })
    }

    /// Connects with a tiny receive buffer (set before the handshake, so the
    /// window stays small) and reads the greeting.
    pub fn connect_small_window(addr: SocketAddr, deadline: Instant) -> Result<Client, String> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        socket
            .set_recv_buffer_size(4096)
            .map_err(|e| e.to_string())?;
        let left = deadline.saturating_duration_since(Instant::now());
        socket
            .connect_timeout(&addr.into(), left.max(Duration::from_millis(1)))
            .map_err(|e| format!("connect: {e}"))?;
        Client::greet(socket.into(), deadline)
    }

    /// A second handle on the socket (for a writer thread).
    pub fn writer(&self) -> TcpStream {
        self.reader.stream().try_clone().expect("clone socket")
    }
}

/// Starts a connect without waiting for it (non-blocking `connect`, then
/// back to blocking mode): reads on the socket wait for the handshake and
/// then for data, so thousands of connects can be in flight at once from
/// one thread. `source` binds a source address first (port 0).
pub fn start_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    socket.set_nonblocking(false)?;
    Ok(socket.into())
}

/// How a connection's first line went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLine {
    /// `hello <id>`.
    Greeted(String),
    /// Another line (e.g. `error server full`).
    Line(String),
    /// No line: how the stream ended (EOF, reset, timeout…).
    End(End),
    /// The connect itself failed.
    ConnectFailed(io::ErrorKind),
}

/// Reads the first line of a socket from [`start_connect`] before `deadline`.
pub fn first_line(stream: TcpStream, deadline: Instant) -> (FirstLine, LineReader) {
    let mut reader = LineReader::with_capacity(stream, 512);
    let outcome = match reader.next_line(deadline) {
        Ok(line) => match parse_hello(line) {
            Some(id) => FirstLine::Greeted(id),
            None => FirstLine::Line(String::from_utf8_lossy(line).into_owned()),
        },
        Err(End::Error(kind)) => FirstLine::ConnectFailed(kind),
        Err(end) => FirstLine::End(end),
    };
    (outcome, reader)
}

#[cfg(test)]
mod tests {
    use super::parse_hello;

    #[test]
    fn greetings_of_both_forms() {
        assert_eq!(parse_hello(b"hello #3.1").as_deref(), Some("#3.1"));
        assert_eq!(parse_hello(b"hello #0:12.4").as_deref(), Some("#0:12.4"));
        assert_eq!(parse_hello(b"hello #a.1"), None);
        assert_eq!(parse_hello(b"hello #1"), None);
        assert_eq!(parse_hello(b"error server full"), None);
    }
}
