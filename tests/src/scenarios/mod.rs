//! The scenarios, each generic over the [`Adapter`](crate::Adapter) and
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

pub use endings::{
    abortive_kick, graceful_kick, half_close_allowed, half_close_disallowed, peer_close,
    peer_reset_mid_write, stale_id,
};
pub use load::{broadcast_to_1000, connect_kick_close_cycles, shutdown_drains_within_deadline};
pub use policies::{channel_limit, idle_timeout, login_timeout, slow_consumer};
pub use recorded::{recorded_rotation, recorded_run};

use std::time::Duration;

/// How long a client waits for what must happen "at once".
pub(crate) const SOON: Duration = Duration::from_secs(5);
