//! The client processes of [`twenty_thousand_connections`]: one process
//! may hold only ~20,000 fds here, so the scenario runs its clients in
//! processes of their own. Each is the `tether-pressure-child` binary of
//! this crate (`src/bin/pressure_child.rs`), never a test: it is run only
//! by the scenario, and by [`child_reports_what_it_read`]
//! (`tests/tests/pressure.rs`), which checks it in every ordinary run.
//!
//! [`twenty_thousand_connections`]: super::twenty_thousand_connections

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::net::{FirstLine, LineReader, first_line};
use crate::bounded;
use crate::client::{self, End};

/// The name of the client process's binary.
pub const CHILD_BIN: &str = "tether-pressure-child";
/// The marker of the line a client process reports its counts on.
pub const CHILD_REPORT: &str = "PRESSURE-CHILD";
/// The outcome a thread's connections after its first hang are counted as.
pub const NOT_TRIED: &str = "not tried (after a hang)";
/// Client threads per client process: connections in flight at once.
const CHILD_THREADS: usize = 32;
/// How long one connection may take to connect, and then to get its first
/// line (a greeting, or a refusal).
pub const CHILD_PATIENCE: Duration = Duration::from_secs(10);

/// `target/<profile>/tether-pressure-child`, next to the `deps` directory
/// this test executable lives in: cargo builds a package's binaries for its
/// integration tests. Panics if it is not there.
pub fn child_bin() -> PathBuf {
    let bin = super::server::profile_dir().join(CHILD_BIN);
    assert!(
        bin.exists(),
        "no {CHILD_BIN} at {} (cargo test -p tether-conformance builds it)",
        bin.display()
    );
    bin
}

/// Starts a client process: `count` connections to `addr` from `source`,
/// with piped stdin (closing it ends the process) and stdout (its report).
pub fn spawn_child(addr: SocketAddr, count: usize, source: IpAddr) -> Child {
    Command::new(child_bin())
        .args([addr.to_string(), count.to_string(), source.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client process")
}

/// Outcomes grouped by kind, with a count each (for messages).
pub(super) fn tally_outcomes<'a>(
    outcomes: impl IntoIterator<Item = &'a FirstLine>,
) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for outcome in outcomes {
        let kind = match outcome {
            FirstLine::Greeted(_) => "greeted".to_owned(),
            FirstLine::Line(line) => format!("line {line:?}"),
            FirstLine::End(end) => format!("{end:?} before any line"),
            FirstLine::ConnectFailed(kind) => format!("connect failed: {kind:?}"),
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// The counts a report line carries (what follows [`CHILD_REPORT`]): kind
/// by kind. `None` if the line is not a report.
pub fn parse_report(line: &str) -> Option<BTreeMap<String, usize>> {
    let at = line.find(CHILD_REPORT)?;
    let report = line[at + CHILD_REPORT.len()..].trim();
    let mut kinds = BTreeMap::new();
    for entry in report.split("\t\t").filter(|e| !e.is_empty()) {
        let (n, kind) = entry.split_once('\t')?;
        *kinds.entry(kind.to_owned()).or_insert(0) += n.parse::<usize>().ok()?;
    }
    Some(kinds)
}

/// One connection of a client process: connect from `source`, then read the
/// first line, each within [`CHILD_PATIENCE`].
fn child_connection(addr: SocketAddr, source: IpAddr) -> (FirstLine, Option<LineReader>) {
    let attempt = || -> std::io::Result<TcpStream> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        socket.connect_timeout(&addr.into(), CHILD_PATIENCE)?;
        Ok(socket.into())
    };
    match attempt() {
        Ok(stream) => {
            let (outcome, reader) = first_line(stream, Instant::now() + CHILD_PATIENCE);
            (outcome, Some(reader))
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            (FirstLine::End(End::Timeout), None)
        }
        Err(e) => (FirstLine::ConnectFailed(e.kind()), None),
    }
}

/// The client process (`tether-pressure-child <chat addr> <connections>
/// <source ip>`): 32 threads open connections one after another from that
/// source address, each reading its first line; a thread stops at its first
/// connection left hanging (no connect or no line within 10 s). Reports the
/// counts on stdout (one [`CHILD_REPORT`] line), then holds every socket
/// until stdin closes. Panics on arguments it cannot parse.
pub fn child_main(args: impl IntoIterator<Item = String>) {
    let args: Vec<String> = args.into_iter().collect();
    let [addr, count, source] = &args[..] else {
        panic!("usage: {CHILD_BIN} <chat addr> <connections> <source ip>; got {args:?}");
    };
    let addr: SocketAddr = addr.parse().expect("address");
    let count: usize = count.parse().expect("count");
    let source: IpAddr = source.parse().expect("source address");
    client::raise_fd_limit(count as u64 + 256);
    let threads: Vec<_> = (0..CHILD_THREADS)
        .map(|k| {
            let mine = count / CHILD_THREADS + usize::from(k < count % CHILD_THREADS);
            std::thread::spawn(move || {
                let mut outcomes = Vec::with_capacity(mine);
                let mut held = Vec::with_capacity(mine);
                for _ in 0..mine {
                    let (outcome, reader) = child_connection(addr, source);
                    let hung = outcome == FirstLine::End(End::Timeout);
                    outcomes.push(outcome);
                    held.extend(reader);
                    if hung {
                        break;
                    }
                }
                let skipped = mine - outcomes.len();
                (outcomes, held, skipped)
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(count);
    let mut held = Vec::with_capacity(count);
    let mut skipped = 0;
    for thread in threads {
        // Each connection is bounded (connect, then first line: within
        // CHILD_PATIENCE each); the scenario waits 600 s for the report.
        let (o, h, s) = thread.join().expect("client thread");
        outcomes.extend(o);
        held.extend(h);
        skipped += s;
    }
    let mut kinds = tally_outcomes(&outcomes);
    if skipped > 0 {
        kinds.insert(NOT_TRIED.into(), skipped);
    }
    let encoded: Vec<String> = kinds.iter().map(|(k, n)| format!("{n}\t{k}")).collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n{CHILD_REPORT} {}", encoded.join("\t\t"));
    let _ = out.flush();
    drop(out);
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(held);
}

/// The client process against a stand-in server on 127.0.0.1 that greets
/// two connections and refuses the third: it reports exactly that, holds
/// every socket until its stdin closes, then exits 0 and closes them.
/// `built` is where cargo built the binary
/// (`CARGO_BIN_EXE_tether-pressure-child`), which [`child_bin`] must find.
pub fn child_reports_what_it_read(built: &Path) {
    assert_eq!(
        child_bin(),
        built,
        "child_bin() finds the binary cargo built"
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = std::thread::spawn(move || {
        (0..3)
            .map(|k| {
                let mut stream = accept_within(&listener, k);
                let line = if k < 2 {
                    format!("hello #{}.1\n", k + 1)
                } else {
                    "error server full\n".to_owned()
                };
                stream.write_all(line.as_bytes()).expect("write");
                stream
            })
            .collect::<Vec<_>>()
    });
    let mut child = spawn_child(addr, 3, IpAddr::from([127, 0, 0, 1]));
    let stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| parse_report(&line))
    });
    let report = bounded::join("the child's report", reader, Duration::from_secs(60));
    let expected = BTreeMap::from([
        ("greeted".to_owned(), 2),
        ("line \"error server full\"".to_owned(), 1),
    ]);
    assert_eq!(report, Some(expected));
    let mut held = bounded::join("the stand-in server", server, Duration::from_secs(5));
    // Reported, and still holding every socket: nothing to read, no EOF.
    for stream in &held {
        stream.set_nonblocking(true).expect("non-blocking");
        let peeked = stream.peek(&mut [0u8; 1]);
        assert!(
            matches!(&peeked, Err(e) if e.kind() == ErrorKind::WouldBlock),
            "a socket the child holds: {peeked:?}"
        );
        stream.set_nonblocking(false).expect("blocking");
    }
    drop(child.stdin.take());
    let status = wait_within(&mut child, Duration::from_secs(30));
    assert!(status.success(), "the client process exited {status}");
    for stream in &mut held {
        let (data, end) = client::read_to_end(stream, Duration::from_secs(5));
        assert_eq!((data.len(), end), (0, End::Eof), "closed at exit");
    }
}

/// The `k`th connection of a stand-in server, within 30 s.
fn accept_within(listener: &TcpListener, k: usize) -> TcpStream {
    listener.set_nonblocking(true).expect("non-blocking");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "step accept client {k}: no answer within 30s"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("step accept client {k}: {e}"),
        }
    }
}

/// Waits for `child` to exit; kills it and panics after `limit`.
fn wait_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("step the client process's exit: no answer within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_parses_back_into_its_counts() {
        let line = format!("noise {CHILD_REPORT} 2\tgreeted\t\t1\tline \"error server full\"");
        let kinds = parse_report(&line).expect("a report");
        assert_eq!(kinds.get("greeted"), Some(&2));
        assert_eq!(kinds.get("line \"error server full\""), Some(&1));
        assert_eq!(kinds.len(), 2);
        assert_eq!(parse_report("hello #1.1"), None);
        assert_eq!(parse_report(&format!("{CHILD_REPORT} x\tgreeted")), None);
    }
}
