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
use tether_core::{Action, Bytes, Config, Event, Hub, KickMode};

/// Channels alive besides the one going through its lifecycle.
const OTHERS: usize = 10_000;

/// What one lifecycle emitted, by kind, so a run can be checked.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outputs {
    transmitted: usize,
    shutdowns: u32,
    closes: u32,
    other_actions: u32,
    opened: u32,
    received: usize,
    disconnected: u32,
    released: u32,
    other_events: u32,
    /// How many times `poll_timeout` named a deadline.
    deadlines: u32,
}

/// Drains every output and asks for the next deadline, as an adapter's
/// loop does after each input. Matching on each output is what an adapter
/// does anyway; it also keeps the polls from being optimised away.
#[inline]
fn drain(hub: &mut Hub, out: &mut Outputs) {
    while let Some(action) = hub.poll_action() {
        match action {
            Action::Transmit { data, .. } => out.transmitted += data.len(),
            Action::Shutdown { .. } => out.shutdowns += 1,
            Action::Close { .. } => out.closes += 1,
            _ => out.other_actions += 1,
        }
    }
    while let Some(event) = hub.poll_event() {
        match event {
            Event::Opened { .. } => out.opened += 1,
            Event::Received { data, .. } => out.received += data.len(),
            Event::Disconnected { .. } => out.disconnected += 1,
            Event::Released { .. } => out.released += 1,
            _ => out.other_events += 1,
        }
    }
    if hub.poll_timeout().is_some() {
        out.deadlines += 1;
    }
}

/// One full lifecycle of a new channel. `payload` is shared, not copied.
fn lifecycle(hub: &mut Hub, now: Instant, peer: SocketAddr, payload: &Bytes) -> Outputs {
    let mut out = Outputs::default();
    let id = hub.accept(now, peer).expect("below the limit");
    drain(hub, &mut out);
    hub.attach(id).expect("open");
    hub.handle_received(now, id, payload.clone()).expect("open");
    drain(hub, &mut out);
    hub.send(now, id, payload.clone()).expect("open");
    drain(hub, &mut out);
    hub.handle_written(now, id, payload.len()).expect("queued");
    drain(hub, &mut out);
    hub.kick(now, id, KickMode::Graceful, 7).expect("open");
    drain(hub, &mut out);
    hub.handle_peer_eof(now, id).expect("closing");
    drain(hub, &mut out);
    hub.detach(now, id).expect("attached");
    drain(hub, &mut out);
    hub.handle_closed(now, id).expect("close was requested");
    drain(hub, &mut out);
    out
}

fn hub_with_others(now: Instant, peer: SocketAddr) -> Hub {
    let config = Config::default().with_max_channels(OTHERS * 2);
    let mut hub = Hub::new(config).expect("valid config");
    for _ in 0..OTHERS {
        let id = hub.accept(now, peer).expect("below the limit");
        hub.attach(id).expect("open");
    }
    while hub.poll_action().is_some() {}
    while hub.poll_event().is_some() {}
    hub
}

fn bench_lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("lifecycle");
    group.bench_function("full", |b| {
        let now = Instant::now();
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("valid address");
        let payload = Bytes::from_static(b"hello, tether\n");
        let mut hub = hub_with_others(now, peer);
        // Check once, outside the timing, that the lifecycle is the real one:
        // Transmit, Shutdown(Write), Shutdown(Both), Close; Opened, Received,
        // Disconnected, Released; a deadline (flush, then overdue holder)
        // pending after the kick and after the peer's EOF only.
        let expected = Outputs {
            transmitted: payload.len(),
            shutdowns: 2,
            closes: 1,
            opened: 1,
            received: payload.len(),
            disconnected: 1,
            released: 1,
            deadlines: 2,
            ..Outputs::default()
        };
        assert_eq!(lifecycle(&mut hub, now, peer, &payload), expected);
        b.iter(|| black_box(lifecycle(&mut hub, now, peer, &payload)));
        assert_eq!(hub.live(), OTHERS);
        assert_eq!(lifecycle(&mut hub, now, peer, &payload), expected);
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
