//! The test kit (feature `testing`): a simulated broker carrying payloads
//! between several [`Cluster`](crate::Cluster)s on a virtual clock, able to
//! drop, duplicate, delay, reorder, partition a node, restart (every link
//! down, the stream lost) and pause (SIGSTOP: everything held, then
//! delivered late), and crash, shut down and restart nodes; a reference model; and an invariant checker
//! run over every step (docs/design.md §7, C1–C10).
//!
//! ```
//! use tether_cluster::testing::{Op, Sim};
//! use tether_cluster::ClusterConfig;
//!
//! let mut sim = Sim::new(3, ClusterConfig::default(), 7).unwrap();
//! sim.run(&[
//!     Op::Open { node: 0 },
//!     Op::Advance { ms: 10 },
//!     Op::Line { node: 0, pick: 0 },
//!     Op::BrokerStop,
//!     Op::Line { node: 0, pick: 0 },
//!     Op::BrokerStart,
//! ]).unwrap();
//! ```

mod model;
mod op;
mod sim;

pub use model::Violation;
pub use op::Op;
pub use sim::{MAX_SIM_NODES, STALE, Sim};

/// The name a forged payload is re-signed with (see [`Op::Garbage`]).
pub const EVIL: &str = "evil";

/// The fuzz target's body: decodes `data` (first byte: node count, seed
/// and outbox size; the rest: ops), runs it and settles; also decodes `data` as a
/// payload, which must not panic.
pub fn fuzz(data: &[u8]) -> Result<(), Violation> {
    let _ = crate::wire::decode(&bytes::Bytes::copy_from_slice(data));
    let (head, rest) = data.split_first().unwrap_or((&0, &[]));
    let nodes = 2 + usize::from(head % 3);
    let mut config = crate::ClusterConfig::default();
    if head & 0x80 != 0 {
        config.outbox_bytes = 2048; // small enough to overflow in an outage
    }
    let mut sim = Sim::new(nodes, config, u64::from(*head) + 1)?;
    sim.run(&Op::decode_all(rest))
}
