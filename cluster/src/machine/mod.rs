//! [`Cluster`]: the one owner of a node's view of the cluster.

pub(crate) mod kick;
mod peer;
mod receive;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::ChannelId;

use crate::config::{ClusterConfig, ClusterConfigError, OUTBOX_LINE_OVERHEAD};
use crate::io::{Input, NodeInfo, Output};
use crate::name::{NodeId, NodeName};
use crate::stats::ClusterStats;
use crate::wire::{self, Body, Header, Message};

use kick::Kicks;
use peer::{Baseline, Peer};

/// At most this many other nodes are tracked; messages from more new
/// nodes are refused (counted `nodes_refused`) until some expire.
pub const MAX_NODES: usize = 1024;

/// At most this many channels are replicated per remote node.
pub const MAX_PRESENCE: usize = 1 << 20;

/// How many departed (goodbye) incarnations are remembered, each for a
/// `ttl`, so that a late copy of their messages cannot bring them back
/// (and a restart whose incarnation went backwards is refused for a `ttl`
/// at most).
const MAX_DEPARTED: usize = 256;

/// What a [`Cluster`] holds, from [`Cluster::footprint`]: each bounded by
/// configuration or a constant (C9), except `outputs`, which the driver
/// drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Footprint {
    /// Remote nodes tracked (≤ [`MAX_NODES`]).
    pub peers: usize,
    /// The most early messages held for one node (≤ `reorder_window`).
    pub early_messages: usize,
    /// Remote channels replicated (≤ [`MAX_PRESENCE`] per node).
    pub presence: usize,
    /// Lines in the outbox.
    pub outbox_lines: usize,
    /// The outbox's charge (≤ `outbox_bytes`).
    pub outbox_bytes: usize,
    /// Kicks asked for here awaiting a reply (≤ [`MAX_PENDING_KICKS`](crate::MAX_PENDING_KICKS)).
    pub pending_kicks: usize,
    /// Remote kick requests remembered (≤ [`MAX_SERVED_KICKS`](crate::MAX_SERVED_KICKS)).
    pub served_kicks: usize,
    /// Departed incarnations remembered (≤ 256).
    pub departed: usize,
    /// Clock baselines kept (≤ 2 × [`MAX_NODES`] + 1).
    pub clocks: usize,
    /// Outputs not yet polled.
    pub outputs: usize,
}

/// The cluster state machine of one node (docs/design.md §7).
///
/// Sans-IO: it owns no socket, thread or clock. The driver feeds it
/// [`Input`]s with the current time through [`Cluster::handle_input`],
/// executes every [`Output`] from [`Cluster::poll_output`], and calls again
/// with [`Input::Timeout`] at [`Cluster::poll_timeout`]. See the crate
/// documentation for the run loop and the rules it enforces.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    me: NodeName,
    incarnation: u64,
    /// The machine's clock: the latest `now` seen (never runs backwards).
    now: Instant,
    /// When it was made: message clocks count from here.
    start: Instant,
    /// The sequence number of the next published message.
    seq: u64,
    up: bool,
    ever_up: bool,
    shut: bool,
    local: BTreeSet<ChannelId>,
    outbox: VecDeque<(ChannelId, Bytes)>,
    outbox_charge: usize,
    /// While up: when the next heartbeat is due.
    next_heartbeat: Option<Instant>,
    /// Snapshots are spaced: none before this instant.
    snapshot_after: Option<Instant>,
    /// A snapshot was asked for and waits for its spacing.
    snapshot_owed: bool,
    peers: BTreeMap<NodeName, Peer>,
    /// Clock baselines per node, live or recently live (≤ 2 × `MAX_NODES`).
    clocks: HashMap<NodeName, Baseline>,
    departed: VecDeque<(NodeName, u64, Instant)>,
    kicks: Kicks,
    outputs: VecDeque<Output>,
    stats: ClusterStats,
}

impl Cluster {
    /// A node named `me`, in its `incarnation` (it must grow on every
    /// restart of the node, e.g. the start time in milliseconds), with the
    /// broker still down.
    pub fn new(
        config: ClusterConfig,
        me: NodeName,
        incarnation: u64,
        now: Instant,
    ) -> Result<Self, ClusterConfigError> {
        config.validate()?;
        Ok(Cluster {
            config,
            me,
            incarnation,
            now,
            start: now,
            seq: 0,
            up: false,
            ever_up: false,
            shut: false,
            local: BTreeSet::new(),
            outbox: VecDeque::new(),
            outbox_charge: 0,
            next_heartbeat: None,
            snapshot_after: None,
            snapshot_owed: false,
            peers: BTreeMap::new(),
            clocks: HashMap::new(),
            departed: VecDeque::new(),
            kicks: Kicks::default(),
            outputs: VecDeque::new(),
            stats: ClusterStats::default(),
        })
    }

    /// Feeds one input at `now` (an earlier `now` than seen before counts
    /// as the latest one: time never runs backwards here).
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
        if self.shut {
            // After Shutdown only kicks get an answer; nothing else acts.
            if let Input::Kick { request, .. } = input {
                self.refuse_kick(request, crate::KickError::Unavailable);
            }
            return;
        }
        match input {
            Input::BrokerUp => self.broker_up_now(),
            Input::BrokerDown => {
                self.up = false;
                self.next_heartbeat = None;
            }
            Input::BrokerError => self.stats.broker_errors += 1,
            Input::Received(payload) => self.receive(&payload),
            Input::Timeout => self.timeout(),
            Input::Opened(id) => {
                if self.local.insert(id) && self.up {
                    self.publish(Body::Opened(id));
                }
            }
            Input::Closed(id) => {
                if self.local.remove(&id) && self.up {
                    self.publish(Body::Closed(id));
                }
            }
            Input::Line { from, text } => self.line(from, text),
            Input::Kick {
                request,
                target,
                mode,
                reason,
            } => self.kick(request, target, mode, reason),
            Input::KickDone { ticket, result } => self.kick_done(ticket, result),
            Input::Shutdown => self.shutdown(),
        }
    }

    /// The next thing for the driver to do, in order.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call again with [`Input::Timeout`]; `None` after shutdown.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shut {
            return None;
        }
        let mut next = self.next_heartbeat;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.snapshot_owed && self.up {
            consider(Some(self.snapshot_after.unwrap_or(self.now)));
        }
        let spacing = self.request_spacing();
        for peer in self.peers.values() {
            consider(peer.expires(self.config.ttl));
            consider(peer.gap_deadline(self.config.gap_wait));
            if self.up {
                consider(peer.request_deadline(spacing, self.now));
            }
        }
        consider(self.kicks.next_deadline(self.up, self.served_keep()));
        next
    }

    /// This node's name.
    pub fn me(&self) -> &NodeName {
        &self.me
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether the driver reported the broker link up.
    pub fn broker_up(&self) -> bool {
        self.up && !self.shut
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Every live node, this one first, then by name: its channel count and
    /// the time since it was last heard from (at `now`).
    pub fn nodes(&self, now: Instant) -> impl Iterator<Item = NodeInfo> + '_ {
        let me = (!self.shut).then(|| NodeInfo {
            name: self.me.clone(),
            channels: self.local.len(),
            age: Duration::ZERO,
            incarnation: self.incarnation,
        });
        me.into_iter()
            .chain(self.peers.iter().map(move |(name, peer)| NodeInfo {
                name: name.clone(),
                channels: peer.channels.len(),
                age: now.saturating_duration_since(peer.last_heard),
                incarnation: peer.incarnation,
            }))
    }

    /// Every channel of every live node, this node's first.
    pub fn presence(&self) -> impl Iterator<Item = NodeId> + '_ {
        let mine = self.local.iter().map(|&id| NodeId {
            node: self.me.clone(),
            id,
        });
        mine.chain(self.peers.iter().flat_map(|(name, peer)| {
            peer.channels.iter().map(move |&id| NodeId {
                node: name.clone(),
                id,
            })
        }))
    }

    /// Whether `node` is live (this node included).
    pub fn is_live(&self, node: &NodeName) -> bool {
        (*node == self.me && !self.shut) || self.peers.contains_key(node)
    }

    /// What the machine holds now, for checking that memory stays bounded
    /// (the test kit's checker does after every step).
    pub fn footprint(&self) -> Footprint {
        Footprint {
            peers: self.peers.len(),
            early_messages: self
                .peers
                .values()
                .map(|p| p.early.len())
                .max()
                .unwrap_or(0),
            presence: self.peers.values().map(|p| p.channels.len()).sum(),
            outbox_lines: self.outbox.len(),
            outbox_bytes: self.outbox_charge,
            pending_kicks: self.kicks.pending_len(),
            served_kicks: self.kicks.served_len(),
            departed: self.departed.len(),
            clocks: self.clocks.len(),
            outputs: self.outputs.len(),
        }
    }

    /// The counters, with the gauges filled in.
    pub fn stats(&self) -> ClusterStats {
        let mut stats = self.stats;
        stats.live_nodes = self.peers.len() as u64 + u64::from(!self.shut);
        stats.lines_buffered = self.outbox.len() as u64;
        stats.outbox_bytes = self.outbox_charge as u64;
        stats
    }

    /// Publishes one message with the next sequence number; only while up
    /// (what is not published while down is rebuilt: presence by the
    /// snapshot on the next `BrokerUp`, liveness by heartbeats).
    fn publish(&mut self, body: Body) {
        if !self.up {
            return;
        }
        let message = Message {
            header: Header {
                node: self.me.clone(),
                incarnation: self.incarnation,
                seq: self.seq,
                clock_ms: self.clock_ms(),
            },
            body,
        };
        if message.body.is_sequenced() {
            self.seq = self.seq.wrapping_add(1);
        }
        self.stats.published += 1;
        self.outputs
            .push_back(Output::Publish(wire::encode(&message)));
    }

    fn broker_up_now(&mut self) {
        if self.ever_up && !self.up {
            self.stats.reconnects += 1;
        }
        self.up = true;
        self.ever_up = true;
        self.outputs.push_back(Output::RenewClaim);
        // Presence first, then the lines held during the outage, in order.
        self.publish_snapshot();
        while let Some((id, text)) = self.outbox.pop_front() {
            self.stats.lines_replayed += 1;
            self.publish(Body::Line { id, text });
        }
        self.outbox_charge = 0;
        self.next_heartbeat = self.now.checked_add(self.config.heartbeat);
        self.kicks.resend_all_now(self.now);
    }

    fn publish_snapshot(&mut self) {
        let ids = self.local.iter().copied().collect();
        self.publish(Body::Snapshot(ids));
        self.stats.snapshots_sent += 1;
        self.snapshot_owed = false;
        self.snapshot_after = self.now.checked_add(self.request_spacing());
    }

    /// Milliseconds since this machine started, on its clock.
    pub(super) fn clock_ms(&self) -> u64 {
        let ms = self.now.saturating_duration_since(self.start).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    pub(super) fn publish_heartbeat(&mut self) {
        let channels = u32::try_from(self.local.len()).unwrap_or(u32::MAX);
        self.publish(Body::Heartbeat { channels });
    }

    /// Snapshot requests to one node, and snapshots of this node, are
    /// spaced by this much: a quarter heartbeat.
    pub(super) fn request_spacing(&self) -> Duration {
        self.config.heartbeat / 4
    }

    /// Someone asked for this node's snapshot: publish it now, or once the
    /// spacing since the last one has passed (a flood of requests costs one
    /// snapshot per `heartbeat / 4`).
    pub(super) fn owe_snapshot(&mut self) {
        self.snapshot_owed = true;
        if self.up && self.snapshot_after.is_none_or(|t| t <= self.now) {
            self.publish_snapshot();
        }
    }

    fn line(&mut self, from: ChannelId, text: Bytes) {
        if self.up {
            self.publish(Body::Line { id: from, text });
            return;
        }
        let cost = text.len().saturating_add(OUTBOX_LINE_OVERHEAD);
        if self.outbox_charge.saturating_add(cost) <= self.config.outbox_bytes {
            self.outbox_charge += cost;
            self.outbox.push_back((from, text));
        } else {
            self.lose_own_lines(1);
        }
    }

    /// Counts and reports own lines that will never be published; one
    /// `Lost` output per run of losses, not one per line.
    fn lose_own_lines(&mut self, lines: u64) {
        self.stats.lines_lost += lines;
        if let Some(Output::Lost { node, messages }) = self.outputs.back_mut() {
            if *node == self.me {
                *messages += lines;
                return;
            }
        }
        self.outputs.push_back(Output::Lost {
            node: self.me.clone(),
            messages: lines,
        });
    }

    fn shutdown(&mut self) {
        self.publish(Body::Goodbye);
        self.kicks.fail_all(&mut self.outputs);
        if !self.outbox.is_empty() {
            let lost = self.outbox.len() as u64;
            self.outbox.clear();
            self.outbox_charge = 0;
            self.lose_own_lines(lost);
        }
        self.peers.clear();
        self.shut = true;
        self.up = false;
        self.next_heartbeat = None;
    }

    fn timeout(&mut self) {
        let now = self.now;
        if self.up && self.next_heartbeat.is_some_and(|t| t <= now) {
            self.publish_heartbeat();
            self.outputs.push_back(Output::RenewClaim);
            self.next_heartbeat = now.checked_add(self.config.heartbeat);
        }
        self.expire_peers();
        self.skip_due_gaps();
        if self.up {
            self.send_wanted_requests();
        }
        self.kick_timers();
        // Last: skipping a gap may have applied a snapshot request.
        if self.snapshot_owed {
            self.owe_snapshot();
        }
    }
}
