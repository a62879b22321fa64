//! Properties: random op sequences, with and without faults, run through
//! the simulated broker under the invariant checker (docs/design.md §7).

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tether_cluster::ClusterConfig;
use tether_cluster::testing::{Op, Sim};

/// Ops without faults: traffic, kicks, time, shutdowns and restarts.
#[derive(Debug, Clone)]
struct Calm(Vec<Op>);

/// Any ops, faults included.
#[derive(Debug, Clone)]
struct Stormy(Vec<u8>);

fn calm_op(g: &mut Gen) -> Op {
    let node = u8::arbitrary(g) % 4;
    let pick = u8::arbitrary(g);
    match u8::arbitrary(g) % 12 {
        0..=2 => Op::Open { node },
        3 => Op::Close { node, pick },
        4..=7 => Op::Line { node, pick },
        8 => Op::Kick {
            from: node,
            to: u8::arbitrary(g) % 4,
            pick,
            stale: bool::arbitrary(g),
        },
        9..=10 => Op::Advance {
            ms: u16::arbitrary(g) % 1500,
        },
        _ => match pick % 8 {
            0 => Op::Shutdown { node },
            1 => Op::Restart { node },
            _ => Op::Advance { ms: 5 },
        },
    }
}

impl Arbitrary for Calm {
    fn arbitrary(g: &mut Gen) -> Self {
        let len = usize::arbitrary(g) % 200;
        Calm((0..len).map(|_| calm_op(g)).collect())
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        // Drop one op at a time (quickcheck cannot shrink an `Op` itself).
        let ops = self.0.clone();
        Box::new((0..ops.len()).rev().map(move |i| {
            let mut fewer = ops.clone();
            fewer.remove(i);
            Calm(fewer)
        }))
    }
}

impl Arbitrary for Stormy {
    fn arbitrary(g: &mut Gen) -> Self {
        let len = usize::arbitrary(g) % 600;
        Stormy((0..len).map(|_| u8::arbitrary(g)).collect())
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        Box::new(self.0.shrink().map(Stormy))
    }
}

/// `QUICKCHECK_TESTS` if set (for long runs), else `default`.
fn tests(default: u64) -> u64 {
    std::env::var("QUICKCHECK_TESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(nodes: usize, seed: u64, ops: &[Op]) -> TestResult {
    let mut config = ClusterConfig::default();
    if seed % 2 == 1 {
        config.outbox_bytes = 2048; // outages overflow it
    }
    let mut sim = Sim::new(nodes, config, seed).expect("sim");
    match sim.run(ops) {
        Ok(()) => TestResult::passed(),
        Err(violation) => TestResult::error(format!("{violation}\nops: {ops:?}")),
    }
}

#[test]
fn without_faults_every_line_arrives_once_in_order_and_every_kick_once() {
    fn prop(ops: Calm, seed: u64) -> TestResult {
        run(2 + (seed % 3) as usize, seed, &ops.0)
    }
    QuickCheck::new()
        .tests(tests(300))
        .quickcheck(prop as fn(Calm, u64) -> TestResult);
}

#[test]
fn with_faults_nothing_is_applied_twice_or_out_of_order_and_presence_converges() {
    fn prop(ops: Stormy, seed: u64) -> TestResult {
        run(2 + (seed % 3) as usize, seed, &Op::decode_all(&ops.0))
    }
    QuickCheck::new()
        .tests(tests(300))
        .quickcheck(prop as fn(Stormy, u64) -> TestResult);
}

#[test]
fn the_same_ops_give_the_same_outputs() {
    fn prop(ops: Stormy, seed: u64) -> TestResult {
        let ops = Op::decode_all(&ops.0);
        let mut a = Sim::new(3, ClusterConfig::default(), seed).expect("sim");
        let mut b = Sim::new(3, ClusterConfig::default(), seed).expect("sim");
        let (ra, rb) = (a.run(&ops), b.run(&ops));
        let strip = |sim: &Sim| -> Vec<String> {
            sim.events()
                .iter()
                .map(|(t, n, o)| format!("{t:?} {n} {o:?}"))
                .collect()
        };
        TestResult::from_bool(ra == rb && strip(&a) == strip(&b))
    }
    QuickCheck::new()
        .tests(tests(50))
        .quickcheck(prop as fn(Stormy, u64) -> TestResult);
}

#[test]
fn extreme_configurations_never_panic_or_spin() {
    use std::time::Duration;
    // The smallest and largest timings validate() accepts, a one-line
    // reorder window, no outbox, a zero gap_wait. Timings below a round
    // trip make kicks time out and nodes expire: the checker may then
    // report what the configuration cannot deliver; a panic, a deadline
    // in the past (C9) or a bound broken (C9) is still a bug.
    let tiny = {
        let mut c = ClusterConfig::default();
        c.heartbeat = Duration::from_millis(1);
        c.ttl = Duration::from_millis(2);
        c.timeout = Duration::from_millis(1);
        c.gap_wait = Duration::ZERO;
        c.reorder_window = 1;
        c.outbox_bytes = 0;
        c
    };
    let huge = {
        let mut c = ClusterConfig::default();
        c.heartbeat = Duration::from_secs(86_399);
        c.ttl = Duration::from_secs(86_400);
        c.timeout = Duration::from_secs(86_400);
        c.gap_wait = Duration::from_secs(86_400);
        c.reorder_window = tether_cluster::MAX_REORDER_WINDOW;
        c.outbox_bytes = tether_cluster::MAX_OUTBOX_BYTES;
        c
    };
    fn prop(
        ops: Stormy,
        seed: u64,
        tiny_one: bool,
        tiny: ClusterConfig,
        huge: ClusterConfig,
    ) -> TestResult {
        let config = if tiny_one { tiny } else { huge };
        let mut sim = Sim::new(3, config, seed).expect("valid config");
        match sim.run(&Op::decode_all(&ops.0)) {
            Err(v) if v.rule == "C9" => TestResult::error(format!("{v}")),
            _ => TestResult::passed(),
        }
    }
    let mut g = quickcheck::Gen::new(100);
    for round in 0..tests(40) {
        let ops = Stormy::arbitrary(&mut g);
        let result = prop(
            ops.clone(),
            round,
            round % 2 == 0,
            tiny.clone(),
            huge.clone(),
        );
        assert!(
            !result.is_failure(),
            "round {round}: {result:?} ops {:?}",
            Op::decode_all(&ops.0)
        );
    }
}
