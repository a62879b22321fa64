//! The scenarios, each generic over the [`Adapter`] and
//! each ending with [`Rig::finish`](crate::Rig::finish), which asserts that
//! every opened channel got exactly one `Disconnected` and was released.
//!
//! Timing appears only as generous upper bounds (seconds), never as
//! pass/fail on speed.

// `Config` is `#[non_exhaustive]`: outside its crate it can only be built
// from `Config::default()` and assigned field by field.
#![allow(clippy::field_reassign_with_default)]

mod endings;
mod load;
mod policies;
mod recorded;
mod shards;

pub use endings::{
    abortive_kick, graceful_kick, half_close_allowed, half_close_disallowed, peer_close,
    peer_reset_mid_write, stale_id,
};
pub use load::{broadcast_to_1000, connect_kick_close_cycles, shutdown_drains_within_deadline};
pub use policies::{
    channel_limit, idle_timeout, kick_while_a_broadcast_is_held, login_timeout, slow_consumer,
};
pub use recorded::{recorded_rotation, recorded_run};
pub use shards::reuse_port_spreads_and_refuses;

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tether_core::ChannelId;

use crate::rig::{Adapter, Rig};

/// How long a client waits for what must happen "at once".
pub(crate) const SOON: Duration = Duration::from_secs(5);

/// Connects until the server serves the client (its `Opened`), at most
/// `attempts` times; returns it, its id and how many connections were
/// refused (closed unserved) first. With one `SO_REUSEPORT` listener per
/// shard the kernel may hash a connection to a shard at its limit, which
/// refuses it even while another shard has room; a round-robin acceptor
/// never does that. Panics if no attempt is served, or one is neither
/// served nor refused within [`SOON`].
pub(crate) fn connect_served<A: Adapter>(
    rig: &Rig<A>,
    attempts: usize,
) -> (TcpStream, ChannelId, usize) {
    for refused in 0..attempts {
        let stream = crate::client::connect(rig.addr());
        let deadline = Instant::now() + SOON;
        loop {
            if let Some(id) = rig.opened_id(&stream, Duration::from_millis(20)) {
                return (stream, id, refused);
            }
            if closed_unserved(&stream) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: a client neither served nor refused",
                A::NAME
            );
        }
    }
    panic!("{}: {attempts} clients in a row refused", A::NAME)
}

/// Whether the server closed `stream` (EOF or reset) before sending
/// anything (the scenarios' servers have no refusal line).
fn closed_unserved(stream: &TcpStream) -> bool {
    let _ = stream.set_nonblocking(true);
    let mut buf = [0u8; 256];
    let closed = loop {
        match stream.peek(&mut buf) {
            Ok(0) => break true,
            Ok(_) => break false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    let _ = stream.set_nonblocking(false);
    closed
}
