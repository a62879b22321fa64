//! The plain-text trace: a config line, then one op per line with the time
//! it ran at, e.g.
//!
//! ```text
//! # tether-sim trace v1
//! # caught: (what this regression is about)
//! config max=2 resume=1 limit=64 high=16 low=4 overhead=8 overflow=reject half-close=allow kick=graceful idle=off login=off flush=500 overdue=2000 stall=1000 confirm=at-once
//! @0 accept
//! @0 send c0 tiny:9
//! @10 write c0 50
//! @10 kick c0 graceful 7
//! @600 wait
//! ```
//!
//! `@T` is milliseconds since the start; a time earlier than the line
//! before is a clock running backwards. Config keys left out keep their
//! defaults; `overhead` and `stall` default to off (0 and `off`), what the
//! hub did before they existed, so older traces replay unchanged. `#` starts a comment line, `;` a
//! comment at the end of a line. See [`Op`]'s `Display` for every op.

use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use tether_core::testing::Violation;

use crate::config::SimConfig;
use crate::op::Op;
use crate::sim::Sim;

/// A malformed trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// A line that is not `@T op`.
    #[error("line {0}: expected `@<ms> <op>`: {1:?}")]
    Line(usize, String),
    /// An op that does not parse.
    #[error("unknown or malformed op: {0:?}")]
    Op(String),
    /// A config entry that does not parse.
    #[error("malformed config entry: {0:?}")]
    Config(String),
}

/// One trace line: an op and when it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Milliseconds since the start.
    pub at_ms: u64,
    /// What happened.
    pub op: Op,
}

/// A whole run: its configuration and every op with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Comment lines (without `# `) written at the top.
    pub comments: Vec<String>,
    /// The configuration.
    pub config: SimConfig,
    /// The ops, in order.
    pub lines: Vec<Line>,
}

/// A run that broke an invariant (or panicked: invariant 10): the
/// violation and the trace up to and including the line that broke it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What broke.
    pub violation: Violation,
    /// How to get there again.
    pub trace: Trace,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self
            .trace
            .lines
            .last()
            .map(|l| format!("@{} {}", l.at_ms, l.op));
        writeln!(
            f,
            "{} (trace line {}: {})",
            self.violation,
            self.trace.lines.len(),
            last.unwrap_or_default()
        )?;
        write!(f, "{}", self.trace)
    }
}

impl std::error::Error for Failure {}

impl Trace {
    /// An empty trace for `config`.
    pub fn new(config: SimConfig) -> Trace {
        Trace {
            comments: Vec::new(),
            config,
            lines: Vec::new(),
        }
    }

    /// Parses a trace file's text.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut trace = Trace::new(SimConfig::default());
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split(';').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let comment = comment.trim();
                if !comment.starts_with("tether-sim trace") {
                    trace.comments.push(comment.to_string());
                }
                continue;
            }
            if let Some(config) = line.strip_prefix("config") {
                trace.config = SimConfig::parse(config)?;
                continue;
            }
            let bad = || TraceError::Line(i + 1, raw.to_string());
            let (at, op) = line
                .strip_prefix('@')
                .and_then(|l| l.split_once(char::is_whitespace))
                .ok_or_else(bad)?;
            let at_ms = at.parse().map_err(|_| bad())?;
            let op = op.trim().parse()?;
            trace.lines.push(Line { at_ms, op });
        }
        Ok(trace)
    }

    /// Replays the trace through a fresh simulator. A panic is reported as
    /// a violation of invariant 10.
    pub fn replay(&self, checks: bool) -> Result<u64, Box<Failure>> {
        self.replay_prefix(self.lines.len(), checks)
    }

    /// Replays the first `n` lines.
    pub fn replay_prefix(&self, n: usize, checks: bool) -> Result<u64, Box<Failure>> {
        let current = Cell::new(0);
        let run = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut sim = Sim::new(self.config.clone(), checks);
            for (i, line) in self.lines.iter().take(n).enumerate() {
                current.set(i);
                if let Err(violation) = sim.exec_line(line.at_ms, line.op) {
                    return Err((i, violation));
                }
            }
            Ok(sim.inputs())
        }));
        let (i, violation) = match run {
            Ok(Ok(inputs)) => return Ok(inputs),
            Ok(Err(found)) => found,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                (
                    current.get(),
                    Violation::new(0, 10, format!("panic: {msg}")),
                )
            }
        };
        let mut trace = self.clone();
        trace.lines.truncate(i + 1);
        Err(Box::new(Failure { violation, trace }))
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# tether-sim trace v1")?;
        for c in &self.comments {
            writeln!(f, "# {c}")?;
        }
        writeln!(f, "config {}", self.config)?;
        for line in &self.lines {
            writeln!(f, "@{} {}", line.at_ms, line.op)?;
        }
        Ok(())
    }
}
