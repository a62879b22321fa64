//! Flow across nodes: a remote client that reads nothing must not stall
//! the other clients of its node, nor its node's heartbeats, nor lose a
//! line for anyone else (issue 18: "no client of a healthy node ever pays
//! for a broker problem" — nor for another client).

use std::io::Write;
use std::net::SocketAddr;
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

/// **A remote client that reads nothing.** n2 has a client with a 4 KiB
/// window that never reads, beside a reading one; n3 has a reading one.
/// A client of n1 sends [`LINES`] lines of [`LINE_LEN`] bytes as fast as
/// TCP takes them. Throughout, n1's `nodes` names all three nodes (n2's
/// heartbeats go on while its deliveries wait) and n2 answers `stats`
/// within 1 s; in the end every reading client of every node read the
/// whole burst in order exactly once, nothing is counted lost, and the
/// non-reader is the only disconnect (on n2).
pub fn slow_remote_reader(runtime: &'static str) {
    let _serial = serial();
    let mut rig = ClusterRig::start(runtime, "cluster-slow-reader", 3, &[]);
    let mut failures = Vec::new();
    let deadline = Instant::now() + SOON;
    let connect = |name: &str| -> Collector {
        rig.node(name)
            .connect(deadline)
            .unwrap_or_else(|e| panic!("{e}"))
            .collect()
    };
    let (sender, fast2, fast3) = (connect("n1"), connect("n2"), connect("n3"));
    let slow = small_window(rig.node("n2").server.chat, deadline)
        .unwrap_or_else(|e| panic!("n2: the small-window client: {e}"));
    let every = vec![
        sender.id.clone(),
        fast2.id.clone(),
        fast3.id.clone(),
        slow.id.clone(),
    ];
    if let Err(e) = rig.converge(&NAMES, &NAMES, &every, SOON) {
        failures.push(format!("before the burst: {e}"));
    }
    rig.fail_if_any("a remote client that reads nothing", &failures);
    let burst_deadline = Instant::now() + Duration::from_secs(120);
    let writer = {
        let mut stream = sender.writer();
        let _ = stream.set_write_timeout(Some(WRITE_STALL));
        std::thread::spawn(move || -> Result<(), String> {
            for k in 0..LINES {
                stream
                    .write_all(format!("{}\n", burst_line(k)).as_bytes())
                    .map_err(|e| format!("line {k}: {e}"))?;
            }
            Ok(())
        })
    };
    let prefix = format!("{}: burst ", sender.id);
    let done = |c: &Collector| {
        c.with(|s| {
            s.lines
                .iter()
                .filter(|(_, l)| l.starts_with(&prefix))
                .count()
        }) >= LINES
    };
    let mut checks = 0;
    while !(done(&fast2) && done(&fast3) && done(&sender)) && Instant::now() < burst_deadline {
        watch(&rig, &mut failures);
        checks += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Err(e) = join_by("the burst sender", writer, burst_deadline) {
        failures.push(format!("the sender: {e}"));
    }
    for c in [&sender, &fast2, &fast3] {
        let numbers: Vec<usize> = c
            .texts_from(&sender.id)
            .iter()
            .filter_map(|t| t.strip_prefix("burst ")?.split(' ').next()?.parse().ok())
            .collect();
        if numbers != (0..LINES).collect::<Vec<_>>() {
            failures.push(format!(
                "{} read {} burst lines, not 0..{LINES} in order once each",
                c.id,
                numbers.len()
            ));
        }
    }
    account(&rig, &mut failures);
    eprintln!("cluster slow-reader [{runtime}]: {checks} checks of `nodes` during the burst");
    drop(slow);
    rig.fail_if_any("a remote client that reads nothing", &failures);
}

/// During the burst: n1 sees every node, n2's console answers within 1 s.
fn watch(rig: &ClusterRig, failures: &mut Vec<String>) {
    if failures.len() > 5 {
        return;
    }
    match rig.node("n1").nodes() {
        Ok(mut names) => {
            names.sort();
            if names != NAMES {
                failures.push(format!("during the burst, n1's `nodes` named {names:?}"));
            }
        }
        Err(e) => failures.push(e),
    }
    let asked = Instant::now();
    if let Err(e) = rig.node("n2").ask("stats", Duration::from_secs(1)) {
        failures.push(format!(
            "during the burst, n2's `stats` after {:?}: {e}",
            asked.elapsed()
        ));
    }
}

/// After the burst: nothing lost anywhere, and the non-reader on n2 is the
/// only disconnect.
fn account(rig: &ClusterRig, failures: &mut Vec<String>) {
    for name in NAMES {
        let want = u64::from(name == "n2");
        let check = wait_disconnects(rig, name, want);
        match check {
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
