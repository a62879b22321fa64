//! No thread is left running after shutdown: the process's thread count
//! (`/proc/self/task`) is back where it was. Alone in its own test binary so
//! no other test's threads are counted.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{PATIENCE, connect, connect_small_window, start, stop};
use tether_threads::tether_core::{Config, KickMode};

fn threads_now() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn every_thread_ends_with_the_server() {
    let before = threads_now();
    let (handle, mut log) = start(Config::default().with_queue_limit(32 << 20));
    let blocking = handle.blocking();
    // Four lagging peers (small receive window, never read), then twelve
    // ordinary ones.
    let mut clients: Vec<_> = (0..4)
        .map(|_| connect_small_window(handle.local_addr()))
        .chain((4..16).map(|_| connect(&handle)))
        .collect();
    let ids: Vec<_> = (0..16).map(|_| log.next_opened()).collect();
    // The laggards' send buffers fill: each gets a waiter thread. 4 MiB
    // each stays below the high watermark (8 MiB), so no send waits.
    let chunk = Bytes::from(vec![0u8; 1 << 20]);
    for id in &ids[..4] {
        for _ in 0..4 {
            blocking.send(*id, chunk.clone()).unwrap();
        }
    }
    clients[5].write_all(b"hi").unwrap();
    blocking.kick(ids[6], KickMode::Abort, 0).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut stats = blocking.stats().unwrap();
    while stats.adapter.get(tether_threads::Counter::WriteWaits) < 4 {
        assert!(Instant::now() < deadline, "no waiters started: {stats:?}");
        std::thread::sleep(Duration::from_millis(5));
        stats = blocking.stats().unwrap();
    }
    let during = threads_now();
    // Driver, acceptor, 15 readers left, 4 waiters (give or take the
    // kicked channel's reader, which may not have ended yet).
    assert!(
        during >= before + 2 + 15 + 4,
        "before {before}, during {during}: {stats:?}"
    );
    // The laggards stay connected and never read: shutdown must still end
    // every reader and waiter (graceful kicks, aborted at the deadline).
    stop(&handle, Duration::from_millis(200));
    let stopped = Instant::now();
    // `stopped` resolves when the driver drops its end, just before its
    // thread returns: allow that thread a moment to exit, nothing more.
    let first = threads_now();
    let mut after = first;
    while after != before && stopped.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(1));
        after = threads_now();
    }
    assert_eq!(
        after, before,
        "threads left running 1 s after the server stopped"
    );
    eprintln!(
        "threads: {before} before, {during} during, {first} at once and {after} {:?} after stopped",
        stopped.elapsed()
    );
    clients.clear();
}
