//! Line clients for the tests: what `nc` users do.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A connected line client.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    pub fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("write");
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// The next line with its `\n`; "" at EOF.
    pub fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .expect("read a line");
        String::from_utf8(line).expect("utf-8")
    }

    /// The next line, or the error reading it (reset, timeout).
    pub fn try_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line).map(|_| line)
    }

    /// Lines up to the terminating `.`.
    pub fn block(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            assert!(!line.is_empty(), "EOF inside a block: {lines:?}");
            if line == ".\n" {
                return lines;
            }
            lines.push(line);
        }
    }

    /// Connects and reads `hello <id>`; returns the client and its id.
    pub fn join(addr: SocketAddr) -> (Client, String) {
        let mut client = Client::connect(addr);
        let hello = client.line();
        let id = hello
            .strip_prefix("hello ")
            .unwrap_or_else(|| panic!("expected hello, got {hello:?}"))
            .trim()
            .to_owned();
        (client, id)
    }

    /// `stats` as key=value pairs.
    pub fn stats(&mut self) -> Vec<(String, u64)> {
        self.send("stats\n");
        self.block()
            .into_iter()
            .map(|line| {
                let (k, v) = line.trim().split_once('=').expect("key=value");
                (k.to_owned(), v.parse().expect("a number"))
            })
            .collect()
    }
}

pub fn stat(stats: &[(String, u64)], key: &str) -> u64 {
    stats
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {stats:?}"))
        .1
}

/// `shutdown 200` on the admin console `admin`, which must answer `ok`;
/// whether `server` then stopped within 5 s.
pub fn console_shutdown(admin: &mut Client, server: &tether_chat::server::ChatServer) -> bool {
    admin.send("shutdown 200\n");
    assert_eq!(admin.line(), "ok\n");
    server
        .handle
        .blocking()
        .wait_stopped(Duration::from_secs(5))
}

/// [`ChatServer::wait`](tether_chat::server::ChatServer::wait) (its room,
/// console and watcher threads end) within 10 s of the stop; panics naming
/// the step if they have not.
pub fn wait_ended(server: tether_chat::server::ChatServer) {
    const LIMIT: Duration = Duration::from_secs(10);
    let waiter = std::thread::spawn(move || server.wait());
    let deadline = std::time::Instant::now() + LIMIT;
    while !waiter.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "step the server's threads end: no answer within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    waiter.join().expect("the server's threads");
}
