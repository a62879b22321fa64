//! The shrinker on a long, real-looking recording with an injected failure
//! ("a channel kicked with code 7 after it received more than 100 bytes"):
//! it keeps only the few lines that matter, and the result replays exactly.

use std::collections::HashMap;

use tether_core::{ChannelId, DisconnectReason, Event};
use tether_record::replay::{ReplayOptions, replay};
use tether_record::shrink::{LooseRun, ShrinkLimits, shrink_violation, shrink_with};
use tether_record::{Recording, synthetic};

/// The injected failure: the steps needed until a channel that received
/// more than 100 bytes is kicked with code 7.
fn kicked_7_after_100_bytes(run: &LooseRun) -> Option<usize> {
    let mut received: HashMap<ChannelId, usize> = HashMap::new();
    for (i, step) in run.steps.iter().enumerate() {
        for event in &step.events {
            match event {
                Event::Received { id, data } => *received.entry(*id).or_default() += data.len(),
                Event::Disconnected {
                    id,
                    reason: DisconnectReason::Kicked { code: 7 },
                } if received.get(id).copied().unwrap_or(0) > 100 => return Some(i + 1),
                _ => {}
            }
        }
    }
    None
}

#[test]
fn a_long_recording_shrinks_to_the_lines_that_matter() {
    let text = synthetic::recording(21, 3_000);
    let (recording, error) = Recording::parse(&text);
    assert!(error.is_none());
    let segment = &recording.segments[0];
    let shrunk = shrink_with(
        &segment.header,
        &segment.lines,
        ShrinkLimits::default(),
        kicked_7_after_100_bytes,
    )
    .unwrap()
    .expect("seed 21 has such a kick");
    let small = String::from_utf8(shrunk.text.clone()).unwrap();
    println!(
        "{} lines -> {}:\n{small}",
        shrunk.original,
        shrunk.lines.len()
    );
    assert!(
        shrunk.original > 100,
        "the failure is deep in the recording"
    );
    // accept, received (one line of > 100 bytes, or two), kick.
    assert!((3..=4).contains(&shrunk.lines.len()), "{small}");
    assert!(small.contains(" accept "), "{small}");
    assert!(small.contains(" kick #"), "{small}");
    assert!(
        small.contains(" abort 7 ") || small.contains(" graceful 7 "),
        "{small}"
    );
    assert!(shrunk.violation.is_none());

    // The shrunk recording replays exactly, and still fails the same way.
    let (small_recording, error) = Recording::parse(&shrunk.text);
    assert!(error.is_none(), "{error:?}");
    let report = replay(&small_recording, None, &ReplayOptions::default(), |_| {});
    assert_eq!(report.result, Ok(()));
    let s = &small_recording.segments[0];
    let run = tether_record::shrink::run_loose(&s.header, &s.lines).unwrap();
    assert_eq!(kicked_7_after_100_bytes(&run), Some(s.lines.len()));
}

#[test]
fn a_recording_without_the_failure_has_nothing_to_shrink() {
    let text = synthetic::recording(4, 500);
    let (recording, _) = Recording::parse(&text);
    let segment = &recording.segments[0];
    let limits = ShrinkLimits::default();
    // No invariant is broken by the real hub.
    assert!(
        shrink_violation(&segment.header, &segment.lines, limits)
            .unwrap()
            .is_none()
    );
    let never = |_: &LooseRun| None;
    assert!(
        shrink_with(&segment.header, &segment.lines, limits, never)
            .unwrap()
            .is_none()
    );
}
