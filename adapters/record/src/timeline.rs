//! A readable timeline of a replay: one line per input with its time
//! (seconds, six decimals), the input, what it returned and the outputs it
//! produced:
//!
//! ```text
//!      0.000120  accept 127.0.0.1:50312 => opened #0.1 | Opened #0.1 127.0.0.1:50312
//!     12.000345  kick #0.1 abort 7 => ok | Abort #0.1, Disconnected #0.1 kicked(7)
//! ```
//!
//! A [`Filter`] keeps one channel's life (the inputs naming it — its
//! `accept` included — and the outputs mentioning it) and a window of time.
//!
//! ```
//! use tether_record::Recording;
//! use tether_record::replay::{ReplayOptions, replay};
//! use tether_record::timeline::{Filter, Timeline};
//!
//! let (recording, _) = Recording::parse(tether_record::replay::example_recording());
//! let mut timeline = Timeline::new(Filter::default());
//! replay(&recording, None, &ReplayOptions::default(), |step| timeline.step(step));
//! let text = timeline.text();
//! assert!(text.starts_with("     0.000120  accept 127.0.0.1:50312 => opened #"), "{text}");
//! assert_eq!(text.lines().count(), 5);
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use tether_core::testing::Outcome;
use tether_core::{Action, ChannelId, Event, ShutdownHow};

use crate::format::{encode_input, encode_outcome};
use crate::replay::Step;

/// What a timeline shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only inputs naming this channel (or opening it) and outputs
    /// mentioning it.
    pub channel: Option<ChannelId>,
    /// Only inputs at or after this time since the epoch.
    pub from: Option<Duration>,
    /// Only inputs at or before this time since the epoch.
    pub to: Option<Duration>,
}

impl Filter {
    /// Whether an input at `at_ns` is inside the window.
    pub fn in_window(&self, at_ns: u64) -> bool {
        let t = Duration::from_nanos(at_ns);
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|to| t <= to)
    }
}

/// Collects the timeline of a replay, step by step (pass
/// [`Timeline::step`] as the replay's observer).
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    filter: Filter,
    text: String,
    shown: usize,
}

impl Timeline {
    /// An empty timeline with `filter`.
    pub fn new(filter: Filter) -> Timeline {
        Timeline {
            filter,
            text: String::new(),
            shown: 0,
        }
    }

    /// Adds a replayed input, if the filter keeps it.
    pub fn step(&mut self, step: &Step<'_>) {
        if let Some(line) = format_step(step, &self.filter) {
            self.text.push_str(&line);
            self.text.push('\n');
            self.shown += 1;
        }
    }

    /// Inputs shown so far.
    pub fn shown(&self) -> usize {
        self.shown
    }

    /// The timeline so far, one line per input shown.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The timeline line of one step (without `\n`), or `None` when `filter`
/// leaves it out.
pub fn format_step(step: &Step<'_>, filter: &Filter) -> Option<String> {
    let line = step.line;
    if !filter.in_window(line.at_ns) {
        return None;
    }
    let follows = |id: Option<ChannelId>| filter.channel.is_none() || id == filter.channel;
    let names = filter.channel.is_none()
        || (line.input.channels().iter()).any(|id| follows(Some(*id)))
        || matches!(step.outcome, Outcome::Opened(id) if follows(Some(id)));
    let outputs: Vec<String> = step
        .actions
        .iter()
        .filter(|a| follows(a.channel()))
        .map(action_text)
        .chain(
            step.events
                .iter()
                .filter(|e| follows(e.channel()))
                .map(event_text),
        )
        .collect();
    // Following a channel: the inputs naming it, and any other input that
    // did something to it (a timeout, a broadcast, a shutdown).
    if !names && outputs.is_empty() {
        return None;
    }
    let mut out = String::new();
    let t = Duration::from_nanos(line.at_ns);
    let _ = write!(out, "{:>6}.{:06}  ", t.as_secs(), t.subsec_micros());
    let mut bytes = Vec::new();
    encode_input(&line.input, false, &mut bytes);
    bytes.extend_from_slice(b" => ");
    encode_outcome(&step.outcome, &mut bytes);
    out.push_str(&String::from_utf8_lossy(&bytes));
    if step.outcome != line.outcome {
        let mut recorded = Vec::new();
        encode_outcome(&line.outcome, &mut recorded);
        let _ = write!(out, " (recorded {})", String::from_utf8_lossy(&recorded));
    }
    if !outputs.is_empty() {
        out.push_str(" | ");
        out.push_str(&outputs.join(", "));
    }
    Some(out)
}

/// An action as the timeline shows it: `Transmit #0.1 6`, `Shutdown #0.1
/// write`, `Abort #0.1`, `CloseSocket #0.1`, `PauseAccept`.
pub fn action_text(action: &Action) -> String {
    match action {
        Action::Transmit { id, data } => format!("Transmit {id} {}", data.len()),
        Action::Shutdown { id, how } => {
            let how = match how {
                ShutdownHow::Write => "write",
                ShutdownHow::Both => "both",
            };
            format!("Shutdown {id} {how}")
        }
        Action::Abort { id } => format!("Abort {id}"),
        Action::CloseSocket { id } => format!("CloseSocket {id}"),
        Action::PauseAccept => "PauseAccept".into(),
        Action::ResumeAccept => "ResumeAccept".into(),
    }
}

/// An event as the timeline shows it: `Opened #0.1 127.0.0.1:50312`,
/// `Received #0.1 12`, `Disconnected #0.1 kicked(7)`, `Released #0.1`.
pub fn event_text(event: &Event) -> String {
    match event {
        Event::Opened { id, peer } => format!("Opened {id} {peer}"),
        Event::Received { id, data } => format!("Received {id} {}", data.len()),
        Event::Writable { id } => format!("Writable {id}"),
        Event::ReadClosed { id } => format!("ReadClosed {id}"),
        Event::Disconnected { id, reason } => format!("Disconnected {id} {reason}"),
        Event::HolderOverdue {
            id,
            holders,
            waited,
        } => format!("HolderOverdue {id} holders={holders} waited={waited:?}"),
        Event::Released { id } => format!("Released {id}"),
        Event::ShutdownComplete => "ShutdownComplete".into(),
        other => format!("{other:?}"),
    }
}
