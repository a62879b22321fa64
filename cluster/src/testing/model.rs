//! The reference model and invariant checker: plain maps and sets saying
//! which lines were published and delivered where, and which kicks were
//! asked, executed and answered. The simulator reports every output to it;
//! each report is checked at once (docs/design.md §7, C1–C10).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use tether_core::ChannelId;

use crate::io::{KickError, KickResult, KickTicket};
use crate::name::{NodeId, NodeName};

/// A broken invariant, with what the simulator was doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Violation {
    /// Which invariant (`C1` …).
    pub rule: &'static str,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

pub(crate) fn violation(rule: &'static str, detail: String) -> Violation {
    Violation { rule, detail }
}

/// A line the simulator made a node send.
#[derive(Debug, Clone)]
struct LineInfo {
    node: NodeName,
    incarnation: u64,
    n: u64,
    id: ChannelId,
}

/// A kick the simulator asked for.
#[derive(Debug, Clone)]
pub(crate) struct KickInfo {
    pub(crate) origin: NodeName,
    pub(crate) target: NodeId,
    /// The owner's incarnation when asked, if it was alive.
    pub(crate) target_incarnation: Option<u64>,
    pub(crate) asked: Duration,
    /// Asked while the run was free of faults.
    pub(crate) fault_free: bool,
    /// Without faults, the asker must know the owner is live: both have
    /// run for a round trip.
    pub(crate) owner_known: bool,
    pub(crate) answered: bool,
    pub(crate) executed: Option<KickResult>,
}

/// The reference model.
#[derive(Debug, Default)]
pub(crate) struct Model {
    lines: HashMap<Bytes, LineInfo>,
    /// (recipient, token) delivered.
    delivered: HashSet<(usize, Bytes)>,
    /// Per (recipient, sender, incarnation): the last line number delivered.
    last_n: HashMap<(usize, NodeName, u64), u64>,
    /// Lines sent in a fault-free stretch, for each node running then:
    /// each must be delivered there (unless it dies first).
    expected: BTreeSet<(usize, Bytes)>,
    kicks: BTreeMap<u64, KickInfo>,
}

impl Model {
    pub(crate) fn published_line(
        &mut self,
        token: Bytes,
        node: NodeName,
        incarnation: u64,
        n: u64,
        id: ChannelId,
    ) {
        let info = LineInfo {
            node,
            incarnation,
            n,
            id,
        };
        self.lines.insert(token, info);
    }

    pub(crate) fn expect(&mut self, at: usize, token: Bytes) {
        if !self.delivered.contains(&(at, token.clone())) {
            self.expected.insert((at, token));
        }
    }

    /// C4: only published lines, from their sender, never twice, in
    /// per-sender order.
    pub(crate) fn delivered(
        &mut self,
        at: usize,
        at_name: &NodeName,
        from: &NodeId,
        text: &Bytes,
    ) -> Result<(), Violation> {
        if from.node.as_str() == super::EVIL {
            return Ok(()); // a forged stream: nothing to compare with
        }
        let Some(info) = self.lines.get(text) else {
            return Err(violation(
                "C4",
                format!("{at_name} delivered {text:?} that nobody sent"),
            ));
        };
        if info.node != from.node || info.id != from.id {
            return Err(violation(
                "C4",
                format!(
                    "{at_name} delivered {text:?} as from {from}, sent by {}/{}",
                    info.node, info.id
                ),
            ));
        }
        if info.node == *at_name {
            return Err(violation(
                "C2",
                format!("{at_name} delivered its own line {text:?}"),
            ));
        }
        if !self.delivered.insert((at, text.clone())) {
            return Err(violation(
                "C4",
                format!("{at_name} delivered {text:?} twice"),
            ));
        }
        self.expected.remove(&(at, text.clone()));
        let key = (at, info.node.clone(), info.incarnation);
        if let Some(&last) = self.last_n.get(&key) {
            if info.n <= last {
                return Err(violation(
                    "C4",
                    format!(
                        "{at_name} delivered line {} of {} after line {last}",
                        info.n, info.node
                    ),
                ));
            }
        }
        self.last_n.insert(key, info.n);
        Ok(())
    }

    pub(crate) fn asked(&mut self, request: u64, info: KickInfo) {
        self.kicks.insert(request, info);
    }

    /// C7: each request executed at most once, on its owner, on its id.
    pub(crate) fn executed(
        &mut self,
        at_name: &NodeName,
        ticket: &KickTicket,
        id: ChannelId,
        result: KickResult,
    ) -> Result<(), Violation> {
        if ticket.origin.as_str() == super::EVIL {
            return Ok(());
        }
        let Some(info) = self.kicks.get_mut(&ticket.request) else {
            return Err(violation(
                "C7",
                format!("{at_name} executed unknown kick {ticket:?}"),
            ));
        };
        if info.target.node != *at_name || info.target.id != id || info.origin != ticket.origin {
            return Err(violation(
                "C7",
                format!(
                    "{at_name} executed {ticket:?} on {id}, asked for {}",
                    info.target
                ),
            ));
        }
        if info.executed.is_some() {
            return Err(violation(
                "C7",
                format!("kick {} executed twice", ticket.request),
            ));
        }
        info.executed = Some(result);
        Ok(())
    }

    /// C6, C7: one answer per kick, by its timeout, agreeing with what the
    /// owner did; no `Unavailable` for a kick asked and answered while
    /// nothing failed.
    pub(crate) fn answered(
        &mut self,
        request: u64,
        result: &Result<(), KickError>,
        now: Duration,
        timeout: Duration,
        target_incarnation_now: Option<u64>,
        fault_free_now: bool,
    ) -> Result<(), Violation> {
        let Some(info) = self.kicks.get_mut(&request) else {
            return Err(violation("C6", format!("answer to unknown kick {request}")));
        };
        if std::mem::replace(&mut info.answered, true) {
            return Err(violation("C6", format!("kick {request} answered twice")));
        }
        // One tick of slack: the answer comes at the deadline's timeout.
        if now > info.asked + timeout + Duration::from_millis(1) {
            return Err(violation(
                "C6",
                format!(
                    "kick {request} answered {:?} after it was asked",
                    now - info.asked
                ),
            ));
        }
        let local = info.origin == info.target.node;
        let ok = match result {
            Ok(()) => info.executed == Some(KickResult::Done),
            // Done by an owner that has restarted since: its successor
            // rightly calls the id stale (the done-reply may have died).
            Err(KickError::Stale) => {
                info.executed != Some(KickResult::Done)
                    || info.target_incarnation != target_incarnation_now
            }
            Err(KickError::Local) => local,
            Err(KickError::UnknownNode(node)) => {
                *node == info.target.node && !local && !(info.owner_known && fault_free_now)
            }
            Err(KickError::Unavailable) => {
                let owner_same = info.target_incarnation.is_some()
                    && info.target_incarnation == target_incarnation_now;
                !(info.fault_free && fault_free_now && owner_same && info.executed.is_none())
            }
            Err(_) => false,
        };
        if !ok {
            return Err(violation(
                "C7",
                format!(
                    "kick {request} of {} answered {result:?}, executed {:?}",
                    info.target, info.executed
                ),
            ));
        }
        Ok(())
    }

    /// After settling: every kick answered, every expected line delivered.
    pub(crate) fn complete(&self, names: &[NodeName]) -> Result<(), Violation> {
        if let Some((request, info)) = self.kicks.iter().find(|(_, k)| !k.answered) {
            return Err(violation(
                "C6",
                format!("kick {request} of {} never answered", info.target),
            ));
        }
        if let Some((at, token)) = self.expected.iter().next() {
            let name = names.get(*at).map_or("?", NodeName::as_str);
            return Err(violation(
                "C4",
                format!(
                    "{name} never delivered {token:?} ({} missing)",
                    self.expected.len()
                ),
            ));
        }
        Ok(())
    }

    /// Forgets expectations for a node that died (what it had not yet
    /// delivered died with it).
    /// A fault voids the expectations still open: "every line reaches every
    /// live node" holds while nothing fails.
    pub(crate) fn fault(&mut self) {
        self.expected.clear();
    }

    /// Its pending kicks are abandoned (a dead process answers nobody).
    pub(crate) fn node_died(&mut self, at: usize, name: &NodeName) {
        self.expected.retain(|(node, _)| *node != at);
        for kick in self.kicks.values_mut().filter(|k| k.origin == *name) {
            kick.answered = true;
        }
    }
}

impl Model {
    /// The owning node of kick `request`.
    pub(crate) fn kick_target(&self, request: u64) -> Option<NodeName> {
        self.kicks.get(&request).map(|k| k.target.node.clone())
    }
}
