//! The `tether serve` process under test, and its admin console.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::net::{LineReader, connect_timeout};
use crate::client::End;

/// How long the server may take to print its addresses.
const STARTUP: Duration = Duration::from_secs(20);

/// The `tether` binary: `$TETHER_BIN`, else `target/<profile>/tether` next to
/// this test executable, brought up to date once per test process with
/// `cargo build [--release] --bin tether` (a no-op when it is fresh; cargo
/// does not hold its lock while tests run). Building rather than only
/// checking that it exists means a stale binary is never the one tested:
/// `cargo test -p tether-conformance` does not rebuild another package's
/// binary by itself.
pub fn tether_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("TETHER_BIN") {
            return PathBuf::from(bin);
        }
        let profile_dir = profile_dir();
        build_tether(&profile_dir);
        let bin = profile_dir.join("tether");
        assert!(bin.exists(), "no tether binary at {}", bin.display());
        bin
    })
    .clone()
}

/// `target/<profile>`: the parent of the `deps` directory this test
/// executable lives in.
pub(super) fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let deps = exe.parent().expect("test executable directory");
    deps.parent().unwrap_or(deps).to_path_buf()
}

fn build_tether(profile_dir: &Path) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(workspace)
        .args(["build", "--bin", "tether"]);
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        cargo.arg("--target-dir").arg(target);
    }
    let status = cargo.status().expect("run cargo build --bin tether");
    assert!(status.success(), "cargo build --bin tether: {status}");
}

/// Where server stderr files go: `target/tmp/pressure`.
fn log_dir() -> PathBuf {
    let dir = profile_dir()
        .parent()
        .map_or_else(std::env::temp_dir, |t| t.join("tmp"))
        .join("pressure");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Flags left off the command line (with their values), for running the
/// suite against binaries that predate them: `TETHER_PRESSURE_DROP_FLAGS`.
fn dropped_flags() -> Vec<String> {
    std::env::var("TETHER_PRESSURE_DROP_FLAGS")
        .unwrap_or_default()
        .split(',')
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect()
}

/// How to start one server: runtime, flags, optional fd limit.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    runtime: &'static str,
    label: &'static str,
    flags: Vec<(String, String)>,
    nofile: Option<u64>,
}

impl ServerSpec {
    /// `tether serve --runtime <runtime> --listen 127.0.0.1:0 --admin
    /// 127.0.0.1:0`; `label` names the scenario in messages and log files.
    pub fn new(runtime: &'static str, label: &'static str) -> ServerSpec {
        ServerSpec {
            runtime,
            label,
            flags: Vec::new(),
            nofile: None,
        }
    }

    /// Adds `--flag value`.
    pub fn flag(mut self, flag: &str, value: &str) -> ServerSpec {
        self.flags.push((flag.to_owned(), value.to_owned()));
        self
    }

    /// Runs the server under `prlimit --nofile=N:N`.
    pub fn nofile(mut self, limit: u64) -> ServerSpec {
        self.nofile = Some(limit);
        self
    }

    /// The runtime's name and its shard count: a runtime is named
    /// `async-std` or `async-std:2` (run with `--shards 2`).
    fn runtime_and_shards(&self) -> (&'static str, Option<&'static str>) {
        match self.runtime.split_once(':') {
            Some((name, shards)) => (name, Some(shards)),
            None => (self.runtime, None),
        }
    }

    /// The binary for this runtime: `$TETHER_BIN_<RUNTIME>` or [`tether_bin`].
    fn binary(&self) -> PathBuf {
        let var = format!(
            "TETHER_BIN_{}",
            self.runtime_and_shards().0.to_uppercase().replace('-', "_")
        );
        std::env::var_os(var).map_or_else(tether_bin, PathBuf::from)
    }

    /// Starts the server and waits for its first stdout line; panics with
    /// its stderr if it does not come.
    pub fn start(self) -> Server {
        let drop = dropped_flags();
        let mut args: Vec<String> = vec!["serve".into()];
        let (runtime, shards) = self.runtime_and_shards();
        let mut flags = vec![
            ("--runtime".to_owned(), runtime.to_owned()),
            ("--listen".to_owned(), "127.0.0.1:0".to_owned()),
            ("--admin".to_owned(), "127.0.0.1:0".to_owned()),
            // Never the default port: servers run side by side.
            ("--web".to_owned(), "127.0.0.1:0".to_owned()),
        ];
        if let Some(shards) = shards {
            flags.push(("--shards".to_owned(), shards.to_owned()));
        }
        flags.extend(self.flags.iter().cloned());
        for (flag, value) in flags {
            if !drop.contains(&flag) {
                args.push(flag);
                args.push(value);
            }
        }
        let check_runtime = !drop.iter().any(|f| f == "--runtime");
        let binary = self.binary();
        let mut command = match self.nofile {
            Some(n) => {
                let mut c = Command::new("/usr/bin/prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        let stderr_path = log_dir().join(format!(
            "{}-{}-{}-{:?}.stderr",
            self.label,
            self.runtime,
            std::process::id(),
            std::thread::current().id()
        ));
        let stderr = File::create(&stderr_path).expect("server stderr file");
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let shown = format!("{} {}", binary.display(), args.join(" "));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let (first_tx, first_rx) = mpsc::channel();
        let rest = Arc::new(Mutex::new(Vec::new()));
        let stdout_thread = {
            let rest = rest.clone();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(first)) = lines.next() {
                    let _ = first_tx.send(first);
                }
                for line in lines.map_while(Result::ok) {
                    rest.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            })
        };
        let mut server = Server {
            child,
            pid,
            runtime: self.runtime,
            label: self.label,
            chat: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            command: shown,
            stderr_path,
            stdout_rest: rest,
            stdout_thread: Some(stdout_thread),
            status: None,
        };
        let first = match first_rx.recv_timeout(STARTUP) {
            Ok(line) => line,
            Err(_) => {
                let status = server.wait_exit(Duration::from_millis(200));
                panic!(
                    "no address line from the server within {STARTUP:?} (exit: {status:?})\n{}",
                    server.context()
                );
            }
        };
        match parse_banner(&first) {
            Some((chat, admin, runtime)) => {
                server.chat = chat;
                server.admin = admin;
                if check_runtime {
                    assert_eq!(
                        runtime,
                        self.runtime_and_shards().0,
                        "the server runs another runtime\n{}",
                        server.context()
                    );
                }
            }
            None => panic!(
                "unexpected first stdout line {first:?}\n{}",
                server.context()
            ),
        }
        server
    }
}

/// `tether: chat on <ADDR>, admin console on <ADDR> (<runtime>)`.
pub fn parse_banner(line: &str) -> Option<(SocketAddr, SocketAddr, String)> {
    let rest = line.strip_prefix("tether: chat on ")?;
    let (chat, rest) = rest.split_once(", admin console on ")?;
    let (admin, rest) = rest.split_once(" (")?;
    let runtime = rest.strip_suffix(')')?;
    Some((chat.parse().ok()?, admin.parse().ok()?, runtime.to_owned()))
}

/// `  metrics: http://<ADDR>/metrics`.
pub fn parse_metrics_line(line: &str) -> Option<SocketAddr> {
    let url = line.trim().strip_prefix("metrics: http://")?;
    url.strip_suffix("/metrics")?.parse().ok()
}

/// A running `tether serve` process. Dropping it kills the process (SIGKILL)
/// if it is still running, and removes its stderr file unless the thread is
/// panicking.
pub struct Server {
    child: Child,
    /// The process id.
    pub pid: u32,
    /// `--runtime`.
    pub runtime: &'static str,
    label: &'static str,
    /// The chat address it printed.
    pub chat: SocketAddr,
    /// The admin console address it printed.
    pub admin: SocketAddr,
    command: String,
    stderr_path: PathBuf,
    stdout_rest: Arc<Mutex<Vec<String>>>,
    stdout_thread: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Server {
    /// Resident set size (`VmRSS` of `/proc/PID/status`) in bytes.
    pub fn rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// CPU time used so far (utime + stime of `/proc/PID/stat`).
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields after the `(comm)`, which may contain spaces: state is
        // field 3, utime 14, stime 15.
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let hz = rustix::param::clock_ticks_per_second().max(1);
        Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
    }

    /// Threads of the process (`Threads:` of `/proc/PID/status`).
    pub fn threads(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("Threads:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        let pid = Pid::from_raw(self.pid as i32).expect("nonzero pid");
        kill_process(pid, signal).map_err(io::Error::from)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Waits for the process to exit; `None` if it still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.alive() {
                return self.status;
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Connects to the admin console.
    pub fn admin(&self, timeout: Duration) -> io::Result<Admin> {
        Admin::connect(self.admin, timeout)
    }

    /// One `stats` over a fresh admin connection, everything within `timeout`.
    pub fn stats(&self, timeout: Duration) -> io::Result<StatsMap> {
        let deadline = Instant::now() + timeout;
        let mut admin = Admin::connect(self.admin, timeout)?;
        admin.stats(deadline.saturating_duration_since(Instant::now()))
    }

    /// The `--metrics` address from the banner's `  metrics:
    /// http://ADDR/metrics` line, waiting at most `timeout` for it.
    pub fn metrics_addr(&self, timeout: Duration) -> Option<SocketAddr> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .stdout_rest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find_map(|line| parse_metrics_line(line));
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The `--web` address from the banner's `  web:     http://ADDR/ …`
    /// line, waiting at most `timeout` for it.
    pub fn web_addr(&self, timeout: Duration) -> Option<SocketAddr> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .stdout_rest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find_map(|line| {
                    let url = line
                        .trim()
                        .strip_prefix("web:")?
                        .trim()
                        .strip_prefix("http://")?;
                    url.split_once('/')?.0.parse().ok()
                });
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The tail of the server's stderr.
    pub fn stderr_tail(&self, max: usize) -> String {
        let text = std::fs::read(&self.stderr_path).unwrap_or_default();
        let start = text.len().saturating_sub(max);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Panics with every failure of scenario `what` and the server's
    /// context (command, stderr) if there is any failure.
    pub fn fail_if_any(&mut self, what: &str, failures: &[String]) {
        if !failures.is_empty() {
            let context = self.context();
            panic!(
                "{what} on {}:\n  - {}\n{context}",
                self.runtime,
                failures.join("\n  - "),
            );
        }
    }

    /// What to show when a check fails: the command, exit status, stdout
    /// after the banner and the tail of stderr.
    pub fn context(&mut self) -> String {
        let alive = self.alive();
        let stdout = self
            .stdout_rest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n");
        format!(
            "[{} on {}] pid {} {}\n  command: {}\n  stdout after the banner: {}\n  stderr ({}), last lines:\n{}",
            self.label,
            self.runtime,
            self.pid,
            if alive {
                "running".to_owned()
            } else {
                format!("exited: {:?}", self.status)
            },
            self.command,
            stdout.lines().take(5).collect::<Vec<_>>().join(" | "),
            self.stderr_path.display(),
            self.stderr_tail(1500)
        )
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("pid", &self.pid)
            .field("runtime", &self.runtime)
            .field("chat", &self.chat)
            .field("admin", &self.admin)
            .finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if let Some(thread) = self.stdout_thread.take() {
            let _ = thread.join();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.stderr_path);
        }
    }
}

/// An admin console connection: one command per line.
#[derive(Debug)]
pub struct Admin {
    reader: LineReader,
}

impl Admin {
    /// Connects within `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Admin> {
        let stream = connect_timeout(addr, timeout)?;
        Ok(Admin {
            reader: LineReader::with_capacity(stream, 4096),
        })
    }

    /// Sends `command` and reads its answer within `timeout`: the lines up
    /// to `.` for `list`, `stats` and `nodes` (cluster mode), else one line.
    pub fn command(&mut self, command: &str, timeout: Duration) -> io::Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let multi = matches!(
            command.split_whitespace().next(),
            Some("list" | "stats" | "nodes")
        );
        self.reader
            .stream()
            .write_all(format!("{command}\n").as_bytes())?;
        let mut lines = Vec::new();
        loop {
            let line = match self.reader.next_line(deadline) {
                Ok(line) => String::from_utf8_lossy(line).into_owned(),
                Err(end) => {
                    return Err(io::Error::other(format!(
                        "admin {command:?}: {end:?} after {lines:?}"
                    )));
                }
            };
            if !multi || line == "." || (lines.is_empty() && line.starts_with("error")) {
                lines.push(line);
                return Ok(lines);
            }
            lines.push(line);
        }
    }

    /// `stats`, parsed.
    pub fn stats(&mut self, timeout: Duration) -> io::Result<StatsMap> {
        let lines = self.command("stats", timeout)?;
        if lines.last().map(String::as_str) != Some(".") {
            return Err(io::Error::other(format!("stats answered {lines:?}")));
        }
        Ok(StatsMap(
            lines
                .iter()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
    }
}

/// The answer to `stats`: `key=value` lines.
#[derive(Debug, Clone, Default)]
pub struct StatsMap(pub BTreeMap<String, String>);

impl StatsMap {
    /// A numeric value (`None` if missing or not a number).
    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.get(key)?.parse().ok()
    }

    /// The sum of every numeric `disconnected.<reason>`.
    pub fn disconnected_total(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with("disconnected."))
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum()
    }
}

impl fmt::Display for StatsMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .filter(|(k, v)| !v.is_empty() && (v.as_str() != "0" || k.starts_with("live")))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "{}", parts.join(" "))
    }
}

/// Reads whatever `stream` has until EOF, an error or `timeout`.
pub fn drain(stream: &mut TcpStream, timeout: Duration) -> (usize, End) {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (total, End::Timeout);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => return (total, End::Eof),
            Ok(n) => total += n,
            Err(e) => match super::net::end_of(&e) {
                Some(end) => return (total, end),
                None => continue,
            },
        }
    }
}
