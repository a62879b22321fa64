//! Receiving: membership, sequencing and applying other nodes' messages.

use bytes::Bytes;

use super::peer::{Peer, Ready, Sequenced};
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
        } = message.header;
        if node == self.me {
            return;
        }
        self.stats.received += 1;
        if !self.admit(&node, incarnation, seq, &message.body) {
            return;
        }
        let now = self.now;
        let mut ready = Ready::new();
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        peer.last_heard = now;
        if !message.body.is_sequenced() {
            // Control messages act on arrival (C4 orders the stream only).
            return self.apply(&node, message.body);
        }
        match peer.sequence(seq, message.body, now, &mut ready) {
            Sequenced::Duplicate => self.stats.duplicates += 1,
            Sequenced::Early => {
                if peer.early.len() > self.config.reorder_window {
                    // The window is full: the gap will not fill in time.
                    self.skip_gap(&node, true);
                }
            }
            Sequenced::Ready => self.apply_all(&node, ready),
        }
    }

    /// Makes `node` live in `incarnation` if it is not (C3): a new node, or
    /// a restart. Returns whether the message should go on to sequencing.
    fn admit(&mut self, node: &NodeName, incarnation: u64, seq: u64, body: &Body) -> bool {
        match self.peers.get(node) {
            Some(peer) if peer.incarnation == incarnation => return true,
            Some(peer) if peer.incarnation > incarnation => {
                self.stats.stale_messages += 1;
                return false;
            }
            // Off the common path: only a message from a node not live in
            // this incarnation can come from one that said goodbye.
            _ if self
                .departed
                .iter()
                .any(|(name, inc)| name == node && *inc >= incarnation) =>
            {
                self.stats.stale_messages += 1;
                return false;
            }
            Some(_) => {
                self.peers.remove(node);
                self.outputs.push_back(Output::NodeDown {
                    node: node.clone(),
                    why: NodeDownReason::Restarted,
                });
            }
            None => {}
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
        self.peers
            .insert(node.clone(), Peer::new(incarnation, seq, self.now));
        self.outputs.push_back(Output::NodeUp(node.clone()));
        if !matches!(body, Body::Snapshot(_)) {
            // Its presence so far is unknown here.
            self.request_snapshot(node);
        }
        // And this node's is unknown there: a newcomer sees every node's
        // presence within a round trip, not a heartbeat.
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
        self.departed.push_back((node.clone(), incarnation));
    }

    /// Asks `node` for a presence snapshot, at most once per
    /// [`Cluster::request_spacing`]; a request within it waits for it to
    /// pass (a timer), so none is lost.
    pub(super) fn request_snapshot(&mut self, node: &NodeName) {
        let (now, spacing, up) = (self.now, self.request_spacing(), self.up);
        let Some(peer) = self.peers.get_mut(node) else {
            return;
        };
        let spaced = peer
            .last_request
            .is_none_or(|t| now.saturating_duration_since(t) >= spacing);
        if !spaced || !up {
            // While down nothing can be asked; BrokerUp snapshots arrive anyway.
            peer.wants_snapshot = up;
            return;
        }
        peer.wants_snapshot = false;
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
            self.peers.remove(&node);
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
            .filter(|(_, peer)| peer.request_deadline(spacing).is_some_and(|t| t <= now))
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
