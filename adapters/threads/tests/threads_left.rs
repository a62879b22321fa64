//! No thread is left running after shutdown: the process's thread count
//! (`/proc/self/task`) is back where it was. Alone in its own test binary so
//! no other test's threads are counted.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{connect, start};
use tether_threads::tether_core::{Config, KickMode};

fn threads_now() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn every_thread_ends_with_the_server() {
    let before = threads_now();
    let (server, mut log) = start(Config::default().with_queue_limit(32 << 20));
    let handle = server.handle();
    let mut clients: Vec<_> = (0..16).map(|_| connect(&server)).collect();
    let ids: Vec<_> = (0..16).map(|_| log.next_opened()).collect();
    // A few lagging peers get writer threads too.
    for id in &ids[..4] {
        for _ in 0..8 {
            handle.send(*id, vec![0u8; 1 << 20]).unwrap();
        }
    }
    clients[5].write_all(b"hi").unwrap();
    handle.kick(ids[6], KickMode::Abort, 0).unwrap();
    let during = threads_now();
    let stats = handle.stats().unwrap();
    assert!(stats.writers_started >= 4, "{stats:?}");
    assert!(
        during >= before + 2 + 16,
        "before {before}, during {during}"
    );
    // Some clients stay connected and never read: shutdown must still end
    // every reader and writer (graceful kicks, aborted at the deadline).
    server.shutdown(Duration::from_millis(200));
    let after = threads_now();
    assert_eq!(after, before, "threads left running after shutdown");
    clients.clear();
}
