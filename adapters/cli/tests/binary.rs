//! The `tether` binary as operators run it: the first stdout line, the
//! environment, bind errors, signals and exit statuses.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Client, stat};

const BIN: &str = env!("CARGO_BIN_EXE_tether");

/// A `tether serve` child: its addresses, its stdout after the first line.
struct Served {
    child: Child,
    first_line: String,
    chat: SocketAddr,
    admin: SocketAddr,
    stdout: BufReader<ChildStdout>,
}

fn tether(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Tests must not pick up the environment of whoever runs them.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TETHER_") {
            command.env_remove(key);
        }
    }
    // The WebSocket listener's default port would collide between tests.
    command.env("TETHER_WEB", "127.0.0.1:0");
    command
}

/// Parses `tether: chat on <ADDR>, admin console on <ADDR> (<runtime>)`.
fn parse_first_line(line: &str) -> (SocketAddr, SocketAddr, String) {
    let rest = line
        .strip_prefix("tether: chat on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"));
    let (chat, rest) = rest.split_once(", admin console on ").expect(line);
    let (admin, runtime) = rest.split_once(" (").expect(line);
    let runtime = runtime.strip_suffix(")\n").expect(line);
    (
        chat.parse().expect(line),
        admin.parse().expect(line),
        runtime.to_owned(),
    )
}

/// How long `tether serve` may take to print its first line.
const STARTUP: Duration = Duration::from_secs(30);

fn serve(command: &mut Command) -> Served {
    let mut child = command.spawn().expect("spawn tether");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut first_line = String::new();
        stdout
            .read_line(&mut first_line)
            .map(|_| (first_line, stdout))
    });
    let deadline = Instant::now() + STARTUP;
    while !reader.is_finished() {
        if Instant::now() > deadline {
            let _ = child.kill(); // which ends the reader
            let _ = child.wait();
            panic!("step tether's first line: no answer within {STARTUP:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (first_line, stdout) = reader.join().expect("reader").expect("read stdout");
    if first_line.is_empty() {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("tether printed nothing; stderr: {err}");
    }
    let (chat, admin, _) = parse_first_line(&first_line);
    Served {
        child,
        first_line,
        chat,
        admin,
        stdout,
    }
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill(1)");
    assert!(status.success());
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tether did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    err
}

fn sigterm_drains_then_exits_0(runtime: &str) {
    let mut served = serve(&mut tether(&[
        "serve",
        "--runtime",
        runtime,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "localhost:0",
        "--shutdown-grace",
        "3s",
    ]));
    let (_, _, printed) = parse_first_line(&served.first_line);
    assert_eq!(printed, runtime);
    let (mut alice, alice_id) = Client::join(served.chat);
    let (mut bob, _) = Client::join(served.chat);
    bob.send("before the signal\n");
    assert!(alice.line().ends_with(": before the signal\n"));
    kill(&served.child, "TERM");
    // The drain: queued lines are delivered, then EOF (not a reset).
    let mut rest = Vec::new();
    loop {
        let line = alice.line();
        if line.is_empty() {
            break;
        }
        rest.push(line);
    }
    assert!(rest.len() <= 1, "{rest:?}");
    let status = wait_with_timeout(&mut served.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", stderr_of(&mut served.child));
    let mut tail = String::new();
    served.stdout.read_to_string(&mut tail).unwrap();
    assert!(tail.ends_with("tether: shut down\n"), "{tail:?}");
    let err = stderr_of(&mut served.child);
    assert!(err.contains("SIGTERM: shutting down gracefully"), "{err}");
    assert!(
        !err.contains(&format!("{alice_id} connected")),
        "per-connection lines are debug: {err}"
    );
}

#[test]
fn sigterm_drains_then_exits_0_on_async_std() {
    sigterm_drains_then_exits_0("async-std");
}

#[test]
fn sigterm_drains_then_exits_0_on_smol() {
    sigterm_drains_then_exits_0("smol");
}

#[test]
fn sigterm_drains_then_exits_0_on_threads() {
    sigterm_drains_then_exits_0("threads");
}

#[test]
fn sigterm_drains_then_exits_0_on_tokio() {
    sigterm_drains_then_exits_0("tokio");
}

/// Forwards `child`'s stderr, line by line, to the returned receiver (so a
/// test can wait for a line with a deadline) and keeps every line for the
/// returned thread's result.
fn stderr_lines(child: &mut Child) -> (mpsc::Receiver<String>, JoinHandle<String>) {
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let all = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    (rx, all)
}

/// Waits for a line of `lines` containing `wanted`; panics naming `step`
/// after `limit`.
fn await_line(lines: &mpsc::Receiver<String>, wanted: &str, step: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(wanted) => return,
            Ok(_) => {}
            Err(_) => panic!("step {step}: no {wanted:?} within {limit:?}"),
        }
    }
}

/// The first SIGINT starts the drain and the process stays in it; the
/// second exits at once with 130. Each step is observed, never slept on:
/// the log line of the first signal, the drain's EOF to a client, the
/// admin console still answering after it (the process is alive, draining:
/// that client never closes, so the drain waits for the 1-minute grace),
/// and the log lines of both signals in order.
#[test]
fn a_second_signal_exits_at_once() {
    let mut served = serve(&mut tether(&[
        "--runtime",
        "threads",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--shutdown-grace",
        "1m",
        "--shards",
        "2",
    ]));
    let (lines, stderr) = stderr_lines(&mut served.child);
    // A client that never closes keeps the graceful drain waiting for the
    // grace; nothing else would stop within the minute.
    let (mut stubborn, _) = Client::join(served.chat);
    // Established (it ran a command) before the drain starts.
    let mut admin = Client::connect(served.admin);
    assert_eq!(stat(&admin.stats(), "live"), 1);
    kill(&served.child, "INT");
    let first = "SIGINT: shutting down gracefully";
    await_line(&lines, first, "the first SIGINT", Duration::from_secs(10));
    // The drain reached the client: whatever was queued, then EOF (each
    // read bounded by the client's 10 s timeout).
    while !stubborn.line().is_empty() {}
    // Still draining: the process answers its console after that EOF with
    // its stats, although the other shard (no channel) completed its
    // shutdown at once: a shard that finished first keeps answering until
    // every shard has (it used to answer `error the server has stopped`).
    admin.send("stats\n");
    let answer = admin
        .try_line()
        .expect("the console answers while draining");
    assert!(!answer.is_empty(), "the console closed: the process exited");
    assert!(answer.contains('='), "not stats while draining: {answer:?}");
    assert!(served.child.try_wait().unwrap().is_none(), "still draining");
    kill(&served.child, "INT");
    let status = wait_with_timeout(&mut served.child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    let err = stderr.join().expect("stderr reader");
    let again = err.find("SIGINT again: exiting now");
    assert!(
        err.find(first)
            .is_some_and(|at| again.is_some_and(|again| at < again)),
        "{err}"
    );
}

#[test]
fn the_environment_sets_every_flag() {
    let mut served = serve(
        tether(&[])
            .env("TETHER_RUNTIME", "smol")
            .env("TETHER_LISTEN", "localhost:0")
            .env("TETHER_ADMIN", "127.0.0.1:0")
            .env("TETHER_MAX_CHANNELS", "1")
            .env("TETHER_ADMIN_MAX", "1")
            .env("TETHER_ADMIN_TOKEN", "from-env"),
    );
    assert!(
        served.first_line.ends_with(" (smol)\n"),
        "{}",
        served.first_line
    );
    assert!(served.chat.ip().is_loopback());
    let mut admin = Client::connect(served.admin);
    admin.send("stats\n");
    assert_eq!(admin.line(), "error auth required\n");
    admin.send("auth from-env\n");
    assert_eq!(admin.line(), "ok\n");
    assert_eq!(stat(&admin.stats(), "channel_budget"), 1);
    let mut second = Client::connect(served.admin);
    assert_eq!(second.line(), "error too many admin connections\n");
    // A flag on the command line wins over the environment.
    let mut flagged = tether(&["--max-channels", "0"]);
    flagged.env("TETHER_MAX_CHANNELS", "5");
    let out = flagged.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    admin.send("shutdown 100\n");
    assert_eq!(admin.line(), "ok\n");
    let status = wait_with_timeout(&mut served.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bad_command_lines_exit_2_with_clap_messages() {
    for (args, env, expected) in [
        (
            vec!["--lisen", "127.0.0.1:1"],
            None,
            "a similar argument exists: '--listen'",
        ),
        (
            vec!["serve", "--queue-limit", "lots"],
            None,
            "--queue-limit",
        ),
        (vec!["--idle-timeout", "30"], None, "not a duration"),
        (
            vec!["--max-channels", "0"],
            None,
            "max_channels must be between",
        ),
        (
            vec!["--runtime", "tokyo"],
            None,
            "possible values: async-std, smol, threads, tokio",
        ),
        (vec![], Some(("TETHER_QUEUE_LIMIT", "lots")), "lots"),
    ] {
        let mut command = tether(&args);
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        let out = command.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let out = tether(&["--version"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tether "));
}

#[test]
fn servers_that_cannot_start_say_which_flag_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tether(&["--listen", &addr, "--admin", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("--listen {addr}: cannot listen on {addr}: ")),
        "{err}"
    );
    let out = tether(&["--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--admin 0.0.0.0:0: refusing to expose"),
        "{err}"
    );
    let out = tether(&["--listen", "nowhere.invalid:7000", "--admin", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--listen nowhere.invalid:7000: cannot resolve it"),
        "{err}"
    );
}
