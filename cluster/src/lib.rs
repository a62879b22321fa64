//! # tether-cluster
//!
//! The *sans-IO* cluster state machine of tether (issue 18; the project's
//! `docs/design.md` §7): several `tether serve` nodes share presence,
//! relay lines and kick each other's clients over a pub/sub broker (Redis).
//! [`Cluster`] owns one node's view of the cluster — membership, every
//! node's replicated channel set, the routing of kicks, the outbox and gap
//! detection — and no sockets, threads, clocks or Redis: a driver feeds it
//! [`Input`]s with the current time and carries out its [`Output`]s, in the
//! style of quinn-proto's `Connection`.
//!
//! ## The run loop
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use tether_cluster::{Cluster, ClusterConfig, Input, Output};
//! use tether_core::ChannelId;
//!
//! let start = Instant::now();
//! let mut n1 = Cluster::new(ClusterConfig::default(), "n1".parse().unwrap(), 1, start).unwrap();
//! let mut n2 = Cluster::new(ClusterConfig::default(), "n2".parse().unwrap(), 1, start).unwrap();
//! let id = ChannelId::from_parts(0, 3, 1).unwrap();
//!
//! // The driver connected to the broker; a client opened and spoke on n1.
//! n1.handle_input(start, Input::BrokerUp);
//! n2.handle_input(start, Input::BrokerUp);
//! n1.handle_input(start, Input::Opened(id));
//! n1.handle_input(start, Input::Line { from: id, text: Bytes::from_static(b"hi") });
//!
//! // The driver's loop: carry out outputs, feed what the bus brings, and
//! // call again with `Timeout` at `poll_timeout`. Here the "bus" hands
//! // n1's payloads to n2 directly.
//! let mut delivered = Vec::new();
//! loop {
//!     let mut idle = true;
//!     while let Some(output) = n1.poll_output() {
//!         if let Output::Publish(payload) = output {
//!             n2.handle_input(start, Input::Received(payload)); // XADD / PUBLISH
//!             idle = false;
//!         }
//!     }
//!     while let Some(output) = n2.poll_output() {
//!         match output {
//!             Output::Deliver { from, text } => delivered.push(format!("{from}: {}", String::from_utf8_lossy(&text))),
//!             Output::Publish(payload) => { n1.handle_input(start, Input::Received(payload)); idle = false; }
//!             _ => {} // RenewClaim, NodeUp, kicks, ...
//!         }
//!     }
//!     if idle { break; }
//! }
//! assert_eq!(delivered, ["n1/#3.1: hi"]);
//! assert_eq!(n2.presence().map(|id| id.to_string()).collect::<Vec<_>>(), ["n1/#3.1"]);
//!
//! // A real driver sleeps until the next deadline, then feeds `Timeout`.
//! let next = n2.poll_timeout().unwrap();
//! assert!(next <= start + Duration::from_secs(3));
//! n2.handle_input(next, Input::Timeout);
//! ```
//!
//! ## The rules it enforces (docs/design.md §7, invariants C1–C10)
//!
//! * **Wire format** ([`wire`]): one versioned binary payload per message —
//!   heartbeat (with the channel count), line, opened, closed, presence
//!   snapshot, snapshot request, kick, kick reply, goodbye — each with the
//!   sender's node, incarnation and per-sender sequence number. A payload
//!   that does not decode is counted (`cluster.decode_errors`) and ignored;
//!   this node's own payloads (the broker echoes them) are ignored.
//! * **Membership**: a node is live from its first message until `ttl`
//!   passes without one (on this node's clock), or its goodbye, or a message
//!   from a newer incarnation (a restart: its old presence is dropped).
//!   While the broker is up this node publishes a heartbeat every
//!   `heartbeat` and asks the driver to renew its name claim.
//! * **Order, duplicates, gaps**: each sender's ordered messages
//!   (heartbeats, lines, presence, goodbye) are applied in sequence order,
//!   each at most once. Duplicates are dropped (counted); up to
//!   `reorder_window` early messages wait for a missing one for at most
//!   `gap_wait`; then the gap is counted (`gaps`, `messages_lost`),
//!   reported ([`Output::Lost`]) and the sender asked for a presence
//!   snapshot (again until one arrives). Kicks, kick replies and snapshot
//!   requests are idempotent control messages outside that order
//!   ([`wire::Body::is_sequenced`]).
//! * **Presence**: replicated by opened/closed deltas, re-announced as a
//!   snapshot on every `BrokerUp`, on request and to a newcomer (spaced by
//!   `heartbeat / 4`); a heartbeat whose channel count disagrees with the
//!   replica asks for a snapshot too. A newcomer also gets a heartbeat at
//!   once, so it knows this node within a round trip.
//! * **Outbox**: while the broker is down, local lines wait in order up to
//!   `outbox_bytes`; beyond it they are counted lost (`lines_lost`,
//!   [`Output::Lost`] for this node). On `BrokerUp`: the snapshot, then the
//!   outbox, in order. Presence and heartbeats are not queued: they are
//!   rebuilt.
//! * **Kicks**: to a node that is not live → `UnknownNode` at once; broker
//!   down → `Unavailable` at once; else published and re-published every
//!   `timeout / 4` until the owner's reply, or `Unavailable` at `timeout`.
//!   The owner executes each (origin, incarnation, request) at most once and
//!   answers repeats from memory, so a kick happens exactly once while the
//!   broker delivers. A kick for this node answers [`KickError::Local`].
//! * **Time and hostile input**: `now` running backwards counts as the
//!   latest `now` seen; inputs after `Shutdown` do nothing (a kick answers
//!   `Unavailable`); every bound is configured or a documented constant; no
//!   input panics.
//!
//! ## Features
//!
//! * `testing`: the `testing` module — a simulated broker carrying payloads between
//!   several `Cluster`s on a virtual clock with faults (drop, duplicate,
//!   delay, reorder, partition, restart), a reference model and an
//!   invariant checker. Never in a server.
//! * `arbitrary`: `arbitrary::Arbitrary` for the simulator's ops.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod io;
mod machine;
mod name;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

pub use config::{
    ClusterConfig, ClusterConfigError, MAX_DURATION, MAX_OUTBOX_BYTES, MAX_REORDER_WINDOW,
    MIN_DURATION, OUTBOX_LINE_OVERHEAD,
};
pub use io::{Input, KickError, KickResult, KickTicket, NodeDownReason, NodeInfo, Output};
pub use machine::kick::{MAX_PENDING_KICKS, MAX_SERVED_KICKS};
pub use machine::{Cluster, Footprint, MAX_NODES, MAX_PRESENCE};
pub use name::{MAX_NODE_NAME, NodeId, NodeIdError, NodeName, NodeNameError};
pub use stats::ClusterStats;

pub use bytes::Bytes;
pub use tether_core::{ChannelId, KickMode};
