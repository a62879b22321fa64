//! The body of the `record_parse` fuzz target (fuzz/fuzz_targets/), also
//! run on stable over its corpus by `cargo test` (tests/regressions.rs).
//!
//! Arbitrary bytes go to the parser; whatever parsed must encode back to
//! text that parses to the same recording, and is then replayed with small
//! limits. Nothing may panic; a broken invariant of a replay that the
//! checker watched (a recording that starts from a fresh hub) is a hub bug
//! and an error here, while divergences are expected (the outcomes and
//! checksums in fuzzed text are rarely right).
//!
//! ```
//! let text = tether_record::replay::example_recording();
//! let report = tether_record::fuzz::parse_and_replay(&text).unwrap().unwrap();
//! assert!(report.result.is_ok());
//! assert!(tether_record::fuzz::parse_and_replay(b"\xff\x00garbage").unwrap().is_none());
//! ```

use crate::format::{Recording, encode_header, encode_line};
use crate::replay::{ReplayError, ReplayOptions, ReplayReport, replay};

/// Most input lines one fuzz input replays.
pub const MAX_LINES: u64 = 2_000;

/// Payloads above this many bytes in total skip the replay (the parser
/// accepts up to 256 MiB each).
pub const MAX_PAYLOAD_TOTAL: usize = 1 << 20;

/// Parses `data`, checks that what parsed round-trips through the
/// encoders, and replays it with [`MAX_LINES`]. `Ok(None)` when nothing
/// replayable parsed (or the payloads are over [`MAX_PAYLOAD_TOTAL`]);
/// `Err` names a broken property: a parse error naming a line past the
/// text's end, a round trip that changes the recording, or a broken
/// invariant in a checked replay.
pub fn parse_and_replay(data: &[u8]) -> Result<Option<ReplayReport>, String> {
    let (recording, error) = Recording::parse(data);
    if let Some(e) = &error {
        let lines = data.split(|&b| b == b'\n').count();
        if e.line == 0 || e.line > lines {
            return Err(format!("{e}: the text has {lines} lines"));
        }
        if e.to_string().is_empty() {
            return Err(format!("{e:?} has no message"));
        }
    }
    if recording.segments.is_empty() {
        return Ok(None);
    }
    round_trip(&recording)?;
    let payload: usize = recording
        .lines()
        .map(|(_, l)| l.input.payload().map_or(0, |data| data.len()))
        .sum();
    if payload > MAX_PAYLOAD_TOTAL {
        return Ok(None);
    }
    let options = ReplayOptions {
        max_lines: Some(MAX_LINES),
    };
    let report = replay(&recording, error.as_ref(), &options, |_| {});
    if let Err(e @ ReplayError::Violation { .. }) = &report.result
        && report.checked
    {
        return Err(format!("a checked replay broke an invariant: {e}"));
    }
    Ok(Some(report))
}

/// Encodes `recording` and parses it again: it must come back the same.
fn round_trip(recording: &Recording) -> Result<(), String> {
    let mut text = Vec::new();
    for segment in &recording.segments {
        if encode_header(&segment.header, &mut text).is_err() {
            return Ok(()); // a snapshot serde cannot write back: not ours
        }
        for line in &segment.lines {
            encode_line(line, segment.header.bytes, &mut text);
        }
    }
    let (again, error) = Recording::parse(&text);
    if let Some(e) = error {
        return Err(format!("the re-encoded recording does not parse: {e}"));
    }
    let same = again.segments.len() == recording.segments.len()
        && again
            .segments
            .iter()
            .zip(&recording.segments)
            .all(|(a, b)| a.header == b.header && a.lines == b.lines);
    if !same {
        return Err("the re-encoded recording parses differently".into());
    }
    Ok(())
}
