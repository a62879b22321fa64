//! Replaying a recording: every input line fed again through a hub
//! restored from the segment's snapshot, on a virtual clock, under the
//! invariant checker, with each outcome and the running output checksum
//! compared with the recorded ones.
//!
//! The virtual clock: a base `Instant` is the recording's epoch; a line at
//! `at_ns` is fed at `base + at_ns`. The first segment's snapshot is
//! restored with that epoch. The checker starts with
//! [`Checker::new`] when the snapshot is a fresh hub (a recording from the
//! start of a run), else with [`Checker::from_snapshot`] (a segment that
//! starts mid-run: its reference model starts from the snapshot too). Each later segment's header must equal the replayed
//! hub: its snapshot (`Hub::snapshot` at the same epoch) and its checksum.
//!
//! The first difference ends the replay: a [`Divergence`] (the line, its
//! text, the recorded outcome and checksum, and what the replay produced,
//! outputs listed), a broken invariant, or a header that does not match.
//! A parse error is reported after every complete line before it was
//! replayed. Nothing here panics on any input; a panic inside the hub is
//! caught and reported as invariant 10, as tether-sim does.
//!
//! ```
//! use tether_record::Recording;
//! use tether_record::replay::{ReplayOptions, replay};
//!
//! let text = tether_record::replay::example_recording();
//! let (recording, error) = Recording::parse(&text);
//! let report = replay(&recording, error.as_ref(), &ReplayOptions::default(), |_| {});
//! assert!(report.result.is_ok(), "{}", report.result.unwrap_err());
//! assert_eq!(report.lines, 5);
//! assert_eq!(report.channels, 1);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use tether_core::testing::{Checker, Input, Outcome, Violation};
use tether_core::{Action, Event, Hub};

use crate::checksum::Checksum;
use crate::format::{Header, Line, ParseError, Recording, Segment, encode_line};

mod diff;
mod report;

pub use diff::snapshot_difference;
pub use report::{Divergence, ReplayError, ReplayReport, Step};

/// Limits and switches of one replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Stop (successfully) after this many input lines (`None`: all).
    pub max_lines: Option<u64>,
}

/// A replay in progress: feed it segments in order with
/// [`Replayer::segment`], then take its [`Replayer::report`].
pub struct Replayer {
    options: ReplayOptions,
    base: Instant,
    hub: Option<Hub>,
    checker: Option<Checker>,
    checksum: Checksum,
    actions: Vec<Action>,
    events: Vec<Event>,
    segments: usize,
    lines: u64,
    inputs: BTreeMap<&'static str, u64>,
    channels: BTreeSet<u64>,
    span_ns: Option<(u64, u64)>,
    checked: bool,
    last_segment: Option<u64>,
    result: Result<(), ReplayError>,
}

impl fmt::Debug for Replayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replayer")
            .field("segments", &self.segments)
            .field("lines", &self.lines)
            .field("result", &self.result)
            .finish_non_exhaustive()
    }
}

/// Where a replayed line is, and how to print it, for its step and errors.
struct Place<'l> {
    /// The 0-based segment index.
    segment: usize,
    /// The 1-based line number in the segment's text.
    line_number: usize,
    line: &'l Line,
    /// Whether the segment has payloads (its header's `bytes`).
    bytes: bool,
}

impl Place<'_> {
    /// The line's text, as the recording has it.
    fn text(&self) -> String {
        line_text(self.line, self.bytes)
    }
}

/// How the violation of a panicking step starts.
const PANICKED: &str = "the hub panicked";

/// Runs `f`, turning a panic into its message.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

/// The instant of a line: `base + at_ns`, if the clock can hold it.
pub(crate) fn at(base: Instant, at_ns: u64) -> Option<Instant> {
    base.checked_add(Duration::from_nanos(at_ns))
}

/// The hub restored from a header's snapshot at epoch `base`, and a
/// checker for it: [`Checker::new`] for a fresh hub, else
/// [`Checker::from_snapshot`].
pub(crate) fn restore(header: &Header, base: Instant) -> Result<(Hub, Option<Checker>), String> {
    let snapshot = &header.snapshot;
    let hub = catch(|| Hub::restore(snapshot, base))
        .map_err(|p| format!("restoring the snapshot panicked: {p}"))?
        .map_err(|e| format!("the snapshot does not restore: {e}"))?;
    let fresh = Hub::new(snapshot.config().clone())
        .ok()
        .and_then(|h| h.snapshot(base).ok())
        .is_some_and(|s| s == *snapshot);
    let checker = if fresh {
        Some(Checker::new(snapshot.config()))
    } else {
        // Mid-run: the checker's model starts from the snapshot too.
        catch(|| Checker::from_snapshot(snapshot, base))
            .ok()
            .and_then(Result::ok)
    };
    Ok((hub, checker))
}

/// Feeds `input` to `hub` at `now` (checked by `checker` when there is
/// one), appending what it emitted; returns the outcome and the first
/// violation the step revealed. A panic is a violation of invariant 10 (its
/// outcome is reported as `ok`).
pub(crate) fn feed(
    hub: &mut Hub,
    checker: Option<&mut Checker>,
    now: Instant,
    input: &Input,
    actions: &mut Vec<Action>,
    events: &mut Vec<Event>,
) -> (Outcome, Option<Violation>) {
    let run = catch(|| {
        let outcome = input.apply(hub, now);
        let (first_action, first_event) = (actions.len(), events.len());
        actions.extend(std::iter::from_fn(|| hub.poll_action()));
        events.extend(std::iter::from_fn(|| hub.poll_event()));
        let Some(checker) = checker else {
            return (outcome, None);
        };
        // What `Checker::step` does, keeping the outcome of a bad step.
        checker.input(now, input, outcome);
        actions[first_action..]
            .iter()
            .for_each(|a| checker.action(a));
        events[first_event..].iter().for_each(|e| checker.event(e));
        checker.poll_timeout(hub.poll_timeout());
        checker.check_stats(hub);
        (outcome, checker.finish_step().err())
    });
    run.unwrap_or_else(|msg| {
        let v = Violation::new(0, 10, format!("{PANICKED}: {msg}"));
        (Outcome::Ok, Some(v))
    })
}

/// The canonical text of a line, without its `\n`.
pub fn line_text(line: &Line, bytes: bool) -> String {
    let mut out = Vec::new();
    encode_line(line, bytes, &mut out);
    out.pop();
    String::from_utf8_lossy(&out).into_owned()
}

impl Replayer {
    /// A replay on a virtual clock whose epoch is now.
    pub fn new(options: ReplayOptions) -> Replayer {
        Replayer {
            options,
            base: Instant::now(),
            hub: None,
            checker: None,
            checksum: Checksum::ZERO,
            actions: Vec::new(),
            events: Vec::new(),
            segments: 0,
            lines: 0,
            inputs: BTreeMap::new(),
            channels: BTreeSet::new(),
            span_ns: None,
            checked: false,
            last_segment: None,
            result: Ok(()),
        }
    }

    /// Whether the replay stopped (a problem, or `max_lines`).
    pub fn stopped(&self) -> bool {
        self.result.is_err() || self.options.max_lines.is_some_and(|m| self.lines >= m)
    }

    /// The hub being replayed (once a segment started).
    pub fn hub(&self) -> Option<&Hub> {
        self.hub.as_ref()
    }

    /// Replays one segment: checks or restores its header, then feeds every
    /// line, calling `observe` after each. Returns the first problem (also
    /// kept for the report); does nothing once the replay stopped.
    pub fn segment(
        &mut self,
        segment: &Segment,
        mut observe: impl FnMut(&Step<'_>),
    ) -> Result<(), ReplayError> {
        if self.stopped() {
            return self.result.clone();
        }
        let index = self.segments;
        self.segments += 1;
        let first = self.hub.is_none();
        if let Err(problem) = self.start(segment) {
            let header_line = segment.header_line;
            return self.stop(if first {
                ReplayError::Restore {
                    header_line,
                    problem,
                }
            } else {
                ReplayError::Segment {
                    segment: index,
                    header_line,
                    problem,
                }
            });
        }
        for (line_number, line) in segment.numbered() {
            if self.stopped() {
                break;
            }
            let bytes = segment.header.bytes;
            if let Err(e) = self.line(index, line_number, line, bytes, &mut observe) {
                return self.stop(e);
            }
        }
        self.result.clone()
    }

    /// Records that the recording stopped parsing (after the lines before).
    pub fn parse_error(&mut self, error: &ParseError) {
        if self.result.is_ok() {
            self.result = Err(ReplayError::Parse(error.clone()));
        }
    }

    fn stop(&mut self, error: ReplayError) -> Result<(), ReplayError> {
        if self.result.is_ok() {
            self.result = Err(error);
        }
        self.result.clone()
    }

    /// The first segment restores the hub; a later one must match it.
    fn start(&mut self, segment: &Segment) -> Result<(), String> {
        let header = &segment.header;
        let Some(hub) = &self.hub else {
            let (hub, checker) = restore(header, self.base)?;
            self.checked = checker.is_some();
            self.hub = Some(hub);
            self.checker = checker;
            self.checksum = header.checksum;
            self.last_segment = Some(header.segment);
            return Ok(());
        };
        let expected = self.last_segment.map_or(0, |n| n.saturating_add(1));
        let number = self.last_segment.replace(header.segment);
        if number.is_some() && header.segment != expected {
            return Err(format!(
                "its header says segment {}, the next one is {expected}: the files are not consecutive, oldest first",
                header.segment
            ));
        }
        if header.checksum != self.checksum {
            return Err(format!(
                "its checksum {:016x} {} differs from the replay's {:016x} {}",
                header.checksum.hash,
                header.checksum.outputs,
                self.checksum.hash,
                self.checksum.outputs
            ));
        }
        let replayed = catch(|| hub.snapshot(self.base))
            .map_err(|p| format!("taking the replayed hub's snapshot panicked: {p}"))?
            .map_err(|e| format!("the replayed hub cannot be snapshot: {e}"))?;
        if let Some(difference) = snapshot_difference(&header.snapshot, &replayed) {
            return Err(format!(
                "its snapshot differs from the replayed hub's: {difference}"
            ));
        }
        Ok(())
    }

    /// Replays one input line: counts it, feeds it, then judges the step.
    fn line(
        &mut self,
        segment: usize,
        line_number: usize,
        line: &Line,
        bytes: bool,
        observe: &mut impl FnMut(&Step<'_>),
    ) -> Result<(), ReplayError> {
        let Some(hub) = self.hub.as_mut() else {
            return Ok(());
        };
        let now = at(self.base, line.at_ns).ok_or(ReplayError::Time {
            line_number,
            at_ns: line.at_ns,
        })?;
        self.lines += 1;
        *self.inputs.entry(line.input.name()).or_default() += 1;
        let (first, _) = self.span_ns.unwrap_or((line.at_ns, line.at_ns));
        self.span_ns = Some((first, line.at_ns));
        for id in line.input.channels() {
            self.channels.insert(id.to_raw());
        }
        self.actions.clear();
        self.events.clear();
        let (outcome, violation) = feed(
            hub,
            self.checker.as_mut(),
            now,
            &line.input,
            &mut self.actions,
            &mut self.events,
        );
        let place = Place {
            segment,
            line_number,
            line,
            bytes,
        };
        self.judge(&place, outcome, violation, observe)
    }

    /// What one fed line produced, against the recording: a panic first
    /// (whatever was recorded), then the outcome and the checksum (after
    /// `observe` saw the step), then the checker's verdict.
    fn judge(
        &mut self,
        place: &Place<'_>,
        outcome: Outcome,
        violation: Option<Violation>,
        observe: &mut impl FnMut(&Step<'_>),
    ) -> Result<(), ReplayError> {
        let &Place {
            segment,
            line_number,
            line,
            ..
        } = place;
        // A panic ends the replay as invariant 10, whatever was recorded.
        if let Some(v) = violation
            .as_ref()
            .filter(|v| v.message.starts_with(PANICKED))
        {
            return Err(ReplayError::Violation {
                segment,
                line_number,
                text: place.text(),
                violation: v.clone(),
            });
        }
        if let Outcome::Opened(id) = outcome {
            self.channels.insert(id.to_raw());
        }
        for a in &self.actions {
            self.checksum.update_action(a);
        }
        for e in &self.events {
            self.checksum.update_event(e);
        }
        observe(&Step {
            segment,
            line_number,
            line,
            outcome,
            checksum: self.checksum,
            actions: &self.actions,
            events: &self.events,
        });
        if outcome != line.outcome || self.checksum != line.checksum {
            return Err(ReplayError::Divergence(Box::new(Divergence {
                segment,
                line_number,
                text: place.text(),
                expected_outcome: line.outcome,
                expected_checksum: line.checksum,
                actual_outcome: outcome,
                actual_checksum: self.checksum,
                actions: self.actions.clone(),
                events: self.events.clone(),
            })));
        }
        if let Some(violation) = violation {
            return Err(ReplayError::Violation {
                segment,
                line_number,
                text: place.text(),
                violation,
            });
        }
        Ok(())
    }

    /// The report so far.
    pub fn report(&self) -> ReplayReport {
        ReplayReport {
            segments: self.segments,
            lines: self.lines,
            inputs: self.inputs.clone(),
            channels: self.channels.len(),
            span_ns: self.span_ns,
            checksum: self.checksum,
            checked: self.checked,
            result: self.result.clone(),
        }
    }
}

/// Parses `text` and replays all of it with the default options: the
/// one-call form of [`Recording::parse`] then [`replay`] (a parse error
/// is the report's result once what parsed has replayed).
pub fn replay_text(text: impl AsRef<[u8]>) -> ReplayReport {
    let (recording, error) = Recording::parse(text);
    replay(
        &recording,
        error.as_ref(),
        &ReplayOptions::default(),
        |_| {},
    )
}

/// Replays every segment of `recording`, then reports `error` (the
/// parser's, if it stopped early). `observe` sees every replayed input.
pub fn replay(
    recording: &Recording,
    error: Option<&ParseError>,
    options: &ReplayOptions,
    mut observe: impl FnMut(&Step<'_>),
) -> ReplayReport {
    let mut replayer = Replayer::new(options.clone());
    for segment in &recording.segments {
        if replayer.segment(segment, &mut observe).is_err() {
            break;
        }
    }
    match error {
        Some(e) => replayer.parse_error(e),
        None if recording.segments.is_empty() => {
            let _ = replayer.stop(ReplayError::Empty);
        }
        None => {}
    }
    replayer.report()
}

/// A small recording of a fresh default hub (accept, attach, send,
/// written, received), for examples.
pub fn example_recording() -> Vec<u8> {
    let Ok(mut rec) = crate::rerecord::Rerecorder::fresh(tether_core::Config::default()) else {
        return Vec::new();
    };
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 50312));
    let Outcome::Opened(id) = rec.feed(120_000, Input::Accept { peer }) else {
        return rec.finish();
    };
    let data = bytes::Bytes::from_static(b"hello\n");
    rec.feed(120_000, Input::Attach { id });
    rec.feed(120_000, Input::Send { id, data });
    rec.feed(151_000, Input::Written { id, n: 6 });
    let data = bytes::Bytes::from(vec![0; 12]);
    rec.feed(4_000_000, Input::Received { id, data });
    rec.finish()
}
