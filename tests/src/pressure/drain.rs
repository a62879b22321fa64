//! The server contract across shards at shutdown (docs/design.md §5.5):
//! signals and the console's `shutdown`, mid-burst, repeated, with several
//! clients on every shard.

use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::flow::{SOON, Tally, burst_payload, connect, spawn_reader, spawn_writer};
use super::server::{Server, ServerSpec};
use super::{Scale, join_by, serial};
use crate::client::End;

/// Clients per shard (the talker among them).
const PER_SHARD: usize = 3;

/// How a round stops the server.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Term,
    Int,
    Console,
}

const TRIGGERS: [Trigger; 3] = [Trigger::Term, Trigger::Int, Trigger::Console];

/// The shard of a greeted id: `#1:0.1` is on shard 1, `#0.1` (one shard) on 0.
pub(super) fn shard_of(id: &str) -> Option<usize> {
    id.parse::<tether_core::ChannelId>()
        .ok()
        .map(|id| usize::from(id.shard()))
}

/// **Shutdown mid-burst, repeated.** `scale.drain_rounds` rounds, each on
/// a fresh server: `PER_SHARD` (3) clients on every shard (round-robin
/// accept spreads them), one of them talks `4 × scale.drain_lines` lines of
/// 1,000 B unpaced while all read; once every client has read a round's
/// share (which moves from round to round) the server gets SIGTERM, SIGINT
/// or the console's `shutdown`, in turn. Every client must read the same
/// lines — each the next line of the burst, whole — then EOF, and the
/// server must exit with status 0: a line accepted before the drain began
/// reaches every client, on every shard, or nobody.
pub fn shutdown_mid_burst(runtime: &'static str, scale: &Scale) {
    let _serial = serial();
    let shards = super::shards_of(runtime);
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for round in 0..scale.drain_rounds {
        let trigger = TRIGGERS[round % TRIGGERS.len()];
        // From a few lines in to most of the burst's first quarter.
        let signal_at = 1 + (round * 97) % scale.drain_lines.max(1);
        match drain_round(runtime, shards, scale, trigger, signal_at) {
            Ok(lines) => summary.push(lines),
            Err(mut round_failures) => {
                failures.push(format!(
                    "round {round} ({trigger:?} after {signal_at} lines):"
                ));
                failures.append(&mut round_failures);
                break;
            }
        }
    }
    eprintln!(
        "pressure drain [{runtime}, {}]: {} rounds, lines every client read per round: {summary:?}",
        scale.name,
        summary.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n  - "));
}

/// One round; the lines every client read, or what went wrong (with the
/// server's context).
fn drain_round(
    runtime: &'static str,
    shards: usize,
    scale: &Scale,
    trigger: Trigger,
    signal_at: usize,
) -> Result<usize, Vec<String>> {
    let grace = Duration::from_secs(5);
    let mut server = ServerSpec::new(runtime, "drain")
        .flag("--shutdown-grace", "5s")
        .start();
    let greet_by = Instant::now() + SOON;
    let clients: Vec<_> = (0..shards * PER_SHARD)
        .map(|k| connect(&mut server, &format!("client {k}"), greet_by))
        .collect();
    let mut failures = Vec::new();
    let mut per_shard = vec![0usize; shards];
    for client in &clients {
        match shard_of(&client.id) {
            Some(s) if s < shards => per_shard[s] += 1,
            _ => failures.push(format!("unexpected id {}", client.id)),
        }
    }
    if per_shard.iter().any(|&n| n < PER_SHARD) {
        failures.push(format!(
            "clients per shard {per_shard:?}, want {PER_SHARD} each"
        ));
    }
    let payload = std::sync::Arc::new(burst_payload(scale.drain_lines * 4));
    let deadline = Instant::now() + scale.deadline;
    let talker = clients[0].id.clone();
    let writer = spawn_writer(clients[0].writer(), payload.clone());
    let (readers, progress): (Vec<JoinHandle<Tally>>, Vec<_>) = clients
        .into_iter()
        .map(|c| {
            let name = format!("{}{}", c.id, if c.id == talker { " (talker)" } else { "" });
            spawn_reader(name, c.reader, &talker, &payload, None, deadline)
        })
        .unzip();
    let reached = loop {
        let least = progress.iter().map(|p| p.load(Ordering::Relaxed)).min();
        if least.unwrap_or(0) >= signal_at {
            break true;
        }
        if Instant::now() >= deadline || readers.iter().any(JoinHandle::is_finished) {
            break false;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    if !reached {
        failures.push(format!("the clients did not reach {signal_at} lines"));
    }
    if let Err(e) = stop(&server, trigger) {
        failures.push(format!("{trigger:?}: {e}"));
    }
    match server.wait_exit(grace * 2 + Duration::from_secs(10)) {
        None => {
            failures.push(format!("still running {:?} after {trigger:?}", grace * 2));
            server.kill();
        }
        Some(status) if !status.success() => failures.push(format!("exit status {status}")),
        Some(_) => {}
    }
    let tallies: Vec<Tally> = readers
        .into_iter()
        .map(|r| join_by("a client's reader", r, deadline))
        .collect();
    let _ = join_by("the talker's writer", writer, deadline);
    let lines = tallies.first().map_or(0, |t| t.lines);
    for tally in &tallies {
        if tally.end != Some(End::Eof) || tally.partial != 0 || tally.problem.is_some() {
            failures.push(format!("not whole lines then EOF: {}", tally.describe()));
        }
        if tally.lines != lines {
            failures.push(format!(
                "read {} lines where {} read {lines}: {}",
                tally.lines,
                tallies[0].name,
                tally.describe()
            ));
        }
    }
    if failures.is_empty() {
        Ok(lines)
    } else {
        failures.push(server.context());
        Err(failures)
    }
}

fn stop(server: &Server, trigger: Trigger) -> std::io::Result<()> {
    match trigger {
        Trigger::Term => server.signal(Signal::TERM),
        Trigger::Int => server.signal(Signal::INT),
        Trigger::Console => {
            let answer = server
                .admin(Duration::from_secs(5))?
                .command("shutdown", Duration::from_secs(5))?;
            match answer.first().map(String::as_str) {
                Some("ok") => Ok(()),
                _ => Err(std::io::Error::other(format!(
                    "shutdown answered {answer:?}"
                ))),
            }
        }
    }
}
