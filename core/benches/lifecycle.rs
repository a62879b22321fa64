//! One whole channel lifecycle on a `Hub` with 10,000 other live channels,
//! measured against `slotmap`'s churn in the same run (the yardstick:
//! a lifecycle should cost under 50× one slotmap insert + remove).
//!
//! Run: `cargo bench -p tether-core --bench lifecycle`.
//!
//! Benchmark ids:
//! - `lifecycle/full`: accept → attach → received → send → written → kick
//!   (graceful) → peer EOF → detach → closed → released, draining every
//!   action and event and asking `poll_timeout` after each step, as an
//!   adapter's run loop does;
//! - `churn/slotmap`: the same measurement as `churn/slotmap` in the `ids`
//!   bench (10,000 live, insert one / remove the oldest), repeated here so
//!   the ratio comes from one run.
//!
//! `core/tests/allocations.rs` runs the same lifecycle under a counting
//! allocator and checks it makes no heap allocation.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use slotmap::{DefaultKey, SlotMap};
use tether_core::{Bytes, Config, Hub};

#[path = "../tests/common/lifecycle.rs"]
mod lifecycle;
use lifecycle::{OTHERS, Outputs, graceful_lifecycle, graceful_once, hub_with_others};

fn bench_lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("lifecycle");
    group.bench_function("full", |b| {
        let now = Instant::now();
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("valid address");
        let payload = Bytes::from_static(b"hello, tether\n");
        let config = Config::default().with_max_channels(OTHERS * 2);
        let mut hub = hub_with_others(config, now, peer);
        let run = |hub: &mut Hub| {
            let mut out = Outputs::default();
            graceful_lifecycle(hub, now, peer, &payload, &mut out);
            out
        };
        // Check once, outside the timing, that the lifecycle is the real one.
        let expected = graceful_once(&payload);
        assert_eq!(run(&mut hub), expected);
        b.iter(|| black_box(run(&mut hub)));
        assert_eq!(hub.live(), OTHERS);
        assert_eq!(run(&mut hub), expected);
    });
    group.finish();
}

/// Same as `churn/slotmap` in `benches/ids.rs`.
fn bench_slotmap_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    group.bench_function("slotmap", |b| {
        let mut map: SlotMap<DefaultKey, u64> = SlotMap::with_capacity(OTHERS);
        let mut ring: Vec<DefaultKey> = (0..OTHERS as u64).map(|v| map.insert(v)).collect();
        let mut oldest = 0;
        let mut next = 0u64;
        b.iter(|| {
            let removed = map.remove(ring[oldest]);
            next += 1;
            ring[oldest] = map.insert(next);
            oldest = if oldest + 1 == OTHERS { 0 } else { oldest + 1 };
            black_box(removed)
        });
        assert_eq!(map.len(), OTHERS);
    });
    group.finish();
}

criterion_group!(benches, bench_slotmap_churn, bench_lifecycle);
criterion_main!(benches);
