//! # The pressure suite
//!
//! Real `tether serve` **processes** (so signals, RSS and fd limits are
//! real) over loopback sockets with real clients, one scenario per problem
//! of issue 8, each sized where a naive server breaks rather than where a
//! good one passes. `tests/tests/pressure.rs` instantiates every scenario
//! for every runtime with [`pressure_suite!`](crate::pressure_suite).
//!
//! * [`server`]: the [`Server`] fixture (spawn `tether serve --runtime …`,
//!   parse its addresses, RSS, CPU time, signals, exit, kill on drop) and
//!   the [`Admin`] console client.
//! * [`net`]: line readers, greetings, non-blocking connects.
//! * [`flow`]: flow control: burst, tiny lines, SIGTERM mid-burst.
//! * [`steady`]: a slow but steady reader is paced to, never evicted.
//! * [`drain`]: shutdowns (signals, console) mid-burst across shards, repeated.
//! * [`kicks`]: the console's kicks reach the right shard, exactly once.
//! * [`limits`]: resource limits: concurrent connects, fd limit, a full
//!   server, 20,000 connections (their clients in [`child`] processes).
//! * [`console`]: operator ports no one can lock: 300 silent admin
//!   connections, an established session among 300 newcomers, 300 silent
//!   `--metrics` connections.
//!
//! Timing never decides pass/fail except as the generous upper bounds the
//! scenarios state. Every scenario starts its own server and holds
//! [`serial`] while it runs: they fight for the same two cores and fds.
//!
//! Run: `cargo test -p tether-conformance --test pressure` (reduced sizes,
//! still far past the breaking point), and the full sizes with
//! `cargo test --release -p tether-conformance --test pressure -- --ignored`.
//!
//! Environment knobs (local development against older binaries only):
//! `TETHER_BIN` (the binary), `TETHER_BIN_<RUNTIME>` (e.g.
//! `TETHER_BIN_THREADS`, one runtime's binary), `TETHER_PRESSURE_DROP_FLAGS`
//! (comma-separated flags, e.g. `--runtime,--stall-timeout`, left off the
//! command line together with their values).

use std::fmt::Display;
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod child;
pub mod console;
pub mod drain;
pub mod flow;
pub mod kicks;
pub mod limits;
pub mod net;
pub mod server;
pub mod steady;
pub mod web;

pub use console::{
    established_admin_session_survives, silent_admin_connections, silent_metrics_connections,
};
pub use drain::shutdown_mid_burst;
pub use flow::{burst, sigterm_mid_burst, tiny_lines};
pub use kicks::kick_across_shards;
pub use limits::{concurrent_connects, fd_limit, server_full_says_so, twenty_thousand_connections};
pub use server::{Admin, Server, ServerSpec, StatsMap, tether_bin};
pub use steady::steady_reader;

/// Every runtime of the `tether` binary (`--runtime`).
pub const RUNTIMES: [&str; 4] = ["async-std", "smol", "threads", "tokio"];

/// The sizes of the scenarios whose size is a knob: [`Scale::DEFAULT`] for
/// the ordinary (CI, debug) run, [`Scale::FULL`] for the `#[ignore]`d run.
/// Both are far past the point where a naive server breaks.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Shown in messages.
    pub name: &'static str,
    /// Burst: lines of [`BURST_LINE_LEN`] bytes one sender sends. The
    /// non-reader must be sent more than the kernel absorbs for it: on
    /// loopback the server's send buffer autotunes to ~3 MB even towards a
    /// 4 KiB receive window (`tcp_wmem` max 4 MiB), so the default 6,000 ×
    /// 1,000 B is twice that plus ~45× the 64 KiB queue limit. (2,000 lines
    /// fit in the kernel: a server with no queue at all would pass.)
    pub burst_lines: usize,
    /// Tiny lines: bytes of `a\n` one client sends.
    pub tiny_bytes: usize,
    /// SIGTERM mid-burst: the signal comes once every observer has this many
    /// lines; the sender offers four times as many.
    pub sigterm_lines: usize,
    /// Shutdown mid-burst: rounds (each a fresh server, SIGTERM, SIGINT
    /// and the console's `shutdown` in turn).
    pub drain_rounds: usize,
    /// Shutdown mid-burst: the talker offers four times this many lines;
    /// the stop comes after up to this many.
    pub drain_lines: usize,
    /// Upper bound on any one scenario's traffic phase (never a speed test).
    pub deadline: Duration,
}

/// Length of one burst line, its `\n` included.
pub const BURST_LINE_LEN: usize = 1_000;

impl Scale {
    /// The ordinary run (debug builds, two shared cores).
    pub const DEFAULT: Scale = Scale {
        name: "default",
        burst_lines: 6_000,
        tiny_bytes: 8_000_000,
        sigterm_lines: 2_000,
        drain_rounds: 21,
        drain_lines: 500,
        deadline: Duration::from_secs(60),
    };
    /// The full sizes of issue 8 (`-- --ignored`, release).
    pub const FULL: Scale = Scale {
        name: "full",
        burst_lines: 10_000,
        tiny_bytes: 20_000_000,
        sigterm_lines: 10_000,
        drain_rounds: 60,
        drain_lines: 2_000,
        deadline: Duration::from_secs(300),
    };
}

/// How long past its scenario's deadline a helper thread may take to end:
/// its reads end at that deadline, and a write that makes no progress
/// fails after [`WRITE_STALL`].
pub const JOIN_SLACK: Duration = Duration::from_secs(30);

/// How long one write of a scenario's sender may make no progress before
/// it fails (`SO_SNDTIMEO`) instead of blocking for ever.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// Joins a scenario's helper thread at most [`JOIN_SLACK`] past
/// `deadline`; panics with `step <step>: no answer within …` after that.
pub fn join_by<T>(step: impl Display, thread: JoinHandle<T>, deadline: Instant) -> T {
    let limit = deadline.saturating_duration_since(Instant::now()) + JOIN_SLACK;
    crate::bounded::join(step, thread, limit)
}

/// The shard count a runtime spec names (`tokio:2` → 2; `tokio` → 1).
pub fn shards_of(runtime: &str) -> usize {
    runtime
        .split_once(':')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

static SERIAL: Mutex<()> = Mutex::new(());

/// One pressure scenario at a time (the harness runs tests on parallel
/// threads; these scenarios would fight for the cores and fds).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Instantiates every pressure scenario as a `#[test]` for one runtime of
/// the `tether` binary (`--runtime $runtime`). Use it inside a module per
/// runtime; the full sizes are `#[ignore]`d.
#[macro_export]
macro_rules! pressure_suite {
    ($runtime:literal) => {
        $crate::pressure_suite!(@tests $runtime;
            burst => burst(DEFAULT),
            tiny_lines => tiny_lines(DEFAULT),
            steady_reader => steady_reader(DEFAULT),
            sigterm_mid_burst => sigterm_mid_burst(DEFAULT),
            shutdown_mid_burst => shutdown_mid_burst(DEFAULT),
            kick_across_shards => kick_across_shards(DEFAULT),
            concurrent_connects_1500 => concurrent_connects(DEFAULT),
            fd_limit_256 => fd_limit(DEFAULT),
            silent_admin_connections_300 => silent_admin_connections(DEFAULT),
            established_admin_session_survives_300 => established_admin_session_survives(DEFAULT),
            silent_metrics_connections_300 => silent_metrics_connections(DEFAULT),
            server_full_says_so => server_full_says_so(DEFAULT),
        );
        $crate::pressure_suite!(@ignored $runtime;
            burst_full => burst(FULL),
            tiny_lines_full => tiny_lines(FULL),
            sigterm_mid_burst_full => sigterm_mid_burst(FULL),
            shutdown_mid_burst_full => shutdown_mid_burst(FULL),
            connections_20000 => twenty_thousand_connections(FULL),
        );
    };
    (@tests $runtime:literal; $($name:ident => $scenario:ident($scale:ident)),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::pressure::$scenario($runtime, &$crate::pressure::Scale::$scale);
            }
        )*
    };
    (@ignored $runtime:literal; $($name:ident => $scenario:ident($scale:ident)),* $(,)?) => {
        $(
            #[test]
            #[ignore = "full size: cargo test --release -p tether-conformance --test pressure -- --ignored"]
            fn $name() {
                $crate::pressure::$scenario($runtime, &$crate::pressure::Scale::$scale);
            }
        )*
    };
}
