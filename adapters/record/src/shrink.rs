//! Shrinking a recording: from a long recording that
//! breaks an invariant (or any failure a predicate recognises) to the few
//! input lines that still do, saved as a recording that replays exactly.
//!
//! The algorithm is the checker kit's, shared with the simulator (ddmin
//! over lines, then simpler lines:
//! [`tether_core::testing::shrink::shrink_lines`]). A candidate is a subsequence of the
//! recorded input lines, replayed *loosely* ([`run_loose`]): from the first
//! segment's snapshot, under the checker, with results not compared, and
//! with ids remapped — a recorded id is mapped to the id the replay's hub
//! gave at the line that opened it (its `accept`); an id whose `accept` was
//! deleted, or that was stale or forged in the recording, passes through
//! unchanged. The minimal candidate's loose run is then written out with
//! its actual outcomes and checksums ([`Shrunk::text`]).
//!
//! ```
//! use tether_record::Recording;
//! use tether_record::shrink::{ShrinkLimits, run_loose, shrink_with};
//! use tether_core::Event;
//!
//! let (recording, _) = Recording::parse(tether_record::replay::example_recording());
//! let segment = &recording.segments[0];
//! // "Fails" when anything is received: only accept + received remain.
//! let received = |run: &tether_record::shrink::LooseRun| {
//!     run.steps.iter().position(|s| s.events.iter().any(|e| matches!(e, Event::Received { .. })))
//!         .map(|i| i + 1)
//! };
//! let shrunk = shrink_with(&segment.header, &segment.lines, ShrinkLimits::default(), received)
//!     .unwrap()
//!     .expect("the whole recording fails");
//! assert_eq!(shrunk.lines.len(), 2);
//! let (small, error) = Recording::parse(&shrunk.text);
//! assert!(error.is_none());
//! assert!(run_loose(&small.segments[0].header, &small.segments[0].lines).unwrap().violation.is_none());
//! ```

use std::collections::HashMap;
use std::panic;
use std::time::Instant;

use bytes::Bytes;
use tether_core::testing::{Input, Outcome, Violation};
use tether_core::{Action, ChannelId, Event};

pub use tether_core::testing::shrink::ShrinkLimits;

use crate::format::{Header, Line, encode_header, encode_line};
use crate::replay::{at, feed, restore};

/// One line of a loose run: the line as it was fed (ids remapped) with
/// the outcome and checksum it actually got, and its outputs.
#[derive(Debug, Clone)]
pub struct LooseStep {
    /// The re-recorded line.
    pub line: Line,
    /// The actions it emitted.
    pub actions: Vec<Action>,
    /// The events it emitted.
    pub events: Vec<Event>,
}

/// A loose replay: every step up to the end or to the first violation.
#[derive(Debug, Clone, Default)]
pub struct LooseRun {
    /// The steps replayed (the violating one included).
    pub steps: Vec<LooseStep>,
    /// The first violation and the index of its step in `steps`.
    pub violation: Option<(usize, Violation)>,
}

/// Replays `lines` loosely from `header`'s snapshot (see the
/// [module docs](self)); stops at the first violation or at a time the
/// clock cannot hold. Fails only when the snapshot does not restore.
pub fn run_loose(header: &Header, lines: &[Line]) -> Result<LooseRun, String> {
    let base = Instant::now();
    let (mut hub, mut checker) = restore(header, base)?;
    let mut ids: HashMap<ChannelId, ChannelId> = HashMap::new();
    let mut checksum = header.checksum;
    let mut run = LooseRun::default();
    for line in lines {
        let Some(now) = at(base, line.at_ns) else {
            break;
        };
        let input = remap(&line.input, &ids);
        let (mut actions, mut events) = (Vec::new(), Vec::new());
        let (outcome, violation) = feed(
            &mut hub,
            checker.as_mut(),
            now,
            &input,
            &mut actions,
            &mut events,
        );
        if let (Outcome::Opened(recorded), Outcome::Opened(actual)) = (line.outcome, outcome) {
            ids.insert(recorded, actual);
        }
        actions.iter().for_each(|a| checksum.update_action(a));
        events.iter().for_each(|e| checksum.update_event(e));
        run.steps.push(LooseStep {
            line: Line {
                at_ns: line.at_ns,
                input,
                outcome,
                checksum,
            },
            actions,
            events,
        });
        if let Some(v) = violation {
            run.violation = Some((run.steps.len() - 1, v));
            break;
        }
    }
    Ok(run)
}

/// `input` with its id replaced by the replay's, when the recording's
/// `accept` of that id was replayed.
fn remap(input: &Input, ids: &HashMap<ChannelId, ChannelId>) -> Input {
    let mut input = input.clone();
    for id in input.channels_mut() {
        if let Some(mapped) = ids.get(id) {
            *id = *mapped;
        }
    }
    input
}

/// Simpler versions of one line: payloads and written counts halved, a
/// shutdown's grace halved.
fn simpler(line: &Line) -> Vec<Line> {
    let half = |data: &Bytes| data.slice(..data.len() / 2);
    let input = match &line.input {
        Input::Received { id, data } if !data.is_empty() => Input::Received {
            id: *id,
            data: half(data),
        },
        Input::Send { id, data } if !data.is_empty() => Input::Send {
            id: *id,
            data: half(data),
        },
        Input::Broadcast { data } if !data.is_empty() => Input::Broadcast { data: half(data) },
        Input::BroadcastTo { ids, data } if !data.is_empty() => Input::BroadcastTo {
            ids: ids.clone(),
            data: half(data),
        },
        Input::Written { id, n } if *n > 0 => Input::Written { id: *id, n: n / 2 },
        Input::Shutdown { grace } if !grace.is_zero() => Input::Shutdown { grace: *grace / 2 },
        _ => return Vec::new(),
    };
    vec![Line {
        input,
        ..line.clone()
    }]
}

/// A shrunk recording.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The minimal candidate, re-recorded (ids, outcomes and checksums as
    /// its replay produced them).
    pub lines: Vec<Line>,
    /// The recording's text: the original first header, then `lines`.
    pub text: Vec<u8>,
    /// Input lines before shrinking.
    pub original: usize,
    /// The violation the minimal candidate still shows, if any.
    pub violation: Option<Violation>,
}

/// Shrinks `lines` (replayed from `header`) to a minimal subsequence for
/// which `fails` holds. `fails` sees a candidate's loose run and answers
/// `Some(n)` when it fails, with `n` the steps it needed (the rest of the
/// candidate is dropped), else `None`. Returns `Ok(None)` when the whole
/// recording does not fail; `Err` when the snapshot does not restore.
/// Panics inside the hub are caught (and silenced) while shrinking.
pub fn shrink_with(
    header: &Header,
    lines: &[Line],
    limits: ShrinkLimits,
    mut fails: impl FnMut(&LooseRun) -> Option<usize>,
) -> Result<Option<Shrunk>, String> {
    let full = run_loose(header, lines)?;
    if fails(&full).is_none() {
        return Ok(None);
    }
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let best =
        tether_core::testing::shrink::shrink_lines(lines.to_vec(), limits, simpler, |candidate| {
            run_loose(header, candidate)
                .ok()
                .and_then(|run| fails(&run))
        });
    let run = run_loose(header, &best);
    panic::set_hook(hook);
    let run = run?;
    let violation = run.violation.clone().map(|(_, v)| v);
    let lines: Vec<Line> = run.steps.into_iter().map(|s| s.line).collect();
    let mut text = Vec::new();
    encode_header(header, &mut text).map_err(|e| e.to_string())?;
    for line in &lines {
        encode_line(line, header.bytes, &mut text);
    }
    Ok(Some(Shrunk {
        lines,
        text,
        original: full.steps.len(),
        violation,
    }))
}

/// Shrinks a recording that breaks an invariant to a minimal one that
/// breaks the same invariant (`Ok(None)` when it breaks none).
pub fn shrink_violation(
    header: &Header,
    lines: &[Line],
    limits: ShrinkLimits,
) -> Result<Option<Shrunk>, String> {
    let Some((_, found)) = run_loose(header, lines)?.violation else {
        return Ok(None);
    };
    shrink_with(header, lines, limits, |run| match &run.violation {
        Some((i, v)) if v.invariant == found.invariant => Some(i + 1),
        _ => None,
    })
}
