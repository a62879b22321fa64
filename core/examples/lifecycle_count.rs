//! Runs the `lifecycle/full` bench's graceful lifecycle a given number of
//! times, for counting instructions with callgrind (repeatable on a busy
//! machine, unlike wall-clock time). Instructions per lifecycle are the
//! difference of two runs divided by the difference in lifecycles:
//!
//! ```text
//! cargo build --profile bench -p tether-core --example lifecycle_count
//! for n in 0 10000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/lifecycle_count $n 2>&1 | grep refs
//! done
//! ```
//!
//! The hub, the other 10,000 channels and a warm-up are the same in both
//! runs, so they cancel out.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use tether_core::{Bytes, Config};

#[path = "../tests/common/lifecycle.rs"]
mod lifecycle;
use lifecycle::{OTHERS, Outputs, graceful_lifecycle, graceful_once, hub_with_others};

/// Lifecycles run before the counted ones, in both runs.
const WARM_UP: usize = 1_000;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("a number of lifecycles"))
        .unwrap_or(10_000);
    let now = Instant::now();
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("valid address");
    let payload = Bytes::from_static(b"hello, tether\n");
    let config = Config::default().with_max_channels(OTHERS * 2);
    let mut hub = hub_with_others(config, now, peer);
    let mut out = Outputs::default();
    for _ in 0..WARM_UP + n {
        graceful_lifecycle(&mut hub, now, peer, &payload, &mut out);
        black_box(&mut out);
    }
    assert_eq!(out, graceful_once(&payload).times(WARM_UP + n));
    assert_eq!(hub.live(), OTHERS);
}
