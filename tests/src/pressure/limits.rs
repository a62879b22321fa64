//! Resource limits: many connects at once, the fd limit, a full server,
//! and 20,000 connections.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::child::{CHILD_PATIENCE, NOT_TRIED, parse_report, spawn_child, tally_outcomes};
use super::net::{Client, FirstLine, LineReader, first_line, start_connect};
use super::server::ServerSpec;
use super::{Scale, join_by, serial};
use crate::client::{self, End};

/// **1,500 concurrent connects.** 15 threads start 100 non-blocking
/// connects each at the same instant; every one of the 1,500 clients is
/// greeted within 10 s of the start, each with its own id.
pub fn concurrent_connects(runtime: &'static str, _scale: &Scale) {
    const CLIENTS: usize = 1_500;
    const THREADS: usize = 15;
    const BOUND: Duration = Duration::from_secs(10);
    let _serial = serial();
    client::raise_fd_limit(8_192);
    let mut server = ServerSpec::new(runtime, "connects").start();
    let addr = server.chat;
    let start = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let deadline = Instant::now() + BOUND;
                let sockets: Vec<_> = (0..CLIENTS / THREADS)
                    .map(|_| start_connect(addr, None))
                    .collect();
                sockets
                    .into_iter()
                    .map(|socket| match socket {
                        Ok(stream) => {
                            let (outcome, reader) = first_line(stream, deadline);
                            (outcome, Some(reader))
                        }
                        Err(e) => (FirstLine::ConnectFailed(e.kind()), None),
                    })
                    .collect::<Vec<(FirstLine, Option<LineReader>)>>()
            })
        })
        .collect();
    start.wait();
    let started = Instant::now();
    let results: Vec<(FirstLine, Option<LineReader>)> = threads
        .into_iter()
        .flat_map(|t| join_by("a connect thread", t, Instant::now() + BOUND))
        .collect();
    let took = started.elapsed();
    let outcomes: Vec<&FirstLine> = results.iter().map(|(o, _)| o).collect();
    let greeted: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| match o {
            FirstLine::Greeted(id) => Some(id),
            _ => None,
        })
        .collect();
    let distinct: HashSet<&String> = greeted.iter().copied().collect();
    let mut failures = Vec::new();
    if greeted.len() != CLIENTS {
        failures.push(format!(
            "{} of {CLIENTS} clients greeted within {BOUND:?}: {:?}",
            greeted.len(),
            tally_outcomes(outcomes.iter().copied())
        ));
    }
    if distinct.len() != greeted.len() {
        failures.push(format!(
            "{} greetings but only {} distinct ids",
            greeted.len(),
            distinct.len()
        ));
    }
    if !server.alive() {
        failures.push("the server died".into());
    }
    eprintln!(
        "pressure connects [{runtime}]: {} of {CLIENTS} greeted, all answered within {took:?}",
        greeted.len()
    );
    drop(results);
    server.fail_if_any("1,500 concurrent connects", &failures);
}

/// **fd limit.** The server runs under `prlimit --nofile=256:256` and 400
/// clients connect. While it is saturated it stays alive, uses less than
/// half of one CPU (utime + stime over 3 s of wall time), and its admin
/// console answers `stats`; once the clients are gone it greets new ones.
pub fn fd_limit(runtime: &'static str, _scale: &Scale) {
    const NOFILE: u64 = 256;
    const CLIENTS: usize = 400;
    const WINDOW: Duration = Duration::from_secs(3);
    let _serial = serial();
    client::raise_fd_limit(8_192);
    let mut server = ServerSpec::new(runtime, "fd-limit").nofile(NOFILE).start();
    let mut failures = Vec::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| start_connect(server.chat, None))
        .collect();
    let connect_errors = clients.iter().filter(|c| c.is_err()).count();
    // Let it take in what it can and hit the limit.
    std::thread::sleep(Duration::from_secs(2));
    let cpu_before = server.cpu_time();
    let measured = Instant::now();
    std::thread::sleep(WINDOW);
    let cpu_after = server.cpu_time();
    let wall = measured.elapsed();
    let cpu_share = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / wall.as_secs_f64()),
        _ => None,
    };
    match cpu_share {
        None => failures.push("the server died under the fd limit".into()),
        Some(share) if share >= 0.5 => failures.push(format!(
            "the server used {:.0}% of a CPU while saturated at its fd limit (bound: 50%)",
            share * 100.0
        )),
        Some(_) => {}
    }
    let stats = server.stats(Duration::from_secs(5));
    if let Err(e) = &stats {
        failures.push(format!("admin `stats` while saturated: {e}"));
    }
    let threads = server.threads();
    if !server.alive() {
        failures.push("the server died under the fd limit".into());
    }
    drop(clients);
    std::thread::sleep(Duration::from_secs(1));
    let again_by = Instant::now() + Duration::from_secs(15);
    let again: Vec<Result<Client, String>> = (0..5)
        .map(|_| Client::connect(server.chat, again_by))
        .collect();
    let greeted_again = again.iter().filter(|c| c.is_ok()).count();
    if greeted_again != again.len() {
        failures.push(format!(
            "after the clients left, {greeted_again} of {} new clients were greeted within 15 s: {:?}",
            again.len(),
            again.iter().filter_map(|c| c.as_ref().err()).next()
        ));
    }
    eprintln!(
        "pressure fd-limit [{runtime}]: {CLIENTS} clients ({connect_errors} connect errors) against nofile={NOFILE}; \
         CPU while saturated {:?}; threads {threads:?}; stats: {}",
        cpu_share.map(|s| format!("{:.1}%", s * 100.0)),
        stats.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    server.fail_if_any("fd limit", &failures);
}

/// **A full server says so.** With `--max-channels 2`, a third client reads
/// `error server full` and then EOF, and the first two are still served.
pub fn server_full_says_so(runtime: &'static str, _scale: &Scale) {
    let _serial = serial();
    let mut server = ServerSpec::new(runtime, "full")
        .flag("--max-channels", "2")
        .start();
    let greet_by = Instant::now() + Duration::from_secs(10);
    let mut first = Vec::new();
    for k in 0..2 {
        match Client::connect(server.chat, greet_by) {
            Ok(c) => first.push(c),
            Err(e) => panic!("client {k}: {e}\n{}", server.context()),
        }
    }
    let mut failures = Vec::new();
    let mut third = TcpStream::connect_timeout(&server.chat, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("third client: connect: {e}\n{}", server.context()));
    let (data, end) = client::read_to_end(&mut third, Duration::from_secs(5));
    if data != b"error server full\n" || end != End::Eof {
        failures.push(format!(
            "the third client read {:?} then {end:?} (expected \"error server full\\n\" then EOF)",
            String::from_utf8_lossy(&data)
        ));
    }
    // The first two are still served.
    let line = format!("{}: still here", first[0].id);
    let _ = first[0].reader.stream().write_all(b"still here\n");
    let by = Instant::now() + Duration::from_secs(5);
    for client in &mut first {
        match client.reader.next_line(by) {
            Ok(got) if got == line.as_bytes() => {}
            Ok(got) => failures.push(format!(
                "{} read {:?}, expected {line:?}",
                client.id,
                String::from_utf8_lossy(got)
            )),
            Err(end) => failures.push(format!("{} got {end:?}, expected {line:?}", client.id)),
        }
    }
    eprintln!(
        "pressure full [{runtime}]: third client read {:?} then {end:?}",
        String::from_utf8_lossy(&data)
    );
    server.fail_if_any("full server", &failures);
}

/// **20,000 connections** (full size only): four client processes open
/// 5,000 connections each, 32 at a time per process, and hold them
/// (`--max-channels 30000`, so the server's own limits — fds, threads — are
/// what bite). The server never crashes: it stays alive, `stats` answers
/// while every connection is held, every client is greeted or refused (a
/// line, EOF, reset or refused connect; none left without an answer for
/// 10 s), and once they are gone a new client is greeted.
pub fn twenty_thousand_connections(runtime: &'static str, _scale: &Scale) {
    const CHILDREN: usize = 4;
    const EACH: usize = 5_000;
    let _serial = serial();
    let mut server = ServerSpec::new(runtime, "20000")
        .flag("--max-channels", "30000")
        .start();
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for k in 0..CHILDREN {
        let source = Ipv4Addr::new(127, 0, 0, 2 + k as u8);
        let mut child = spawn_child(server.chat, EACH, source.into());
        let stdout = child.stdout.take().expect("child stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(report) = parse_report(&line) {
                    let _ = tx.send(report);
                }
            }
        });
        children.push(child);
    }
    drop(tx);
    let mut failures = Vec::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let report_by = Instant::now() + Duration::from_secs(600);
    for _ in 0..CHILDREN {
        match rx.recv_timeout(report_by.saturating_duration_since(Instant::now())) {
            Ok(report) => {
                for (kind, n) in report {
                    *kinds.entry(kind).or_insert(0) += n;
                }
            }
            Err(_) => {
                failures.push("a client process never reported".into());
                break;
            }
        }
    }
    let alive_while_held = server.alive();
    let stats = server.stats(Duration::from_secs(5));
    let threads = server.threads();
    let rss = server.rss();
    for child in &mut children {
        drop(child.stdin.take());
    }
    for child in &mut children {
        let by = Instant::now() + Duration::from_secs(30);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < by {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    if !alive_while_held {
        failures.push("the server died".into());
    }
    if let Err(e) = &stats {
        failures.push(format!(
            "admin `stats` while every connection was held: {e}"
        ));
    }
    let total: usize = kinds.values().sum();
    let greeted = kinds.get("greeted").copied().unwrap_or(0);
    let hanging: usize = kinds
        .iter()
        .filter(|(k, _)| k.starts_with("Timeout"))
        .map(|(_, n)| n)
        .sum();
    let untried = kinds.get(NOT_TRIED).copied().unwrap_or(0);
    if total != CHILDREN * EACH {
        failures.push(format!("{total} of {} outcomes reported", CHILDREN * EACH));
    }
    if greeted == 0 {
        failures.push("no client was greeted".into());
    }
    if hanging > 0 {
        failures.push(format!(
            "{hanging} clients neither greeted nor refused within {CHILD_PATIENCE:?} \
             ({untried} more not tried after that)"
        ));
    }
    std::thread::sleep(Duration::from_secs(1));
    if let Err(e) = Client::connect(server.chat, Instant::now() + Duration::from_secs(30)) {
        failures.push(format!("after the clients left, a new client: {e}"));
    }
    if !server.alive() {
        failures.push("the server died after the clients left".into());
    }
    eprintln!(
        "pressure 20000 [{runtime}]: outcomes {kinds:?}; while held: threads {threads:?}, RSS {:?} MiB, stats: {}",
        rss.map(|r| r >> 20),
        stats.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    server.fail_if_any("20,000 connections", &failures);
}
