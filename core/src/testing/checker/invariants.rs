//! Which invariant of docs/design.md §4 a difference between the model's
//! prediction and the hub's outputs breaks, and the per-channel diff.

use std::fmt;

use super::{Input, Outcome, Rejection};
use crate::{Action, ChannelId, Event, ShutdownHow};

/// Which invariant a wrong result breaks.
pub(super) fn outcome_invariant(input: &Input, expected: Outcome, got: Outcome) -> u8 {
    let id_error =
        |o: Outcome| matches!(o, Outcome::Rejected(Rejection::Stale | Rejection::Unknown));
    if id_error(expected) || id_error(got) {
        return 6;
    }
    match input {
        Input::Accept { .. } => 12,
        Input::Send { .. } | Input::Broadcast { .. } | Input::BroadcastTo { .. } => {
            if matches!(got, Outcome::Ok)
                && matches!(
                    expected,
                    Outcome::Rejected(Rejection::QueueFull { .. } | Rejection::TooLarge)
                )
            {
                8
            } else {
                4
            }
        }
        Input::Written { .. } => 4,
        Input::Kick { .. } | Input::KickDefault { .. } | Input::KickWithReason { .. } => 3,
        Input::Attach { .. } | Input::Detach { .. } => 5,
        Input::Closed { .. } => 6,
        Input::Received { .. } | Input::PeerEof { .. } => 2,
        _ => 1,
    }
}

/// Invariant broken when this action is missing (`missing`) or unexpected.
pub(super) fn action_invariant(a: &Action, missing: bool) -> u8 {
    match a {
        Action::Transmit { .. } => 4,
        Action::Shutdown {
            how: ShutdownHow::Write,
            ..
        }
        | Action::Abort { .. } => 3,
        Action::Shutdown {
            how: ShutdownHow::Both,
            ..
        } => 5,
        Action::CloseSocket { .. } if missing => 11,
        Action::CloseSocket { .. } => 5,
        Action::PauseAccept | Action::ResumeAccept => 12,
    }
}

/// Invariant broken when this event is missing (`missing`) or unexpected.
pub(super) fn event_invariant(e: &Event, missing: bool) -> u8 {
    match e {
        Event::Opened { .. } | Event::Disconnected { .. } => 1,
        Event::Received { .. } | Event::Writable { .. } | Event::ReadClosed { .. } => 2,
        Event::HolderOverdue { .. } => 7,
        Event::Released { .. } if missing => 11,
        Event::Released { .. } => 6,
        Event::ShutdownComplete => 11,
    }
}

/// Something an output belongs to: its channel, or the hub.
pub(super) trait Keyed {
    fn key(&self) -> u64;
}
impl Keyed for Action {
    fn key(&self) -> u64 {
        self.channel().map_or(u64::MAX, ChannelId::to_raw)
    }
}
impl Keyed for Event {
    fn key(&self) -> u64 {
        self.channel().map_or(u64::MAX, ChannelId::to_raw)
    }
}

/// Compares expected and seen outputs per channel (order kept within a
/// channel, free across channels). `None` when they match.
pub(super) fn diff<T: Keyed + PartialEq + Clone + fmt::Debug>(
    expected: &[T],
    seen: &[T],
    timeout: bool,
    invariant: fn(&T, bool) -> u8,
) -> Option<(u8, String)> {
    if expected == seen {
        return None;
    }
    let mut e: Vec<T> = expected.to_vec();
    let mut s: Vec<T> = seen.to_vec();
    e.sort_by_key(Keyed::key);
    s.sort_by_key(Keyed::key);
    let i = e
        .iter()
        .zip(&s)
        .position(|(a, b)| a != b)
        .unwrap_or(e.len().min(s.len()));
    let (inv, what) = match (e.get(i), s.get(i)) {
        (None, None) => return None,
        (Some(x), _) => {
            // A deadline's output missing from a timeout call: invariant 7.
            let inv = if timeout { 7 } else { invariant(x, true) };
            (inv, format!("missing {x:?}"))
        }
        (None, Some(y)) => (invariant(y, false), format!("unexpected {y:?}")),
    };
    let shown = |v: &[T]| {
        v.iter()
            .take(8)
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some((
        inv,
        format!(
            "{what}; expected [{}], got [{}]",
            shown(expected),
            shown(seen)
        ),
    ))
}
