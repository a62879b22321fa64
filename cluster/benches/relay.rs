//! The cluster state machine's own cost per event, without any broker:
//! what a node spends on a relayed line (encode on the sender, decode,
//! sequence and deliver on a receiver) and on a cross-node kick round trip.
//! The inputs of docs/design.md's capacity estimate next to Redis's cost.
//!
//! Run: `cargo bench -p tether-cluster --bench relay`.
//!
//! Benchmark ids:
//! - `line/publish`: `Input::Line` on the sender → one `Publish`;
//! - `line/relay`: the same, and the payload `Received` on another node →
//!   `Deliver` (so the receiving side costs `relay` − `publish`);
//! - `kick/round_trip`: `Input::Kick` → payload → `ExecuteKick` →
//!   `KickDone` → reply payload → `KickAnswer`, on two machines.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use tether_cluster::{ChannelId, Cluster, ClusterConfig, Input, KickMode, NodeId, Output};

/// Two machines that know each other, with `n1` holding `channels` channels.
fn pair(now: Instant, channels: u32) -> (Cluster, Cluster) {
    let config = ClusterConfig::default;
    let mut n1 = Cluster::new(config(), "n1".parse().unwrap(), 1, now).unwrap();
    let mut n2 = Cluster::new(config(), "n2".parse().unwrap(), 1, now).unwrap();
    n1.handle_input(now, Input::BrokerUp);
    n2.handle_input(now, Input::BrokerUp);
    for slot in 1..=channels {
        n1.handle_input(
            now,
            Input::Opened(ChannelId::from_parts(0, slot, 1).unwrap()),
        );
    }
    exchange(now, &mut n1, &mut n2);
    (n1, n2)
}

/// Carries every payload between the two until both are quiet.
fn exchange(now: Instant, a: &mut Cluster, b: &mut Cluster) {
    loop {
        let from_a: Vec<_> = std::iter::from_fn(|| a.poll_output()).collect();
        let from_b: Vec<_> = std::iter::from_fn(|| b.poll_output()).collect();
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        for output in from_a {
            if let Output::Publish(p) = output {
                b.handle_input(now, Input::Received(p));
            }
        }
        for output in from_b {
            if let Output::Publish(p) = output {
                a.handle_input(now, Input::Received(p));
            }
        }
    }
}

fn line(c: &mut Criterion) {
    let now = Instant::now();
    let id = ChannelId::from_parts(0, 1, 1).unwrap();
    let text = Bytes::from(vec![b'x'; 64]);
    let mut group = c.benchmark_group("line");
    let (mut n1, _) = pair(now, 1);
    group.bench_function("publish", |b| {
        b.iter(|| {
            n1.handle_input(
                now,
                Input::Line {
                    from: id,
                    text: text.clone(),
                },
            );
            black_box(n1.poll_output())
        })
    });
    let (mut n1, mut n2) = pair(now, 1);
    group.bench_function("relay", |b| {
        b.iter(|| {
            n1.handle_input(
                now,
                Input::Line {
                    from: id,
                    text: text.clone(),
                },
            );
            if let Some(Output::Publish(p)) = n1.poll_output() {
                n2.handle_input(now, Input::Received(p));
            }
            let delivered = n2.poll_output();
            assert!(matches!(delivered, Some(Output::Deliver { .. })));
            black_box(delivered)
        })
    });
    group.finish();
}

fn kick(c: &mut Criterion) {
    let start = Instant::now();
    let (mut n1, mut n2) = pair(start, 1);
    let target = NodeId {
        node: "n1".parse().unwrap(),
        id: ChannelId::from_parts(0, 1, 1).unwrap(),
    };
    let mut request = 0u64;
    c.bench_function("kick/round_trip", |b| {
        b.iter(|| {
            request += 1;
            // 200 µs of virtual time per kick, timers served every 1,000:
            // the owner's memory of served requests (kept 8 s) stays far
            // below its bound, as in a real run at 5,000 kicks/s.
            let now = start + std::time::Duration::from_micros(200 * request);
            if request % 1000 == 0 {
                n1.handle_input(now, Input::Timeout);
                n2.handle_input(now, Input::Timeout);
            }
            let reason = String::new();
            let kick = Input::Kick {
                request,
                target: target.clone(),
                mode: KickMode::Graceful,
                reason,
            };
            n2.handle_input(now, kick);
            let answered = round_trip(now, &mut n1, &mut n2);
            assert!(answered, "kick {request} unanswered");
        })
    });
}

/// Carries the kick's payloads and executes it; whether it was answered
/// (a few rounds at most: there and back).
fn round_trip(now: Instant, owner: &mut Cluster, asker: &mut Cluster) -> bool {
    for _ in 0..8 {
        for output in std::iter::from_fn(|| asker.poll_output()).collect::<Vec<_>>() {
            match output {
                Output::Publish(p) => owner.handle_input(now, Input::Received(p)),
                Output::KickAnswer { .. } => return true,
                _ => {}
            }
        }
        for output in std::iter::from_fn(|| owner.poll_output()).collect::<Vec<_>>() {
            match output {
                Output::Publish(p) => asker.handle_input(now, Input::Received(p)),
                Output::ExecuteKick { ticket, .. } => {
                    // The channel stays: each request is a new one.
                    let result = tether_cluster::KickResult::Done;
                    owner.handle_input(now, Input::KickDone { ticket, result });
                }
                _ => {}
            }
        }
    }
    false
}

criterion_group!(benches, line, kick);
criterion_main!(benches);
