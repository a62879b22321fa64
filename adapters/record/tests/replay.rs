//! Replay: synthetic recordings replay exactly under the checker; a changed
//! outcome, checksum or later snapshot is the first divergence, named
//! precisely; the timeline follows a channel and a window of time.

use std::time::Duration;

use tether_core::testing::{Input, Outcome};
use tether_record::replay::{ReplayError, ReplayOptions, replay, replay_text};
use tether_record::rerecord::Rerecorder;
use tether_record::timeline::{Filter, Timeline};
use tether_record::{Recording, encode_header, synthetic};

fn replace_line(text: &[u8], number: usize, f: impl Fn(&str) -> String) -> Vec<u8> {
    let text = String::from_utf8(text.to_vec()).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        out.push_str(&if i + 1 == number {
            f(line)
        } else {
            line.to_string()
        });
        out.push('\n');
    }
    out.into_bytes()
}

#[test]
fn synthetic_recordings_replay_exactly_under_the_checker() {
    for seed in 1..=4 {
        let text = synthetic::recording(seed, 3_000);
        let report = replay_text(&text);
        assert_eq!(report.result, Ok(()), "seed {seed}");
        assert!(report.checked);
        assert_eq!(report.lines, 3_000);
        assert!(report.channels >= 20, "{report:?}");
        for kind in [
            "accept", "received", "send", "written", "kick", "closed", "timeout",
        ] {
            assert!(
                report.inputs.get(kind).copied().unwrap_or(0) > 0,
                "{kind}: {report:?}"
            );
        }
        assert!(report.span() > Duration::from_secs(10), "{report:?}");
    }
}

#[test]
fn a_changed_outcome_is_the_first_divergence_with_its_line() {
    let text = synthetic::recording(3, 400);
    // Line 8 is the first input line (7 header lines).
    let target = 8 + 100;
    let bad = replace_line(&text, target, |l| l.replace("=> ok", "=> rejected stale"));
    assert_ne!(bad, text, "line {target} has an `ok`");
    let report = replay_text(&bad);
    let Err(ReplayError::Divergence(d)) = &report.result else {
        panic!("{:?}", report.result)
    };
    assert_eq!(d.line_number, target);
    assert_eq!(report.lines, 101);
    assert!(d.text.contains("=> rejected stale"), "{}", d.text);
    assert_eq!(d.actual_outcome, Outcome::Ok);
    let shown = report.result.unwrap_err().to_string();
    assert!(
        shown.starts_with(&format!("line {target}: the replay diverges")),
        "{shown}"
    );
    assert!(shown.contains("expected: rejected stale"), "{shown}");
    assert!(shown.contains("actual:   ok"), "{shown}");
}

#[test]
fn a_changed_checksum_lists_the_actual_outputs() {
    let text = synthetic::recording(5, 300);
    // The first accept line: its outputs are an Opened event.
    let lines: Vec<&str> = std::str::from_utf8(&text).unwrap().lines().collect();
    let n = lines.iter().position(|l| l.contains(" accept ")).unwrap() + 1;
    let bad = replace_line(&text, n, |l| {
        let (head, tail) = l.rsplit_once(' ').unwrap();
        let (head, _) = head.rsplit_once(' ').unwrap();
        format!("{head} 0123456789abcdef {tail}")
    });
    let report = replay_text(&bad);
    let err = report.result.unwrap_err();
    let shown = err.to_string();
    assert_eq!(err.line_number(), Some(n));
    assert!(shown.contains("expected: opened #"), "{shown}");
    assert!(shown.contains("0123456789abcdef"), "{shown}");
    assert!(shown.contains("\n    Opened #"), "{shown}");
}

/// A recording cut in two segments at `cut` inputs, as a rotating
/// recorder writes them: (first segment, second segment).
fn two_segments(seed: u64, inputs: usize, cut: usize) -> (Vec<u8>, Vec<u8>) {
    let text = synthetic::recording(seed, inputs);
    let (recording, _) = Recording::parse(&text);
    let segment = &recording.segments[0];
    let mut rec = Rerecorder::from_header(&segment.header).unwrap();
    let mut first = Vec::new();
    let mut header = None;
    for (i, line) in segment.lines.iter().enumerate() {
        if i == cut {
            first = rec.text().to_vec();
            header = Some(rec.header(1).unwrap());
        }
        rec.feed(line.at_ns, line.input.clone());
    }
    let all = rec.finish();
    assert_eq!(
        all, text,
        "re-recording the same inputs gives the same text"
    );
    let mut second = Vec::new();
    encode_header(&header.unwrap(), &mut second).unwrap();
    second.extend_from_slice(&all[first.len()..]);
    (first, second)
}

#[test]
fn consecutive_segments_replay_together_and_each_later_header_is_checked() {
    let (first, second) = two_segments(11, 1_000, 600);
    let mut both = first.clone();
    both.extend_from_slice(&second);
    let report = replay_text(&both);
    assert_eq!(report.result, Ok(()));
    assert_eq!((report.segments, report.lines), (2, 1_000));

    // The second segment alone: from its own snapshot, mid-run, with the
    // checker's model started from the snapshot too.
    let report = replay_text(&second);
    assert_eq!(report.result, Ok(()));
    assert_eq!(report.lines, 400);
    assert!(report.checked);

    // A later snapshot that is not the replayed hub: named, with the field.
    let text = String::from_utf8(second.clone()).unwrap();
    let bad = text.replacen("\"accept_paused\":false", "\"accept_paused\":true", 1);
    let bad = if bad == text {
        text.replacen("\"accept_paused\":true", "\"accept_paused\":false", 1)
    } else {
        bad
    };
    let mut both = first.clone();
    both.extend_from_slice(bad.as_bytes());
    let report = replay_text(&both);
    let Err(ReplayError::Segment {
        segment,
        header_line,
        problem,
    }) = &report.result
    else {
        panic!("{:?}", report.result)
    };
    assert_eq!(*segment, 1);
    assert_eq!(
        *header_line,
        first.iter().filter(|&&b| b == b'\n').count() + 1
    );
    assert!(problem.contains("accept_paused"), "{problem}");
    assert_eq!(
        report.lines, 600,
        "every line of the first segment replayed"
    );

    // Segments out of order: the checksum tells.
    let mut swapped = second.clone();
    swapped.extend_from_slice(&first);
    let report = replay_text(&swapped);
    assert!(
        matches!(report.result, Err(ReplayError::Segment { segment: 1, .. })),
        "{:?}",
        report.result
    );
}

#[test]
fn a_truncated_recording_replays_every_complete_line_then_says_so() {
    let text = synthetic::recording(2, 200);
    let cut = text.len() - 5;
    let report = replay_text(&text[..cut]);
    let Err(ReplayError::Parse(e)) = &report.result else {
        panic!("{:?}", report.result)
    };
    assert_eq!(report.lines, 199);
    assert_eq!(e.line, 7 + 200);
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn the_timeline_follows_one_channel_in_a_window() {
    let text = synthetic::recording(9, 2_000);
    let (recording, _) = Recording::parse(&text);
    let mut all = Timeline::new(Filter::default());
    replay(&recording, None, &ReplayOptions::default(), |s| all.step(s));
    assert_eq!(all.shown(), 2_000);

    // Follow the channel of the 5th accept.
    let line = recording.segments[0]
        .lines
        .iter()
        .filter(|l| {
            matches!(l.input, Input::Accept { .. }) && matches!(l.outcome, Outcome::Opened(_))
        })
        .nth(4)
        .unwrap();
    let Outcome::Opened(id) = line.outcome else {
        unreachable!()
    };
    let filter = Filter {
        channel: Some(id),
        ..Filter::default()
    };
    let mut one = Timeline::new(filter);
    replay(&recording, None, &ReplayOptions::default(), |s| one.step(s));
    let text = one.text();
    let first = text.lines().next().unwrap();
    assert!(first.contains(&format!("=> opened {id}")), "{text}");
    assert!(text.contains(&format!("Disconnected {id} ")), "{text}");
    assert!(text.lines().all(|l| l.contains(&id.to_string())), "{text}");
    assert!(one.shown() < 400, "{}", one.shown());

    // A window: only inputs in [2s, 3s].
    let filter = Filter {
        from: Some(Duration::from_secs(2)),
        to: Some(Duration::from_secs(3)),
        ..Filter::default()
    };
    let mut window = Timeline::new(filter);
    replay(&recording, None, &ReplayOptions::default(), |s| {
        window.step(s)
    });
    for l in window.text().lines() {
        let t: f64 = l.split_whitespace().next().unwrap().parse().unwrap();
        assert!((2.0..=3.0).contains(&t), "{l}");
    }
    assert!(window.shown() > 0);
    println!("{}", window.text());
}
