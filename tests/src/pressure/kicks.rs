//! Kicks across shards (docs/design.md §5.5, rule 4): the console's `kick`
//! reaches the shard its id names, exactly once, and a stale or forged id
//! reaches nobody.

use std::io::Write;
use std::time::Instant;

use super::flow::{SOON, connect};
use super::net::Client;
use super::serial;
use super::server::{Admin, ServerSpec};
use super::{Scale, drain::shard_of};
use crate::client::End;

/// Clients per shard.
const PER_SHARD: usize = 3;

/// `#s:slot.gen` (or `#slot.gen`) with the generation one higher: the same
/// slot, a later life — what a stale id looks like once the slot is reused.
fn next_generation(id: &str) -> Option<String> {
    let (head, generation) = id.rsplit_once('.')?;
    let generation: u32 = generation.parse().ok()?;
    Some(format!("{head}.{}", generation.checked_add(1)?))
}

/// **Kicks across shards.** `PER_SHARD` (3) clients on every shard; the
/// console kicks the first client of every shard gracefully: each answer is
/// `ok`, that client reads the kick notice and EOF, a second kick of it is
/// an error, and so are a forged later generation of a live client's id and
/// an id of a shard that does not exist — which leave that client served.
/// Then a line from a survivor reaches every survivor on every shard, and
/// `stats` counts exactly one `kicked` disconnect per shard and no other.
pub fn kick_across_shards(runtime: &'static str, _scale: &Scale) {
    let _serial = serial();
    let shards = super::shards_of(runtime);
    let mut server = ServerSpec::new(runtime, "kicks").start();
    let greet_by = Instant::now() + SOON;
    let mut by_shard: Vec<Vec<Client>> = (0..shards).map(|_| Vec::new()).collect();
    for k in 0..shards * PER_SHARD {
        let client = connect(&mut server, &format!("client {k}"), greet_by);
        let shard = shard_of(&client.id).filter(|&s| s < shards);
        let shard = shard.unwrap_or_else(|| panic!("unexpected id {}", client.id));
        by_shard[shard].push(client);
    }
    let mut failures = Vec::new();
    if by_shard.iter().any(|c| c.len() < PER_SHARD) {
        let counts: Vec<usize> = by_shard.iter().map(Vec::len).collect();
        failures.push(format!(
            "clients per shard {counts:?}, want {PER_SHARD} each"
        ));
    }
    let mut admin = Admin::connect(server.admin, SOON).expect("admin console");
    let answer = |admin: &mut Admin, command: &str| -> String {
        admin
            .command(command, SOON)
            .map(|lines| lines.join(" "))
            .unwrap_or_else(|e| format!("no answer: {e}"))
    };
    let mut survivors = Vec::new();
    for (shard, clients) in by_shard.into_iter().enumerate() {
        let mut clients = clients.into_iter();
        let Some(mut kicked) = clients.next() else {
            continue;
        };
        let got = answer(&mut admin, &format!("kick {} graceful bye", kicked.id));
        if got != "ok" {
            failures.push(format!(
                "shard {shard}: kick {} answered {got:?}",
                kicked.id
            ));
        }
        let deadline = Instant::now() + SOON;
        let notice = kicked
            .reader
            .next_line(deadline)
            .map(|l| String::from_utf8_lossy(l).into_owned());
        let end = kicked.reader.next_line(deadline).err();
        if notice.as_deref() != Ok("* kicked: bye") || end != Some(End::Eof) {
            failures.push(format!(
                "shard {shard}: {} read {notice:?} then {end:?}, not the notice then EOF",
                kicked.id
            ));
        }
        let again = answer(&mut admin, &format!("kick {}", kicked.id));
        if !again.starts_with("error") {
            failures.push(format!("shard {shard}: a second kick answered {again:?}"));
        }
        let live: Vec<Client> = clients.collect();
        if let Some(forged) = live.first().and_then(|c| next_generation(&c.id)) {
            let got = answer(&mut admin, &format!("kick {forged} abort"));
            if !got.starts_with("error") {
                failures.push(format!("shard {shard}: forged {forged} answered {got:?}"));
            }
        }
        survivors.extend(live);
    }
    let nowhere = format!("#{}:0.1", shards + 3);
    let got = answer(&mut admin, &format!("kick {nowhere} abort"));
    if !got.starts_with("error") {
        failures.push(format!("{nowhere} (no such shard) answered {got:?}"));
    }
    if let Some(talker) = survivors.first() {
        let from = talker.id.clone();
        let _ = talker.writer().write_all(b"still here\n");
        let want = format!("{from}: still here");
        let deadline = Instant::now() + SOON;
        for client in &mut survivors {
            let got = client
                .reader
                .next_line(deadline)
                .map(|l| String::from_utf8_lossy(l).into_owned());
            if got.as_deref() != Ok(want.as_str()) {
                failures.push(format!(
                    "survivor {} read {got:?}, want {want:?}",
                    client.id
                ));
            }
        }
    }
    match admin.stats(SOON) {
        Ok(stats) => {
            let kicked = stats.get("disconnected.kicked").unwrap_or(0);
            if kicked != shards as u64 || stats.disconnected_total() != shards as u64 {
                failures.push(format!(
                    "want {shards} kicked and no other disconnect (stats: {stats})"
                ));
            }
            // `live` still counts a kicked channel until it is released.
            let served = (shards * (PER_SHARD - 1)) as u64;
            if stats.get("usable") != Some(served) {
                failures.push(format!("want {served} usable (stats: {stats})"));
            }
        }
        Err(e) => failures.push(format!("admin `stats`: {e}")),
    }
    drop(survivors);
    server.fail_if_any("kicks across shards", &failures);
}
