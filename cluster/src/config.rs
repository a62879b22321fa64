//! The cluster's timing and bounds.

use std::time::Duration;

/// The longest duration [`ClusterConfig::validate`] accepts for any timer:
/// a day. Keeps every `now + duration` far from what `Instant` holds.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest `heartbeat` and `timeout` [`ClusterConfig::validate`]
/// accepts: 1 ms. Shorter ones would make a driver spin on its timers.
pub const MIN_DURATION: Duration = Duration::from_millis(1);

/// The largest outbox [`ClusterConfig::validate`] accepts: 1 GiB.
pub const MAX_OUTBOX_BYTES: usize = 1 << 30;

/// The largest reorder window [`ClusterConfig::validate`] accepts.
pub const MAX_REORDER_WINDOW: usize = 4096;

/// Bookkeeping charged per line held in the outbox, besides its text, so
/// that a million empty lines are not zero bytes.
pub const OUTBOX_LINE_OVERHEAD: usize = 32;

/// Timing and bounds of a [`Cluster`](crate::Cluster).
///
/// Build it from [`Default`] and change fields; [`ClusterConfig::validate`]
/// (also run by [`Cluster::new`](crate::Cluster::new)) refuses what cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// How often this node publishes a heartbeat (and asks the driver to
    /// renew its name claim, [`Output::RenewClaim`](crate::Output::RenewClaim)).
    /// Default 1 s (`--cluster-heartbeat`).
    pub heartbeat: Duration,
    /// A node stops being live after this long without a message from it,
    /// on this node's clock. Default 3 s (`--cluster-ttl`). Must exceed
    /// `heartbeat`.
    pub ttl: Duration,
    /// A cross-node kick with no reply after this long answers
    /// [`KickError::Unavailable`](crate::KickError::Unavailable). Default 1 s
    /// (`--cluster-timeout`).
    pub timeout: Duration,
    /// While the broker is down, local lines wait in an outbox of at most
    /// this many bytes (text plus [`OUTBOX_LINE_OVERHEAD`] per line); beyond
    /// it they are counted lost. Default 1 MiB (`--cluster-outbox`). Zero
    /// means no outbox.
    pub outbox_bytes: usize,
    /// How long a gap in a sender's sequence may stay open (a later message
    /// arrived, an earlier one did not) before it is declared lost and the
    /// sender is asked for a presence snapshot. Default 1 s.
    pub gap_wait: Duration,
    /// How many early messages per sender wait for a missing one; when the
    /// window is full the gap is declared lost at once. Default 256.
    pub reorder_window: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            heartbeat: Duration::from_secs(1),
            ttl: Duration::from_secs(3),
            timeout: Duration::from_secs(1),
            outbox_bytes: 1 << 20,
            gap_wait: Duration::from_secs(1),
            reorder_window: 256,
        }
    }
}

impl ClusterConfig {
    /// Checks that the configuration can work: heartbeat and timeout at
    /// least [`MIN_DURATION`], heartbeat below ttl, every duration at most
    /// [`MAX_DURATION`], the outbox at most [`MAX_OUTBOX_BYTES`], the reorder
    /// window 1..=[`MAX_REORDER_WINDOW`].
    pub fn validate(&self) -> Result<(), ClusterConfigError> {
        use ClusterConfigError as E;
        for (field, value) in [("heartbeat", self.heartbeat), ("timeout", self.timeout)] {
            if value < MIN_DURATION {
                return Err(E::TooShort { field });
            }
        }
        for (field, value) in [
            ("heartbeat", self.heartbeat),
            ("ttl", self.ttl),
            ("timeout", self.timeout),
            ("gap_wait", self.gap_wait),
        ] {
            if value > MAX_DURATION {
                return Err(E::TooLong { field });
            }
        }
        if self.heartbeat >= self.ttl {
            return Err(E::HeartbeatNotBelowTtl);
        }
        if self.outbox_bytes > MAX_OUTBOX_BYTES {
            return Err(E::OutboxTooLarge {
                bytes: self.outbox_bytes,
            });
        }
        if self.reorder_window == 0 || self.reorder_window > MAX_REORDER_WINDOW {
            return Err(E::ReorderWindow {
                window: self.reorder_window,
            });
        }
        Ok(())
    }
}

/// Why a [`ClusterConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterConfigError {
    /// `heartbeat` or `timeout` is below [`MIN_DURATION`] (zero included).
    #[error("cluster {field} must be at least 1 ms")]
    TooShort {
        /// The field's name.
        field: &'static str,
    },
    /// `heartbeat` is not below `ttl`: a live node would expire between
    /// two heartbeats.
    #[error("cluster heartbeat must be shorter than the ttl")]
    HeartbeatNotBelowTtl,
    /// A duration exceeds [`MAX_DURATION`].
    #[error("cluster {field} exceeds a day")]
    TooLong {
        /// The field's name.
        field: &'static str,
    },
    /// `outbox_bytes` exceeds [`MAX_OUTBOX_BYTES`].
    #[error("cluster outbox of {bytes} bytes exceeds 1 GiB")]
    OutboxTooLarge {
        /// The refused size.
        bytes: usize,
    },
    /// `reorder_window` is zero or above [`MAX_REORDER_WINDOW`].
    #[error("cluster reorder window {window} is outside 1..=4096")]
    ReorderWindow {
        /// The refused window.
        window: usize,
    },
}
