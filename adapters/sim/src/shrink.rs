//! Shrinking a failing trace to a short one that fails the same way (same
//! invariant): delete chunks of lines, halving the chunk size (ddmin), then
//! make numbers smaller, until nothing more can go.

use std::panic;
use std::time::{Duration, Instant};

use crate::op::{Op, SendSize};
use crate::trace::{Failure, Line, Trace};

/// Limits for one shrink.
#[derive(Debug, Clone, Copy)]
pub struct ShrinkLimits {
    /// Most replays to try.
    pub max_replays: usize,
    /// Most wall-clock time to spend.
    pub max_time: Duration,
}

impl Default for ShrinkLimits {
    fn default() -> Self {
        ShrinkLimits {
            max_replays: 50_000,
            max_time: Duration::from_secs(60),
        }
    }
}

struct Shrinker {
    invariant: u8,
    limits: ShrinkLimits,
    started: Instant,
    replays: usize,
}

impl Shrinker {
    fn exhausted(&self) -> bool {
        self.replays >= self.limits.max_replays || self.started.elapsed() >= self.limits.max_time
    }

    /// Whether `candidate` still fails with the same invariant; if so,
    /// returns its (truncated) failure.
    fn fails(&mut self, candidate: &Trace) -> Option<Failure> {
        self.replays += 1;
        match candidate.replay(true) {
            Err(f) if f.violation.invariant == self.invariant => Some(*f),
            _ => None,
        }
    }
}

/// Shrinks `failure` to a shorter trace that breaks the same invariant.
/// Panics inside replays are silenced while shrinking.
pub fn shrink(failure: &Failure, limits: ShrinkLimits) -> Failure {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let mut s = Shrinker {
        invariant: failure.violation.invariant,
        limits,
        started: Instant::now(),
        replays: 0,
    };
    let mut best = failure.clone();
    loop {
        let before = best.trace.lines.len();
        best = delete_chunks(&mut s, best);
        best = simplify_ops(&mut s, best);
        if best.trace.lines.len() >= before || s.exhausted() {
            break;
        }
    }
    panic::set_hook(hook);
    best
}

fn delete_chunks(s: &mut Shrinker, mut best: Failure) -> Failure {
    let mut chunk = best.trace.lines.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < best.trace.lines.len() && !s.exhausted() {
            let mut candidate = best.trace.clone();
            let end = (i + chunk).min(candidate.lines.len());
            candidate.lines.drain(i..end);
            match s.fails(&candidate) {
                Some(f) => best = f,
                None => i += chunk,
            }
        }
        if chunk == 1 || s.exhausted() {
            return best;
        }
        chunk = chunk.div_ceil(2);
    }
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

fn simplify_ops(s: &mut Shrinker, mut best: Failure) -> Failure {
    let mut i = 0;
    while i < best.trace.lines.len() && !s.exhausted() {
        let line = best.trace.lines[i];
        let mut improved = false;
        for op in simpler(line.op) {
            let mut candidate = best.trace.clone();
            candidate.lines[i] = Line { op, ..line };
            if let Some(f) = s.fails(&candidate) {
                best = f;
                improved = true;
                break;
            }
        }
        if !improved {
            i += 1;
        }
    }
    best
}
