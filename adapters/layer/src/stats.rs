//! The adapter's own counters, and the one key list every server prints.

use std::sync::atomic::{AtomicU64, Ordering};

use tether_core::Stats;

/// One of the adapter's own counters (every runtime counts the same).
/// Read them from [`ServerStats::adapter`] with [`AdapterStats::get`];
/// [`Counter::key`] is the key the admin console and `/metrics` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Counter {
    /// Connections accepted from the listener.
    Accepted,
    /// Connections refused with the refusal line because the server was
    /// full (at `max_channels` or its fd/thread budget), or shutting down.
    RefusedFull,
    /// Connections refused because a resource ran out (a thread could not
    /// be started, a socket could not be registered).
    RefusedResources,
    /// `accept(2)` failures (e.g. EMFILE); each one backs off.
    AcceptErrors,
    /// Write system calls made (each is one vectored write).
    WriteCalls,
    /// Transmits (messages) written, whole.
    MessagesWritten,
    /// Times a socket's send buffer was full and a waiter was started.
    WriteWaits,
    /// Times the driver held back received data because the application
    /// had not read its events yet.
    ReadsHeld,
    /// Times a send or broadcast waited for its channel's backpressure.
    SendsHeld,
    /// Times a held send found its channel without write progress for
    /// `Options::send_wait` and asked the kernel (a write) whether the peer
    /// still takes bytes, before letting the send go ahead.
    WriteProbes,
    /// Hub inputs from the adapter that the hub rejected (they are also
    /// counted by kind in the hub's own stats).
    InputsRejected,
    /// Lines written to the flight recorder (`Options::record`), every
    /// shard's; 0 while recording is off.
    RecordLines,
    /// Bytes written to the flight recorder's files.
    RecordBytes,
    /// Recording segments rotated (`FILE` renamed `FILE.1`, a new one started).
    RecordRotations,
    /// Recording errors (a write, flush or rotation failed; the recording
    /// of that shard stops, the server keeps running).
    RecordErrors,
    /// WebSocket connections upgraded (`GET /ws` answered `101`).
    WebUpgrades,
    /// WebSocket connections closed because their upgrade did not complete
    /// within the handshake deadline (`Web::handshake_timeout`).
    WebHandshakeTimeouts,
    /// WebSocket connections closed for a protocol violation (1002, 1003,
    /// 1007, 1009).
    WebProtocolErrors,
    /// Pings sent to idle WebSocket connections.
    WebPings,
    /// Transmits framed for WebSocket: a broadcast to any number of
    /// WebSocket clients of one shard counts one (its frame is shared).
    WebFrames,
}

impl Counter {
    /// Every counter, in the order [`ServerStats::counters`] prints them.
    pub const ALL: [Counter; 20] = [
        Counter::Accepted,
        Counter::RefusedFull,
        Counter::RefusedResources,
        Counter::AcceptErrors,
        Counter::WriteCalls,
        Counter::MessagesWritten,
        Counter::WriteWaits,
        Counter::ReadsHeld,
        Counter::SendsHeld,
        Counter::WriteProbes,
        Counter::InputsRejected,
        Counter::RecordLines,
        Counter::RecordBytes,
        Counter::RecordRotations,
        Counter::RecordErrors,
        Counter::WebUpgrades,
        Counter::WebHandshakeTimeouts,
        Counter::WebProtocolErrors,
        Counter::WebPings,
        Counter::WebFrames,
    ];

    /// Its key in [`ServerStats::counters`] (`adapter.accepted`…).
    pub const fn key(self) -> &'static str {
        match self {
            Counter::Accepted => "adapter.accepted",
            Counter::RefusedFull => "adapter.refused_full",
            Counter::RefusedResources => "adapter.refused_resources",
            Counter::AcceptErrors => "adapter.accept_errors",
            Counter::WriteCalls => "adapter.write_calls",
            Counter::MessagesWritten => "adapter.messages_written",
            Counter::WriteWaits => "adapter.write_waits",
            Counter::ReadsHeld => "adapter.reads_held",
            Counter::SendsHeld => "adapter.sends_held",
            Counter::WriteProbes => "adapter.write_probes",
            Counter::InputsRejected => "adapter.inputs_rejected",
            Counter::RecordLines => "adapter.record_lines",
            Counter::RecordBytes => "adapter.record_bytes",
            Counter::RecordRotations => "adapter.record_rotations",
            Counter::RecordErrors => "adapter.record_errors",
            Counter::WebUpgrades => "adapter.web_upgrades",
            Counter::WebHandshakeTimeouts => "adapter.web_handshake_timeouts",
            Counter::WebProtocolErrors => "adapter.web_protocol_errors",
            Counter::WebPings => "adapter.web_pings",
            Counter::WebFrames => "adapter.web_frames",
        }
    }

    /// Its place in [`Counter::ALL`] (and in the counter arrays).
    const fn index(self) -> usize {
        self as usize
    }
}

/// A snapshot of every [`Counter`]: part of [`ServerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdapterStats([u64; Counter::ALL.len()]);

impl AdapterStats {
    /// One counter's value.
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter.index()]
    }

    /// Sets one counter (for formatters' tests; servers only read these).
    #[must_use]
    pub fn with(mut self, counter: Counter, value: u64) -> Self {
        self.0[counter.index()] = value;
        self
    }

    /// Every counter with its value, in [`Counter::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.get(c)))
    }
}

/// Counters shared by the driver and the runtime's acceptor/reader code:
/// one relaxed atomic per [`Counter`] (each is an independent tally), and
/// the kick-latency [`Histogram`].
#[derive(Debug, Default)]
pub struct AdapterCounters {
    counts: [AtomicU64; Counter::ALL.len()],
    kick_latency: Histogram,
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
    pub fn bump(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Adds `n` to `counter`.
    pub fn add(&self, counter: Counter, n: u64) {
        self.counts[counter.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// The kick → FIN/RST latency histogram: from an application kick to
    /// the driver's `shutdown(2)` or abort of that socket (after its queue
    /// was flushed).
    pub fn kick_latency(&self) -> &Histogram {
        &self.kick_latency
    }

    /// A snapshot of every counter.
    pub fn snapshot(&self) -> AdapterStats {
        AdapterStats(std::array::from_fn(|i| {
            self.counts[i].load(Ordering::Relaxed)
        }))
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
    /// The adapter's own counters (`adapter.*` keys), read by
    /// [`Counter`]: `stats.adapter.get(Counter::WriteCalls)`.
    pub adapter: AdapterStats,
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
        out.extend(self.adapter.iter().map(|(c, v)| (c.key().to_string(), v)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_place_and_key() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.index(), i, "{c:?}");
        }
        let counters = AdapterCounters::default();
        counters.bump(Counter::WriteWaits);
        counters.add(Counter::RecordBytes, 7);
        let stats = ServerStats {
            adapter: counters.snapshot(),
            ..ServerStats::default()
        };
        assert_eq!(stats.adapter.get(Counter::WriteWaits), 1);
        assert_eq!(stats.adapter.get(Counter::RecordBytes), 7);
        let keys: Vec<(String, u64)> = stats
            .counters()
            .into_iter()
            .filter(|(k, _)| k.starts_with("adapter."))
            .collect();
        // The console's keys, unchanged, in the same order.
        let expected = [
            "accepted",
            "refused_full",
            "refused_resources",
            "accept_errors",
            "write_calls",
            "messages_written",
            "write_waits",
            "reads_held",
            "sends_held",
            "write_probes",
            "inputs_rejected",
            "record_lines",
            "record_bytes",
            "record_rotations",
            "record_errors",
            "web_upgrades",
            "web_handshake_timeouts",
            "web_protocol_errors",
            "web_pings",
            "web_frames",
        ];
        let got: Vec<&str> = keys.iter().map(|(k, _)| &k["adapter.".len()..]).collect();
        assert_eq!(got, expected);
        assert!(keys.contains(&("adapter.write_waits".into(), 1)));
    }
}
