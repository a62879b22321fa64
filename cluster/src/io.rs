//! The machine's vocabulary: what the driver feeds it and what it asks for.

use std::time::Duration;

use bytes::Bytes;
use tether_core::{ChannelId, KickMode};

use crate::name::{NodeId, NodeName};

/// One input to [`Cluster::handle_input`](crate::Cluster::handle_input).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The link to the broker is (re)established: the driver can publish
    /// and receives. The machine re-announces its presence (a snapshot),
    /// then publishes its outbox in order.
    BrokerUp,
    /// The link to the broker is lost; the driver reconnects with backoff
    /// and then sends [`Input::BrokerUp`]. Lines go to the outbox meanwhile.
    BrokerDown,
    /// A broker operation failed (counted in `cluster.broker_errors`).
    BrokerError,
    /// One raw payload from the bus, from any node (this one included: the
    /// broker echoes). Hostile bytes are counted and ignored.
    Received(Bytes),
    /// Time passed: serve what is due (see
    /// [`Cluster::poll_timeout`](crate::Cluster::poll_timeout)). Harmless
    /// when early.
    Timeout,
    /// A local channel opened (local presence).
    Opened(ChannelId),
    /// A local channel closed.
    Closed(ChannelId),
    /// A local client's line to relay to every other node (raw: no id
    /// prefix, no newline).
    Line {
        /// The local channel that sent it.
        from: ChannelId,
        /// The line.
        text: Bytes,
    },
    /// The console asks to kick a channel of another node. Answered by
    /// exactly one [`Output::KickAnswer`] with the same `request`, within
    /// [`ClusterConfig::timeout`](crate::ClusterConfig::timeout).
    Kick {
        /// The caller's tag for the answer; unique among pending kicks.
        request: u64,
        /// The channel to kick.
        target: NodeId,
        /// How to end it.
        mode: KickMode,
        /// Why (shown in the owner's log and disconnect reason).
        reason: String,
    },
    /// This node executed a kick asked for by [`Output::ExecuteKick`].
    KickDone {
        /// The ticket of that output.
        ticket: KickTicket,
        /// What the local hub said.
        result: KickResult,
    },
    /// Deregister at once (after the local drain): publish a goodbye. Every
    /// later input is ignored (a kick is answered `Unavailable`).
    Shutdown,
}

/// One thing the driver must do, from
/// [`Cluster::poll_output`](crate::Cluster::poll_output).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Publish one payload on the bus, in order with every other `Publish`.
    Publish(Bytes),
    /// Refresh this node's name claim in the broker: on every `BrokerUp`
    /// (a restarted broker lost it) and once per heartbeat while up.
    RenewClaim,
    /// A remote client's line: broadcast it to this node's clients as
    /// `NAME/<id>: text`.
    Deliver {
        /// Who sent it.
        from: NodeId,
        /// The line (raw).
        text: Bytes,
    },
    /// Kick a local channel for another node; answer with
    /// [`Input::KickDone`] and this ticket.
    ExecuteKick {
        /// Identifies the request; hand it back in `KickDone`.
        ticket: KickTicket,
        /// The local channel.
        id: ChannelId,
        /// How to end it.
        mode: KickMode,
        /// Why.
        reason: String,
    },
    /// The answer to an [`Input::Kick`].
    KickAnswer {
        /// The request's tag.
        request: u64,
        /// `Ok` once the owning node has done the kick.
        result: Result<(), KickError>,
    },
    /// A node became live.
    NodeUp(NodeName),
    /// A node stopped being live; its presence is gone.
    NodeDown {
        /// The node.
        node: NodeName,
        /// Why.
        why: NodeDownReason,
    },
    /// Messages that will never arrive: a gap in `node`'s sequence that did
    /// not fill, or (with `node` = this node) lines dropped because the
    /// outbox was full. Log it.
    Lost {
        /// The sender whose messages are lost.
        node: NodeName,
        /// How many.
        messages: u64,
    },
}

/// Identifies one remote kick request executed here: the requesting node,
/// its incarnation and its request tag. Opaque; hand it back in
/// [`Input::KickDone`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KickTicket {
    pub(crate) origin: NodeName,
    pub(crate) incarnation: u64,
    pub(crate) request: u64,
}

impl KickTicket {
    /// The node that asked for the kick.
    pub fn origin(&self) -> &NodeName {
        &self.origin
    }
}

/// What the owning node's hub said to a kick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KickResult {
    /// The channel was kicked (its disconnect event is the owner's).
    Done,
    /// The id does not name a live channel there.
    Stale,
}

/// Why a cross-node kick failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KickError {
    /// The id is not live on its node (console: `error stale`).
    #[error("stale")]
    Stale,
    /// The node is not live (console: `error unknown node NAME`).
    #[error("unknown node {0}")]
    UnknownNode(NodeName),
    /// The broker is down, the machine shut down, or no reply came within
    /// the timeout (console: `error cluster unavailable`). Refused at once
    /// (broker down, shut down, too many pending): nothing was sent. At the
    /// timeout: no reply came in time. An owner drops a request that
    /// reaches it too late for its reply to make it (a paused broker), so
    /// a late execution is unlikely, but a reply lost after the kick is
    /// possible: the outcome is not known for sure (at most once holds).
    #[error("cluster unavailable")]
    Unavailable,
    /// The target is this node: a local kick is the caller's job.
    #[error("the target is this node: kick it locally")]
    Local,
    /// Another kick with the same request tag is still pending.
    #[error("request tag already pending")]
    DuplicateRequest,
}

/// Why a node stopped being live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeDownReason {
    /// Nothing heard from it for the ttl.
    Expired,
    /// It said goodbye (shut down).
    Goodbye,
    /// It came back with a new incarnation (a restart): its old presence
    /// is dropped, and a `NodeUp` follows.
    Restarted,
}

/// One live node, from [`Cluster::nodes`](crate::Cluster::nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeInfo {
    /// Its name.
    pub name: NodeName,
    /// How many channels it holds (as replicated here).
    pub channels: usize,
    /// Time since its last message (zero for this node).
    pub age: Duration,
    /// Its incarnation.
    pub incarnation: u64,
}
