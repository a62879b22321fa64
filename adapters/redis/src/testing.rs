//! A throw-away `redis-server` for tests (feature `testing`): a free
//! loopback port, no persistence (`--save "" --appendonly no`), killed when
//! dropped. It can be killed, restarted on the same port, and paused
//! (SIGSTOP) to play a slow broker.
//!
//! When `redis-server` is not installed, [`RedisServer::start`] panics with
//! a message saying to run `.ci/run` (which installs it): a test that needs
//! Redis never passes without one.

use std::io::{BufRead as _, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::RedisUrl;

/// How long a started server may take to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A `redis-server` child process on `127.0.0.1:<port>`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free loopback port and waits until it answers.
    ///
    /// # Panics
    /// When `redis-server` is missing (run `.ci/run`, which installs it) or
    /// does not come up.
    pub fn start() -> RedisServer {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn(port) {
                Ok(child) => {
                    return RedisServer {
                        child: Some(child),
                        port,
                    };
                }
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> RedisUrl {
        self.url_text()
            .parse()
            .unwrap_or_else(|e| panic!("the test server's URL: {e}"))
    }

    /// `redis://127.0.0.1:<port>` as text (for `--cluster`).
    pub fn url_text(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILLs it (everything it held is gone: no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`kill`](Self::kill); kills
    /// it first otherwise), empty.
    ///
    /// # Panics
    /// When it does not come back up.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            match spawn(self.port) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("redis-server did not restart on {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// SIGSTOP: it holds its connections but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        if let Some(pid) = self.pid() {
            let status = Command::new("kill")
                .arg(which)
                .arg(pid.to_string())
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "kill {which} {pid} failed"
            );
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server must be woken to die promptly on some systems.
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(pid.to_string())
                .status();
        }
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Starts `redis-server` on `port` and waits for it to accept connections.
fn spawn(port: u16) -> Result<Child, String> {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--dir", &std::env::temp_dir().to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "redis-server is not installed: these tests need a real Redis. \
             Run .ci/run (it installs the Debian package redis-server), \
             or apt-get install -y redis-server"
        ),
        Err(e) => return Err(format!("cannot run redis-server: {e}")),
    };
    // Drain its log so it never blocks on a full pipe.
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    }
    let deadline = Instant::now() + READY_WITHIN;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited: {status}"));
        }
        if ping(port) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "redis-server on port {port} did not answer within {READY_WITHIN:?}"
    ))
}

/// Whether a server answers `PING` on the port.
fn ping(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut buf).is_ok()
        && &buf == b"+PONG\r\n"
}
