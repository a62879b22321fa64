//! Helpers shared by the threads adapter's own tests: a server on an
//! ephemeral port, an event log to wait on, and clients that cannot hang.
#![allow(dead_code)]

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tether_threads::tether_core::{ChannelId, Config, DisconnectReason, Event};
use tether_threads::{Events, Handle, Options};

/// Generous upper bound for anything that should happen "at once".
pub const PATIENCE: Duration = Duration::from_secs(10);

/// `Config::default()` changed by `change` (`Config` is non-exhaustive, so
/// it cannot be built with a struct literal here).
pub fn config(change: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    change(&mut config);
    config
}

pub fn start(config: Config) -> (Handle, Log) {
    start_with(config, Options::default())
}

pub fn start_with(config: Config, options: Options) -> (Handle, Log) {
    let listener = tether_adapter::listen::bind("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
    let (handle, events) = tether_threads::start(listener, config, options).unwrap();
    (
        handle,
        Log {
            events,
            seen: Vec::new(),
            opened_taken: 0,
        },
    )
}

/// Shuts the server down and waits (polling, so no timer thread is left
/// behind) until it has stopped; panics after `PATIENCE`.
pub fn stop(handle: &Handle, grace: Duration) {
    let _ = handle.blocking().shutdown(grace);
    let deadline = Instant::now() + grace + PATIENCE;
    while !handle.is_stopped() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every event received so far, and the stream of the rest.
pub struct Log {
    pub events: Events,
    pub seen: Vec<Event>,
    opened_taken: usize,
}

impl Log {
    /// Waits for the first event (seen or new) matching `want`; panics
    /// after `PATIENCE`.
    pub fn wait(&mut self, what: &str, want: impl Fn(&Event) -> bool) -> Event {
        if let Some(e) = self.seen.iter().find(|e| want(e)) {
            return e.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.blocking().next_timeout(left) {
                Some(e) => {
                    self.seen.push(e.clone());
                    if want(&e) {
                        return e;
                    }
                }
                None => panic!("timed out waiting for {what}; seen {:?}", self.seen),
            }
        }
    }

    /// The id of the next channel opened that no earlier call returned.
    pub fn next_opened(&mut self) -> ChannelId {
        let nth = self.opened_taken;
        self.opened_taken += 1;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self
                .seen
                .iter()
                .filter_map(|e| match e {
                    Event::Opened { id, .. } => Some(*id),
                    _ => None,
                })
                .nth(nth);
            if let Some(id) = found {
                return id;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.blocking().next_timeout(left) {
                Some(e) => self.seen.push(e),
                None => panic!("timed out waiting for channel #{nth} to open"),
            }
        }
    }

    pub fn disconnected(&mut self, id: ChannelId) -> DisconnectReason {
        match self.wait(
            "disconnected",
            |e| matches!(e, Event::Disconnected { id: i, .. } if *i == id),
        ) {
            Event::Disconnected { reason, .. } => reason,
            _ => unreachable!(),
        }
    }

    pub fn released(&mut self, id: ChannelId) {
        let _ = self.wait(
            "released",
            |e| matches!(e, Event::Released { id: i } if *i == id),
        );
    }

    /// Takes every event that arrives within `quiet` of the previous one.
    pub fn settle(&mut self, quiet: Duration) {
        while let Some(e) = self.events.blocking().next_timeout(quiet) {
            self.seen.push(e);
        }
    }

    pub fn count(&self, want: impl Fn(&Event) -> bool) -> usize {
        self.seen.iter().filter(|e| want(e)).count()
    }
}

/// Connects a client with a read timeout so no test can hang on it.
pub fn connect(handle: &Handle) -> TcpStream {
    let s = TcpStream::connect(handle.local_addr()).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Connects a client with a 4 KiB receive buffer (set before the
/// handshake, so the window stays small): one that does not read fills
/// the server's send buffer after a few hundred KiB.
pub fn connect_small_window(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads until EOF; returns the bytes, or the error that ended the read.
pub fn read_to_end(s: &mut TcpStream) -> Result<Vec<u8>, io::Error> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e),
        }
    }
}

/// Reads exactly `n` bytes.
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    buf
}
