//! The adapter's own counters, and the one key list every server prints.

use std::sync::atomic::{AtomicU64, Ordering};

use tether_core::Stats;

/// Counters shared by the driver and the runtime's acceptor/reader code.
/// Relaxed atomics: each is an independent tally.
#[derive(Debug, Default)]
pub struct AdapterCounters {
    /// Connections accepted from the listener.
    pub accepted: AtomicU64,
    /// Connections refused with the refusal line because the server was
    /// full (at `max_channels` or its fd/thread budget), or shutting down.
    pub refused_full: AtomicU64,
    /// Connections refused because a resource ran out (a thread could not
    /// be started, a socket could not be registered).
    pub refused_resources: AtomicU64,
    /// `accept(2)` failures (e.g. EMFILE); each one backs off.
    pub accept_errors: AtomicU64,
    /// Write system calls made (each is one vectored write).
    pub write_calls: AtomicU64,
    /// Transmits (messages) written, whole.
    pub messages_written: AtomicU64,
    /// Times a socket's send buffer was full and a waiter was started.
    pub write_waits: AtomicU64,
    /// Times the driver held back received data because the application
    /// had not read its events yet.
    pub reads_held: AtomicU64,
    /// Times a send or broadcast waited for its channel's backpressure.
    pub sends_held: AtomicU64,
    /// Times a held send found its channel without write progress for
    /// `Options::send_wait` and asked the kernel (a write) whether the peer
    /// still takes bytes, before letting the send go ahead.
    pub write_probes: AtomicU64,
    /// Hub inputs from the adapter that the hub rejected (they are also
    /// counted by kind in the hub's own stats).
    pub inputs_rejected: AtomicU64,
    /// Lines written to the flight recorder (`Options::record`), every
    /// shard's; 0 while recording is off.
    pub record_lines: AtomicU64,
    /// Bytes written to the flight recorder's files.
    pub record_bytes: AtomicU64,
    /// Recording segments rotated (`FILE` renamed `FILE.1`, a new one started).
    pub record_rotations: AtomicU64,
    /// Recording errors (a write, flush or rotation failed; the recording
    /// of that shard stops, the server keeps running).
    pub record_errors: AtomicU64,
    /// Kick → FIN/RST latency: from an application kick to the driver's
    /// `shutdown(2)` or abort of that socket (after its queue was flushed).
    pub kick_latency: Histogram,
}

/// Upper bounds of the kick-latency buckets, in seconds.
pub const KICK_BUCKETS: [f64; 13] = [
    10e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 10e-3, 50e-3, 100e-3, 500e-3, 1.0, 5.0,
];

/// A lock-free latency histogram with the [`KICK_BUCKETS`] bounds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; KICK_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, latency: std::time::Duration) {
        let secs = latency.as_secs_f64();
        if let Some(i) = KICK_BUCKETS.iter().position(|&bound| secs <= bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// `(upper bound in seconds, cumulative count)` per bucket (the `+Inf`
    /// bucket is the count), the sum in seconds, and the count.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut cumulative = 0;
        let buckets = KICK_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&bound, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (bound, cumulative)
            })
            .collect();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (buckets, sum, self.count.load(Ordering::Relaxed))
    }
}

impl AdapterCounters {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of every counter, `adapter.`-prefixed, in a fixed order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("adapter.accepted", get(&self.accepted)),
            ("adapter.refused_full", get(&self.refused_full)),
            ("adapter.refused_resources", get(&self.refused_resources)),
            ("adapter.accept_errors", get(&self.accept_errors)),
            ("adapter.write_calls", get(&self.write_calls)),
            ("adapter.messages_written", get(&self.messages_written)),
            ("adapter.write_waits", get(&self.write_waits)),
            ("adapter.reads_held", get(&self.reads_held)),
            ("adapter.sends_held", get(&self.sends_held)),
            ("adapter.write_probes", get(&self.write_probes)),
            ("adapter.inputs_rejected", get(&self.inputs_rejected)),
            ("adapter.record_lines", get(&self.record_lines)),
            ("adapter.record_bytes", get(&self.record_bytes)),
            ("adapter.record_rotations", get(&self.record_rotations)),
            ("adapter.record_errors", get(&self.record_errors)),
        ]
    }
}

/// Everything a server counts: the hub's [`Stats`] and the adapter's own.
///
/// A report the driver builds ([`Handle::stats`](crate::Handle::stats));
/// `#[non_exhaustive]`, so new counters are not breaking. Elsewhere (tests
/// of a formatter) start from `ServerStats::default()` and set fields.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ServerStats {
    /// The hub's counters and gauges.
    pub core: Stats,
    /// The adapter's counters, `adapter.*` keys in a fixed order.
    pub adapter: Vec<(&'static str, u64)>,
    /// The runtime's name (`async-std`, `smol`, `threads`, …).
    pub runtime: &'static str,
    /// Channels the adapter allows at once: `Config::max_channels`, lowered
    /// to what the fd limit (and, for threads, the thread limit) allows.
    pub channel_budget: usize,
    /// Kick → FIN/RST latency histogram: `(upper bound in seconds,
    /// cumulative count)` per bucket (Prometheus' shape; `+Inf` is
    /// [`kick_latency_count`](ServerStats::kick_latency_count)).
    pub kick_latency: Vec<(f64, u64)>,
    /// Sum of every kick → FIN/RST latency, in seconds.
    pub kick_latency_sum_seconds: f64,
    /// Kicks whose FIN/RST went out.
    pub kick_latency_count: u64,
}

impl ServerStats {
    /// Every counter as `(key, value)`: the hub's keys first, then the
    /// adapter's. The same keys on every server, so `stats` and `/metrics`
    /// read the same whatever the runtime.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .core
            .counters()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        out.push(("channel_budget".into(), self.channel_budget as u64));
        out.extend(self.adapter.iter().map(|(k, v)| ((*k).to_string(), *v)));
        out
    }

    /// One adapter counter by key (`adapter.write_calls`…), 0 if unknown.
    pub fn adapter(&self, key: &str) -> u64 {
        self.adapter
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, v)| *v)
    }
}
