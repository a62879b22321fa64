//! `Hub::snapshot` / `Hub::restore` (feature `snapshot`), the flight
//! recorder's segment start (docs/recording.md):
//!
//! * a snapshot taken at a random point of a random run, sent through JSON
//!   and restored (at another epoch), continues exactly like the original:
//!   same outcomes, outputs, stats, deadlines, channels and offline queue
//!   for every later input, both checked (the restored one by a checker
//!   made from the snapshot), and a snapshot of the restored hub is the
//!   snapshot it was restored from — so no field is left out;
//! * a real snapshot with fields changed at random (JSON values replaced,
//!   list entries dropped, duplicated or swapped) is refused with a typed
//!   error, or restores to a hub that runs 200 random inputs under the
//!   checker without a panic or a violation;
//! * a snapshot is refused while outputs are pending.
#![cfg(feature = "snapshot")]

use std::time::{Duration, Instant};

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use serde_json::Value;
use tether_core::testing::Checker;
use tether_core::{Bytes, Config, Hub, RestoreError, Snapshot, SnapshotError};

#[path = "common/steps.rs"]
mod steps;

use steps::{Run, Step, configs};

/// A random run, and where in it to take the snapshot.
#[derive(Debug, Clone)]
struct Cut {
    steps: Vec<Step>,
    at: usize,
}

impl Arbitrary for Cut {
    fn arbitrary(g: &mut Gen) -> Cut {
        let steps = Vec::<Step>::arbitrary(g);
        let at = usize::arbitrary(g) % (steps.len() + 1);
        Cut { steps, at }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Cut>> {
        let (steps, at) = (self.steps.clone(), self.at);
        Box::new((0..steps.len()).map(move |i| {
            let mut s = steps.clone();
            s.remove(i);
            Cut {
                at: if i < at { at - 1 } else { at },
                steps: s,
            }
        }))
    }
}

/// Plays `steps` on a fresh hub under `config`: the run and what it gave.
fn played(config: &Config, steps: &[Step], start: Instant) -> Result<Run, String> {
    let mut run = Run::new(config, start);
    run.play(steps)?;
    Ok(run)
}

fn round_trip(snapshot: &Snapshot) -> Result<Snapshot, String> {
    let json = serde_json::to_string(snapshot).map_err(|e| format!("serialize: {e}"))?;
    let back: Snapshot = serde_json::from_str(&json).map_err(|e| format!("parse: {e}: {json}"))?;
    if &back != snapshot {
        return Err(format!("JSON round trip changed the snapshot: {json}"));
    }
    Ok(back)
}

/// Runs `cut` on one configuration: the snapshot at `cut.at`, restored an
/// hour later in time, against the original for the rest of the run.
fn restored_run_matches(config: &Config, cut: &Cut) -> Result<(), String> {
    let start = Instant::now();
    let mut original = played(config, &cut.steps[..cut.at], start)?;
    let snapshot = original.hub.snapshot(start).map_err(|e| e.to_string())?;
    let snapshot = round_trip(&snapshot)?;
    let later = start + Duration::from_secs(3_600);
    let hub = Hub::restore(&snapshot, later).map_err(|e| format!("restore: {e}"))?;
    let again = hub.snapshot(later).map_err(|e| e.to_string())?;
    if again != snapshot {
        return Err(format!(
            "the restored hub's snapshot differs:\n{snapshot:?}\n{again:?}"
        ));
    }
    let checker = Checker::from_snapshot(&snapshot, later).map_err(|e| e.to_string())?;
    let mut copy = original.continued(hub, checker, later);
    let rest = &cut.steps[cut.at..];
    let (a, b) = (original.play(rest)?, copy.play(rest)?);
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        return Err(format!(
            "input {i} after the snapshot differs:\noriginal {:?}\nrestored {:?}",
            a.get(i),
            b.get(i)
        ));
    }
    let (end_a, end_b) = (original.hub.snapshot(start), copy.hub.snapshot(later));
    if end_a != end_b {
        return Err(format!("the final states differ:\n{end_a:?}\n{end_b:?}"));
    }
    Ok(())
}

#[test]
fn a_restored_hub_continues_exactly_like_the_original() {
    fn property(cut: Cut) -> TestResult {
        for (k, config) in configs().iter().enumerate() {
            if let Err(e) = restored_run_matches(config, &cut) {
                return TestResult::error(format!("config {k}: {e}"));
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(200)
        .rng(Gen::new(200))
        .quickcheck(property as fn(Cut) -> TestResult);
}

#[test]
fn a_snapshot_is_refused_while_outputs_are_pending() {
    let config = Config::default();
    let mut hub = Hub::new(config).unwrap();
    let now = Instant::now();
    let id = hub.accept(now, "127.0.0.1:1".parse().unwrap()).unwrap();
    hub.send(now, id, Bytes::from_static(b"abc")).unwrap();
    assert_eq!(
        hub.snapshot(now),
        Err(SnapshotError::OutputsPending {
            actions: 1,
            events: 1
        })
    );
    let _ = hub.poll_event();
    let err = hub.snapshot(now).unwrap_err();
    assert_eq!(
        err,
        SnapshotError::OutputsPending {
            actions: 1,
            events: 0
        }
    );
    assert!(err.to_string().contains("drain"), "{err}");
    let _ = hub.poll_action();
    let snapshot = hub.snapshot(now).unwrap();
    assert_eq!(snapshot.channels[0].queued, 3);
}

#[test]
fn instants_too_far_from_the_epoch_are_refused_by_name() {
    let mut hub = Hub::new(Config::default()).unwrap();
    let now = Instant::now();
    hub.handle_timeout(now);
    let Some(far) = now.checked_add(Duration::from_secs(300 * 365 * 24 * 3_600)) else {
        return; // this platform's Instant cannot be that far: nothing to check
    };
    let err = hub.snapshot(far).unwrap_err();
    assert_eq!(
        err,
        SnapshotError::Instant {
            field: "now".into()
        }
    );
    let mut snapshot = hub.snapshot(now).unwrap();
    snapshot.now = Some(i64::MIN);
    // Restoring at an epoch where the instant does not exist is refused too.
    if let Err(e) = Hub::restore(&snapshot, now) {
        assert!(matches!(e, RestoreError::Hub { field: "now", .. }), "{e}");
    }
}

#[path = "common/mutate.rs"]
mod mutate;

#[test]
fn a_corrupted_snapshot_is_refused_or_runs_clean() {
    fn property(cut: Cut, edits: Vec<mutate::Edit>, after: Vec<Step>) -> TestResult {
        let start = Instant::now();
        for (k, config) in configs().iter().enumerate() {
            let run = match played(config, &cut.steps[..cut.at], start) {
                Ok(run) => run,
                Err(e) => return TestResult::error(format!("config {k}: {e}")),
            };
            let snapshot = run.hub.snapshot(start).unwrap();
            let mut json: Value = serde_json::to_value(&snapshot).unwrap();
            for edit in edits.iter().take(1 + edits.len() % 3) {
                mutate::apply(&mut json, edit);
            }
            let Ok(hostile) = serde_json::from_value::<Snapshot>(json) else {
                continue; // not a snapshot at all: serde says so
            };
            let hub = match Hub::restore(&hostile, start) {
                Ok(hub) => hub,
                Err(e) if !e.to_string().is_empty() => continue,
                Err(_) => return TestResult::error("an error without a message"),
            };
            let checker = match Checker::from_snapshot(&hostile, start) {
                Ok(checker) => checker,
                Err(e) => {
                    return TestResult::error(format!("restore took it, the checker not: {e}"));
                }
            };
            let mut copy = run.continued(hub, checker, start);
            let after: Vec<Step> = after.iter().copied().cycle().take(200).collect();
            if let Err(e) = copy.play(&after) {
                return TestResult::error(format!(
                    "config {k}: accepted {edits:?}, then {e}\n{hostile:?}"
                ));
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(2_000)
        .rng(Gen::new(100))
        .quickcheck(property as fn(Cut, Vec<mutate::Edit>, Vec<Step>) -> TestResult);
}

/// A drained hub with a channel of every kind: open with bytes queued (a
/// stall deadline armed), closing, two offline with holders (one overdue),
/// and a released one (stale entries in the timer heap and free list).
fn rich() -> (Hub, Instant, Vec<tether_core::ChannelId>) {
    use tether_core::KickMode;
    let config = Config::default().with_queue_limit(1_000).with(|c| {
        c.idle_timeout = Some(Duration::from_secs(60));
        c.stall_timeout = Some(Duration::from_secs(5));
    });
    let mut hub = Hub::new(config).unwrap();
    let t0 = Instant::now();
    let peer = "127.0.0.1:9".parse().unwrap();
    let ids: Vec<_> = (0..5).map(|_| hub.accept(t0, peer).unwrap()).collect();
    let ms = |n| t0 + Duration::from_millis(n);
    hub.attach(ms(3), ids[2]).unwrap();
    hub.kick(ms(3), ids[2], KickMode::Abort, 2).unwrap();
    hub.kick(ms(5), ids[4], KickMode::Abort, 3).unwrap();
    hub.handle_closed(ms(5), ids[4]).unwrap();
    hub.handle_timeout(ms(20_000)); // the holder of ids[2] is overdue
    hub.send(ms(20_001), ids[0], Bytes::from_static(b"queued"))
        .unwrap();
    hub.send(ms(20_001), ids[1], Bytes::from_static(b"flushing"))
        .unwrap();
    hub.kick(ms(20_001), ids[1], KickMode::Graceful, 1).unwrap();
    hub.attach(ms(20_002), ids[3]).unwrap();
    hub.kick(ms(20_002), ids[3], KickMode::Abort, 2).unwrap();
    while hub.poll_action().is_some() || hub.poll_event().is_some() {}
    (hub, t0, ids)
}

#[test]
fn each_corruption_is_refused_naming_what_is_wrong() {
    let (hub, epoch, ids) = rich();
    let good = hub.snapshot(epoch).unwrap();
    Hub::restore(&good, epoch).unwrap();
    // What `rich` promises: the cases below rely on it.
    use tether_core::ChannelState::{Closing, Offline, Open};
    let states: Vec<_> = good.channels.iter().map(|c| c.state).collect();
    assert_eq!(states, [Open, Closing, Offline, Offline]);
    assert!(good.channels[0].stall_armed.is_some() && good.channels[2].overdue_reported);
    assert_eq!(
        good.offline.len(),
        3,
        "a released entry stays behind a live one"
    );
    assert_eq!(good.free, [ids[4].slot()]);
    const DAY: i64 = 86_400 * 1_000_000_000;
    type Change = fn(&mut Snapshot);
    let cases: Vec<(Change, &str)> = vec![
        (|s| s.version = 2, "version"),
        (
            |s| s.config.high_watermark = s.config.queue_limit + 1,
            "config",
        ),
        (
            |s| s.channels[0].stall_armed = s.now.map(|n| n + 365 * DAY),
            "stall_armed",
        ),
        (
            |s| s.channels[0].armed = s.now.map(|n| n + 365 * DAY),
            "armed",
        ),
        (|s| s.channels[0].charged = 2_000, "charged"),
        (|s| s.channels[0].queued += 1, "charged"),
        (
            |s| s.channels[0].backpressured = true,
            "stats.backpressured",
        ),
        (|s| s.channels[1].reason = None, "reason"),
        (|s| s.channels[1].write_shut = true, "write_shut"),
        (|s| s.channels[2].close_requested = true, "close_requested"),
        (|s| s.channels[2].holders = 0, "close_requested"),
        (
            |s| s.channels[3].opened_at = s.now.unwrap() + 1,
            "opened_at",
        ),
        (|s| s.channels.swap(0, 1), "id"),
        (|s| s.slots[0].generation += 1, "id"),
        (|s| s.slots[4].occupied = true, "slots"),
        (|s| s.free.push(0), "free"),
        (|s| s.free.clear(), "free"),
        (|s| s.timers.clear(), "armed"),
        (|s| s.timers[0].id = "#40.1".parse().unwrap(), "timers"),
        (|s| s.offline.swap(0, 1), "offline"),
        (|s| s.offline.push(s.offline[0]), "offline"),
        (|s| s.offline[0].id = s.channels[0].id, "offline"),
        (|s| s.stats.usable += 1, "stats.usable"),
        (|s| s.stats.bytes_written += 1, "stats.bytes_queued"),
        (|s| s.stats.opened += 1, "stats.opened"),
        (|s| s.stats.stale_calls = u64::MAX, "stats"),
        (|s| s.accept_paused = true, "accept_paused"),
        (|s| s.held_jump = s.now, "held_jump"),
        (|s| s.now = None, "now"),
    ];
    for (i, (change, field)) in cases.into_iter().enumerate() {
        let mut bad = good.clone();
        change(&mut bad);
        let err = Hub::restore(&bad, epoch).expect_err(&format!("case {i} ({field}) restored"));
        let named = match &err {
            RestoreError::Version(_) => "version",
            RestoreError::Config(_) => "config",
            RestoreError::Channel { id, field, .. } => {
                assert!(err.to_string().contains(&id.to_string()), "{err}");
                field
            }
            RestoreError::Hub { field, .. } => field,
            other => panic!("case {i}: {other}"),
        };
        assert_eq!(named, field, "case {i}: {err}");
        assert!(Checker::from_snapshot(&bad, epoch).is_err(), "case {i}");
    }
}
