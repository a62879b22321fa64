//! # tether-sim
//!
//! A deterministic simulator for `tether-core`: the third adapter of the
//! design, driven by scripted, seeded or fuzzer-made inputs.
//!
//! * [`Op`] — everything that can happen to a server, hostile inputs
//!   included (stale and forged ids, double kicks, detach without attach,
//!   closes confirmed twice, clocks running backwards, oversized sends,
//!   accept floods), `Arbitrary` for fuzzers.
//! * [`Sim`] — a hub plus a simulated adapter that executes its actions on
//!   simulated sockets (partial writes, FIN/RST to a simulated peer, holders
//!   attaching and detaching, closes only when told, then confirmed). Every
//!   hub call goes through [`tether_core::testing::Checker`] (invariants
//!   1–12 of docs/design.md §4), and the simulated adapter checks its side of the
//!   contract (no FIN before the queue is written, no close under a holder).
//! * [`Trace`] — a plain-text trace, one op per line with its time; record
//!   any run, replay it, and [`shrink`] a failing one.
//!
//! ```
//! use tether_sim::{run_seeded, SimConfig};
//! let report = run_seeded(&SimConfig::default(), 7, 2_000, true).unwrap();
//! assert!(report.inputs >= 2_000);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod ids;
mod net;
mod op;
mod shrink;
mod sim;
mod trace;

use arbitrary::{Arbitrary, Unstructured};

pub use config::{SimConfig, Timeout};
pub use ids::{IdOp, IdViolation, check_ids, fuzz_ids};
pub use op::{Call, IoKind, Op, SendSize};
pub use shrink::{ShrinkLimits, ddmin, shrink, shrink_lines};
pub use sim::Sim;
pub use trace::{Failure, Line, Trace, TraceError};

/// Most ops one fuzz input is turned into.
pub const MAX_FUZZ_OPS: usize = 4_096;

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    /// Ops executed.
    pub ops: u64,
    /// Hub calls made.
    pub inputs: u64,
}

/// Runs `ops` from a fresh simulator, recording the trace; on a violation
/// returns it with the trace up to the failing op.
pub fn run_ops(
    config: &SimConfig,
    ops: impl IntoIterator<Item = Op>,
    checks: bool,
) -> Result<RunReport, Box<Failure>> {
    let mut sim = Sim::new(config.clone(), checks);
    sim.record();
    let mut count = 0;
    for op in ops {
        count += 1;
        if let Err(violation) = sim.run_op(op) {
            let trace = sim
                .trace()
                .cloned()
                .unwrap_or_else(|| Trace::new(config.clone()));
            return Err(Box::new(Failure { violation, trace }));
        }
    }
    Ok(RunReport {
        ops: count,
        inputs: sim.inputs(),
    })
}

/// The `lifecycle` fuzz target: bytes become a configuration and ops, run
/// with every check on.
pub fn fuzz_lifecycle(data: &[u8]) -> Result<RunReport, Box<Failure>> {
    let (config, ops) = decode_fuzz_input(data);
    run_ops(&config, ops, true)
}

/// A `lifecycle` fuzz input starting with these bytes decodes a
/// configuration with every policy, the per-message overhead and the stall
/// timeout included ([`SimConfig`]'s `Arbitrary`). An input without it
/// decodes its configuration as inputs did before those policies existed
/// ([`SimConfig::arbitrary_v1`]: both off, the same bytes consumed), so the
/// committed corpus replays the runs it was minimised for.
pub const FUZZ_TAG_V2: &[u8; 2] = b"T2";

/// A `lifecycle` fuzz input starting with these bytes decodes its
/// configuration as with [`FUZZ_TAG_V2`], and its ops from every [`Op`],
/// those added since included ([`Op::KickReason`], [`Op::BroadcastTo`]);
/// an input without it draws ops as before them ([`Op::arbitrary_v2`]).
pub const FUZZ_TAG_V3: &[u8; 2] = b"T3";

/// What the `lifecycle` target makes of `data`: a configuration and ops
/// (ending with [`Op::Drain`]). See [`FUZZ_TAG_V2`] and [`FUZZ_TAG_V3`].
pub fn decode_fuzz_input(data: &[u8]) -> (SimConfig, Vec<Op>) {
    let v3 = data.strip_prefix(FUZZ_TAG_V3);
    let v2 = data.strip_prefix(FUZZ_TAG_V2);
    let mut u = Unstructured::new(v3.or(v2).unwrap_or(data));
    let config = if v3.is_some() || v2.is_some() {
        SimConfig::arbitrary(&mut u)
    } else {
        SimConfig::arbitrary_v1(&mut u)
    };
    let config = config.unwrap_or_default();
    let op = if v3.is_some() {
        Op::arbitrary
    } else {
        Op::arbitrary_v2
    };
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_FUZZ_OPS {
        match op(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops.push(Op::Drain);
    (config, ops)
}

/// The trace of the `lifecycle` target's run on `data` (up to the failing
/// op, if it fails), for `tether-sim from-fuzz`.
pub fn fuzz_input_trace(data: &[u8]) -> Trace {
    let (config, ops) = decode_fuzz_input(data);
    let mut sim = Sim::new(config.clone(), true);
    sim.record();
    for op in ops {
        if sim.run_op(op).is_err() {
            break;
        }
    }
    sim.trace().cloned().unwrap_or_else(|| Trace::new(config))
}

/// SplitMix64: a tiny deterministic generator for seeded runs.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// `n` ops made from `seed` (uniform over [`Op`]'s variants, as a fuzzer's
/// random bytes would make them).
pub fn seeded_ops(seed: u64, n: usize) -> Vec<Op> {
    let mut rng = SplitMix64::new(seed);
    let mut buf = vec![0u8; 4096];
    let mut ops = Vec::with_capacity(n);
    while ops.len() < n {
        rng.fill(&mut buf);
        let mut u = Unstructured::new(&buf);
        while ops.len() < n {
            match Op::arbitrary(&mut u) {
                Ok(op) if u.len() > 16 => ops.push(op),
                _ => break,
            }
        }
    }
    ops
}

/// Runs `steps` seeded ops on `config`, then [`Op::Drain`].
pub fn run_seeded(
    config: &SimConfig,
    seed: u64,
    steps: usize,
    checks: bool,
) -> Result<RunReport, Box<Failure>> {
    let mut ops = seeded_ops(seed, steps);
    ops.push(Op::Drain);
    run_ops(config, ops, checks)
}

/// The configuration a seed picks (so seeded runs cover many policies).
pub fn seeded_config(seed: u64) -> SimConfig {
    let mut rng = SplitMix64::new(seed ^ 0xC0FF_EE00);
    let mut buf = [0u8; 64];
    rng.fill(&mut buf);
    SimConfig::arbitrary(&mut Unstructured::new(&buf)).unwrap_or_default()
}
