//! The simulator's operations, and their decoding from raw bytes (for the
//! fuzzer and property tests).

use std::fmt;

/// One step of a simulated run. Node numbers are taken modulo the number
/// of simulated nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum Op {
    /// A client connects to `node`.
    Open {
        /// The node.
        node: u8,
    },
    /// One of `node`'s clients (the `pick`-th, modulo) disconnects.
    Close {
        /// The node.
        node: u8,
        /// Which client.
        pick: u8,
    },
    /// One of `node`'s clients sends a line (a unique token).
    Line {
        /// The node.
        node: u8,
        /// Which client.
        pick: u8,
    },
    /// The console of `from` kicks a client of `to` (the `pick`-th), or a
    /// stale id there.
    Kick {
        /// The asking node.
        from: u8,
        /// The owning node.
        to: u8,
        /// Which client.
        pick: u8,
        /// Kick an id that was never live instead.
        stale: bool,
    },
    /// Virtual time passes (everything due happens, in time order).
    Advance {
        /// How long, in milliseconds.
        ms: u16,
    },
    /// From now on the broker drops, duplicates (each in 256) and delays
    /// (up to `delay_ms` more, which reorders) each delivery.
    Faults {
        /// Drop chance in 256.
        drop: u8,
        /// Duplicate chance in 256.
        dup: u8,
        /// Extra delay bound, ms.
        delay_ms: u8,
    },
    /// No more delivery faults.
    Calm,
    /// `node`'s link to the broker goes down (it misses what is published).
    Partition {
        /// The node.
        node: u8,
    },
    /// `node`'s link comes back.
    Heal {
        /// The node.
        node: u8,
    },
    /// The broker stops: every link down, everything in flight lost.
    BrokerStop,
    /// The broker is back: every link that is not partitioned comes up.
    BrokerStart,
    /// The broker pauses (SIGSTOP) for `ms`: links stay up, nothing is
    /// delivered until it resumes, then everything in order.
    Stall {
        /// How long, in milliseconds.
        ms: u16,
    },
    /// `node`'s process dies (no goodbye); its clients are gone.
    Crash {
        /// The node.
        node: u8,
    },
    /// A dead or shut-down `node` starts again, in a new incarnation.
    Restart {
        /// The node.
        node: u8,
    },
    /// `node` shuts down (goodbye).
    Shutdown {
        /// The node.
        node: u8,
    },
    /// Hostile bytes reach `node` (a payload that decodes is re-signed by
    /// a foreign node, `evil`, so that it cannot impersonate a real one).
    Garbage {
        /// The node.
        node: u8,
        /// The payload.
        bytes: Vec<u8>,
    },
}

impl Op {
    /// Decodes a sequence of ops from bytes: every input decodes (the
    /// fuzzer's and quickcheck's entry point). Faults come up rarely, so
    /// that most of a run is traffic. The encoding is not frozen: when it
    /// changes, the committed corpus still runs (any bytes do) and its
    /// hand-made seeds are regenerated.
    pub fn decode_all(data: &[u8]) -> Vec<Op> {
        let mut bytes = data.iter().copied();
        let mut ops = Vec::new();
        while let Some(tag) = bytes.next() {
            let mut next = || bytes.next().unwrap_or(0);
            // Weighted: mostly traffic and time, each fault about 1 in 64.
            let op = match tag % 64 {
                0..=9 => Op::Open { node: next() },
                10..=13 => Op::Close {
                    node: next(),
                    pick: next(),
                },
                14..=29 | 57..=63 => Op::Line {
                    node: next(),
                    pick: next(),
                },
                30..=35 => Op::Kick {
                    from: next(),
                    to: next(),
                    pick: next(),
                    stale: next() % 4 == 0,
                },
                36..=45 => Op::Advance {
                    ms: u16::from(next()) * 4,
                },
                46 => Op::Faults {
                    drop: next() / 4,
                    dup: next() / 4,
                    delay_ms: next(),
                },
                47 => Op::Calm,
                48 => Op::Partition { node: next() },
                49 => Op::Heal { node: next() },
                50 => Op::BrokerStop,
                51 => Op::BrokerStart,
                52 => Op::Crash { node: next() },
                53 => Op::Restart { node: next() },
                54 => Op::Shutdown { node: next() },
                56 => Op::Stall {
                    ms: u16::from(next()) * 20,
                },
                _ => {
                    let node = next();
                    let len = usize::from(next() % 64);
                    let bytes = (0..len).map(|_| next()).collect();
                    Op::Garbage { node, bytes }
                }
            };
            ops.push(op);
        }
        ops
    }

    /// Whether this op is a fault (after which "every line reaches every
    /// live node" holds only once the run has settled again).
    pub fn is_fault(&self) -> bool {
        match self {
            Op::Faults {
                drop,
                dup,
                delay_ms,
            } => *drop > 0 || *dup > 0 || *delay_ms > 0,
            Op::Partition { .. } | Op::BrokerStop | Op::Crash { .. } => true,
            Op::Stall { ms } => *ms > 0,
            _ => false,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
