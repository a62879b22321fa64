//! Generational id tables compared: `tether_core::IdTable` against `slotmap`
//! (the generational reference) and `slab` (no generations, the floor).
//!
//! Run: `cargo bench -p tether-core --bench ids`.
//!
//! Every table holds the same value type ([`Value`]) and [`LIVE`] live
//! entries. Benchmark ids:
//! - `churn/*`: insert one entry and remove the oldest (a ring of ids), so
//!   the table stays at [`LIVE`] entries and slots are reused;
//! - `lookup/*`: read a live entry picked from a precomputed random order
//!   (the loop costs one index into that order, no RNG);
//! - `stale/*`: look up an id whose slot was reused since; the table must
//!   answer "no such entry" (an `IdError` / `None`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use slab::Slab;
use slotmap::{DefaultKey, SlotMap};
use tether_core::{ChannelId, IdTable};

/// Live entries in every table.
const LIVE: usize = 10_000;
/// Length of the precomputed random access orders (a power of two, so the
/// loop wraps with a mask).
const ORDER_LEN: usize = 1 << 14;

/// The value stored in every table: a `u64`, the size of a small handle.
type Value = u64;

/// A fixed-seed xorshift, used only to precompute access orders.
fn random_order(len: usize, bound: usize) -> Vec<usize> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        })
        .collect()
}

/// Shuffles `keys` into the random access order, so the timed loop only
/// indexes one array.
fn in_random_order<K: Copy>(keys: &[K]) -> Vec<K> {
    random_order(ORDER_LEN, keys.len())
        .into_iter()
        .map(|i| keys[i])
        .collect()
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");

    group.bench_function("tether", |b| {
        let mut table: IdTable<Value> = IdTable::with_capacity(0, LIVE);
        let mut ring: Vec<ChannelId> = (0..LIVE as Value)
            .map(|v| table.insert(v).expect("table has room"))
            .collect();
        let mut oldest = 0;
        let mut next: Value = 0;
        b.iter(|| {
            let removed = table.remove(ring[oldest]);
            next += 1;
            ring[oldest] = table.insert(next).expect("a slot was just freed");
            oldest = if oldest + 1 == LIVE { 0 } else { oldest + 1 };
            black_box(removed)
        });
        assert_eq!(table.len(), LIVE);
    });

    group.bench_function("slotmap", |b| {
        let mut map: SlotMap<DefaultKey, Value> = SlotMap::with_capacity(LIVE);
        let mut ring: Vec<DefaultKey> = (0..LIVE as Value).map(|v| map.insert(v)).collect();
        let mut oldest = 0;
        let mut next: Value = 0;
        b.iter(|| {
            let removed = map.remove(ring[oldest]);
            next += 1;
            ring[oldest] = map.insert(next);
            oldest = if oldest + 1 == LIVE { 0 } else { oldest + 1 };
            black_box(removed)
        });
        assert_eq!(map.len(), LIVE);
    });

    group.bench_function("slab", |b| {
        let mut slab: Slab<Value> = Slab::with_capacity(LIVE);
        let mut ring: Vec<usize> = (0..LIVE as Value).map(|v| slab.insert(v)).collect();
        let mut oldest = 0;
        let mut next: Value = 0;
        b.iter(|| {
            // `try_remove`, not `remove`: like the others it answers a
            // missing key instead of panicking.
            let removed = slab.try_remove(ring[oldest]);
            next += 1;
            ring[oldest] = slab.insert(next);
            oldest = if oldest + 1 == LIVE { 0 } else { oldest + 1 };
            black_box(removed)
        });
        assert_eq!(slab.len(), LIVE);
    });

    group.finish();
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");

    group.bench_function("tether", |b| {
        let mut table: IdTable<Value> = IdTable::with_capacity(0, LIVE);
        let ids: Vec<ChannelId> = (0..LIVE as Value)
            .map(|v| table.insert(v).expect("table has room"))
            .collect();
        let order = in_random_order(&ids);
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (ORDER_LEN - 1);
            match table.get(order[i]) {
                Ok(value) => black_box(*value),
                Err(_) => black_box(Value::MAX),
            }
        });
    });

    group.bench_function("slotmap", |b| {
        let mut map: SlotMap<DefaultKey, Value> = SlotMap::with_capacity(LIVE);
        let keys: Vec<DefaultKey> = (0..LIVE as Value).map(|v| map.insert(v)).collect();
        let order = in_random_order(&keys);
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (ORDER_LEN - 1);
            match map.get(order[i]) {
                Some(value) => black_box(*value),
                None => black_box(Value::MAX),
            }
        });
    });

    group.finish();
}

fn stale(c: &mut Criterion) {
    let mut group = c.benchmark_group("stale");

    group.bench_function("tether", |b| {
        let mut table: IdTable<Value> = IdTable::with_capacity(0, LIVE);
        // Fill, empty and refill: every first-generation id is now stale and
        // its slot holds a live second-generation entry.
        let old: Vec<ChannelId> = (0..LIVE as Value)
            .map(|v| table.insert(v).expect("table has room"))
            .collect();
        for &id in &old {
            table.remove(id).expect("live");
        }
        for v in 0..LIVE as Value {
            table.insert(v).expect("slots were freed");
        }
        assert!(old.iter().all(|&id| table.get(id).is_err()));
        let order = in_random_order(&old);
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (ORDER_LEN - 1);
            black_box(table.get(order[i]).is_err())
        });
    });

    group.bench_function("slotmap", |b| {
        let mut map: SlotMap<DefaultKey, Value> = SlotMap::with_capacity(LIVE);
        let old: Vec<DefaultKey> = (0..LIVE as Value).map(|v| map.insert(v)).collect();
        for &key in &old {
            map.remove(key).expect("live");
        }
        for v in 0..LIVE as Value {
            map.insert(v);
        }
        assert!(old.iter().all(|&key| map.get(key).is_none()));
        let order = in_random_order(&old);
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (ORDER_LEN - 1);
            black_box(map.get(order[i]).is_none())
        });
    });

    group.finish();
}

criterion_group!(benches, churn, lookup, stale);
criterion_main!(benches);
