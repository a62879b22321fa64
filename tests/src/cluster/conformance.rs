//! Conformance across three nodes: presence (`nodes`, `list` on every node
//! see everyone), relay (every line reaches every client on every node
//! exactly once, prefixed with its sender's node-qualified id, in
//! per-sender order) and kicks (a remote id: `ok` only once the owner did
//! it, EOF at the client, exactly one disconnect on the owner; a stale id;
//! an unknown node; a local id with and without its node).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{ClusterRig, Member, NAMES, SOON, split_id};
use crate::client::End;
use crate::pressure::console::scrape;
use crate::pressure::serial;

/// Clients per node (two per shard with `--shards 2`).
pub const PER_NODE: usize = 4;
/// Lines each node's sender sends: more than one read's worth, so order
/// and duplicates are tested across many bus messages.
pub const LINES: usize = 200;

/// `NAME/#s:slot.gen` with the generation one higher: a later life of the
/// same slot, which the owner must call stale.
fn next_generation(id: &str) -> Option<String> {
    let (head, generation) = id.rsplit_once('.')?;
    let generation: u32 = generation.parse().ok()?;
    Some(format!("{head}.{}", generation.checked_add(1)?))
}

/// **Presence, relay and kicks across three nodes** (`PER_NODE` clients on
/// each):
/// 1. every node's `nodes` names n1, n2, n3 (`NAME channels=4 age_ms=…`)
///    and its `list` holds every client's node-qualified id (within
///    [`SOON`]);
/// 2. the first client of each node sends [`LINES`] numbered lines,
///    interleaved: every client of every node reads each exactly once,
///    as `<sender id>: <text>`, in each sender's order, and nothing else;
/// 3. kicks: n2's console kicks a client of n1 (`ok`, after which n1's
///    `stats` already counts it; the client reads the notice and EOF);
///    again from n2 and n3 (`error stale`); a later generation of a live
///    id (`error stale`); `n9/…` (`error unknown node n9`); n1's console
///    kicks its own client as `n1/<id>` and n2's its own by bare id (`ok`);
///    n1's console kicks a client of n3 with `abort` (`ok`, a reset);
/// 4. `stats`: the `cluster.*` keys (3 live nodes, messages published and
///    received, nothing lost or buffered; in `--metrics` too); exactly the
///    kicks as disconnects
///    on their owners; and every `list` converges to the survivors.
pub fn presence_relay_and_kicks(runtime: &'static str) {
    let _serial = serial();
    let flags = [("--metrics", "127.0.0.1:0")];
    let mut rig = ClusterRig::start(runtime, "cluster-conformance", 3, &flags);
    let mut failures = Vec::new();
    let greet_by = Instant::now() + SOON;
    let mut members: BTreeMap<&str, Vec<Member>> = BTreeMap::new();
    for name in NAMES {
        for k in 0..PER_NODE {
            match rig.node(name).connect(greet_by) {
                Ok(member) => {
                    if split_id(&member.id).map(|(n, _)| n) != Some(name) {
                        failures.push(format!("{name}: client {k} greeted as {}", member.id));
                    }
                    members.entry(name).or_default().push(member);
                }
                Err(e) => failures.push(format!("{name}: client {k}: {e}")),
            }
        }
    }
    rig.fail_if_any("connecting clients", &failures);
    let all_ids: Vec<String> = members.values().flatten().map(|m| m.id.clone()).collect();
    if let Err(e) = rig.converge(&NAMES, &NAMES, &all_ids, SOON) {
        failures.push(format!("presence did not converge: {e}"));
    }
    nodes_lines(&rig, &mut failures);
    relay(&mut members, &mut failures);
    cluster_stats(&rig, &mut failures);
    kicks(&rig, &mut members, &mut failures);
    rig.fail_if_any("presence, relay and kicks across three nodes", &failures);
}

/// Step 2: every sender's lines reach every client exactly once, in order.
fn relay(members: &mut BTreeMap<&str, Vec<Member>>, failures: &mut Vec<String>) {
    let senders: Vec<String> = members.values().map(|m| m[0].id.clone()).collect();
    for k in 0..LINES {
        for clients in members.values() {
            if let Err(e) = clients[0].send(&format!("line {k}")) {
                failures.push(format!("{} send: {e}", clients[0].id));
                return;
            }
        }
    }
    let deadline = Instant::now() + SOON;
    for member in members.values_mut().flatten() {
        let mut next: BTreeMap<&str, usize> = senders.iter().map(|s| (s.as_str(), 0)).collect();
        let mut problems = Vec::new();
        for _ in 0..LINES * senders.len() {
            let line = match member.next_line(deadline) {
                Ok(line) => line,
                Err(end) => {
                    problems.push(format!("stream ended {end:?}"));
                    break;
                }
            };
            let parsed = line.split_once(": ").and_then(|(from, text)| {
                let k: usize = text.strip_prefix("line ")?.parse().ok()?;
                Some((next.get_mut(from)?, k))
            });
            match parsed {
                Some((want, k)) if k == *want => *want += 1,
                Some((want, _)) => problems.push(format!("{line:?} where line {want} was due")),
                None => problems.push(format!("unexpected line {line:?}")),
            }
            if problems.len() > 3 {
                break;
            }
        }
        // Nothing more may come: a duplicate would arrive after the rest.
        if problems.is_empty() {
            match member.next_line(Instant::now() + Duration::from_millis(300)) {
                Err(End::Timeout) => {}
                other => problems.push(format!("after every line: {other:?}")),
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "relay to {}: read per sender {next:?} of {LINES}: {problems:?}",
                member.id
            ));
        }
    }
}

/// Every node's `nodes`: one line per live node, `NAME channels=K
/// age_ms=M`, with K its [`PER_NODE`] clients, then `.`.
fn nodes_lines(rig: &ClusterRig, failures: &mut Vec<String>) {
    for name in NAMES {
        let lines = match rig.node(name).ask("nodes", SOON) {
            Ok(lines) => lines,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let mut seen: Vec<&str> = Vec::new();
        for line in lines.iter().take(lines.len().saturating_sub(1)) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let number = |key: &str| {
                words
                    .iter()
                    .find_map(|w| w.strip_prefix(key)?.parse::<u64>().ok())
            };
            match (words.first(), number("channels="), number("age_ms=")) {
                (Some(node), Some(channels), Some(_)) if channels == PER_NODE as u64 => {
                    seen.push(node);
                }
                _ => failures.push(format!(
                    "{name}'s `nodes` line {line:?}: want `NAME channels={PER_NODE} age_ms=…`"
                )),
            }
        }
        seen.sort_unstable();
        if seen != NAMES || lines.last().map(String::as_str) != Some(".") {
            failures.push(format!("{name}'s `nodes`: {lines:?}"));
        }
    }
}

/// What a `stats` value must satisfy.
type Check = fn(u64) -> bool;

/// The `cluster.*` keys of `stats` issue 18 names, on every node: three
/// live nodes, messages published and received (after the relay: some),
/// broker errors and reconnects, lines lost and buffered (none, Redis up).
fn cluster_stats(rig: &ClusterRig, failures: &mut Vec<String>) {
    for name in NAMES {
        let stats = match rig.node(name).stats() {
            Ok(stats) => stats,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let want: [(&str, Check); 7] = [
            ("cluster.live_nodes", |v| v == 3),
            ("cluster.published", |v| v > 0),
            ("cluster.received", |v| v > 0),
            ("cluster.broker_errors", |_| true),
            ("cluster.reconnects", |_| true),
            ("cluster.lines_lost", |v| v == 0),
            ("cluster.lines_buffered", |v| v == 0),
        ];
        for (key, ok) in want {
            match stats.get(key) {
                Some(v) if ok(v) => {}
                other => failures.push(format!("{name}: `stats` {key} = {other:?}: {stats}")),
            }
        }
    }
    // The same keys in `--metrics`.
    let n1 = &rig.node("n1").server;
    let scraped = n1
        .metrics_addr(SOON)
        .ok_or_else(|| "no metrics address".to_owned())
        .and_then(|addr| scrape(addr, SOON).map_err(|e| e.to_string()));
    match scraped {
        Ok(body)
            if body.contains("\ntether_cluster_live_nodes 3\n")
                && body.contains("\ntether_cluster_published_total ") => {}
        Ok(body) => failures.push(format!(
            "n1's --metrics lacks tether_cluster_live_nodes 3 or tether_cluster_published_total: {}",
            body.lines().filter(|l| l.contains("cluster")).collect::<Vec<_>>().join(" | ")
        )),
        Err(e) => failures.push(format!("n1's --metrics: {e}")),
    }
}

/// Step 3 and 4: kicks of every kind, then the disconnect counts and
/// presence.
fn kicks(rig: &ClusterRig, members: &mut BTreeMap<&str, Vec<Member>>, failures: &mut Vec<String>) {
    let (n1, n2, n3) = (rig.node("n1"), rig.node("n2"), rig.node("n3"));
    let mut expect = |node: &super::Node, args: &str, want: &str| {
        let got = node.kick(args, SOON);
        if got != want {
            failures.push(format!(
                "{}: `kick {args}` answered {got:?}, want {want:?}",
                node.name
            ));
        }
    };
    let victim = members
        .get_mut("n1")
        .map(|m| m.remove(1))
        .expect("n1 clients");
    expect(n2, &format!("{} graceful bye", victim.id), "ok");
    let counted = n1.stats().map(|s| s.get("disconnected.kicked"));
    let mut problems = Vec::new();
    if counted != Ok(Some(1)) {
        problems.push(format!(
            "right after n2's `ok`, n1 counts {counted:?} kicked (want 1: `ok` only after the owner did it)"
        ));
    }
    let victim_id = victim.id.clone();
    check_kicked(victim, "bye", &mut problems);
    expect(n2, &victim_id, "error stale");
    expect(n3, &format!("{victim_id} abort"), "error stale");
    let live = members["n1"][1].id.clone();
    if let Some(forged) = next_generation(&live) {
        expect(n3, &format!("{forged} abort"), "error stale");
    }
    expect(n3, "n9/#0:0.1", "error unknown node n9");
    malformed_kicks(n1, &mut problems);
    // n1's own client by its node-qualified id, and n2's by its bare id:
    // both local kicks.
    let own = members
        .get_mut("n1")
        .map(|m| m.remove(1))
        .expect("n1 clients");
    expect(n1, &format!("{} graceful mine", own.id), "ok");
    check_kicked(own, "mine", &mut problems);
    let bare = members
        .get_mut("n2")
        .map(|m| m.remove(1))
        .expect("n2 clients");
    expect(n2, &format!("{} graceful local", bare.local_id()), "ok");
    check_kicked(bare, "local", &mut problems);
    // An abortive kick across nodes: the client reads a reset (SO_LINGER 0).
    let mut aborted = members
        .get_mut("n3")
        .map(|m| m.remove(1))
        .expect("n3 clients");
    expect(n1, &format!("{} abort", aborted.id), "ok");
    let (lines, end) = aborted.read_to_end(Instant::now() + SOON);
    if end != End::Reset {
        problems.push(format!(
            "abort-kicked {} read {lines:?} then {end:?}, want a reset",
            aborted.id
        ));
    }
    failures.extend(problems);
    for (name, want) in [("n1", 2), ("n2", 1), ("n3", 1)] {
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
    let survivors: Vec<String> = members.values().flatten().map(|m| m.id.clone()).collect();
    if let Err(e) = rig.converge(&NAMES, &NAMES, &survivors, SOON) {
        failures.push(format!("presence after the kicks: {e}"));
    }
}

/// Malformed node-qualified ids: each `kick` answers an error (and, as
/// the disconnect counts show later, kicks nobody).
fn malformed_kicks(node: &super::Node, problems: &mut Vec<String>) {
    for bad in ["n2/#x", "n2/", "/#0:0.1", "bad!name/#0:0.1", "n2/#0:0.1/x"] {
        let got = node.kick(bad, SOON);
        if !got.starts_with("error ") {
            problems.push(format!(
                "{}: `kick {bad}` answered {got:?}, want an error",
                node.name
            ));
        }
    }
}

/// A kicked client reads `* kicked: <reason>` and then EOF.
fn check_kicked(mut member: Member, reason: &str, problems: &mut Vec<String>) {
    let (lines, end) = member.read_to_end(Instant::now() + SOON);
    let notice = format!("* kicked: {reason}");
    if lines.last() != Some(&notice) || end != End::Eof {
        problems.push(format!(
            "kicked {} read {lines:?} then {end:?}, want {notice:?} then EOF",
            member.id
        ));
    }
}

/// **`redis://HOST:PORT/DB`: one cluster per database.** Nodes `a` and
/// `b` on database 1 and a node `a` on database 2 of the same Redis (the
/// same name: a name is claimed per cluster): database 1's `nodes` name `a`
/// and `b`, database 2's only its `a`; a line on database 1 reaches `b`'s
/// client and not database 2's.
pub fn databases_are_separate(runtime: &'static str) {
    let _serial = serial();
    let mut rig = ClusterRig::start(runtime, "cluster-databases", 0, &[]);
    let (one, two) = (
        format!("{}/1", rig.redis.url()),
        format!("{}/2", rig.redis.url()),
    );
    let nodes = [
        rig.start_node_at(&one, "a", &[]),
        rig.start_node_at(&one, "b", &[]),
        rig.start_node_at(&two, "a", &[]),
    ];
    rig.nodes.extend(nodes);
    let mut failures = Vec::new();
    let deadline = Instant::now() + SOON;
    let mut clients: Vec<Member> = Vec::new();
    for node in &rig.nodes {
        match node.connect(deadline) {
            Ok(member) => clients.push(member),
            Err(e) => failures.push(e),
        }
    }
    rig.fail_if_any("one cluster per database", &failures);
    let nodes_of = |k: usize| -> Result<Vec<String>, String> {
        let mut names = rig.nodes[k].nodes()?;
        names.sort();
        Ok(names)
    };
    let seen = super::wait_for(SOON, Duration::from_millis(50), || {
        let got = (nodes_of(0)?, nodes_of(1)?, nodes_of(2)?);
        if got.0 == ["a", "b"] && got.1 == ["a", "b"] && got.2 == ["a"] {
            Ok(())
        } else {
            Err(format!("`nodes` on db 1 a, db 1 b, db 2 a: {got:?}"))
        }
    });
    if let Err(e) = seen {
        failures.push(e);
    }
    let _ = clients[0].send("db one");
    let want = format!("{}: db one", clients[0].id);
    match clients[1].next_line(Instant::now() + SOON) {
        Ok(line) if line == want => {}
        other => failures.push(format!("db 1's b read {other:?}, want {want:?}")),
    }
    match clients[2].next_line(Instant::now() + Duration::from_millis(500)) {
        Err(End::Timeout) => {}
        other => failures.push(format!(
            "db 2's client read {other:?}: the databases are not separate"
        )),
    }
    rig.fail_if_any("one cluster per database", &failures);
}
