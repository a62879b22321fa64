//! What a replay reports: each replayed step as an observer sees it, the
//! first divergence or error, and the summary of the whole replay.

use std::time::Duration;

use std::collections::BTreeMap;

use tether_core::testing::{Outcome, Violation};
use tether_core::{Action, Event};

use crate::checksum::Checksum;
use crate::format::{Line, ParseError};

/// One replayed input, as an observer (e.g. the timeline) sees it.
#[derive(Debug)]
pub struct Step<'a> {
    /// The 0-based segment index.
    pub segment: usize,
    /// The 1-based line number in the segment's text.
    pub line_number: usize,
    /// The recorded line.
    pub line: &'a Line,
    /// What the replayed call returned.
    pub outcome: Outcome,
    /// The running checksum after its outputs.
    pub checksum: Checksum,
    /// The actions it emitted, in order.
    pub actions: &'a [Action],
    /// The events it emitted, in order.
    pub events: &'a [Event],
}

/// The first line whose replay differs from its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The 0-based segment index.
    pub segment: usize,
    /// The 1-based line number.
    pub line_number: usize,
    /// The recorded line, as text (without its `\n`).
    pub text: String,
    /// The recorded outcome.
    pub expected_outcome: Outcome,
    /// The recorded running checksum (with its output count).
    pub expected_checksum: Checksum,
    /// What the replay returned.
    pub actual_outcome: Outcome,
    /// The replay's running checksum.
    pub actual_checksum: Checksum,
    /// The actions the replayed input emitted.
    pub actions: Vec<Action>,
    /// The events the replayed input emitted.
    pub events: Vec<Event>,
}

/// Why a replay stopped before the end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// An input did not return what was recorded, or its outputs differ.
    #[error("{0}")]
    Divergence(Box<Divergence>),
    /// The checker found a broken invariant (10: the hub panicked).
    #[error("line {line_number}: invariant {} violated: {}\n  input: {text}", .violation.invariant, .violation.message)]
    Violation {
        /// The 0-based segment index.
        segment: usize,
        /// The 1-based line number.
        line_number: usize,
        /// The recorded line, as text.
        text: String,
        /// What broke.
        violation: Violation,
    },
    /// The first segment's snapshot does not restore (`Hub::restore` names
    /// what is wrong with it).
    #[error("line {header_line}: {problem}")]
    Restore {
        /// The header's first line.
        header_line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A later segment's header does not fit the replayed hub: its segment
    /// number, checksum or snapshot differs.
    #[error("line {header_line}: segment {} of the replay: {problem}", .segment + 1)]
    Segment {
        /// The 0-based segment index.
        segment: usize,
        /// The header's first line.
        header_line: usize,
        /// What does not fit.
        problem: String,
    },
    /// A line's time is too far from the base instant to be an `Instant`.
    #[error("line {line_number}: time {at_ns} ns cannot be represented on this clock")]
    Time {
        /// The 1-based line number.
        line_number: usize,
        /// The line's time.
        at_ns: u64,
    },
    /// The recording stopped parsing here (every line before it replayed).
    #[error("{0}")]
    Parse(ParseError),
    /// There is nothing to replay: no segment header.
    #[error("no segment to replay (no `tether-record` header)")]
    Empty,
}

impl ReplayError {
    /// The line the error names (the header's first line for a segment).
    pub fn line_number(&self) -> Option<usize> {
        match self {
            ReplayError::Divergence(d) => Some(d.line_number),
            ReplayError::Violation { line_number, .. } | ReplayError::Time { line_number, .. } => {
                Some(*line_number)
            }
            ReplayError::Segment { header_line, .. } | ReplayError::Restore { header_line, .. } => {
                Some(*header_line)
            }
            ReplayError::Parse(e) => Some(e.line),
            ReplayError::Empty => None,
        }
    }

    /// Whether the recording cannot be replayed as written (it does not
    /// parse, its snapshot does not restore, a time is out of range, it is
    /// empty), as opposed to a replay that differs from it.
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            ReplayError::Parse(_)
                | ReplayError::Restore { .. }
                | ReplayError::Time { .. }
                | ReplayError::Empty
        )
    }
}

/// What a replay did, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Segments started.
    pub segments: usize,
    /// Input lines replayed (the diverging one included).
    pub lines: u64,
    /// Input lines per kind (`accept`, `received`, …).
    pub inputs: BTreeMap<&'static str, u64>,
    /// Distinct channel ids seen (opened or named by an input).
    pub channels: usize,
    /// The first and last line's time, in nanoseconds since the epoch.
    pub span_ns: Option<(u64, u64)>,
    /// The running checksum at the end (with the output count).
    pub checksum: Checksum,
    /// Whether the invariant checker watched the replay (from the first
    /// segment on).
    pub checked: bool,
    /// `Ok` when every line replayed as recorded; else the first problem.
    pub result: Result<(), ReplayError>,
}

impl ReplayReport {
    /// The time the recording spans (last line's time − first line's).
    pub fn span(&self) -> Duration {
        self.span_ns
            .map_or(Duration::ZERO, |(a, b)| Duration::from_nanos(b - a))
    }
}
