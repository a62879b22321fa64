//! Broker faults: Redis SIGKILLed and restarted mid-burst (no local client
//! pays, cross-node operations answer `error cluster unavailable` in time,
//! presence comes back, every cross-node line delivered in order or
//! counted lost); Redis paused with SIGSTOP (nothing hangs).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::faults::SLACK;
use super::{ClusterRig, Collector, NAMES, SOON, TIMEOUT, collectors, ids};
use crate::client::End;
use crate::pressure::serial;

/// Lines of the burst, one every [`PACE`].
pub const BURST: usize = 1_000;
/// The burst's pace.
pub const PACE: Duration = Duration::from_millis(4);
/// How long Redis stays down: long enough for the outbox to hold hundreds
/// of lines, short of the ttl so no node need expire (an outage past the
/// ttl is [`outage`](super::outage)'s).
pub const OUTAGE: Duration = Duration::from_millis(1_500);

/// The numbers of `burst <k>` texts, in arrival order.
fn burst_numbers(texts: &[String]) -> Vec<usize> {
    texts
        .iter()
        .filter_map(|t| t.strip_prefix("burst ")?.parse().ok())
        .collect()
}

/// **Redis SIGKILLed and restarted mid-burst.** A client of n1 sends
/// [`BURST`] numbered lines, one every [`PACE`]; after a fifth of them
/// Redis is SIGKILLed, and restarted (empty, same port) [`OUTAGE`] later.
/// While it is down: a line on n2 reaches n2's other client within 1 s
/// (local chat goes on), n1's local client keeps reading the burst, and
/// n2's `kick` of an n1 client answers `error cluster unavailable` within
/// `--cluster-timeout` + 0.5 s; a client of n3 leaves and another comes.
/// After the restart every node's `nodes` and `list` hold exactly everyone
/// again, that change included, within 1 s backoff + heartbeat + [`SLACK`].
/// In the end: n1's local client read the whole burst in order; each
/// client of n2 and n3 read an increasing subsequence, exactly once each,
/// every line written after the kill unless n1 counts it in
/// `cluster.lines_lost` (exactly), and no fewer than the rest minus what
/// its node counts in `cluster.messages_lost` (never lost silently: see
/// `account_burst`); no client was dropped, no disconnect counted but the
/// client that left;
/// every node counts a reconnect; a line after the restart crosses nodes.
pub fn redis_restart_mid_burst(runtime: &'static str) {
    restart_mid_burst(runtime, None);
}

/// **The same with `--cluster-outbox 4k`**: the outage's lines overflow
/// the outbox, so n1 must count some in `cluster.lines_lost` — exactly
/// those its remote clients lack — and deliver the rest in order.
pub fn redis_restart_small_outbox(runtime: &'static str) {
    restart_mid_burst(runtime, Some("4k"));
}

fn restart_mid_burst(runtime: &'static str, outbox: Option<&'static str>) {
    let _serial = serial();
    let flags: Vec<(&str, &str)> = outbox.iter().map(|o| ("--cluster-outbox", *o)).collect();
    let mut rig = ClusterRig::start(runtime, "cluster-redis-restart", 3, &flags);
    let mut failures = Vec::new();
    let (c1, c2, c3) = (
        collectors(&rig, "n1", 2),
        collectors(&rig, "n2", 2),
        collectors(&rig, "n3", 1),
    );
    // Presence that changes while Redis is down: `gone` leaves, `fresh`
    // comes (below).
    let gone = rig
        .node("n3")
        .connect(Instant::now() + SOON)
        .expect("client");
    let mut every = ids(&c1.iter().chain(&c2).chain(&c3).collect::<Vec<_>>());
    every.push(gone.id.clone());
    if let Err(e) = rig.converge(&NAMES, &NAMES, &every, SOON) {
        failures.push(format!("before the burst: {e}"));
    }
    rig.fail_if_any("Redis restarted mid-burst", &failures);
    let sender_id = c1[0].id.clone();
    let sent = Arc::new(AtomicUsize::new(0));
    let burst = spawn_paced_burst(&c1[0], sent.clone());
    while sent.load(Ordering::Relaxed) < BURST / 5 {
        std::thread::sleep(Duration::from_millis(5));
    }
    rig.redis.kill();
    let down = Instant::now();
    let killed_at = sent.load(Ordering::Relaxed);
    during_outage(&rig, &c1, &c2, &mut failures);
    every.retain(|id| *id != gone.id);
    drop(gone);
    let fresh = rig
        .node("n3")
        .connect(Instant::now() + SOON)
        .expect("client");
    every.push(fresh.id.clone());
    std::thread::sleep(OUTAGE.saturating_sub(down.elapsed()));
    let alone: Vec<_> = NAMES.iter().map(|n| rig.node(n).nodes()).collect();
    let local_during = c1[1].with(|s| s.lines.iter().filter(|(t, _)| *t > down).count());
    rig.redis.restart();
    let up = Instant::now();
    if local_during == 0 {
        failures.push("n1's local client read nothing while Redis was down".into());
    }
    // Back within the capped backoff (1 s) + a heartbeat + slack, the
    // change made during the outage included (a re-announce, not a replay).
    let back = Duration::from_secs(2) + SLACK;
    match rig.converge(&NAMES, &NAMES, &every, back) {
        Ok(took) => eprintln!(
            "cluster redis-restart [{runtime}]: `nodes` at the end of the outage {alone:?}; \
             presence back {took:?} after the restart"
        ),
        Err(e) => failures.push(format!("after the restart, presence not back: {e}")),
    }
    crate::pressure::join_by("the burst sender", burst, Instant::now() + SOON);
    // Quiet: every remote client has the whole burst or read nothing new
    // for two seconds.
    let quiet_by = Instant::now() + SOON;
    while !quiet(&[&c2[0], &c2[1], &c3[0]], &sender_id, up) && Instant::now() < quiet_by {
        std::thread::sleep(Duration::from_millis(50));
    }
    let lost = account_burst(&rig, &sender_id, killed_at, [&c1, &c2, &c3], &mut failures);
    if outbox.is_some() && lost.is_none_or(|l| l == 0) {
        failures.push(format!(
            "with --cluster-outbox {outbox:?}, n1 counts {lost:?} lines lost: the overflow was not exercised"
        ));
    }
    drop(fresh);
    crosses(
        &c2[1],
        "after the restart",
        &[&c1[1], &c3[0]],
        &mut failures,
    );
    eprintln!(
        "cluster redis-restart [{runtime}]: down {:?}, n1's local client read {local_during} lines meanwhile",
        up - down
    );
    rig.fail_if_any("Redis restarted mid-burst", &failures);
}

/// [`BURST`] lines `burst <k>` from `sender`, one every [`PACE`], counted
/// in `sent` as they are written.
fn spawn_paced_burst(sender: &Collector, sent: Arc<AtomicUsize>) -> JoinHandle<()> {
    let mut writer = sender.writer();
    std::thread::spawn(move || {
        for k in 0..BURST {
            if writer.write_all(format!("burst {k}\n").as_bytes()).is_err() {
                return;
            }
            sent.store(k + 1, Ordering::Relaxed);
            std::thread::sleep(PACE);
        }
    })
}

/// `from` sends `text`; each of `to` reads it (within [`SOON`]).
fn crosses(from: &Collector, text: &str, to: &[&Collector], failures: &mut Vec<String>) {
    let _ = from.send(text);
    let want = format!("{}: {text}", from.id);
    for c in to {
        if !c.wait(SOON, |s| s.lines.iter().any(|(_, l)| *l == want)) {
            failures.push(format!("{} never read {want:?}", c.id));
        }
    }
}

/// Whether each of `clients` has the whole burst of `sender` or has read
/// nothing for two seconds (counted from `since` at the earliest).
fn quiet(clients: &[&Collector], sender: &str, since: Instant) -> bool {
    let prefix = format!("{sender}: burst ");
    clients.iter().all(|c| {
        c.with(|s| {
            let got = s
                .lines
                .iter()
                .filter(|(_, l)| l.starts_with(&prefix))
                .count();
            let last = s.lines.last().map_or(since, |(t, _)| (*t).max(since));
            let idle = last.elapsed() > Duration::from_secs(2);
            got >= BURST || idle
        })
    })
}

/// The checks while Redis is down: local chat on n2, n1's burst locally,
/// and a cross-node kick that answers `error cluster unavailable` in time.
fn during_outage(rig: &ClusterRig, c1: &[Collector], c2: &[Collector], failures: &mut Vec<String>) {
    std::thread::sleep(Duration::from_millis(200));
    let _ = c2[1].send("local while redis is down");
    let want = format!("{}: local while redis is down", c2[1].id);
    if !c2[0].wait(Duration::from_secs(1), |s| {
        s.lines.iter().any(|(_, l)| *l == want)
    }) {
        failures.push(format!(
            "with Redis down, n2's client did not read {want:?} within 1 s (local chat stalled)"
        ));
    }
    let asked = Instant::now();
    let answer = rig
        .node("n2")
        .kick(&format!("{} graceful outage", c1[1].id), TIMEOUT + SOON);
    let took = asked.elapsed();
    if answer != "error cluster unavailable" || took > TIMEOUT + Duration::from_millis(500) {
        failures.push(format!(
            "with Redis down, n2's kick of {} answered {answer:?} after {took:?} \
             (want `error cluster unavailable` within {TIMEOUT:?} + 0.5 s)",
            c1[1].id
        ));
    }
}

/// The end of the burst: local order, remote order and exactly-once, the
/// loss account, nobody dropped, reconnects counted. `killed_at`: lines
/// the sender had written when Redis was killed; every later line was
/// handed to n1 with Redis down, so it must reach every client (the
/// outbox) unless n1 counts it in `cluster.lines_lost`: exactly. Earlier
/// lines could die inside Redis (acknowledged, not yet read): each one a
/// client lacks must be counted lost somewhere (n1's `cluster.lines_lost`
/// plus its node's `cluster.messages_lost`, which also counts other
/// messages, hence at most).
fn account_burst(
    rig: &ClusterRig,
    sender: &str,
    killed_at: usize,
    [c1, c2, c3]: [&[Collector]; 3],
    failures: &mut Vec<String>,
) -> Option<u64> {
    let local = burst_numbers(&c1[1].texts_from(sender));
    if local != (0..BURST).collect::<Vec<_>>() {
        failures.push(format!(
            "n1's local client read {} burst lines, not 0..{BURST} in order (first {:?})",
            local.len(),
            &local[..local.len().min(10)]
        ));
    }
    let stats: Vec<_> = NAMES.iter().map(|n| (*n, rig.node(n).stats())).collect();
    let stat = |name: &str, key: &str| -> Option<u64> {
        let (_, s) = stats.iter().find(|(n, _)| *n == name)?;
        s.as_ref().ok()?.get(key)
    };
    let sender_lost = stat("n1", "cluster.lines_lost");
    for (node, clients) in [("n2", c2), ("n3", c3)] {
        let node_lost = stat(node, "cluster.messages_lost");
        for c in clients {
            let got = burst_numbers(&c.texts_from(sender));
            if let Some(at) = got.windows(2).position(|w| w[0] >= w[1]) {
                let around = &got[at.saturating_sub(3)..(at + 5).min(got.len())];
                failures.push(format!(
                    "{} read the burst out of order or twice: … {around:?} … ({} lines; the \
                     kill came after line {killed_at})",
                    c.id,
                    got.len()
                ));
            }
            let missing = (BURST - got.len()) as u64;
            let late = got.iter().filter(|&&k| k >= killed_at).count() as u64;
            let late_missing = (BURST - killed_at) as u64 - late;
            eprintln!(
                "cluster redis-restart: {} read {} of {BURST} ({late} of the {} written after the kill); n1 cluster.lines_lost {sender_lost:?}, \
                 {node} cluster.messages_lost {node_lost:?}",
                c.id,
                got.len(),
                BURST - killed_at
            );
            if sender_lost.is_none() || node_lost.is_none() {
                failures.push(format!(
                    "no cluster.lines_lost on n1 or cluster.messages_lost on {node}"
                ));
            } else if Some(late_missing) != sender_lost {
                failures.push(format!(
                    "{} lacks {late_missing} of the lines written after Redis was killed, but n1 \
                     counts {sender_lost:?} `cluster.lines_lost`: lost silently or miscounted",
                    c.id
                ));
            } else if missing > sender_lost.unwrap_or(0) + node_lost.unwrap_or(0) {
                failures.push(format!(
                    "{} lacks {missing} burst lines; n1's cluster.lines_lost {sender_lost:?} + \
                     {node}'s cluster.messages_lost {node_lost:?} do not cover them: lost silently",
                    c.id
                ));
            }
        }
    }
    for c in c1.iter().chain(c2).chain(c3) {
        if let Some(end) = c.with(|s| s.end) {
            failures.push(format!("{} was dropped: {end:?}", c.id));
        }
    }
    check_nodes_after(&stats, failures);
    sender_lost
}

/// After the restart, from each node's `stats`: no disconnect but n3's
/// client that left during the outage, and a reconnect counted.
fn check_nodes_after(
    stats: &[(&str, Result<crate::pressure::StatsMap, String>)],
    failures: &mut Vec<String>,
) {
    for (name, s) in stats {
        match s {
            Ok(s) => {
                let want = u64::from(*name == "n3");
                if s.disconnected_total() != want {
                    failures.push(format!("{name} counts disconnects (want {want}): {s}"));
                }
                if s.get("cluster.reconnects").unwrap_or(0) == 0 {
                    failures.push(format!("{name} counts no `cluster.reconnects`: {s}"));
                }
            }
            Err(e) => failures.push(e.clone()),
        }
    }
}

/// The checks while Redis is stopped: every console answers in time, a
/// line on n1 reaches n1's other client, a kick of `victim` (on n2) from
/// n1 answers `error cluster unavailable` in time. Returns the line n2
/// must read once Redis runs again.
fn while_paused(
    rig: &ClusterRig,
    c1: &[Collector],
    victim: &Collector,
    failures: &mut Vec<String>,
) -> String {
    for name in NAMES {
        for command in ["stats", "nodes", "list"] {
            let asked = Instant::now();
            let answer = rig.node(name).ask(command, ANSWER + SOON);
            if answer.is_err() || asked.elapsed() > ANSWER {
                failures.push(format!(
                    "Redis stopped: {name}'s `{command}` took {:?}: {answer:?}",
                    asked.elapsed()
                ));
            }
        }
    }
    let _ = c1[0].send("while redis is stopped");
    let want = format!("{}: while redis is stopped", c1[0].id);
    if !c1[1].wait(Duration::from_secs(1), |s| {
        s.lines.iter().any(|(_, l)| *l == want)
    }) {
        failures.push(format!(
            "Redis stopped: n1's client did not read {want:?} within 1 s"
        ));
    }
    let asked = Instant::now();
    let answer = rig
        .node("n1")
        .kick(&format!("{} graceful paused", victim.id), TIMEOUT + SOON);
    if answer != "error cluster unavailable"
        || asked.elapsed() > TIMEOUT + Duration::from_millis(500)
    {
        failures.push(format!(
            "Redis stopped: n1's kick of {} answered {answer:?} after {:?}",
            victim.id,
            asked.elapsed()
        ));
    }
    want
}

/// How long Redis stays stopped: short of the ttl, so no node expires.
pub const PAUSE: Duration = Duration::from_millis(1_500);
/// A console answer with a stopped broker: within this.
pub const ANSWER: Duration = Duration::from_millis(1_500);

/// **Redis paused with SIGSTOP (a broker that accepts and answers
/// nothing).** For [`PAUSE`]: every node answers `stats`, `nodes` and
/// `list` within [`ANSWER`]; a line on n1 reaches n1's other client within
/// 1 s; n1's `kick` of an n2 client answers `error cluster unavailable`
/// within `--cluster-timeout` + 0.5 s. After SIGCONT: the paused line
/// reaches n2, presence is whole (without the client of the `unavailable`
/// kick if its owner ran it late: reported), and a cross-node kick answers
/// `ok` with EOF at its client; nobody else was dropped.
pub fn redis_paused(runtime: &'static str) {
    let _serial = serial();
    let mut rig = ClusterRig::start(runtime, "cluster-redis-paused", 3, &[]);
    let mut failures = Vec::new();
    let (c1, c2) = (collectors(&rig, "n1", 2), collectors(&rig, "n2", 2));
    let mut after = rig
        .node("n2")
        .connect(Instant::now() + SOON)
        .expect("client");
    let mut every = ids(&c1.iter().chain(&c2).collect::<Vec<_>>());
    every.push(after.id.clone());
    if let Err(e) = rig.converge(&NAMES, &NAMES, &every, SOON) {
        failures.push(format!("before the pause: {e}"));
    }
    rig.fail_if_any("Redis paused", &failures);
    rig.redis.pause();
    let paused = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    let want = while_paused(&rig, &c1, &c2[1], &mut failures);
    std::thread::sleep(PAUSE.saturating_sub(paused.elapsed()));
    rig.redis.resume();
    if !c2[0].wait(SOON, |s| s.lines.iter().any(|(_, l)| *l == want)) {
        failures.push(format!("after SIGCONT, n2 never read {want:?}"));
    }
    // The kick asked while Redis was stopped was answered `unavailable`,
    // but its request sat in Redis's socket: the owner may still run it
    // once Redis reads it (an `unavailable` kick's outcome is unknown).
    // Reported, not judged; presence must then agree with it.
    let late = c2[1].wait(Duration::from_secs(1), |s| s.end.is_some());
    eprintln!(
        "cluster redis-paused [{runtime}]: the kick answered `unavailable` ran after SIGCONT: {late}"
    );
    every.retain(|id| !late || *id != c2[1].id);
    if let Err(e) = rig.converge(&NAMES, &NAMES, &every, SOON) {
        failures.push(format!("after SIGCONT: {e}"));
    }
    let answer = rig
        .node("n1")
        .kick(&format!("{} graceful resumed", after.id), SOON);
    let (_, end) = after.read_to_end(Instant::now() + SOON);
    if answer != "ok" || end != End::Eof {
        failures.push(format!(
            "after SIGCONT, n1's kick of {} answered {answer:?}, the client saw {end:?}",
            after.id
        ));
    }
    for c in c1.iter().chain(&c2[..1]) {
        if let Some(end) = c.with(|s| s.end) {
            failures.push(format!("{} was dropped: {end:?}", c.id));
        }
    }
    rig.fail_if_any("Redis paused with SIGSTOP", &failures);
}

/// How long Redis stays stopped under a kick: short of the kick's
/// timeout, long enough for the asker to publish the request again
/// (every timeout/4).
pub const KICK_PAUSE: Duration = Duration::from_millis(600);

/// **A kick across a stalled broker happens once.** n1's console kicks a
/// client of n2 while Redis is stopped; Redis runs again [`KICK_PAUSE`]
/// later, within `--cluster-timeout`, so the request and its repeats
/// (`cluster.kicks_resent`) all reach n2. The answer is `ok` (or, on a
/// slow machine, `error cluster unavailable` at the timeout), never `error
/// stale` (a repeat run again); the client reads the notice and EOF; n2
/// counts exactly one `kicked` disconnect and no other; a second client of
/// n2 is untouched.
pub fn redis_paused_mid_kick(runtime: &'static str) {
    let _serial = serial();
    let mut rig = ClusterRig::start(runtime, "cluster-paused-kick", 3, &[]);
    let mut failures = Vec::new();
    let deadline = Instant::now() + SOON;
    let mut victim = rig.node("n2").connect(deadline).expect("client");
    let bystander = collectors(&rig, "n2", 1);
    let every = vec![victim.id.clone(), bystander[0].id.clone()];
    if let Err(e) = rig.converge(&NAMES, &NAMES, &every, SOON) {
        failures.push(format!("before the pause: {e}"));
    }
    rig.fail_if_any("a kick across a stalled broker", &failures);
    rig.redis.pause();
    let admin = rig.node("n1").server.admin;
    let command = format!("kick {} graceful once", victim.id);
    let asker = std::thread::spawn(move || {
        let asked = Instant::now();
        let answer = crate::pressure::server::Admin::connect(admin, SOON)
            .and_then(|mut a| a.command(&command, SOON))
            .map(|lines| lines.join(" | "))
            .unwrap_or_else(|e| format!("no answer: {e}"));
        (answer, asked.elapsed())
    });
    std::thread::sleep(KICK_PAUSE);
    rig.redis.resume();
    let (answer, took) = crate::pressure::join_by("the kick", asker, Instant::now() + SOON);
    if !(answer == "ok" || answer == "error cluster unavailable")
        || took > TIMEOUT + Duration::from_millis(500)
    {
        failures.push(format!(
            "the kick across a stalled broker answered {answer:?} after {took:?}"
        ));
    }
    let (lines, end) = victim.read_to_end(Instant::now() + SOON);
    if lines != ["* kicked: once"] || end != End::Eof {
        failures.push(format!("the victim read {lines:?} then {end:?}"));
    }
    let resent = rig
        .node("n1")
        .stats()
        .ok()
        .and_then(|s| s.get("cluster.kicks_resent"));
    match rig.node("n2").stats() {
        Ok(s) if s.get("disconnected.kicked") == Some(1) && s.disconnected_total() == 1 => {}
        Ok(s) => failures.push(format!("n2: want exactly one kicked disconnect: {s}")),
        Err(e) => failures.push(e),
    }
    if let Some(end) = bystander[0].with(|s| s.end) {
        failures.push(format!("the bystander was dropped: {end:?}"));
    }
    eprintln!(
        "cluster paused-kick [{runtime}]: {answer:?} after {took:?}; n1 cluster.kicks_resent {resent:?}"
    );
    rig.fail_if_any("a kick across a stalled broker", &failures);
}
