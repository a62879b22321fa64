//! How a replay differs from its recording, as text: the divergence's
//! report and the first field where two snapshots differ.

use std::fmt;

use tether_core::testing::Outcome;

use super::Divergence;
use crate::format::encode_outcome;
use crate::timeline::{action_text, event_text};

/// The first field where two snapshots of the same run differ, if any.
///
/// Timer bookkeeping is left out: the timer heap, each channel's armed
/// instants and the heap's size. `Hub::poll_timeout` settles early and
/// stale heap entries, so they depend on when the adapter polled (not an
/// input, so not recorded), while the deadlines themselves (`last_activity`,
/// `closing_deadline`, `stall_since`, …) and every output do not.
pub fn snapshot_difference(
    recorded: &tether_core::Snapshot,
    replayed: &tether_core::Snapshot,
) -> Option<String> {
    fn normal(s: &tether_core::Snapshot) -> serde_json::Value {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("timers");
            if let Some(stats) = o.get_mut("stats").and_then(|s| s.as_object_mut()) {
                stats.remove("timer_entries");
            }
            for ch in o
                .get_mut("channels")
                .and_then(|c| c.as_array_mut())
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_object_mut())
            {
                ch.remove("armed");
                ch.remove("stall_armed");
            }
        }
        v
    }
    first_difference("", &normal(recorded), &normal(replayed))
}

fn first_difference(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        _ if a == b => None,
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .find_map(|(k, v)| first_difference(&format!("{path}.{k}"), v, &y[k]))
            .or_else(|| Some(format!("{path}: the fields differ"))),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(&format!("{path}[{i}]"), v, w)),
        _ => Some(format!("{path}: recorded {a}, replayed {b}")),
    }
}

fn outcome_text(outcome: &Outcome) -> String {
    let mut out = Vec::new();
    encode_outcome(outcome, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (e, a) = (self.expected_checksum, self.actual_checksum);
        writeln!(f, "line {}: the replay diverges", self.line_number)?;
        writeln!(f, "  input:    {}", self.text)?;
        writeln!(
            f,
            "  expected: {} {:016x} {} outputs",
            outcome_text(&self.expected_outcome),
            e.hash,
            e.outputs
        )?;
        write!(
            f,
            "  actual:   {} {:016x} {} outputs ({} from this input)",
            outcome_text(&self.actual_outcome),
            a.hash,
            a.outputs,
            self.actions.len() + self.events.len()
        )?;
        for a in &self.actions {
            write!(f, "\n    {}", action_text(a))?;
        }
        for e in &self.events {
            write!(f, "\n    {}", event_text(e))?;
        }
        Ok(())
    }
}
