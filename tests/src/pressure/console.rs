//! Operator ports no one can lock: the admin console and `--metrics` with
//! 300 silent sockets held open, connected (and accepted by the server)
//! before the operator comes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::net::connect_timeout;
use super::server::{Admin, Server, ServerSpec, StatsMap};
use super::{Scale, serial};
use crate::client;

/// Silent sockets per scenario.
const SILENT: usize = 300;
/// The operator's bound: from its connect to its answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// Connects per batch: well under the listen backlog (64), so the kernel
/// drops no SYN (whose retry, a second later, would land after the
/// operator).
const BATCH: usize = 16;

/// The accept queue of the listener on 127.0.0.1:`port` and its half-open
/// connections (`SYN_RECV`), from `/proc/net/tcp`.
fn backlog(port: u16) -> Option<(u64, usize)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let wanted = format!(":{port:04X}");
    let (mut queued, mut half_open) = (None, 0);
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(queues)) =
            (fields.get(1), fields.get(3), fields.get(4))
        else {
            continue;
        };
        if !local.ends_with(&wanted) {
            continue;
        }
        match *state {
            // LISTEN: rx_queue is the accept queue.
            "0A" => {
                let rx = queues.split_once(':').map_or("", |(_, rx)| rx);
                queued = u64::from_str_radix(rx, 16).ok();
            }
            "03" => half_open += 1,
            _ => {}
        }
    }
    Some((queued?, half_open))
}

/// Opens `count` connections to `addr` that never send a byte, in batches
/// of [`BATCH`], each batch connected and then accepted by the server (its
/// listener's accept queue empty, no half-open connection left) before the
/// next. Returns them, held open.
fn hold_silent(server: &mut Server, addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    while held.len() < count {
        for _ in 0..BATCH.min(count - held.len()) {
            match connect_timeout(addr, Duration::from_secs(10)) {
                Ok(stream) => held.push(stream),
                Err(e) => panic!(
                    "silent connection {}: connect: {e}\n{}",
                    held.len(),
                    server.context()
                ),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match backlog(addr.port()) {
                Some((0, 0)) => break,
                Some(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => panic!(
                    "the server did not accept {} silent connections within 10 s \
                     (accept queue, half-open: {other:?})\n{}",
                    held.len(),
                    server.context()
                ),
            }
        }
    }
    held
}

/// Connections closed to make room, by eviction or by a login timeout.
fn made_room(stats: &StatsMap) -> Option<u64> {
    Some(stats.get("admin.evicted")? + stats.get("admin.login_timeouts")?)
}

/// **300 silent admin connections** (default `--admin-max 16`,
/// `--admin-idle 60s`, `--admin-login 2s`) are connected, accepted and held
/// open; then the operator connects and its `stats` is answered within 1 s
/// of its connect, on its first try. The silent ones made room by being
/// evicted (or timed out at `--admin-login`): at least 300 + 1 - 16.
pub fn silent_admin_connections(runtime: &'static str, _scale: &Scale) {
    let _serial = serial();
    client::raise_fd_limit(8_192);
    let mut server = ServerSpec::new(runtime, "admin-silent").start();
    let admin = server.admin;
    let silent = hold_silent(&mut server, admin, SILENT);
    let started = Instant::now();
    let answer = Admin::connect(server.admin, ANSWER_WITHIN)
        .and_then(|mut admin| admin.stats(ANSWER_WITHIN.saturating_sub(started.elapsed())));
    let took = started.elapsed();
    let mut failures = Vec::new();
    match &answer {
        Ok(stats) => {
            if took > ANSWER_WITHIN {
                failures.push(format!("`stats` answered after {took:?}"));
            }
            if stats.get("live").is_none() {
                failures.push(format!("`stats` without `live`: {stats}"));
            }
            let room = made_room(stats);
            if room.is_none_or(|n| n < (SILENT + 1 - 16) as u64) {
                failures.push(format!(
                    "{room:?} silent sessions evicted or timed out before the operator's \
                     `stats` (at least {} expected): {stats}",
                    SILENT + 1 - 16
                ));
            }
        }
        Err(e) => failures.push(format!(
            "the operator's `stats` with {SILENT} silent admin connections held open: {e} \
             (after {took:?})"
        )),
    }
    if !server.alive() {
        failures.push("the server died".into());
    }
    eprintln!(
        "pressure admin-silent [{runtime}]: stats answered in {took:?} ({})",
        answer.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    drop(silent);
    server.fail_if_any("300 silent admin connections", &failures);
}

/// **An established session is never evicted.** The operator runs `stats`
/// first; then 300 silent connections are connected, accepted and held
/// open; the operator's session still answers `stats` within 1 s, and the
/// silent ones were evicted among themselves (at least 300 - 15).
pub fn established_admin_session_survives(runtime: &'static str, _scale: &Scale) {
    let _serial = serial();
    client::raise_fd_limit(8_192);
    let mut server = ServerSpec::new(runtime, "admin-established").start();
    let mut operator = server
        .admin(Duration::from_secs(5))
        .and_then(|mut admin| admin.stats(Duration::from_secs(5)).map(|_| admin))
        .unwrap_or_else(|e| panic!("the operator's first `stats`: {e}\n{}", server.context()));
    let admin = server.admin;
    let silent = hold_silent(&mut server, admin, SILENT);
    let started = Instant::now();
    let answer = operator.stats(ANSWER_WITHIN);
    let took = started.elapsed();
    let mut failures = Vec::new();
    match &answer {
        Ok(stats) => {
            if took > ANSWER_WITHIN {
                failures.push(format!("`stats` answered after {took:?}"));
            }
            let room = made_room(stats);
            if room.is_none_or(|n| n < (SILENT - 15) as u64) {
                failures.push(format!(
                    "{room:?} silent sessions evicted or timed out (at least {} expected): {stats}",
                    SILENT - 15
                ));
            }
        }
        Err(e) => failures.push(format!(
            "the established session's `stats` after {SILENT} newcomers: {e}"
        )),
    }
    if !server.alive() {
        failures.push("the server died".into());
    }
    eprintln!(
        "pressure admin-established [{runtime}]: stats answered in {took:?} ({})",
        answer.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    drop(silent);
    server.fail_if_any("an established admin session and 300 newcomers", &failures);
}

/// One `GET /metrics`, everything within `timeout`: the whole answer.
pub(crate) fn scrape(addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect_timeout(addr, timeout)?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: pressure\r\n\r\n")?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{} bytes of the answer in {timeout:?}", answer.len()),
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk)? {
            0 => return Ok(String::from_utf8_lossy(&answer).into_owned()),
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A sample's value in a scrape: `name value`.
fn sample(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// **300 silent `--metrics` connections** are connected, accepted and held
/// open; then a scrape is answered (200, with the counters) within 1 s of
/// its connect. The silent ones made room by being evicted (or timed out):
/// at least 300 + 1 - 8.
pub fn silent_metrics_connections(runtime: &'static str, _scale: &Scale) {
    let _serial = serial();
    client::raise_fd_limit(8_192);
    let mut server = ServerSpec::new(runtime, "metrics-silent")
        .flag("--metrics", "127.0.0.1:0")
        .start();
    let Some(addr) = server.metrics_addr(Duration::from_secs(5)) else {
        panic!("no metrics address printed\n{}", server.context());
    };
    let silent = hold_silent(&mut server, addr, SILENT);
    let started = Instant::now();
    let answer = scrape(addr, ANSWER_WITHIN);
    let took = started.elapsed();
    let mut failures = Vec::new();
    match &answer {
        Ok(text) if text.starts_with("HTTP/1.1 200 ") && text.contains("\ntether_live ") => {
            let room = sample(text, "tether_metrics_evicted_total")
                .zip(sample(text, "tether_metrics_timeouts_total"))
                .map(|(a, b)| a + b);
            if room.is_none_or(|n| n < (SILENT + 1 - 8) as u64) {
                failures.push(format!(
                    "{room:?} silent connections evicted or timed out before the scrape \
                     (at least {} expected)",
                    SILENT + 1 - 8
                ));
            }
        }
        Ok(text) => failures.push(format!(
            "the scrape was answered {:?}",
            text.lines().next().unwrap_or("(nothing)")
        )),
        Err(e) => failures.push(format!(
            "the scrape with {SILENT} silent connections held open: {e} (after {took:?})"
        )),
    }
    if took > ANSWER_WITHIN {
        failures.push(format!("the scrape took {took:?}"));
    }
    if !server.alive() {
        failures.push("the server died".into());
    }
    eprintln!("pressure metrics-silent [{runtime}]: scrape answered in {took:?}");
    drop(silent);
    server.fail_if_any("300 silent metrics connections", &failures);
}
