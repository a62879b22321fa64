//! A real `redis-server` for tests (feature `testing`; this crate's tests,
//! the binary's and the conformance suite's cluster tests): started on a
//! free loopback port with no persistence (`--save "" --appendonly no`) in
//! a temporary directory of its own, and killed (SIGKILL) when dropped.
//!
//! The faults the cluster must survive are signals to this process:
//! [`RedisServer::kill`] (SIGKILL: the stream and every key are gone),
//! [`RedisServer::restart`] (a fresh empty server on the same port),
//! [`RedisServer::pause`] / [`RedisServer::resume`] (SIGSTOP / SIGCONT: a
//! broker that accepts bytes and answers nothing).
//!
//! `redis-server` is the Debian package of that name; `.ci/run` installs it
//! when missing. Without it [`RedisServer::start`] panics saying so: a
//! cluster test never passes without a broker.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// How long `redis-server` may take to answer its first `PING`.
const STARTUP: Duration = Duration::from_secs(10);

/// The program started: `$TETHER_REDIS_SERVER` or `redis-server` on `PATH`.
fn program() -> String {
    std::env::var("TETHER_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// Panics with how to get `redis-server` unless it can be run.
pub fn require_redis_server() {
    let found = Command::new(program())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{}` cannot be run: the cluster tests need a real Redis. Run `.ci/run` (it installs \
         the Debian package) or `apt-get install -y redis-server`, or point \
         TETHER_REDIS_SERVER at the binary",
        program()
    );
}

/// A free loopback port (bound, read, released: a small race another
/// process could win, which [`RedisServer::start`] retries).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `redis-server` on 127.0.0.1. Dropping it kills it (SIGKILL)
/// and removes its directory.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers
    /// `PING`; panics (naming `.ci/run`) if it cannot.
    pub fn start() -> RedisServer {
        require_redis_server();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tether-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("redis-server directory");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port().expect("a free loopback port");
            let mut server = RedisServer {
                port,
                dir: dir.clone(),
                child: None,
                paused: false,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// `redis://127.0.0.1:<port>`: what `--cluster` takes.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The same, parsed (for [`NodeOptions`](crate::NodeOptions)).
    pub fn redis_url(&self) -> crate::RedisUrl {
        self.url()
            .parse()
            .unwrap_or_else(|e| panic!("the test server's URL: {e}"))
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, reaped: every key and the stream are lost (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// A fresh, empty server on the same port (killing the old one first if
    /// it still runs); panics if it does not answer `PING` in time.
    pub fn restart(&mut self) {
        self.kill();
        // The port was just released; another process could take it, and
        // the kernel may need a moment: a few tries.
        let mut last = String::new();
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}: {last}", self.port);
    }

    /// SIGSTOP: the server keeps its sockets and answers nothing.
    pub fn pause(&mut self) {
        self.signal(Signal::STOP);
        self.paused = true;
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        self.signal(Signal::CONT);
        self.paused = false;
    }

    fn signal(&self, signal: Signal) {
        let pid = self.pid().expect("redis-server is not running");
        let pid = Pid::from_raw(pid as i32).expect("nonzero pid");
        kill_process(pid, signal).expect("signal redis-server");
    }

    /// One command (words, sent as a RESP array) and its answer as text:
    /// a status, an error (`-ERR …`), an integer, or a bulk string (`INFO`).
    pub fn command(&self, words: &[&str], timeout: Duration) -> io::Result<String> {
        command(self.addr(), words, timeout)
    }

    /// The server's CPU time so far, user + system, from `INFO cpu`
    /// (`used_cpu_sys`, `used_cpu_user`).
    pub fn cpu_seconds(&self, timeout: Duration) -> io::Result<f64> {
        let info = self.command(&["INFO", "cpu"], timeout)?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        match (field("used_cpu_sys"), field("used_cpu_user")) {
            (Some(sys), Some(user)) => Ok(sys + user),
            _ => Err(io::Error::other(format!(
                "INFO cpu without CPU times: {info}"
            ))),
        }
    }

    /// Spawns `redis-server` on `self.port` and waits for `PONG`.
    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.join("redis.log");
        let mut child = Command::new(program())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no", "--logfile", ""])
            .args(["--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e} (run .ci/run to install it)", program()))?;
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                return Err(format!(
                    "redis-server on port {} exited {status}: {err} (log {})",
                    self.port,
                    log.display()
                ));
            }
            let pong = command(self.addr(), &["PING"], Duration::from_millis(500));
            if pong.is_ok_and(|p| p == "PONG") {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no PONG on port {} within {STARTUP:?}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.paused {
            // A stopped process dies of SIGKILL too; CONT first anyway so no
            // zombie state outlives the test on odd kernels.
            if let Some(pid) = self.pid().and_then(|p| Pid::from_raw(p as i32)) {
                let _ = kill_process(pid, Signal::CONT);
            }
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One RESP command to `addr` and its answer as text, within `timeout`.
pub fn command(addr: SocketAddr, words: &[&str], timeout: Duration) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!("*{}\r\n", words.len());
    for word in words {
        request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    reader.read_line(&mut head)?;
    let head = head.trim_end();
    match head.split_at_checked(1) {
        Some(("+" | ":", rest)) => Ok(rest.to_owned()),
        Some(("-", rest)) => Ok(format!("-{rest}")),
        Some(("$", len)) => {
            let Ok(len) = len.parse::<usize>() else {
                return Ok(String::new()); // `$-1`: nil
            };
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => Err(io::Error::other(format!("unexpected answer {head:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself: start, a key, SIGSTOP (no answer), SIGCONT,
    /// SIGKILL and restart on the same port (the key is gone).
    #[test]
    fn start_pause_kill_restart() {
        let mut redis = RedisServer::start();
        let t = Duration::from_secs(5);
        assert_eq!(redis.command(&["SET", "k", "v"], t).unwrap(), "OK");
        assert_eq!(redis.command(&["GET", "k"], t).unwrap(), "v");
        redis.pause();
        assert!(
            redis
                .command(&["PING"], Duration::from_millis(300))
                .is_err()
        );
        redis.resume();
        assert_eq!(redis.command(&["PING"], t).unwrap(), "PONG");
        assert!(redis.cpu_seconds(t).unwrap() >= 0.0);
        let port = redis.port();
        redis.kill();
        assert!(
            redis
                .command(&["PING"], Duration::from_millis(300))
                .is_err()
        );
        redis.restart();
        assert_eq!(redis.port(), port);
        assert_eq!(redis.command(&["GET", "k"], t).unwrap(), "");
    }
}
