//! Counters the hub keeps as it runs; read them with [`Hub::stats`](crate::Hub::stats).

use std::time::Duration;

use crate::error::InputError;
use crate::output::DisconnectReason;

/// Adds `n` to a counter, saturating: a counter restored from a snapshot or
/// merged from many hubs stops at `u64::MAX` rather than panic or wrap back
/// to a small number (invariant 10).
pub(crate) fn count(counter: &mut u64, n: u64) {
    *counter = counter.saturating_add(n);
}

/// Disconnects counted by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "snapshot", derive(serde::Serialize, serde::Deserialize))]
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
        count(self.slot(reason), 1);
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

    /// All disconnects (saturating at `u64::MAX`).
    pub fn total(&self) -> u64 {
        self.iter().fold(0, |sum, (_, n)| sum.saturating_add(n))
    }
}

/// Adapter inputs the hub rejected because they contradict what it knows,
/// counted by kind. An adapter that reports bytes after EOF, more written
/// than was queued, a detach without an attach or a close never requested
/// has a bug; these make it visible even when the adapter ignores the error.
/// Calls with a stale or unknown id are counted in
/// [`Stats::stale_calls`] instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "snapshot", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RejectedInputs {
    /// [`InputError::AfterEof`]: bytes or a second EOF after the peer's EOF
    /// (`handle_received`, `handle_peer_eof`).
    pub after_eof: u64,
    /// [`InputError::OverWritten`]: more reported written than was queued
    /// (`handle_written`).
    pub over_written: u64,
    /// [`InputError::AttachOffline`]: `attach` to an offline channel.
    pub attach_offline: u64,
    /// [`InputError::NotAttached`]: `detach` with no holder attached.
    pub not_attached: u64,
    /// [`InputError::TooManyHolders`]: more than `u32::MAX` holders.
    pub too_many_holders: u64,
    /// [`InputError::CloseNotRequested`]: `handle_closed` before the hub
    /// asked for the socket to be closed.
    pub not_requested: u64,
}

impl RejectedInputs {
    /// Counts a rejected adapter input (id errors excepted: those are
    /// [`Stats::stale_calls`]).
    pub(crate) fn input(&mut self, e: &InputError) {
        match e {
            InputError::Id(_) => {}
            InputError::AfterEof { .. } => count(&mut self.after_eof, 1),
            InputError::OverWritten { .. } => count(&mut self.over_written, 1),
            InputError::AttachOffline { .. } => count(&mut self.attach_offline, 1),
            InputError::NotAttached { .. } => count(&mut self.not_attached, 1),
            InputError::TooManyHolders { .. } => count(&mut self.too_many_holders, 1),
            InputError::CloseNotRequested { .. } => count(&mut self.not_requested, 1),
        }
    }

    /// Every count with its kind's name (`after-eof`, `over-written`, …).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("after-eof", self.after_eof),
            ("over-written", self.over_written),
            ("attach-offline", self.attach_offline),
            ("not-attached", self.not_attached),
            ("too-many-holders", self.too_many_holders),
            ("not-requested", self.not_requested),
        ]
        .into_iter()
    }

    /// All rejected adapter inputs (saturating at `u64::MAX`).
    pub fn total(&self) -> u64 {
        self.iter().fold(0, |sum, (_, n)| sum.saturating_add(n))
    }
}

/// A snapshot of the hub's counters and gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "snapshot", derive(serde::Serialize, serde::Deserialize))]
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
    /// Adapter inputs rejected as contradictory, by kind (not counting
    /// stale ids).
    pub rejected_input: RejectedInputs,
    /// Calls whose `now` was earlier than the hub's clock while a channel
    /// held a time (clamped). A hub with no channel, a shut-down one
    /// included, takes any `now` and counts none.
    pub time_regressions: u64,
    /// Calls whose `now` was more than
    /// [`Config::max_clock_jump`](crate::Config::max_clock_jump) ahead of the
    /// hub's clock and not (yet) confirmed: carried out at the hub's time,
    /// the clock held back.
    pub clock_jumps_held: u64,
    /// Holders reported overdue.
    pub holders_overdue: u64,
    /// Channels alive now (open, half-closed, closing, offline).
    pub live: usize,
    /// Channels open or half-closed now.
    pub usable: usize,
    /// Usable channels backpressured now: their queue's charge reached the
    /// high watermark and has not fallen to the low one
    /// ([`Hub::backpressured`](crate::Hub::backpressured)).
    pub backpressured: usize,
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

impl Stats {
    /// Folds another hub's stats into these: counters and gauges add up
    /// (saturating at their type's maximum, never a panic or a wrap),
    /// the offline peak and oldest entry take the larger, and accepting is
    /// paused only if it is paused on both. For servers that run one hub per
    /// shard and report them as one.
    ///
    /// ```
    /// use tether_core::Stats;
    /// let (mut a, mut b) = (Stats::default(), Stats::default());
    /// (a.opened, a.live, a.offline_peak) = (2, 1, 3);
    /// (b.opened, b.live, b.offline_peak) = (5, 4, 1);
    /// a.merge(&b);
    /// assert_eq!((a.opened, a.live, a.offline_peak), (7, 5, 3));
    /// ```
    pub fn merge(&mut self, other: &Stats) {
        let Stats {
            opened,
            refused,
            disconnected,
            released,
            bytes_queued,
            bytes_written,
            bytes_dropped,
            bytes_received,
            bytes_discarded,
            sends_rejected,
            stale_calls,
            rejected_input,
            time_regressions,
            clock_jumps_held,
            holders_overdue,
            live,
            usable,
            backpressured,
            offline_depth,
            offline_peak,
            offline_oldest,
            accept_paused,
            timer_entries,
        } = other;
        count(&mut self.opened, *opened);
        count(&mut self.refused, *refused);
        let d = &mut self.disconnected;
        count(&mut d.peer_closed, disconnected.peer_closed);
        count(&mut d.peer_reset, disconnected.peer_reset);
        count(&mut d.io_error, disconnected.io_error);
        count(&mut d.kicked, disconnected.kicked);
        count(&mut d.idle_timeout, disconnected.idle_timeout);
        count(&mut d.login_timeout, disconnected.login_timeout);
        count(&mut d.slow_consumer, disconnected.slow_consumer);
        count(&mut d.server_shutdown, disconnected.server_shutdown);
        count(&mut self.released, *released);
        count(&mut self.bytes_queued, *bytes_queued);
        count(&mut self.bytes_written, *bytes_written);
        count(&mut self.bytes_dropped, *bytes_dropped);
        count(&mut self.bytes_received, *bytes_received);
        count(&mut self.bytes_discarded, *bytes_discarded);
        count(&mut self.sends_rejected, *sends_rejected);
        count(&mut self.stale_calls, *stale_calls);
        let r = &mut self.rejected_input;
        count(&mut r.after_eof, rejected_input.after_eof);
        count(&mut r.over_written, rejected_input.over_written);
        count(&mut r.attach_offline, rejected_input.attach_offline);
        count(&mut r.not_attached, rejected_input.not_attached);
        count(&mut r.too_many_holders, rejected_input.too_many_holders);
        count(&mut r.not_requested, rejected_input.not_requested);
        count(&mut self.time_regressions, *time_regressions);
        count(&mut self.clock_jumps_held, *clock_jumps_held);
        count(&mut self.holders_overdue, *holders_overdue);
        self.live = self.live.saturating_add(*live);
        self.usable = self.usable.saturating_add(*usable);
        self.backpressured = self.backpressured.saturating_add(*backpressured);
        self.offline_depth = self.offline_depth.saturating_add(*offline_depth);
        self.offline_peak = self.offline_peak.max(*offline_peak);
        self.offline_oldest = self.offline_oldest.max(*offline_oldest);
        self.accept_paused &= accept_paused;
        self.timer_entries = self.timer_entries.saturating_add(*timer_entries);
    }

    /// Every counter and gauge as a `(key, value)` pair, in a fixed order
    /// with stable keys, so every server, adapter and admin console prints
    /// the same list: `live`, `usable`, `backpressured`, `opened`, …,
    /// `disconnected.<reason>` for each [`DisconnectCounts`] entry and
    /// `rejected_input.<kind>` for each [`RejectedInputs`] entry. Booleans
    /// are 0 or 1; `offline_oldest_ms` is 0 with nothing offline.
    pub fn counters(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let n = |v: usize| v as u64;
        let oldest = self
            .offline_oldest
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let d = &self.disconnected;
        let r = &self.rejected_input;
        [
            ("live", n(self.live)),
            ("usable", n(self.usable)),
            ("backpressured", n(self.backpressured)),
            ("opened", self.opened),
            ("refused", self.refused),
            ("released", self.released),
            ("offline_depth", n(self.offline_depth)),
            ("offline_peak", n(self.offline_peak)),
            ("offline_oldest_ms", oldest),
            ("accept_paused", u64::from(self.accept_paused)),
            ("bytes_queued", self.bytes_queued),
            ("bytes_written", self.bytes_written),
            ("bytes_dropped", self.bytes_dropped),
            ("bytes_received", self.bytes_received),
            ("bytes_discarded", self.bytes_discarded),
            ("sends_rejected", self.sends_rejected),
            ("stale_calls", self.stale_calls),
            ("holders_overdue", self.holders_overdue),
            ("time_regressions", self.time_regressions),
            ("clock_jumps_held", self.clock_jumps_held),
            ("timer_entries", n(self.timer_entries)),
            ("disconnected.peer-closed", d.peer_closed),
            ("disconnected.peer-reset", d.peer_reset),
            ("disconnected.io-error", d.io_error),
            ("disconnected.kicked", d.kicked),
            ("disconnected.idle-timeout", d.idle_timeout),
            ("disconnected.login-timeout", d.login_timeout),
            ("disconnected.slow-consumer", d.slow_consumer),
            ("disconnected.server-shutdown", d.server_shutdown),
            ("rejected_input.after-eof", r.after_eof),
            ("rejected_input.over-written", r.over_written),
            ("rejected_input.attach-offline", r.attach_offline),
            ("rejected_input.not-attached", r.not_attached),
            ("rejected_input.too-many-holders", r.too_many_holders),
            ("rejected_input.not-requested", r.not_requested),
        ]
        .into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_name_every_field_once_with_the_sub_lists_keys() {
        let stats = Stats::default();
        let keys: Vec<&str> = stats.counters().map(|(k, _)| k).collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "duplicate keys in {keys:?}");
        // The per-reason and per-kind keys are exactly the sub-lists' names.
        let prefixed = |prefix: &str| -> Vec<String> {
            keys.iter()
                .filter_map(|k| k.strip_prefix(prefix))
                .map(str::to_string)
                .collect()
        };
        let reasons: Vec<String> = stats
            .disconnected
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(prefixed("disconnected."), reasons);
        let kinds: Vec<String> = stats
            .rejected_input
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(prefixed("rejected_input."), kinds);
        // Top-level keys are snake_case.
        for key in keys.iter().filter(|k| !k.contains('.')) {
            assert!(
                key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{key}"
            );
        }
    }

    #[test]
    fn counters_saturate_rather_than_overflow() {
        // Invariant 10: a counter at the top (restored, or merged from many
        // hubs) stays there; no panic in debug, no wrap in release.
        let mut full = Stats {
            opened: u64::MAX,
            live: usize::MAX,
            ..Stats::default()
        };
        full.disconnected.kicked = u64::MAX;
        full.disconnected
            .count(DisconnectReason::Kicked { code: 0 });
        full.disconnected.peer_closed = 1;
        full.rejected_input.after_eof = u64::MAX;
        full.rejected_input.not_attached = 1;
        let other = full.clone();
        full.merge(&other);
        assert_eq!((full.opened, full.live), (u64::MAX, usize::MAX));
        assert_eq!(full.disconnected.total(), u64::MAX);
        assert_eq!(full.rejected_input.total(), u64::MAX);
    }

    #[test]
    fn counters_carry_the_values() {
        let mut stats = Stats {
            live: 3,
            accept_paused: true,
            offline_oldest: Some(Duration::from_millis(1_500)),
            backpressured: 2,
            ..Stats::default()
        };
        stats.disconnected.count(DisconnectReason::SlowConsumer);
        stats.rejected_input.over_written = 4;
        let get = |k: &str| stats.counters().find(|(key, _)| *key == k).map(|(_, v)| v);
        assert_eq!(get("live"), Some(3));
        assert_eq!(get("accept_paused"), Some(1));
        assert_eq!(get("offline_oldest_ms"), Some(1_500));
        assert_eq!(get("backpressured"), Some(2));
        assert_eq!(get("disconnected.slow-consumer"), Some(1));
        assert_eq!(get("rejected_input.over-written"), Some(4));
        assert_eq!(get("nonsense"), None);
    }
}
