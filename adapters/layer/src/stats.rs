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
    /// Hub inputs from the adapter that the hub rejected (they are also
    /// counted by kind in the hub's own stats).
    pub inputs_rejected: AtomicU64,
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
            ("adapter.inputs_rejected", get(&self.inputs_rejected)),
        ]
    }
}

/// Everything a server counts: the hub's [`Stats`] and the adapter's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
