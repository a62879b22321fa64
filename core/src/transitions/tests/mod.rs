//! Keeps [`TRANSITIONS`] honest: every state of both machines is built in a
//! real hub, under every policy that changes a transition, and every
//! trigger is applied to it. Exactly one row must match each case, and the
//! hub must do what that row says: the next state, every output about the
//! channel (or the hub), in order, and the error. A row no case reaches
//! fails too, and so does a deadline that acts where the table has no row.
//! The module documentation must be [`markdown`] of the table (regenerate
//! it with `TETHER_BLESS=1 cargo test -p tether-core transitions`).
//!
//! The matches on actions, events and errors below are exhaustive: a new
//! output or error cannot be added without deciding its token here.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::table::{Cond, Emit, Row, State, TRANSITIONS, Trigger, markdown};
use crate::{
    AcceptError, Action, DisconnectReason, Event, Hub, IdError, InputError, KickError, SendError,
};

mod channel;
mod hub;
mod overflow;

pub(super) const LIMIT: usize = 1_000;
pub(super) const T: Duration = Duration::from_secs(2);

pub(super) fn peer() -> SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

pub(super) fn drain(hub: &mut Hub) -> (Vec<Action>, Vec<Event>) {
    (
        std::iter::from_fn(|| hub.poll_action()).collect(),
        std::iter::from_fn(|| hub.poll_event()).collect(),
    )
}

/// `Cond` has no order; the sets here need one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CondKey(pub(super) Cond);
impl PartialOrd for CondKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for CondKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        format!("{:?}", self.0).cmp(&format!("{:?}", other.0))
    }
}

pub(super) fn err<E: ErrorName>(r: Result<(), E>) -> Option<&'static str> {
    r.err().map(|e| e.name())
}

pub(super) trait ErrorName {
    fn name(&self) -> &'static str;
}

impl ErrorName for IdError {
    fn name(&self) -> &'static str {
        match self {
            IdError::Stale(_) => "Stale",
            IdError::Unknown(_) => "Unknown",
        }
    }
}

impl ErrorName for InputError {
    fn name(&self) -> &'static str {
        match self {
            InputError::Id(e) => e.name(),
            InputError::AfterEof { .. } => "AfterEof",
            InputError::OverWritten { .. } => "OverWritten",
            InputError::AttachOffline { .. } => "AttachOffline",
            InputError::NotAttached { .. } => "NotAttached",
            InputError::TooManyHolders { .. } => "TooManyHolders",
            InputError::CloseNotRequested { .. } => "CloseNotRequested",
        }
    }
}

impl ErrorName for SendError {
    fn name(&self) -> &'static str {
        match self {
            SendError::Id(e) => e.name(),
            SendError::NotUsable { .. } => "NotUsable",
            SendError::QueueFull { .. } => "QueueFull",
            SendError::TooLarge { .. } => "TooLarge",
        }
    }
}

impl ErrorName for KickError {
    fn name(&self) -> &'static str {
        match self {
            KickError::Id(e) => e.name(),
            KickError::AlreadyClosing { .. } => "AlreadyClosing",
        }
    }
}

impl ErrorName for AcceptError {
    fn name(&self) -> &'static str {
        match self {
            AcceptError::LimitReached { .. } => "LimitReached",
            AcceptError::ShuttingDown => "ShuttingDown",
            AcceptError::IdsExhausted => "IdsExhausted",
        }
    }
}

/// The token of an output, and whether it is an action.
pub(super) fn token_of_action(a: &Action) -> Emit {
    match a {
        Action::Transmit { .. } => Emit::Transmit,
        Action::Shutdown { how, .. } => match how {
            crate::ShutdownHow::Write => Emit::ShutdownWrite,
            crate::ShutdownHow::Both => Emit::ShutdownBoth,
        },
        Action::Abort { .. } => Emit::Abort,
        Action::CloseSocket { .. } => Emit::CloseSocket,
        Action::PauseAccept => Emit::PauseAccept,
        Action::ResumeAccept => Emit::ResumeAccept,
    }
}

pub(super) fn token_of_event(e: &Event) -> Emit {
    match e {
        Event::Opened { .. } => Emit::Opened,
        Event::Received { .. } => Emit::Received,
        Event::Writable { .. } => Emit::Writable,
        Event::ReadClosed { .. } => Emit::ReadClosed,
        Event::Disconnected { reason, .. } => Emit::Disconnected(Some(reason.name())),
        Event::HolderOverdue { .. } => Emit::HolderOverdue,
        Event::Released { .. } => Emit::Released,
        Event::ShutdownComplete => Emit::ShutdownComplete,
    }
}

fn is_event(e: Emit) -> bool {
    match e {
        Emit::Opened
        | Emit::Received
        | Emit::ReadClosed
        | Emit::Writable
        | Emit::Disconnected(_)
        | Emit::HolderOverdue
        | Emit::Released
        | Emit::ShutdownComplete => true,
        Emit::Transmit
        | Emit::ShutdownWrite
        | Emit::ShutdownBoth
        | Emit::Abort
        | Emit::CloseSocket
        | Emit::CloseSocketIfNoHolder
        | Emit::PauseAccept
        | Emit::ResumeAccept
        | Emit::Error(_) => false,
    }
}

/// What a row says will be seen: (actions, events, error).
pub(super) type Seen = (Vec<Emit>, Vec<Emit>, Option<&'static str>);

pub(super) fn expected(row: &Row, holders: u32, reason: Option<DisconnectReason>) -> Seen {
    let (mut actions, mut events, mut error) = (Vec::new(), Vec::new(), None);
    for &e in row.emits {
        match e {
            Emit::Error(name) => error = Some(name),
            Emit::CloseSocketIfNoHolder if holders == 0 => actions.push(Emit::CloseSocket),
            Emit::CloseSocketIfNoHolder => {}
            Emit::Disconnected(None) => {
                let name = reason.expect("a row with `its reason` needs one").name();
                events.push(Emit::Disconnected(Some(name)));
            }
            e if is_event(e) => events.push(e),
            e => actions.push(e),
        }
    }
    (actions, events, error)
}

pub(super) fn matching(state: State, trigger: Trigger, facts: &BTreeSet<CondKey>) -> Vec<usize> {
    (TRANSITIONS.iter().enumerate())
        .filter(|(_, r)| r.from.contains(&state) && r.on == trigger)
        .filter(|(_, r)| r.when.iter().all(|c| facts.contains(&CondKey(*c))))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn every_transition_is_in_the_table() {
    let mut used = vec![false; TRANSITIONS.len()];
    let mut failures = Vec::new();
    channel::check(&mut used, &mut failures);
    hub::check(&mut used, &mut failures);
    for (i, row) in TRANSITIONS.iter().enumerate() {
        if !used[i] {
            failures.push(format!("row {i} is reached by no case: {row:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rows_are_well_formed() {
    for (i, row) in TRANSITIONS.iter().enumerate() {
        assert!(!row.from.is_empty(), "row {i}");
        let hub = row.from[0].is_hub();
        assert!(
            row.from.iter().all(|s| s.is_hub() == hub),
            "row {i} mixes machines"
        );
        assert!(
            row.to.is_none_or(|s| s.is_hub() == hub),
            "row {i} changes machine"
        );
        assert!(
            row.invariants.iter().all(|n| (1..=12).contains(n)),
            "row {i}"
        );
    }
}

#[test]
fn the_module_docs_are_the_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/transitions/table.md");
    let rendered = markdown();
    if std::env::var_os("TETHER_BLESS").is_some() {
        std::fs::write(path, &rendered).unwrap();
    }
    let docs = std::fs::read_to_string(path).unwrap();
    assert!(
        docs == rendered,
        "src/transitions/table.md is not `markdown()` of TRANSITIONS: \
         run `TETHER_BLESS=1 cargo test -p tether-core transitions` and review the diff"
    );
}
