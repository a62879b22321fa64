//! Node faults: a node SIGKILLed (leaves within the ttl, its name free
//! again after it) or SIGTERMed / `shutdown` (leaves at once, after its
//! drain). Broker faults are in [`broker`](super::broker).

use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::{ClusterRig, Collector, Member, NAMES, SOON, TTL, collectors, ids};
use crate::client::End;
use crate::pressure::serial;

/// Slack over a bound the issue states (polling, a debug build, two
/// shared cores): never enough to turn a wrong mechanism into a pass.
pub const SLACK: Duration = Duration::from_millis(1_000);

/// **A SIGKILLed node leaves within the ttl.** Two clients on each of three
/// nodes; n3 is killed with SIGKILL: n1's and n2's `nodes` and `list` lose
/// n3 and its clients within `--cluster-ttl` (3 s) + [`SLACK`] of the kill;
/// a restart of n3 at once is refused (its name is claimed until the
/// ttl); then `kick n3/…` answers `error unknown node n3`, a line from n1
/// still reaches n2, and a new n3 joins under the same name.
pub fn node_sigkill(runtime: &'static str) {
    let _serial = serial();
    let mut rig = ClusterRig::start(runtime, "cluster-sigkill", 3, &[]);
    let mut failures = Vec::new();
    let on = |name| collectors(&rig, name, 2);
    let (c1, c2, c3) = (on("n1"), on("n2"), on("n3"));
    let every: Vec<&Collector> = c1.iter().chain(&c2).chain(&c3).collect();
    if let Err(e) = rig.converge(&NAMES, &NAMES, &ids(&every), SOON) {
        failures.push(format!("before the kill: {e}"));
    }
    rig.fail_if_any("a SIGKILLed node", &failures);
    rig.nodes[2].server.kill();
    let killed = Instant::now();
    // The dead node's name is still claimed until the ttl: a restart under
    // it at once is refused (exit 2, naming it).
    let url = rig.redis.url();
    let at_once = super::starts::run_to_exit(runtime, &["--cluster", &url, "--node", "n3"]);
    if at_once.code != Some(2) || !at_once.output.contains("n3") {
        failures.push(format!(
            "restarting n3 at once after its SIGKILL: exit {:?} (want 2 naming n3): {}",
            at_once.code,
            at_once.output.trim()
        ));
    }
    let survivors: Vec<&Collector> = c1.iter().chain(&c2).collect();
    let bound = (TTL + SLACK).saturating_sub(killed.elapsed());
    match rig.converge(&["n1", "n2"], &["n1", "n2"], &ids(&survivors), bound) {
        Ok(_) => eprintln!(
            "cluster sigkill [{runtime}]: n3 left n1's and n2's presence {:?} after SIGKILL",
            killed.elapsed()
        ),
        Err(e) => failures.push(format!(
            "n3 still present {:?} after SIGKILL (ttl {TTL:?} + {SLACK:?}): {e}",
            killed.elapsed()
        )),
    }
    let answer = rig.node("n1").kick(&c3[0].id, SOON);
    if answer != "error unknown node n3" {
        failures.push(format!("kick {} on n1 answered {answer:?}", c3[0].id));
    }
    let _ = c1[0].send("still here");
    let want = format!("{}: still here", c1[0].id);
    if !c2[0].wait(SOON, |s| s.lines.iter().any(|(_, l)| *l == want)) {
        failures.push(format!("n2 never read {want:?} after n3 died"));
    }
    rejoin(&mut rig, &survivors, &mut failures);
    rig.fail_if_any("a SIGKILLed node", &failures);
}

/// Once n3 has left, a new n3 (a new incarnation, none of the old
/// clients) starts under the same name and joins: everyone sees it and
/// only its new client, which reads n1's lines.
fn rejoin(rig: &mut ClusterRig, survivors: &[&Collector], failures: &mut Vec<String>) {
    // The name's claim expires with the ttl, on Redis's clock: a moment
    // of slack after presence dropped it.
    std::thread::sleep(Duration::from_millis(500));
    let node = rig.start_node("n3", &[]);
    rig.nodes[2] = node;
    let fresh = match rig.node("n3").connect(Instant::now() + SOON) {
        Ok(member) => member.collect(),
        Err(e) => return failures.push(format!("the new n3: {e}")),
    };
    let mut every = ids(survivors);
    every.push(fresh.id.clone());
    if let Err(e) = rig.converge(&NAMES, &NAMES, &every, SOON) {
        failures.push(format!("after n3 restarted: {e}"));
    }
    let _ = survivors[0].send("welcome back");
    let want = format!("{}: welcome back", survivors[0].id);
    if !fresh.wait(SOON, |s| s.lines.iter().any(|(_, l)| *l == want)) {
        failures.push(format!("the new n3's client never read {want:?}"));
    }
}

/// **A SIGTERMed node leaves at once, after its drain.** The nodes run with
/// `--cluster-ttl 20s`, so only a goodbye can explain a quick exit from
/// presence: n3 (two clients) gets SIGTERM; its clients read EOF, it exits
/// 0, and n1's and n2's `nodes` and `list` lose it within 2 s of its exit.
/// Then n2 gets the console's `shutdown`: the same, seen from n1.
pub fn node_sigterm(runtime: &'static str) {
    let _serial = serial();
    let flags = [("--cluster-ttl", "20s")];
    let mut rig = ClusterRig::start(runtime, "cluster-sigterm", 3, &flags);
    let mut failures = Vec::new();
    let deadline = Instant::now() + SOON;
    let connect = |name: &str| -> Vec<Member> {
        (0..2)
            .map(|_| rig.node(name).connect(deadline).expect("client"))
            .collect()
    };
    let (m1, m3) = (connect("n1"), connect("n3"));
    let all: Vec<String> = m1.iter().chain(&m3).map(|m| m.id.clone()).collect();
    if let Err(e) = rig.converge(&NAMES, &NAMES, &all, SOON) {
        failures.push(format!("before SIGTERM: {e}"));
    }
    rig.fail_if_any("a SIGTERMed node", &failures);
    rig.nodes[2]
        .server
        .signal(Signal::TERM)
        .expect("SIGTERM n3");
    for mut member in m3 {
        let (_, end) = member.read_to_end(Instant::now() + SOON);
        if end != End::Eof {
            failures.push(format!("{} of n3 ended {end:?}, not EOF", member.id));
        }
    }
    let status = rig.nodes[2].server.wait_exit(SOON);
    let exited = Instant::now();
    if !status.is_some_and(|s| s.success()) {
        failures.push(format!("n3's exit after SIGTERM: {status:?}"));
    }
    let left: Vec<String> = m1.iter().map(|m| m.id.clone()).collect();
    let within = Duration::from_secs(2);
    match rig.converge(&["n1", "n2"], &["n1", "n2"], &left, within) {
        Ok(took) => {
            eprintln!("cluster sigterm [{runtime}]: n3 left presence {took:?} after its exit")
        }
        Err(e) => failures.push(format!(
            "n3 still present {:?} after its exit (ttl 20 s: no goodbye?): {e}",
            exited.elapsed()
        )),
    }
    // The console's `shutdown` on n2: the same goodbye.
    let answer = rig.node("n2").ask("shutdown", SOON);
    let status = rig.nodes[1].server.wait_exit(SOON);
    let exited = Instant::now();
    if !status.is_some_and(|s| s.success()) {
        failures.push(format!(
            "n2's exit after `shutdown` ({answer:?}): {status:?}"
        ));
    }
    match rig.converge(&["n1"], &["n1"], &left, within) {
        Ok(took) => {
            eprintln!("cluster sigterm [{runtime}]: n2 left presence {took:?} after its `shutdown`")
        }
        Err(e) => failures.push(format!(
            "n2 still present {:?} after its `shutdown` and exit: {e}",
            exited.elapsed()
        )),
    }
    rig.fail_if_any("a SIGTERMed node", &failures);
}

/// **The timing flags take effect.** Nodes run with `--cluster-heartbeat
/// 200ms --cluster-ttl 1s --cluster-timeout 300ms`: a SIGKILLed n3 leaves
/// n1's and n2's presence within 1 s + 0.5 s of the kill (the default ttl
/// would take 3 s), and with Redis stopped n1's kick of an n2 client
/// answers `error cluster unavailable` within 300 ms + 0.5 s (the default
/// timeout would take 1 s).
pub fn custom_timings(runtime: &'static str) {
    let _serial = serial();
    let flags = [
        ("--cluster-heartbeat", "200ms"),
        ("--cluster-ttl", "1s"),
        ("--cluster-timeout", "300ms"),
    ];
    let mut rig = ClusterRig::start(runtime, "cluster-timings", 3, &flags);
    let mut failures = Vec::new();
    let (c1, c2, c3) = (
        collectors(&rig, "n1", 1),
        collectors(&rig, "n2", 1),
        collectors(&rig, "n3", 1),
    );
    let every = ids(&[&c1[0], &c2[0], &c3[0]]);
    if let Err(e) = rig.converge(&NAMES, &NAMES, &every, SOON) {
        failures.push(format!("before the kill: {e}"));
    }
    rig.fail_if_any("custom cluster timings", &failures);
    rig.nodes[2].server.kill();
    let killed = Instant::now();
    let left = ids(&[&c1[0], &c2[0]]);
    let bound = Duration::from_millis(1_500);
    match rig.converge(&["n1", "n2"], &["n1", "n2"], &left, bound) {
        Ok(_) => eprintln!(
            "cluster timings [{runtime}]: n3 left {:?} after SIGKILL (ttl 1 s)",
            killed.elapsed()
        ),
        Err(e) => failures.push(format!("with --cluster-ttl 1s, n3 still present: {e}")),
    }
    rig.redis.pause();
    let asked = Instant::now();
    let answer = rig
        .node("n1")
        .kick(&format!("{} graceful t", c2[0].id), SOON);
    let took = asked.elapsed();
    rig.redis.resume();
    if answer != "error cluster unavailable" || took > Duration::from_millis(800) {
        failures.push(format!(
            "with --cluster-timeout 300ms and Redis stopped, the kick answered {answer:?} after {took:?}"
        ));
    }
    rig.fail_if_any("custom cluster timings", &failures);
}
