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

use tether_core::{Action, Bytes, Config, DisconnectReason, Event, Hub, KickMode};

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

/// Channels alive besides the one going through its lifecycle.
const OTHERS: usize = 10_000;
/// Rounds (one graceful and one abortive lifecycle each) run before
/// counting, so every queue reaches its working size. With idle deadlines
/// each lifecycle leaves one stale timer entry, and the timer heap is
/// compacted when it holds about `2 × live` entries: 6,000 rounds make sure
/// that point (and the heap's largest size) is reached during warm-up.
const WARM_UP: usize = 6_000;
/// Rounds counted: enough to cross the compaction point once more, so the
/// compaction itself is shown to be allocation-free.
const COUNTED: usize = 8_000;

/// What the lifecycles emitted, by kind; counting is allocation-free.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Outputs {
    transmitted: usize,
    shutdowns: u32,
    aborts: u32,
    closes: u32,
    other_actions: u32,
    opened: u32,
    received: usize,
    kicked_code_7: u32,
    other_disconnects: u32,
    released: u32,
    other_events: u32,
}

impl Outputs {
    fn times(self, n: usize) -> Outputs {
        let n32 = n as u32;
        Outputs {
            transmitted: self.transmitted * n,
            shutdowns: self.shutdowns * n32,
            aborts: self.aborts * n32,
            closes: self.closes * n32,
            other_actions: self.other_actions * n32,
            opened: self.opened * n32,
            received: self.received * n,
            kicked_code_7: self.kicked_code_7 * n32,
            other_disconnects: self.other_disconnects * n32,
            released: self.released * n32,
            other_events: self.other_events * n32,
        }
    }
}

/// Drains every output and asks for the next deadline, as an adapter's
/// loop does after each input (same as `benches/lifecycle.rs`).
fn drain(hub: &mut Hub, out: &mut Outputs) {
    while let Some(action) = hub.poll_action() {
        match action {
            Action::Transmit { data, .. } => out.transmitted += data.len(),
            Action::Shutdown { .. } => out.shutdowns += 1,
            Action::Abort { .. } => out.aborts += 1,
            Action::Close { .. } => out.closes += 1,
            _ => out.other_actions += 1,
        }
    }
    while let Some(event) = hub.poll_event() {
        match event {
            Event::Opened { .. } => out.opened += 1,
            Event::Received { data, .. } => out.received += data.len(),
            Event::Disconnected {
                reason: DisconnectReason::Kicked { code: 7 },
                ..
            } => out.kicked_code_7 += 1,
            Event::Disconnected { .. } => out.other_disconnects += 1,
            Event::Released { .. } => out.released += 1,
            _ => out.other_events += 1,
        }
    }
    black_box(hub.poll_timeout());
}

/// The lifecycle of `benches/lifecycle.rs`: accept → attach → received →
/// send → written → graceful kick → peer EOF → detach → closed → released.
fn graceful_lifecycle(
    hub: &mut Hub,
    now: Instant,
    peer: SocketAddr,
    payload: &Bytes,
    out: &mut Outputs,
) {
    let id = hub.accept(now, peer).expect("below the limit");
    drain(hub, out);
    hub.attach(id).expect("open");
    hub.handle_received(now, id, payload.clone()).expect("open");
    drain(hub, out);
    hub.send(now, id, payload.clone()).expect("open");
    drain(hub, out);
    hub.handle_written(now, id, payload.len()).expect("queued");
    drain(hub, out);
    hub.kick(now, id, KickMode::Graceful, 7).expect("open");
    drain(hub, out);
    hub.handle_peer_eof(now, id).expect("closing");
    drain(hub, out);
    hub.detach(now, id).expect("attached");
    drain(hub, out);
    hub.handle_closed(now, id).expect("close was requested");
    drain(hub, out);
}

/// The abortive variant: the queued transmit is discarded, RST, then the
/// holder lets go and the close is confirmed.
fn abortive_lifecycle(
    hub: &mut Hub,
    now: Instant,
    peer: SocketAddr,
    payload: &Bytes,
    out: &mut Outputs,
) {
    let id = hub.accept(now, peer).expect("below the limit");
    drain(hub, out);
    hub.attach(id).expect("open");
    hub.send(now, id, payload.clone()).expect("open");
    drain(hub, out);
    hub.kick(now, id, KickMode::Abort, 7).expect("open");
    drain(hub, out);
    hub.detach(now, id).expect("attached");
    drain(hub, out);
    hub.handle_closed(now, id).expect("close was requested");
    drain(hub, out);
}

fn hub_with_others(config: Config, now: Instant, peer: SocketAddr) -> Hub {
    let mut hub = Hub::new(config).expect("valid config");
    for _ in 0..OTHERS {
        let id = hub.accept(now, peer).expect("below the limit");
        hub.attach(id).expect("open");
    }
    while hub.poll_action().is_some() {}
    while hub.poll_event().is_some() {}
    hub
}

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
    let config = Config {
        idle_timeout: Some(Duration::from_secs(30)),
        ..Config::default().with_max_channels(OTHERS * 2)
    };
    assert_no_allocation_in_steady_state(config);
}
