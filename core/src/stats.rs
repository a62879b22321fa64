//! Counters the hub keeps as it runs; read them with [`Hub::stats`](crate::Hub::stats).

use std::time::Duration;

use crate::output::DisconnectReason;

/// Disconnects counted by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DisconnectCounts {
    /// [`DisconnectReason::PeerClosed`].
    pub peer_closed: u64,
    /// [`DisconnectReason::PeerReset`].
    pub peer_reset: u64,
    /// [`DisconnectReason::IoError`].
    pub io_error: u64,
    /// [`DisconnectReason::Kicked`].
    pub kicked: u64,
    /// [`DisconnectReason::IdleTimeout`].
    pub idle_timeout: u64,
    /// [`DisconnectReason::LoginTimeout`].
    pub login_timeout: u64,
    /// [`DisconnectReason::SlowConsumer`].
    pub slow_consumer: u64,
    /// [`DisconnectReason::ServerShutdown`].
    pub server_shutdown: u64,
}

impl DisconnectCounts {
    pub(crate) fn count(&mut self, reason: DisconnectReason) {
        *self.slot(reason) += 1;
    }

    fn slot(&mut self, reason: DisconnectReason) -> &mut u64 {
        match reason {
            DisconnectReason::PeerClosed => &mut self.peer_closed,
            DisconnectReason::PeerReset => &mut self.peer_reset,
            DisconnectReason::IoError(_) => &mut self.io_error,
            DisconnectReason::Kicked { .. } => &mut self.kicked,
            DisconnectReason::IdleTimeout => &mut self.idle_timeout,
            DisconnectReason::LoginTimeout => &mut self.login_timeout,
            DisconnectReason::SlowConsumer => &mut self.slow_consumer,
            DisconnectReason::ServerShutdown => &mut self.server_shutdown,
        }
    }

    /// Every count with its reason's [name](DisconnectReason::name).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("peer-closed", self.peer_closed),
            ("peer-reset", self.peer_reset),
            ("io-error", self.io_error),
            ("kicked", self.kicked),
            ("idle-timeout", self.idle_timeout),
            ("login-timeout", self.login_timeout),
            ("slow-consumer", self.slow_consumer),
            ("server-shutdown", self.server_shutdown),
        ]
        .into_iter()
    }

    /// All disconnects.
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }
}

/// A snapshot of the hub's counters and gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Channels opened.
    pub opened: u64,
    /// Connections refused (limit reached or shutting down).
    pub refused: u64,
    /// Disconnects by reason.
    pub disconnected: DisconnectCounts,
    /// Channels released (socket closed, id dead).
    pub released: u64,
    /// Bytes accepted by `send`/`broadcast` (each recipient counted).
    pub bytes_queued: u64,
    /// Bytes the adapter reported written.
    pub bytes_written: u64,
    /// Queued bytes dropped by an abort or error, never written (invariant 5).
    pub bytes_dropped: u64,
    /// Bytes received from peers and handed to the app.
    pub bytes_received: u64,
    /// Bytes received after the channel stopped being usable, not handed on.
    pub bytes_discarded: u64,
    /// Sends rejected (queue full, too large, channel not usable).
    pub sends_rejected: u64,
    /// Calls with a stale or unknown id.
    pub stale_calls: u64,
    /// Calls whose `now` was earlier than a previous one (clamped).
    pub time_regressions: u64,
    /// Holders reported overdue.
    pub holders_overdue: u64,
    /// Channels alive now (open, half-closed, closing, offline).
    pub live: usize,
    /// Channels open or half-closed now.
    pub usable: usize,
    /// Channels in the offline queue now.
    pub offline_depth: usize,
    /// The deepest the offline queue has ever been: a sampled depth misses
    /// channels that are released within microseconds, this does not.
    pub offline_peak: usize,
    /// Age of the oldest offline channel.
    pub offline_oldest: Option<Duration>,
    /// Whether the hub asked the adapter to pause accepting.
    pub accept_paused: bool,
    /// Entries in the deadline heap, live and stale. Bounded by the live
    /// channels (a few per channel plus a constant), never by traffic
    /// (invariant 8).
    pub timer_entries: usize,
}
