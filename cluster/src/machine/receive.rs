//! Receiving: membership, sequencing and applying other nodes' messages.

use bytes::Bytes;

use super::peer::{Baseline, Peer, Ready, Sequenced};
use super::{Cluster, MAX_DEPARTED, MAX_NODES, MAX_PRESENCE};
use crate::io::{NodeDownReason, Output};
use crate::name::{NodeId, NodeName};
use crate::wire::{self, Body, Header};

impl Cluster {
    /// One payload from the bus (C1: bad bytes are counted and ignored; C2:
    /// own echoes are ignored).
    pub(super) fn receive(&mut self, payload: &Bytes) {
        let message = match wire::decode(payload) {
            Ok(message) => message,
            Err(_) => {
                self.stats.decode_errors += 1;
                return;
            }
        };
        let Header {
            node,
            incarnation,
            seq,
            clock_ms,
        } = message.header;
        if node == self.me {
            return;
        }
        self.stats.received += 1;
        if !self.admit(&node, incarnation, seq, &message.body) {
            return;
        }
        let (now, local_ms) = (self.now, self.clock_ms());
        let delay_ms = self.observe_clock(&node, incarnation, clock_ms, local_ms);
        if !message.body.is_sequenced() {
            if let Some(peer) = self.peers.get_mut(&node) {
                peer.last_heard = now;
            }
            if self.kick_too_late(&message.body, delay_ms) {
                return;
            }
            // Control messages act on arrival (C4 orders the stream only).
            return self.apply(&node, message.body);
        }
        let mut ready = Ready::new();
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        peer.last_heard = now;
        match peer.sequence(seq, message.body, now, &mut ready) {
            Sequenced::Duplicate => self.stats.duplicates += 1,
            Sequenced::BeforeStart => {
                // Lost to reordering at first contact: counted, never silent.
                self.stats.messages_lost += 1;
                self.outputs.push_back(Output::Lost {
                    node: node.clone(),
                    messages: 1,
                });
            }
            Sequenced::Early => {
                if peer.early.len() > self.config.reorder_window {
                    // The window is full: the gap will not fill in time.
                    self.skip_gap(&node, true);
                }
            }
            Sequenced::Ready => self.apply_all(&node, ready),
        }
    }

    /// Records `node`'s clock from a message; returns the message's delay
    /// beyond the fastest one seen from that incarnation, in ms.
    fn observe_clock(
        &mut self,
        node: &NodeName,
        incarnation: u64,
        sent_ms: u64,
        local_ms: u64,
    ) -> u64 {
        if !self.clocks.contains_key(node) && self.clocks.len() >= 2 * MAX_NODES {
            // Keep the live nodes' baselines; forget the departed ones.
            let peers = &self.peers;
            self.clocks.retain(|name, _| peers.contains_key(name));
        }
        let baseline = self
            .clocks
            .entry(node.clone())
            .or_insert_with(|| Baseline::new(incarnation));
        if baseline.incarnation != incarnation {
            *baseline = Baseline::new(incarnation); // a new process, a new clock
        }
        baseline.observe(sent_ms, local_ms, self.now)
    }

    /// A kick for this node that arrived so late (its delay beyond the
    /// sender's fastest message, doubled for the reply's way back) that
    /// its asker will have answered `Unavailable` before a reply comes: it
    /// is dropped unexecuted (C7), so that "unavailable" after a broker
    /// pause does not mean "done later".
    fn kick_too_late(&mut self, body: &Body, delay_ms: u64) -> bool {
        let Body::Kick {
            target,
            remaining_ms,
            ..
        } = body
        else {
            return false;
        };
        let late = *target == self.me && delay_ms.saturating_mul(2) >= u64::from(*remaining_ms);
        if late {
            self.stats.kicks_expired += 1;
        }
        late
    }

    /// Makes `node` live in `incarnation` if it is not (C3): a new node, or
    /// a restart. Returns whether the message should go on to sequencing.
    fn admit(&mut self, node: &NodeName, incarnation: u64, seq: u64, body: &Body) -> bool {
        let known = self.peers.get(node).map(|peer| peer.incarnation);
        match known {
            Some(known) if known == incarnation => return true,
            Some(known) if known > incarnation => {
                self.stats.stale_messages += 1;
                return false;
            }
            _ => {}
        }
        // Off the common path: only a message from a node not live in this
        // incarnation can come from one that said goodbye.
        if self.departed_covers(node, incarnation) {
            self.stats.stale_messages += 1;
            return false;
        }
        if known.is_some() {
            self.peers.remove(node);
            self.outputs.push_back(Output::NodeDown {
                node: node.clone(),
                why: NodeDownReason::Restarted,
            });
        }
        if matches!(body, Body::Goodbye) {
            // First heard of as it leaves: it never becomes live here.
            self.remember_departed(node, incarnation);
            return false;
        }
        if self.peers.len() >= MAX_NODES {
            self.stats.nodes_refused += 1;
            return false;
        }
        // The same process back after expiring here: what it sent before
        // is a duplicate, what went missing meanwhile is lost (not waited
        // for: it has been silent for a ttl).
        let resume = self
            .clocks
            .get(node)
            .filter(|b| b.incarnation == incarnation)
            .and_then(|b| b.resume_seq);
        let peer = Peer::new(incarnation, seq, resume, self.now);
        let missed = peer.missed();
        self.peers.insert(node.clone(), peer);
        if missed > 0 {
            self.stats.gaps += 1;
            self.stats.messages_lost = self.stats.messages_lost.saturating_add(missed);
            self.outputs.push_back(Output::Lost {
                node: node.clone(),
                messages: missed,
            });
        }
        self.outputs.push_back(Output::NodeUp(node.clone()));
        if !matches!(body, Body::Snapshot(_)) {
            // Its presence so far is unknown here.
            self.request_snapshot(node);
        }
        // And this node is unknown there: a heartbeat at once makes it live
        // for the newcomer within a round trip; the snapshot follows
        // (spaced, so a burst of newcomers costs one).
        self.publish_heartbeat();
        self.owe_snapshot();
        true
    }

    /// Applies messages that came in sequence order (C4).
    fn apply_all(&mut self, node: &NodeName, ready: Ready) {
        for body in ready {
            if !self.peers.contains_key(node) {
                break; // it said goodbye in this batch
            }
            self.apply(node, body);
        }
    }

    fn apply(&mut self, node: &NodeName, body: Body) {
        let Some(peer) = self.peers.get_mut(node) else {
            return;
        };
        match body {
            Body::Heartbeat { channels } => {
                if channels as usize != peer.channels.len() {
                    // A delta went missing somewhere: ask for the truth.
                    self.request_snapshot(node);
                }
            }
            Body::Line { id, text } => {
                self.stats.lines_delivered += 1;
                self.outputs.push_back(Output::Deliver {
                    from: NodeId {
                        node: node.clone(),
                        id,
                    },
                    text,
                });
            }
            Body::Opened(id) => {
                if peer.channels.len() < MAX_PRESENCE {
                    peer.channels.insert(id);
                }
            }
            Body::Closed(id) => {
                peer.channels.remove(&id);
            }
            Body::Snapshot(ids) => {
                peer.wants_snapshot = false;
                peer.channels = ids.into_iter().take(MAX_PRESENCE).collect();
            }
            Body::SnapshotRequest { target } => {
                if target == self.me {
                    self.owe_snapshot();
                }
            }
            Body::Kick {
                target,
                target_incarnation,
                request,
                id,
                mode,
                reason,
                ..
            } => {
                if target == self.me {
                    let incarnation = peer.incarnation;
                    let wanted = target_incarnation == self.incarnation;
                    self.serve_kick(node, incarnation, request, wanted, id, mode, reason);
                }
            }
            Body::KickReply {
                origin,
                origin_incarnation,
                request,
                result,
            } => {
                if origin == self.me && origin_incarnation == self.incarnation {
                    self.kick_replied(node, request, result);
                }
            }
            Body::Goodbye => {
                let incarnation = peer.incarnation;
                self.peers.remove(node);
                self.remember_departed(node, incarnation);
                self.outputs.push_back(Output::NodeDown {
                    node: node.clone(),
                    why: NodeDownReason::Goodbye,
                });
            }
        }
    }

    fn remember_departed(&mut self, node: &NodeName, incarnation: u64) {
        if self.departed.len() >= MAX_DEPARTED {
            self.departed.pop_front();
        }
        self.departed
            .push_back((node.clone(), incarnation, self.now));
    }

    /// Whether `node` said goodbye in `incarnation` or a later one, less
    /// than a `ttl` ago (older memories are dropped here).
    fn departed_covers(&mut self, node: &NodeName, incarnation: u64) -> bool {
        let (now, ttl) = (self.now, self.config.ttl);
        while self
            .departed
            .front()
            .is_some_and(|(_, _, at)| at.checked_add(ttl).is_none_or(|t| t <= now))
        {
            self.departed.pop_front();
        }
        self.departed
            .iter()
            .any(|(name, inc, _)| name == node && *inc >= incarnation)
    }

    /// Asks `node` for a presence snapshot, at most once per
    /// [`Cluster::request_spacing`], and again every spacing until one is
    /// applied (a request or its answer may be lost; a timer, so none is).
    pub(super) fn request_snapshot(&mut self, node: &NodeName) {
        let (now, spacing, up) = (self.now, self.request_spacing(), self.up);
        let Some(peer) = self.peers.get_mut(node) else {
            return;
        };
        peer.wants_snapshot = true;
        let spaced = peer
            .last_request
            .is_none_or(|t| now.saturating_duration_since(t) >= spacing);
        if !spaced || !up {
            return; // the timer sends it (once up)
        }
        peer.last_request = Some(now);
        self.stats.snapshots_requested += 1;
        self.publish(Body::SnapshotRequest {
            target: node.clone(),
        });
    }

    /// Declares gaps in `node`'s stream lost (C5): those an early message
    /// waited `gap_wait` behind, or (`window_full`) the oldest one at once.
    /// Counted, reported, the messages after them applied, and a snapshot
    /// asked for.
    pub(super) fn skip_gap(&mut self, node: &NodeName, window_full: bool) {
        let mut ready = Ready::new();
        let (now, wait) = (self.now, self.config.gap_wait);
        let Some(peer) = self.peers.get_mut(node) else {
            return;
        };
        let missing = if window_full {
            peer.skip_first(&mut ready)
        } else {
            peer.skip_due(now, wait, &mut ready)
        };
        if missing > 0 {
            self.stats.gaps += 1;
            self.stats.messages_lost = self.stats.messages_lost.saturating_add(missing);
            self.outputs.push_back(Output::Lost {
                node: node.clone(),
                messages: missing,
            });
        }
        self.apply_all(node, ready);
        self.request_snapshot(node);
    }

    /// Nodes not heard from for the ttl stop being live (C3).
    pub(super) fn expire_peers(&mut self) {
        let (now, ttl) = (self.now, self.config.ttl);
        let expired: Vec<NodeName> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.expires(ttl).is_some_and(|t| t <= now))
            .map(|(name, _)| name.clone())
            .collect();
        for node in expired {
            if let Some(peer) = self.peers.remove(&node) {
                let baseline = self
                    .clocks
                    .entry(node.clone())
                    .or_insert_with(|| Baseline::new(peer.incarnation));
                if baseline.incarnation == peer.incarnation {
                    baseline.resume_seq = Some(peer.next_seq);
                }
            }
            self.outputs.push_back(Output::NodeDown {
                node,
                why: NodeDownReason::Expired,
            });
        }
    }

    /// Snapshot requests that waited for their spacing go out.
    pub(super) fn send_wanted_requests(&mut self) {
        let (now, spacing) = (self.now, self.request_spacing());
        let due: Vec<NodeName> = self
            .peers
            .iter()
            .filter(|(_, peer)| {
                peer.request_deadline(spacing, now)
                    .is_some_and(|t| t <= now)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for node in due {
            self.request_snapshot(&node);
        }
    }

    /// Gaps that waited `gap_wait` are declared lost.
    pub(super) fn skip_due_gaps(&mut self) {
        let (now, wait) = (self.now, self.config.gap_wait);
        let due: Vec<NodeName> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.gap_deadline(wait).is_some_and(|t| t <= now))
            .map(|(name, _)| name.clone())
            .collect();
        for node in due {
            self.skip_gap(&node, false);
        }
    }
}
