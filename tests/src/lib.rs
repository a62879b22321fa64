//! # tether-conformance
//!
//! One set of scenarios, over real loopback TCP with blocking
//! `std::net::TcpStream` clients, run against every tether adapter.
//!
//! * [`Adapter`] / [`ServerUnderTest`]: what an adapter provides — start a
//!   server on `127.0.0.1:0` with a [`Config`](tether_core::Config), then
//!   blocking calls for its events and handle. See `HARNESS.md`.
//! * [`Rig`]: a started server plus an event recorder thread that checks
//!   invariants 1 and 2 on every event and lets scenarios wait for
//!   conditions.
//! * [`scenarios`]: the scenarios, generic over the adapter.
//! * [`conformance_suite!`] and [`fd_cycles_test!`]: instantiate them as
//!   `#[test]`s in one line.
//!
//! The adapters' own implementations live in [`adapters`]. Every blocking
//! call the rigs make has a deadline ([`bounded`]): a server that stops
//! answering fails the test naming the step, never hangs it.
//!
//! [`pressure`] is the other half: real `tether serve` processes under
//! load, signals and resource limits, for every runtime
//! ([`pressure_suite!`]).
//!
//! [`cluster`] runs several `tether serve --cluster` nodes over a real
//! `redis-server` ([`redis`]): presence, relay, kicks across nodes, node
//! and broker faults ([`cluster_suite!`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod adapters;
pub mod bounded;
pub mod browser;
pub mod client;
pub mod cluster;
pub mod pressure;
pub mod redis;
mod rig;
pub mod scenarios;

pub use rig::{AcceptCounts, Adapter, Log, Rig, ServerUnderTest};

/// Instantiates every scenario except the fd-counting one as a `#[test]`
/// for `$adapter` (a type implementing [`Adapter`]); `$adapter, reuse_port`
/// adds the `SO_REUSEPORT` scenario, for adapters with a listener per
/// shard. Use it inside a module to run several adapters from one file.
#[macro_export]
macro_rules! conformance_suite {
    ($adapter:ty, reuse_port) => {
        $crate::conformance_suite!($adapter);
        $crate::conformance_suite!(@tests $adapter; reuse_port_spreads_and_refuses);
    };
    ($adapter:ty) => {
        $crate::conformance_suite!(@tests $adapter;
            graceful_kick,
            abortive_kick,
            peer_close,
            peer_reset_mid_write,
            idle_timeout,
            login_timeout,
            channel_limit,
            slow_consumer,
            kick_while_a_broadcast_is_held,
            stale_id,
            half_close_disallowed,
            half_close_allowed,
            broadcast_to_1000,
            shutdown_drains_within_deadline,
            recorded_run,
            recorded_rotation,
        );
    };
    (@tests $adapter:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::scenarios::$name::<$adapter>();
            }
        )*
    };
}

/// The 10,000 connect/kick/close cycles, then 2,000 clients that connect
/// and reset at once, that must leave zero file descriptors and zero
/// channels. It counts `/proc/self/fd` for the whole
/// process, so it must be the only test of its test binary: give it a file
/// of its own under `tests/tests/`.
#[macro_export]
macro_rules! fd_cycles_test {
    ($name:ident, $adapter:ty) => {
        #[test]
        fn $name() {
            $crate::scenarios::connect_kick_close_cycles::<$adapter>(10_000, 4);
        }
    };
}
