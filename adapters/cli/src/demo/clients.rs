//! The demo's simulated clients: blocking std sockets on their own
//! threads, each with a behaviour, reporting what they observed.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_core::ChannelId;

/// What a simulated client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Behaviour {
    /// Sends a line every few hundred ms and reads everything; a kick target.
    Chatter,
    /// Never sends a line: the login timeout kicks it.
    Lurker,
    /// Sends one line, then stays silent: the idle timeout kicks it.
    Dozer,
    /// Chats a little, then closes (FIN).
    Leaver,
    /// Chats a little, then vanishes with a reset (RST).
    Vanisher,
    /// Sends long lines fast: the traffic a slow consumer falls behind on.
    Firehose,
    /// Never reads: kicked as a slow consumer once its queue overflows.
    Sloth,
}

impl Behaviour {
    /// The mix for `n` clients: one sloth, one firehose, then the rest.
    pub(crate) fn for_index(i: usize) -> Behaviour {
        const MIX: [Behaviour; 10] = [
            Behaviour::Chatter,
            Behaviour::Lurker,
            Behaviour::Chatter,
            Behaviour::Dozer,
            Behaviour::Chatter,
            Behaviour::Leaver,
            Behaviour::Chatter,
            Behaviour::Vanisher,
            Behaviour::Chatter,
            Behaviour::Lurker,
        ];
        match i {
            0 => Behaviour::Sloth,
            1 => Behaviour::Firehose,
            _ => MIX[i % MIX.len()],
        }
    }
}

/// How a client's connection ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    Eof,
    Reset,
    /// It closed first (or the demo ended).
    ClosedByUs,
}

/// What the clients and the moderator share.
#[derive(Default)]
pub(crate) struct Board {
    /// Chatters currently connected, by id: the moderator's kick targets.
    pub chatters: Mutex<Vec<ChannelId>>,
    /// When the moderator kicked each id.
    pub kicked_at: Mutex<HashMap<ChannelId, Instant>>,
    /// Kick-to-EOF (graceful) latencies as clients saw them.
    pub graceful: Mutex<Vec<Duration>>,
    /// Kick-to-reset (abort) latencies as clients saw them.
    pub abortive: Mutex<Vec<Duration>>,
    /// How each client's connection ended.
    pub endings: Mutex<HashMap<&'static str, usize>>,
    /// The demo is over: every client closes.
    pub stop: AtomicBool,
}

impl Board {
    fn ended(&self, id: Option<ChannelId>, seen: Seen) {
        let now = Instant::now();
        let name = match seen {
            Seen::Eof => "server closed (EOF)",
            Seen::Reset => "server reset (RST)",
            Seen::ClosedByUs => "client closed",
        };
        *lock(&self.endings).entry(name).or_default() += 1;
        let Some(id) = id else { return };
        lock(&self.chatters).retain(|c| *c != id);
        if let Some(at) = lock(&self.kicked_at).get(&id).copied() {
            let samples = match seen {
                Seen::Eof => &self.graceful,
                Seen::Reset => &self.abortive,
                Seen::ClosedByUs => return,
            };
            lock(samples).push(now.saturating_duration_since(at));
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one client to its end.
pub(crate) fn run(addr: SocketAddr, behaviour: Behaviour, seed: u64, board: Arc<Board>) {
    let stream = match behaviour {
        Behaviour::Sloth => connect_small_window(addr),
        _ => TcpStream::connect(addr),
    };
    let Ok(mut stream) = stream else {
        board.ended(None, Seen::ClosedByUs);
        return;
    };
    if behaviour == Behaviour::Sloth {
        // Never reads; waits for the server to give up on it.
        let seen = sloth(&mut stream, &board);
        board.ended(None, seen);
        return;
    }
    let id = read_hello(&mut stream);
    if behaviour == Behaviour::Chatter {
        if let Some(id) = id {
            lock(&board.chatters).push(id);
        }
    }
    let seen = converse(&mut stream, behaviour, seed, &board);
    if seen == Seen::ClosedByUs && behaviour == Behaviour::Vanisher {
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    }
    board.ended(id, seen);
}

fn connect_small_window(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}

/// Reads up to `hello <id>\n` and returns the id. Chat lines broadcast
/// while the client was being accepted may arrive before its greeting
/// (the hub's broadcast reaches every usable channel, greeted or not):
/// those are skipped, for at most 5 s.
fn read_hello(stream: &mut TcpStream) -> Option<ChannelId> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = vec![0u8; 64 << 10];
    // The current line's first 64 bytes: all a greeting needs.
    let mut line = Vec::with_capacity(64);
    while Instant::now() < deadline {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        // Bytes after the greeting in the same read are chat lines: dropped,
        // as the client would drop them anyway.
        for &b in &buf[..n] {
            if b == b'\n' {
                let greeting = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|text| text.strip_prefix("hello "))
                    .and_then(|id| id.parse().ok());
                if greeting.is_some() {
                    return greeting;
                }
                line.clear();
            } else if line.len() < 64 {
                line.push(b);
            }
        }
    }
    None
}

/// Chats according to `behaviour`, reading whatever arrives, until the
/// server ends the connection, the behaviour leaves, or the demo stops.
fn converse(stream: &mut TcpStream, behaviour: Behaviour, seed: u64, board: &Board) -> Seen {
    let started = Instant::now();
    let (period, lines_before_leaving) = match behaviour {
        Behaviour::Chatter => (Duration::from_millis(250 + seed % 250), None),
        Behaviour::Dozer => (Duration::from_secs(3600), Some(1)),
        Behaviour::Leaver | Behaviour::Vanisher => (Duration::from_millis(200), Some(3 + seed % 5)),
        Behaviour::Firehose => (Duration::from_millis(2), None),
        Behaviour::Lurker | Behaviour::Sloth => (Duration::from_secs(3600), Some(u64::MAX)),
    };
    let long_line = "~".repeat(4000);
    let mut sent = 0u64;
    let mut next_send = started
        + if behaviour == Behaviour::Dozer {
            Duration::ZERO
        } else {
            period
        };
    // Reading waits at most until the next line is due.
    let _ = stream.set_read_timeout(Some(period.min(Duration::from_millis(20))));
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if board.stop.load(Ordering::Relaxed) {
            return Seen::ClosedByUs;
        }
        if let Some(limit) = lines_before_leaving
            && sent >= limit
            && matches!(behaviour, Behaviour::Leaver | Behaviour::Vanisher)
        {
            return Seen::ClosedByUs;
        }
        let now = Instant::now();
        if now >= next_send && behaviour != Behaviour::Lurker {
            let line = match behaviour {
                Behaviour::Firehose => format!("{long_line}\n"),
                _ => format!("line {sent} from a {behaviour:?}\n"),
            };
            if stream.write_all(line.as_bytes()).is_err() {
                return wait_for_end(stream, board);
            }
            sent += 1;
            next_send = now + period;
        }
        if let Some(end) = ending(stream.read(&mut buf)) {
            return end;
        }
    }
}

/// How a read ended the connection, if it did: 0 is the server's FIN, any
/// error but a read timeout is its RST (or the socket's death).
fn ending(read: io::Result<usize>) -> Option<Seen> {
    match read {
        Ok(0) => Some(Seen::Eof),
        Ok(_) => None,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(_) => Some(Seen::Reset),
    }
}

/// The client that never reads: it logs in and keeps talking (so neither
/// the login nor the idle timeout applies) while broadcasts pile up, until
/// the server kicks it as a slow consumer. It learns of the reset from a
/// failing write or the socket's pending error, never by reading.
fn sloth(stream: &mut TcpStream, board: &Board) -> Seen {
    let started = Instant::now();
    let mut said = 0u32;
    while !board.stop.load(Ordering::Relaxed) {
        if started.elapsed() >= Duration::from_millis(500) * said {
            if stream.write_all(b"I never read\n").is_err() {
                return Seen::Reset;
            }
            said += 1;
        }
        if let Ok(Some(_)) = stream.take_error() {
            return Seen::Reset;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Seen::ClosedByUs
}

/// Waits for the server's FIN or RST, reading and discarding.
fn wait_for_end(stream: &mut TcpStream, board: &Board) -> Seen {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if board.stop.load(Ordering::Relaxed) {
            return Seen::ClosedByUs;
        }
        if let Some(end) = ending(stream.read(&mut buf)) {
            return end;
        }
    }
}
