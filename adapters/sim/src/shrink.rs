//! Shrinking a failing trace to a short one that fails the same way (same
//! invariant): delete chunks of lines, halving the chunk size (ddmin), then
//! make numbers smaller, until nothing more can go.
//!
//! The algorithm is generic over the line type and lives in tether-core's
//! checker kit ([`shrink_lines`], [`ddmin`], re-exported here), shared with
//! tether-record's flight recordings; [`shrink`] is it applied to
//! simulator traces.
//!
//! ```
//! use tether_sim::{ShrinkLimits, ddmin};
//! // "Fails" while both 3 and 7 are in: ddmin keeps exactly those.
//! let lines: Vec<u32> = (0..100).collect();
//! let small = ddmin(lines, ShrinkLimits::default(), |c| c.contains(&3) && c.contains(&7));
//! assert_eq!(small, vec![3, 7]);
//! ```

use std::panic;

pub use tether_core::testing::shrink::{ShrinkLimits, ddmin, shrink_lines};

use crate::op::{Op, SendSize};
use crate::trace::{Failure, Line};

/// Shrinks `failure` to a shorter trace that breaks the same invariant.
/// Panics inside replays are silenced while shrinking.
pub fn shrink(failure: &Failure, limits: ShrinkLimits) -> Failure {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let invariant = failure.violation.invariant;
    // The failure of the last failing candidate: always the current best.
    let mut last = failure.clone();
    let lines = failure.trace.lines.clone();
    let simpler_line = |line: &Line| {
        simpler(line.op)
            .into_iter()
            .map(|op| Line { op, ..*line })
            .collect()
    };
    shrink_lines(lines, limits, simpler_line, |candidate| {
        let mut trace = failure.trace.clone();
        trace.lines = candidate.to_vec();
        match trace.replay(true) {
            Err(f) if f.violation.invariant == invariant => {
                let n = f.trace.lines.len();
                last = *f;
                Some(n)
            }
            _ => None,
        }
    });
    panic::set_hook(hook);
    last
}

/// Smaller versions of one op (numbers toward zero, simpler variants).
fn simpler(op: Op) -> Vec<Op> {
    let mut out = Vec::new();
    match op {
        Op::PeerSend { conn, len } if len > 1 => out.push(Op::PeerSend { conn, len: len / 2 }),
        Op::AcceptFlood { n } if n > 0 => out.push(Op::AcceptFlood { n: n / 2 }),
        Op::AppSend { conn, size } => {
            let smaller = match size {
                SendSize::Small(n) if n > 1 => Some(SendSize::Small(n / 2)),
                SendSize::Tiny(n) if n > 0 => Some(SendSize::Tiny(n / 2)),
                SendSize::Small(_) | SendSize::AtLimit => Some(SendSize::Tiny(0)),
                _ => None,
            };
            out.extend(smaller.map(|size| Op::AppSend { conn, size }));
        }
        Op::Kick { conn, abort, code } if code > 0 => out.push(Op::Kick {
            conn,
            abort,
            code: 0,
        }),
        Op::Shutdown { grace_ms } if grace_ms > 0 => out.push(Op::Shutdown {
            grace_ms: grace_ms / 2,
        }),
        _ => {}
    }
    let conn_zero = |op: Op| -> Option<Op> {
        Some(match op {
            Op::PeerSend { conn, len } if conn > 0 => Op::PeerSend { conn: 0, len },
            Op::PeerEof { conn } if conn > 0 => Op::PeerEof { conn: 0 },
            Op::AppSend { conn, size } if conn > 0 => Op::AppSend { conn: 0, size },
            Op::Write { conn, percent } if conn > 0 => Op::Write { conn: 0, percent },
            Op::Kick { conn, abort, code } if conn > 0 => Op::Kick {
                conn: 0,
                abort,
                code,
            },
            Op::KickDefault { conn } if conn > 0 => Op::KickDefault { conn: 0 },
            Op::Attach { conn } if conn > 0 => Op::Attach { conn: 0 },
            Op::Detach { conn } if conn > 0 => Op::Detach { conn: 0 },
            _ => return None,
        })
    };
    out.extend(conn_zero(op));
    out
}
