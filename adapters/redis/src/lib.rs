//! # tether-redis
//!
//! Connects one [`tether_cluster::Cluster`] — the sans-IO cluster state
//! machine — to a real Redis, so several `tether serve` nodes share
//! presence, relay lines and kick each other's clients (issue 18;
//! docs/design.md §7). Everything runs on plain std threads with the
//! *synchronous* redis-rs client, so the driver is the same under tokio,
//! smol, async-std and the threads adapter, like the admin console.
//!
//! ## Redis, as used
//!
//! * **The name claim.** `SET tether:node:<name> <incarnation> NX PX <ttl>`
//!   at start: taken means another live node has the name, and the start
//!   fails ([`StartError::NameTaken`]). Renewed at every
//!   [`Output::RenewClaim`](tether_cluster::Output::RenewClaim) (once per
//!   heartbeat) only if it is still ours (a small Lua script; an expired
//!   claim — Redis restarted — is taken again); deleted at goodbye, again
//!   only if ours.
//! * **The bus: one Redis stream**, `tether:bus`. Every payload is
//!   `XADD tether:bus MAXLEN ~ 100000 * p <payload>` (pipelined, up to 256
//!   per round trip); every node reads with `XREAD COUNT 512 BLOCK 250
//!   STREAMS tether:bus <last id>`. Chosen over PUBLISH/SUBSCRIBE because:
//!   a slow reader is never disconnected by `client-output-buffer-limit`
//!   (pub/sub's failure mode: a node that falls behind is cut off and loses
//!   everything in its buffer); a reader that reconnects resumes from its
//!   last id, so a short blip loses nothing; and a reader can simply stop
//!   reading while its clients are slow — *the stream is the buffer*,
//!   bounded by `MAXLEN`. The costs: each entry is stored (about 100 000
//!   entries kept), and a reader polls with a blocking read rather than
//!   being pushed to. What the stream trimmed before a reader came back is
//!   a gap the state machine counts and repairs (a presence snapshot).
//!   After a Redis restart (no persistence) the stream is new: a reader
//!   whose last id is past the new tail reads it from the start.
//!
//! ## Threads
//!
//! * **owner** (`tether-cluster`): the machine's one owner. It waits on one
//!   bounded channel, fed by the reader, the writer, the kick thread and
//!   the server (opened, closed, lines, kick requests, queries), with a
//!   timeout until [`Cluster::poll_timeout`](tether_cluster::Cluster::poll_timeout),
//!   and never blocks on anything else: so heartbeats go on whatever the
//!   clients or Redis do.
//! * **reader** (`tether-cluster-read`) and **writer**
//!   (`tether-cluster-write`): one Redis connection each, every command
//!   with a deadline (the cluster timeout). A failure is reported
//!   (`BrokerError`, and `BrokerDown` while either link is down), the link
//!   is made again with capped backoff (50 ms doubling to 1 s), and
//!   `BrokerUp` follows. The writer sends a failed batch again after the
//!   reconnect; receivers drop what they already have (sequence numbers).
//! * **delivery** (`tether-cluster-deliver`): remote lines to the local
//!   clients, through [`Local::deliver`], paced by the server's flow
//!   control. Its queue is bounded; when it is full the owner holds the
//!   lines, up to [`NodeOptions::hold_bytes`] (4 MiB), reading on so that
//!   heartbeats keep coming; beyond that the reader stops reading the bus
//!   until it drains (the stream is the buffer). Nothing is dropped, and
//!   the owner never waits.
//! * **kick** (`tether-cluster-kick`): remote kicks on local channels
//!   ([`Local::kick`]), apart from deliveries so a kick never waits behind
//!   a slow reader's lines.
//!
//! Every queue is bounded; what does not fit is counted
//! ([`DriverCounters`], `cluster.*` keys) and logged at most once a second.
//!
//! ## Use
//!
//! ```no_run
//! use std::sync::Arc;
//! use tether_cluster::{ClusterConfig, KickMode, KickResult, NodeId};
//! use tether_core::ChannelId;
//! use tether_redis::{Local, Node, NodeOptions};
//!
//! struct Server;
//! impl Local for Server {
//!     fn deliver(&self, lines: &[(NodeId, bytes::Bytes)]) {
//!         for (from, text) in lines {
//!             println!("{from}: {}", String::from_utf8_lossy(text));
//!         }
//!     }
//!     fn kick(&self, _id: ChannelId, _mode: KickMode, _reason: &str) -> KickResult {
//!         KickResult::Stale
//!     }
//! }
//!
//! let options = NodeOptions::new(
//!     "redis://127.0.0.1:6379".parse().unwrap(),
//!     "n1".parse().unwrap(),
//!     ClusterConfig::default(),
//! );
//! let node = Node::start(options, Arc::new(Server)).unwrap();
//! let id = ChannelId::from_parts(0, 1, 1).unwrap();
//! node.opened(id);
//! node.line(id, "hello, other nodes".into());
//! println!("{:?}", node.nodes());
//! node.shutdown(); // goodbye, claim deleted
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod counters;
mod link;
mod node;
mod owner;
#[cfg(feature = "testing")]
pub mod testing;
mod url;
mod workers;

pub use counters::DriverCounters;
pub use link::{BUS_KEY, BUS_MAXLEN, MAX_BACKOFF, claim_key};
pub(crate) use node::Stop;
pub use node::{
    DEFAULT_HOLD_BYTES, DELIVERY_QUEUE, KICK_QUEUE, Local, Node, NodeOptions, OWNER_QUEUE,
    StartError, Unavailable, WRITER_QUEUE,
};
pub use url::{RedisUrl, UrlError};
