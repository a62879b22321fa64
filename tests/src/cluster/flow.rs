//! Flow across nodes: a remote client that reads nothing must not stall
//! the other clients of its node, nor its node's heartbeats, nor lose a
//! line for anyone else (issue 18: "no client of a healthy node ever pays
//! for a broker problem" — nor for another client).

use std::io::Write;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::{ClusterRig, Collector, Member, NAMES, SOON};
use crate::pressure::{WRITE_STALL, join_by, serial};

/// Lines of the burst and their length with the `\n`: 6 MB, twice what
/// loopback's autotuned send buffer takes for a non-reader plus the 1 MiB
/// queue limit, so the non-reader must be evicted (as in the pressure
/// suite's burst).
pub const LINES: usize = 6_000;
/// See [`LINES`].
pub const LINE_LEN: usize = 1_000;

/// A greeted client with a 4 KiB receive buffer (set before the
/// handshake, so the window stays small) that will read nothing.
fn small_window(addr: SocketAddr, deadline: Instant) -> Result<Member, String> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(4096)
        .map_err(|e| e.to_string())?;
    socket
        .connect_timeout(&addr.into(), SOON)
        .map_err(|e| format!("connect: {e}"))?;
    Member::greet(socket.into(), deadline)
}

/// `burst <k> ` padded with dots to [`LINE_LEN`] - 1 bytes.
fn burst_line(k: usize) -> String {
    let mut line = format!("burst {k} ");
    line.extend(std::iter::repeat_n('.', LINE_LEN - 1 - line.len()));
    line
}

/// A cluster with a client of n1 (the sender), a reading client of n2 and
/// of n3, and a small-window client of n2, all in everyone's presence.
fn setup(runtime: &'static str, label: &'static str) -> (ClusterRig, [Collector; 3], Member) {
    let rig = ClusterRig::start(runtime, label, 3, &[]);
    let deadline = Instant::now() + SOON;
    let connect = |name: &str| -> Collector {
        rig.node(name)
            .connect(deadline)
            .unwrap_or_else(|e| panic!("{e}"))
            .collect()
    };
    let readers = [connect("n1"), connect("n2"), connect("n3")];
    let slow = small_window(rig.node("n2").server.chat, deadline)
        .unwrap_or_else(|e| panic!("n2: the small-window client: {e}"));
    let mut every: Vec<String> = readers.iter().map(|c| c.id.clone()).collect();
    every.push(slow.id.clone());
    if let Err(e) = rig.converge(&NAMES, &NAMES, &every, SOON) {
        panic!("{label} on {runtime}: presence before the burst: {e}");
    }
    (rig, readers, slow)
}

/// Writes `lines` burst lines from `sender` as fast as TCP takes them.
fn spawn_burst(sender: &Collector, lines: usize) -> JoinHandle<Result<(), String>> {
    let mut stream = sender.writer();
    let _ = stream.set_write_timeout(Some(WRITE_STALL));
    std::thread::spawn(move || {
        for k in 0..lines {
            stream
                .write_all(format!("{}\n", burst_line(k)).as_bytes())
                .map_err(|e| format!("line {k}: {e}"))?;
        }
        Ok(())
    })
}

/// The numbers of `burst <k> …` texts, in order.
fn burst_numbers(texts: &[String]) -> Vec<usize> {
    texts
        .iter()
        .filter_map(|t| t.strip_prefix("burst ")?.split(' ').next()?.parse().ok())
        .collect()
}

/// Each of `readers` read `lines` burst lines of `sender`, in order, once.
fn check_whole(readers: &[Collector], sender: &str, lines: usize, failures: &mut Vec<String>) {
    for c in readers {
        let _ = c.wait(SOON, |s| s.lines.len() >= lines);
        let numbers = burst_numbers(&c.texts_from(sender));
        if numbers != (0..lines).collect::<Vec<_>>() {
            failures.push(format!(
                "{} read {} burst lines, not 0..{lines} in order once each",
                c.id,
                numbers.len()
            ));
        }
    }
}

/// **A remote client that reads nothing.** n2 has a client with a 4 KiB
/// window that never reads, beside a reading one; n3 has a reading one.
/// A client of n1 sends [`LINES`] lines of [`LINE_LEN`] bytes as fast as
/// TCP takes them. Throughout, n1's `nodes` names all three nodes (n2's
/// heartbeats go on while its deliveries wait) and n2 answers `stats`
/// within 1 s; in the end every reading client of every node read the
/// whole burst in order exactly once, nothing is counted lost, and the
/// non-reader is the only disconnect (on n2, `slow-consumer`).
pub fn slow_remote_reader(runtime: &'static str) {
    let _serial = serial();
    let (mut rig, readers, slow) = setup(runtime, "cluster-slow-reader");
    let mut failures = Vec::new();
    let burst_deadline = Instant::now() + Duration::from_secs(120);
    let sender = readers[0].id.clone();
    let writer = spawn_burst(&readers[0], LINES);
    let prefix = format!("{sender}: burst ");
    let done = |c: &Collector| {
        c.with(|s| {
            s.lines
                .iter()
                .filter(|(_, l)| l.starts_with(&prefix))
                .count()
        }) >= LINES
    };
    let mut checks = 0;
    while !readers.iter().all(done) && Instant::now() < burst_deadline {
        watch(&rig, &["n1"], &mut failures);
        checks += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Err(e) = join_by("the burst sender", writer, burst_deadline) {
        failures.push(format!("the sender: {e}"));
    }
    check_whole(&readers, &sender, LINES, &mut failures);
    account(&rig, 1, &mut failures);
    eprintln!("cluster slow-reader [{runtime}]: {checks} checks of `nodes` during the burst");
    drop(slow);
    rig.fail_if_any("a remote client that reads nothing", &failures);
}

/// Lines of the paced burst (6 MB): more than loopback's autotuned send
/// buffer (~3 MB) plus the 1 MiB queue limit plus what a node may hold for
/// slow clients, so a slow reader that is not evicted holds its node's
/// deliveries back for several ttls (about 16 s on threads).
pub const PACED_LINES: usize = 6_000;
/// The slow reader: 4 KiB (its window) at most every this often.
pub const SLOW_READ_EVERY: Duration = Duration::from_millis(10);

/// **A remote client that reads slowly but steadily** (4 KiB window, a
/// read every [`SLOW_READ_EVERY`], about 400 KB/s: n2's deliveries go at
/// its pace, as a relay on one node does). A client of n1 sends
/// [`PACED_LINES`] lines of [`LINE_LEN`] bytes. For as long as that takes
/// (several ttls on threads): n2's `nodes` and n1's name all three nodes —
/// a slow client is no reason to declare healthy nodes dead — and n2
/// answers `stats` within 1 s. In the end every other client read the
/// whole burst in order, nothing was lost, and the slow client read all
/// of it too: it takes bytes all along, so it is paced to, never evicted
/// (docs/design.md §5.2). (Before the tokio glue's writes asked the kernel
/// past tokio's cached "not writable", tokio evicted such a reader after
/// about 1 MB: epoll reports a full send buffer writable again only once a
/// third of it is free, which at 400 KB/s takes longer than the layer's
/// 1 s "takes nothing" rule; `pressure::steady_reader` is the one-node
/// form.)
pub fn slow_steady_remote_reader(runtime: &'static str) {
    let _serial = serial();
    let (mut rig, readers, slow) = setup(runtime, "cluster-steady-reader");
    let mut failures = Vec::new();
    let started = Instant::now();
    let burst_deadline = started + Duration::from_secs(120);
    let slow_id = slow.id.clone();
    let reader = std::thread::spawn(move || read_slowly(slow, burst_deadline));
    let writer = spawn_burst(&readers[0], PACED_LINES);
    let mut checks = 0;
    while !reader.is_finished() && Instant::now() < burst_deadline {
        watch(&rig, &["n1", "n2"], &mut failures);
        checks += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let (slow_read, _slow_socket) = join_by("the slow reader", reader, burst_deadline);
    let took = started.elapsed();
    if let Err(e) = join_by("the burst sender", writer, burst_deadline) {
        failures.push(format!("the sender: {e}"));
    }
    let slow_numbers = burst_numbers(&slow_read);
    let evicted = slow_numbers.len() < PACED_LINES;
    if slow_numbers != (0..PACED_LINES).collect::<Vec<_>>() {
        failures.push(format!(
            "the slow but steady reader {slow_id} read {} burst lines, not the whole burst \
             in order",
            slow_numbers.len()
        ));
    }
    check_whole(&readers, &readers[0].id, PACED_LINES, &mut failures);
    account(&rig, 0, &mut failures);
    eprintln!(
        "cluster steady-reader [{runtime}]: the slow reader read {} lines in {took:?} \
         (evicted: {evicted}); {checks} checks of `nodes`",
        slow_numbers.len()
    );
    rig.fail_if_any("a slow, steady remote reader", &failures);
}

/// During a burst: each node of `on` sees every node; n2's console
/// answers within 1 s.
fn watch(rig: &ClusterRig, on: &[&str], failures: &mut Vec<String>) {
    if failures.len() > 5 {
        return;
    }
    for name in on {
        match rig.node(name).nodes() {
            Ok(mut names) => {
                names.sort();
                if names != NAMES {
                    failures.push(format!(
                        "during the burst, {name}'s `nodes` named {names:?}"
                    ));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    let asked = Instant::now();
    if let Err(e) = rig.node("n2").ask("stats", Duration::from_secs(1)) {
        failures.push(format!(
            "during the burst, n2's `stats` after {:?}: {e}",
            asked.elapsed()
        ));
    }
}

/// After a burst: nothing lost anywhere, and `n2_slow` disconnects on n2
/// (each a `slow-consumer`), none elsewhere.
fn account(rig: &ClusterRig, n2_slow: u64, failures: &mut Vec<String>) {
    for name in NAMES {
        let want = if name == "n2" { n2_slow } else { 0 };
        match wait_disconnects(rig, name, want) {
            Ok(stats) if stats.get("disconnected.slow-consumer").unwrap_or(0) != want => {
                failures.push(format!(
                    "{name}: want {want} slow-consumer disconnect(s): {stats}"
                ));
            }
            Ok(stats) => {
                for key in ["cluster.lines_lost", "cluster.messages_lost"] {
                    if stats.get(key) != Some(0) {
                        failures.push(format!("{name}: {key} = {:?}: {stats}", stats.get(key)));
                    }
                }
            }
            Err(e) => failures.push(e),
        }
    }
}

/// `stats` of `name` once it counts `want` disconnects (within [`SOON`]).
fn wait_disconnects(
    rig: &ClusterRig,
    name: &str,
    want: u64,
) -> Result<crate::pressure::StatsMap, String> {
    super::wait_for(SOON, Duration::from_millis(100), || {
        let stats = rig.node(name).stats()?;
        if stats.disconnected_total() == want {
            Ok(stats)
        } else {
            Err(format!("{name}: want {want} disconnect(s): {stats}"))
        }
    })
    .map(|(stats, _)| stats)
}

/// Reads `member` 4 KiB at a time, one read every [`SLOW_READ_EVERY`],
/// until it has [`PACED_LINES`] lines, EOF or `deadline`: the texts of its
/// lines (`<id>: <text>` as sent), and its socket, still open.
fn read_slowly(member: Member, deadline: Instant) -> (Vec<String>, std::net::TcpStream) {
    let (mut stream, mut pending) = member.reader.into_parts();
    let mut lines = Vec::new();
    let mut chunk = [0u8; 4096];
    while lines.len() < PACED_LINES && Instant::now() < deadline {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        match std::io::Read::read(&mut stream, &mut chunk) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            if let Some((_, text)) = text.split_once(": ") {
                lines.push(text.to_owned());
            }
        }
        std::thread::sleep(SLOW_READ_EVERY);
    }
    // The socket too: closing it now would count as a disconnect.
    (lines, stream)
}
