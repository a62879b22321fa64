//! Scale: thousands of clients on each of three nodes, presence of every
//! one on every node, and cross-node kicks from three consoles at once,
//! each kicked exactly once with EOF at its client.

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::time::Instant;

use super::{ClusterRig, Member, NAMES, SOON};
use crate::client::{End, raise_fd_limit};
use crate::pressure::net::start_connect;
use crate::pressure::serial;
use crate::pressure::server::Admin;

/// The size of [`cross_node_kicks`].
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Shown in messages.
    pub name: &'static str,
    /// Clients on each node.
    pub per_node: usize,
    /// Cross-node kicks, spread over the three nodes as owners.
    pub kicks: usize,
}

/// Issue 18's size, in every run: on two shared cores a debug build
/// connects the 9,000 clients and kicks 1,000 in about 10 s.
pub const DEFAULT: Scale = Scale {
    name: "issue 18",
    per_node: 3_000,
    kicks: 1_000,
};

/// Connects in flight at once (well under the listen backlog of 1,024).
pub const BATCH: usize = 200;

/// Connects `count` clients to `addr` in batches of [`BATCH`] and reads
/// their greetings.
fn connect_many(node: &str, addr: SocketAddr, count: usize) -> Result<Vec<Member>, String> {
    let deadline = Instant::now() + SOON * 6;
    let mut members = Vec::with_capacity(count);
    while members.len() < count {
        let batch = BATCH.min(count - members.len());
        let streams: Vec<_> = (0..batch)
            .map(|_| start_connect(addr, None).map_err(|e| format!("{node}: connect: {e}")))
            .collect::<Result<_, _>>()?;
        for stream in streams {
            let member = Member::greet(stream, deadline)
                .map_err(|e| format!("{node}: client {}: {e}", members.len()))?;
            members.push(member);
        }
    }
    Ok(members)
}

/// Runs `targets` as `kick <id> graceful scale` on the console at `admin`,
/// one after the other: the answers that were not `ok`.
fn kick_all(admin: SocketAddr, targets: &[String]) -> Vec<String> {
    let mut console = match Admin::connect(admin, SOON) {
        Ok(console) => console,
        Err(e) => return vec![format!("console {admin}: {e}")],
    };
    let mut bad = Vec::new();
    for id in targets {
        match console.command(&format!("kick {id} graceful scale"), SOON) {
            Ok(lines) if lines == ["ok"] => {}
            other => bad.push(format!("kick {id}: {other:?}")),
        }
        if bad.len() > 5 {
            break;
        }
    }
    bad
}

/// **Cross-node kicks at scale.** `per_node` clients on each of n1, n2, n3
/// (every one greeted `NAME/#…`); every node's `list` holds all of them;
/// then `kicks` clients, a third owned by each node, are kicked from the
/// *next* node's console (n1's by n2, n2's by n3, n3's by n1), the three
/// consoles at once: every answer is `ok`, every kicked client reads the
/// notice and EOF, no other client reads anything, each owner counts
/// exactly its kicks as `disconnected.kicked` and no other disconnect, and
/// every `list` converges to the survivors.
pub fn cross_node_kicks(runtime: &'static str, scale: &Scale) {
    let _serial = serial();
    let want_fds = (3 * scale.per_node + 2_000) as u64;
    let fds = raise_fd_limit(want_fds);
    assert!(
        fds >= want_fds,
        "cross-node kicks at scale need {want_fds} file descriptors (RLIMIT_NOFILE), got {fds}: \
         raise the hard limit (ulimit -Hn)"
    );
    let mut rig = ClusterRig::start(runtime, "cluster-scale", 3, &[]);
    let mut failures = Vec::new();
    let started = Instant::now();
    let mut members: Vec<Vec<Member>> = Vec::new();
    for name in NAMES {
        match connect_many(name, rig.node(name).server.chat, scale.per_node) {
            Ok(m) => members.push(m),
            Err(e) => failures.push(e),
        }
    }
    rig.fail_if_any("connecting the clients", &failures);
    let connected = started.elapsed();
    let all: Vec<String> = members.iter().flatten().map(|m| m.id.clone()).collect();
    let presence = rig.converge(&NAMES, &NAMES, &all, SOON * 3);
    if let Err(e) = &presence {
        failures.push(format!("presence of {} clients: {e}", all.len()));
    }
    // Victims: the last clients of each owner, taken round-robin.
    let mut victims: Vec<Vec<Member>> = (0..3).map(|_| Vec::new()).collect();
    for k in 0..scale.kicks {
        if let Some(m) = members[k % 3].pop() {
            victims[k % 3].push(m);
        }
    }
    let kicks_started = Instant::now();
    failures.extend(kick_from_next_nodes(&rig, &victims));
    let kicks_took = kicks_started.elapsed();
    check_victims(&mut victims, &mut failures);
    check_bystanders(&mut members, &mut failures);
    for (owner, name) in NAMES.iter().enumerate() {
        let want = victims[owner].len() as u64;
        match rig.node(name).stats() {
            Ok(stats) => {
                let kicked = stats.get("disconnected.kicked").unwrap_or(0);
                if kicked != want || stats.disconnected_total() != want {
                    failures.push(format!(
                        "{name}: want exactly {want} kicked and no other disconnect: {stats}"
                    ));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    let survivors: Vec<String> = members.iter().flatten().map(|m| m.id.clone()).collect();
    if let Err(e) = rig.converge(&NAMES, &NAMES, &survivors, SOON * 3) {
        failures.push(format!("presence after the kicks: {e}"));
    }
    eprintln!(
        "cluster scale {} [{runtime}]: {} clients connected in {connected:?}, presence in {:?}, \
         {} cross-node kicks in {kicks_took:?}",
        scale.name,
        all.len(),
        presence.ok(),
        scale.kicks
    );
    rig.fail_if_any(
        &format!("cross-node kicks at scale ({})", scale.name),
        &failures,
    );
}

/// Kicks `victims[k]` (clients of node k) from node k+1's console, the
/// three consoles at once: the answers that were not `ok`.
fn kick_from_next_nodes(rig: &ClusterRig, victims: &[Vec<Member>]) -> Vec<String> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..3)
            .map(|owner| {
                let issuer = rig.nodes[(owner + 1) % 3].server.admin;
                let targets: Vec<String> = victims[owner].iter().map(|m| m.id.clone()).collect();
                scope.spawn(move || kick_all(issuer, &targets))
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| {
                t.join()
                    .unwrap_or_else(|_| vec!["kick thread panicked".into()])
            })
            .collect()
    })
}

/// Every kicked client reads `* kicked: scale` and EOF.
fn check_victims(victims: &mut [Vec<Member>], failures: &mut Vec<String>) {
    let deadline = Instant::now() + SOON;
    let mut bad = 0;
    for member in victims.iter_mut().flatten() {
        let (lines, end) = member.read_to_end(deadline);
        if lines != ["* kicked: scale"] || end != End::Eof {
            bad += 1;
            if bad <= 5 {
                failures.push(format!(
                    "kicked {} read {lines:?} then {end:?}, want the notice then EOF",
                    member.id
                ));
            }
        }
    }
    if bad > 5 {
        failures.push(format!("… {bad} kicked clients in all did not end so"));
    }
}

/// No client that was not kicked has anything to read, EOF included.
fn check_bystanders(members: &mut [Vec<Member>], failures: &mut Vec<String>) {
    let mut bad = Vec::new();
    let mut byte = [0u8; 1];
    for member in members.iter_mut().flatten() {
        let stream = member.reader.stream();
        let _ = stream.set_nonblocking(true);
        let outcome = (&mut &*stream).read(&mut byte);
        let _ = stream.set_nonblocking(false);
        match outcome {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => bad.push(format!("{}: {other:?}", member.id)),
        }
        if !member.reader.partial().is_empty() {
            bad.push(format!(
                "{}: unread {:?}",
                member.id,
                member.reader.partial()
            ));
        }
    }
    if !bad.is_empty() {
        failures.push(format!(
            "{} clients that were not kicked read something (first: {:?})",
            bad.len(),
            &bad[..bad.len().min(5)]
        ));
    }
}
