//! The one check of the former `loopback.rs` the conformance suite does
//! not make: a graceful kick whose peer never reads is held for the whole
//! `flush_timeout` (not cut short), then escalates to an abort — the peer
//! sees a reset, not an EOF. (The suite only covers the shutdown grace,
//! and not what the stuck peer reads.)

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{PATIENCE, connect_small_window, read_to_end, start, stop};
use tether_threads::tether_core::{Config, DisconnectReason, KickMode};

#[test]
fn graceful_kick_with_a_stuck_peer_escalates_at_the_flush_deadline() {
    let mut config = Config::default().with_queue_limit(64 << 20);
    config.flush_timeout = Duration::from_millis(300);
    let (handle, mut log) = start(config);
    let mut client = connect_small_window(handle.local_addr());
    let id = log.next_opened();
    // Far more than the socket buffers of a 4 KiB-window peer hold, and
    // below the high watermark (16 MiB), so no send waits.
    let chunk = Bytes::from(vec![b'y'; 1 << 20]);
    for _ in 0..8 {
        handle.blocking().send(id, chunk.clone()).unwrap();
    }
    let kicked = Instant::now();
    handle.blocking().kick(id, KickMode::Graceful, 0).unwrap();
    assert_eq!(log.disconnected(id), DisconnectReason::Kicked { code: 0 });
    log.released(id);
    let waited = kicked.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "released early: {waited:?}"
    );
    assert!(waited < PATIENCE, "{waited:?}");
    let stats = handle.blocking().stats().unwrap();
    assert!(
        stats.core.bytes_dropped > 0,
        "the unsent queue is dropped: {stats:?}"
    );
    // What the client gets is a prefix of what was sent, then a reset.
    let err = read_to_end(&mut client).expect_err("escalation resets");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    stop(&handle, Duration::from_secs(1));
}
