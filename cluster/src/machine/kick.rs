//! Cross-node kicks: the asking side (pending requests, re-sent until a
//! reply or the timeout) and the owning side (each request executed at most
//! once, repeats answered from memory).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tether_core::{ChannelId, KickMode};

use super::Cluster;
use crate::io::{KickError, KickResult, KickTicket, Output};
use crate::name::{NodeId, NodeName};
use crate::wire::Body;

/// At most this many kicks asked for here wait for replies; more are
/// refused `Unavailable` at once.
pub const MAX_PENDING_KICKS: usize = 65_536;

/// At most this many remote requests are remembered; while full, new ones
/// are ignored (their askers time out) rather than risk a second execution.
pub const MAX_SERVED_KICKS: usize = 65_536;

/// A re-send of a pending kick never comes sooner than this after the last.
const MIN_RESEND: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct Pending {
    target: NodeId,
    target_incarnation: u64,
    mode: KickMode,
    reason: String,
    deadline: Instant,
    next_send: Instant,
}

#[derive(Debug, Default)]
pub(super) struct Kicks {
    pending: BTreeMap<u64, Pending>,
    /// Remote requests served here: `None` while the driver executes it.
    served: HashMap<KickTicket, Option<KickResult>>,
    /// `served`'s keys by the time they were first seen, oldest first.
    served_order: VecDeque<(Instant, KickTicket)>,
}

impl Kicks {
    /// The next instant a kick timer acts: a re-send (only while up), a
    /// timeout, or the oldest served request's expiry.
    pub(super) fn next_deadline(&self, up: bool, keep: Duration) -> Option<Instant> {
        let pending = self
            .pending
            .values()
            .map(|p| {
                if up {
                    p.next_send.min(p.deadline)
                } else {
                    p.deadline
                }
            })
            .min();
        let served = self
            .served_order
            .front()
            .and_then(|(t, _)| t.checked_add(keep));
        match (pending, served) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn served_len(&self) -> usize {
        self.served.len()
    }

    /// After a reconnect every pending kick goes out again at once.
    pub(super) fn resend_all_now(&mut self, now: Instant) {
        for pending in self.pending.values_mut() {
            pending.next_send = now;
        }
    }

    /// Shutdown: every pending kick is answered `Unavailable`.
    pub(super) fn fail_all(&mut self, outputs: &mut VecDeque<Output>) {
        for (request, _) in std::mem::take(&mut self.pending) {
            outputs.push_back(Output::KickAnswer {
                request,
                result: Err(KickError::Unavailable),
            });
        }
    }
}

impl Cluster {
    /// How long a served request is remembered: well past the longest time
    /// its asker keeps re-sending it (its timeout, if configured like this
    /// node) plus delivery delays.
    pub(super) fn served_keep(&self) -> Duration {
        (self.config.timeout + self.config.ttl).saturating_mul(2)
    }

    pub(super) fn refuse_kick(&mut self, request: u64, error: KickError) {
        self.stats.kicks_refused += 1;
        self.outputs.push_back(Output::KickAnswer {
            request,
            result: Err(error),
        });
    }

    /// `Input::Kick` (C6).
    pub(super) fn kick(&mut self, request: u64, target: NodeId, mode: KickMode, reason: String) {
        if target.node == self.me {
            return self.refuse_kick(request, KickError::Local);
        }
        if self.kicks.pending.contains_key(&request) {
            return self.refuse_kick(request, KickError::DuplicateRequest);
        }
        let Some(target_incarnation) = self.peers.get(&target.node).map(|p| p.incarnation) else {
            return self.refuse_kick(request, KickError::UnknownNode(target.node));
        };
        if !self.up || self.kicks.pending.len() >= MAX_PENDING_KICKS {
            return self.refuse_kick(request, KickError::Unavailable);
        }
        let Some(deadline) = self.now.checked_add(self.config.timeout) else {
            return self.refuse_kick(request, KickError::Unavailable);
        };
        let reason = crate::wire::truncate_utf8(&reason, crate::wire::MAX_REASON).to_owned();
        let pending = Pending {
            target,
            target_incarnation,
            mode,
            reason,
            deadline,
            next_send: self.now,
        };
        self.kicks.pending.insert(request, pending);
        self.stats.kicks_sent += 1;
        self.send_kick(request);
    }

    /// Publishes pending kick `request` (again) and schedules the next try.
    fn send_kick(&mut self, request: u64) {
        let step = (self.config.timeout / 4).max(MIN_RESEND);
        let now = self.now;
        let Some(p) = self.kicks.pending.get_mut(&request) else {
            return;
        };
        // Far in the future if it does not fit: the deadline acts first.
        p.next_send = now.checked_add(step).unwrap_or(p.deadline);
        // Rounded up: a sub-millisecond remainder is not "no time left".
        let left = p
            .deadline
            .saturating_duration_since(now)
            .as_micros()
            .div_ceil(1000);
        let body = Body::Kick {
            target: p.target.node.clone(),
            target_incarnation: p.target_incarnation,
            request,
            id: p.target.id,
            mode: p.mode,
            remaining_ms: u32::try_from(left).unwrap_or(u32::MAX),
            reason: p.reason.clone(),
        };
        self.publish(body);
    }

    /// A reply from `from` to one of this node's kicks.
    pub(super) fn kick_replied(&mut self, from: &NodeName, request: u64, result: KickResult) {
        if self
            .kicks
            .pending
            .get(&request)
            .is_none_or(|p| p.target.node != *from)
        {
            return; // a late copy, or not from the owner: ignore
        }
        self.kicks.pending.remove(&request);
        self.stats.kicks_answered += 1;
        let result = match result {
            KickResult::Done => Ok(()),
            KickResult::Stale => Err(KickError::Stale),
        };
        self.outputs
            .push_back(Output::KickAnswer { request, result });
    }

    /// A kick for this node from `origin` (C7: at most once per request).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn serve_kick(
        &mut self,
        origin: &NodeName,
        incarnation: u64,
        request: u64,
        for_this_incarnation: bool,
        id: ChannelId,
        mode: KickMode,
        reason: String,
    ) {
        let ticket = KickTicket {
            origin: origin.clone(),
            incarnation,
            request,
        };
        if !for_this_incarnation {
            // Asked of an earlier run of this node: its ids died with it.
            return self.publish_reply(&ticket, KickResult::Stale);
        }
        match self.kicks.served.get(&ticket) {
            Some(Some(result)) => {
                self.stats.kicks_repeated += 1;
                let result = *result;
                self.publish_reply(&ticket, result);
            }
            Some(None) => self.stats.kicks_repeated += 1,
            None if self.kicks.served.len() >= MAX_SERVED_KICKS => self.stats.kicks_dropped += 1,
            None => {
                self.kicks.served.insert(ticket.clone(), None);
                self.kicks
                    .served_order
                    .push_back((self.now, ticket.clone()));
                self.stats.kicks_served += 1;
                self.outputs.push_back(Output::ExecuteKick {
                    ticket,
                    id,
                    mode,
                    reason,
                });
            }
        }
    }

    /// `Input::KickDone`: remember the result and reply.
    pub(super) fn kick_done(&mut self, ticket: KickTicket, result: KickResult) {
        match self.kicks.served.get_mut(&ticket) {
            Some(slot @ None) => *slot = Some(result),
            Some(Some(_)) => return, // answered already
            None => {}               // forgotten: still reply, harmlessly
        }
        self.publish_reply(&ticket, result);
    }

    fn publish_reply(&mut self, ticket: &KickTicket, result: KickResult) {
        self.publish(Body::KickReply {
            origin: ticket.origin.clone(),
            origin_incarnation: ticket.incarnation,
            request: ticket.request,
            result,
        });
    }

    /// Re-sends, timeouts, and forgetting old served requests.
    pub(super) fn kick_timers(&mut self) {
        let now = self.now;
        let expired: Vec<u64> = self
            .kicks
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&request, _)| request)
            .collect();
        for request in expired {
            self.kicks.pending.remove(&request);
            self.stats.kicks_timed_out += 1;
            self.outputs.push_back(Output::KickAnswer {
                request,
                result: Err(KickError::Unavailable),
            });
        }
        if self.up {
            let due: Vec<u64> = self
                .kicks
                .pending
                .iter()
                .filter(|(_, p)| p.next_send <= now)
                .map(|(&request, _)| request)
                .collect();
            for request in due {
                self.stats.kicks_resent += 1;
                self.send_kick(request);
            }
        }
        let keep = self.served_keep();
        while let Some((seen, ticket)) = self.kicks.served_order.front() {
            if seen.checked_add(keep).is_some_and(|t| t > now) {
                break;
            }
            self.kicks.served.remove(ticket);
            self.kicks.served_order.pop_front();
        }
    }
}
