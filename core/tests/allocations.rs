//! A steady-state channel lifecycle makes **zero** heap allocations.
//!
//! A counting global allocator wraps the system allocator; the counter is
//! per thread, so the test harness and any other thread cannot disturb the
//! count. After a warm-up (which lets the hub's tables and queues reach
//! their working size), thousands of whole lifecycles — the same sequence
//! as `benches/lifecycle.rs` — run with 10,000 other live channels in the
//! hub, and the allocation count must not move. The payload is a
//! `Bytes::from_static`, created before the counted region; the hub shares
//! it, never copies it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tether_core::{Bytes, Config};

#[path = "common/lifecycle.rs"]
mod lifecycle;
use lifecycle::{OTHERS, Outputs, abortive_lifecycle, graceful_lifecycle, hub_with_others};

thread_local! {
    /// Allocations (alloc, alloc_zeroed, realloc) made by this thread.
    /// `const`-initialised and without a destructor, so reading it from
    /// inside the allocator never allocates or re-enters.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: during thread teardown the slot may be gone; not counting
    // there is fine, it is outside every measured region.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Forwards every call to [`System`] and counts the allocating ones.
struct CountingAllocator;

// SAFETY: every method forwards its arguments unchanged to `System`, a
// correct `GlobalAlloc`, so this allocator upholds the same contract. The
// only extra work is bumping a thread-local counter, which neither
// allocates nor unwinds. (This is the only `unsafe` in the crate's tests;
// the library itself is `#![forbid(unsafe_code)]`.)
#[allow(unsafe_code)] // the one exception to the workspace's `deny(unsafe_code)`
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Rounds (one graceful and one abortive lifecycle each) run before
/// counting, so every queue reaches its working size. With idle deadlines
/// each lifecycle leaves one stale timer entry, and the timer heap is
/// compacted when it holds about `2 × live` entries: 6,000 rounds make sure
/// that point (and the heap's largest size) is reached during warm-up.
const WARM_UP: usize = 6_000;
/// Rounds counted: enough to cross the compaction point once more, so the
/// compaction itself is shown to be allocation-free.
const COUNTED: usize = 8_000;

#[test]
fn the_counter_sees_allocations() {
    // Without this, a broken allocator hook would make the zero-allocation
    // test pass vacuously.
    let before = allocations();
    let boxed = black_box(Box::new([0u8; 64]));
    drop(boxed);
    let v: Vec<u64> = black_box((0..100).collect());
    drop(v);
    assert_eq!(allocations() - before, 2);
}

/// Runs the lifecycles on a hub built from `config`, with [`OTHERS`] other
/// live channels, and checks both that they ran as expected and that the
/// counted ones allocated nothing.
fn assert_no_allocation_in_steady_state(config: Config) {
    let start = Instant::now();
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("valid address");
    let payload = Bytes::from_static(b"hello, tether\n");
    let mut hub = hub_with_others(config, start, peer);

    let mut now = start;
    let mut warm = Outputs::default();
    for _ in 0..WARM_UP {
        graceful_lifecycle(&mut hub, now, peer, &payload, &mut warm);
        abortive_lifecycle(&mut hub, now, peer, &payload, &mut warm);
        // Time moves on as in a real server (deadlines are computed from it).
        now += Duration::from_micros(1);
    }

    let mut graceful = Outputs::default();
    let mut abortive = Outputs::default();
    let before = allocations();
    for _ in 0..COUNTED {
        graceful_lifecycle(&mut hub, now, peer, &payload, &mut graceful);
        abortive_lifecycle(&mut hub, now, peer, &payload, &mut abortive);
        now += Duration::from_micros(1);
    }
    let allocated = allocations() - before;

    assert_eq!(
        allocated,
        0,
        "{allocated} heap allocations in {} steady-state lifecycles",
        2 * COUNTED
    );
    // The lifecycles really ran: every output, exactly once per lifecycle.
    let graceful_once = Outputs {
        transmitted: payload.len(),
        shutdowns: 2, // Write after the flush, Both on going offline
        closes: 1,
        opened: 1,
        received: payload.len(),
        kicked_code_7: 1,
        released: 1,
        ..Outputs::default()
    };
    let abortive_once = Outputs {
        transmitted: payload.len(),
        aborts: 1,
        closes: 1,
        opened: 1,
        kicked_code_7: 1,
        released: 1,
        ..Outputs::default()
    };
    // Deadlines pending depend on the config (idle timers of the others).
    let graceful = Outputs {
        deadlines: 0,
        ..graceful
    };
    let abortive = Outputs {
        deadlines: 0,
        ..abortive
    };
    assert_eq!(graceful, graceful_once.times(COUNTED));
    assert_eq!(abortive, abortive_once.times(COUNTED));
    assert_eq!(hub.live(), OTHERS);
    let stats = hub.stats();
    assert_eq!(stats.offline_depth, 0);
    assert_eq!(stats.released as usize, 2 * (WARM_UP + COUNTED));
    assert_eq!(
        stats.bytes_dropped as usize,
        payload.len() * (WARM_UP + COUNTED)
    );
}

/// The sequence and configuration of `benches/lifecycle.rs`.
#[test]
fn steady_state_lifecycles_make_no_heap_allocation() {
    assert_no_allocation_in_steady_state(Config::default().with_max_channels(OTHERS * 2));
}

/// With an idle timeout, every other channel keeps a live deadline in the
/// timer heap, so the entries the lifecycles leave behind are not on top
/// and `poll_timeout` cannot drop them: the hub must still keep the heap
/// (and its memory) bounded.
#[test]
fn steady_state_lifecycles_make_no_heap_allocation_with_idle_deadlines() {
    let config = Config::default()
        .with_max_channels(OTHERS * 2)
        .with(|c| c.idle_timeout = Some(Duration::from_secs(30)));
    assert_no_allocation_in_steady_state(config);
}
