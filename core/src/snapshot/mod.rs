//! The whole hub as data (feature `snapshot`): [`Snapshot`], taken by
//! [`Hub::snapshot`](crate::Hub::snapshot) and turned back into a hub by
//! [`Hub::restore`](crate::Hub::restore).
//!
//! The flight recorder (docs/recording.md) starts every segment of a
//! recording with one, so that a segment replays on its own through a fresh
//! hub. A snapshot holds the configuration and *everything* the hub holds —
//! the clock and its held jump, the id table (every slot's generation and
//! occupancy, the free list in order), every channel field, every entry of
//! the timer heap (stale ones included: when the heap is compacted depends
//! on their count), the counters, the offline queue in order (released
//! entries not yet removed included), and the gate (accepting paused, the
//! shutdown) — so that the restored hub answers every later input exactly
//! as the original would have: same outcomes, same outputs in the same
//! order, same deadlines, same stats.
//!
//! Every `Instant` is stored as signed nanoseconds relative to an `epoch`
//! the caller chooses (earlier instants are negative); a hub restored with
//! another epoch is the same hub shifted in time.
//!
//! A snapshot read from a file is untrusted: [`Hub::restore`](crate::Hub::restore)
//! checks every field and every relation between fields that the hub relies
//! on, and names what is wrong ([`RestoreError`]) instead of building a hub
//! that could panic or break an invariant later.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{ChannelId, ChannelState, Config, ConfigError, DisconnectReason, Stats};

mod check;
mod names;
mod restore;
mod take;

pub(crate) use restore::{Restored, restore};
#[cfg(feature = "checker")]
pub(crate) use take::instant_or;
pub(crate) use take::{Parts, take};

/// The format version of [`Snapshot`] this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The complete state of a [`Hub`](crate::Hub), serializable (serde). Made by
/// [`Hub::snapshot`](crate::Hub::snapshot), turned back into a hub by
/// [`Hub::restore`](crate::Hub::restore); see the [module docs](self).
///
/// Instants are signed nanoseconds since the epoch passed to `snapshot`.
/// The fields are public to read (and for tools that inspect recordings);
/// a snapshot changed by hand is checked in full by `restore`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tether_core::{Bytes, Config, Hub, Snapshot};
///
/// let epoch = Instant::now();
/// let mut hub = Hub::new(Config::default()).unwrap();
/// let id = hub.accept(epoch, "127.0.0.1:4000".parse().unwrap()).unwrap();
/// hub.send(epoch, id, Bytes::from_static(b"hello")).unwrap();
/// while hub.poll_action().is_some() {} // snapshots are taken drained
/// while hub.poll_event().is_some() {}
///
/// let snapshot: Snapshot = hub.snapshot(epoch).unwrap();
/// assert_eq!(snapshot.config(), hub.config());
/// assert_eq!(snapshot.channels[0].queued, 5);
///
/// // Later, maybe elsewhere: the same hub, an hour later in time.
/// let later = epoch + Duration::from_secs(3_600);
/// let mut copy = Hub::restore(&snapshot, later).unwrap();
/// assert_eq!(copy.channel(id).unwrap().queued, 5);
/// assert_eq!(copy.poll_timeout(), hub.poll_timeout().map(|t| t + Duration::from_secs(3_600)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Snapshot {
    /// The snapshot format version ([`SNAPSHOT_VERSION`]).
    pub version: u32,
    /// The hub's configuration.
    pub config: Config,
    /// The hub's clock ([`Hub::now`](crate::Hub::now)); `None` before any input.
    pub now: Option<i64>,
    /// A `now` too far ahead to believe, held until the next input confirms
    /// it (see [`Config::max_clock_jump`]).
    pub held_jump: Option<i64>,
    /// Every slot of the id table, in slot order, live or not.
    pub slots: Vec<SlotSnapshot>,
    /// The id table's free list, head first: the slots the next accepts
    /// reuse, in that order.
    pub free: Vec<u32>,
    /// Every live channel, in slot order.
    pub channels: Vec<ChannelSnapshot>,
    /// Every entry of the deadline heap, stale ones included, in the heap's
    /// own order.
    pub timers: Vec<TimerSnapshot>,
    /// The offline queue's entries, oldest first, including released
    /// channels not yet removed from it (they are skipped lazily).
    pub offline: Vec<OfflineSnapshot>,
    /// The counters, and the gauges as [`Hub::stats`](crate::Hub::stats)
    /// reports them (checked against the rest on restore; the offline peak
    /// is taken from here).
    pub stats: Stats,
    /// Whether the hub asked the adapter to pause accepting.
    pub accept_paused: bool,
    /// The shutdown, once [`Hub::shutdown`](crate::Hub::shutdown) was called.
    pub shutdown: Option<ShutdownSnapshot>,
}

impl Snapshot {
    /// The configuration of the hub this snapshot was taken of.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// One slot of the id table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SlotSnapshot {
    /// The generation of the slot's current or latest use (`u32::MAX`:
    /// retired once free).
    pub generation: u32,
    /// Whether a live channel holds it (it is then in
    /// [`Snapshot::channels`] with this generation).
    pub occupied: bool,
}

/// One live channel: every field the hub keeps for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ChannelSnapshot {
    /// Its id (`#slot.gen`, or `#shard:slot.gen`).
    pub id: ChannelId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Its state.
    pub state: ChannelState,
    /// When it opened.
    pub opened_at: i64,
    /// When it last received bytes (or opened): the idle clock.
    pub last_activity: i64,
    /// While closing: when the graceful close escalates to an abort.
    pub closing_deadline: i64,
    /// While offline: when it went offline.
    pub offline_since: i64,
    /// The lifecycle deadline (idle, login, flush, overdue holder) it has a
    /// timer entry for.
    pub armed: Option<i64>,
    /// The stall deadline it has a timer entry for.
    pub stall_armed: Option<i64>,
    /// Bytes queued, not yet reported written.
    pub queued: usize,
    /// The queue's charge against `queue_limit`.
    pub charged: usize,
    /// When the stall clock last (re)started; set exactly while usable with
    /// bytes queued.
    pub stall_since: Option<i64>,
    /// Holders attached.
    pub holders: u32,
    /// Why it ended, once `Disconnected` was emitted: `peer-closed`,
    /// `peer-reset`, `io-error(<io::ErrorKind Debug name>)`, `kicked(<code>)`,
    /// `idle-timeout`, `login-timeout`, `slow-consumer`, `server-shutdown`.
    pub reason: Option<DisconnectReason>,
    /// Whether it was authenticated.
    pub authenticated: bool,
    /// Whether it is backpressured.
    pub backpressured: bool,
    /// Whether the peer's EOF was received.
    pub peer_eof: bool,
    /// Whether its write side was shut down (FIN, or `Shutdown(Both)`).
    pub write_shut: bool,
    /// Whether it was aborted (RST).
    pub aborted: bool,
    /// Whether `CloseSocket` was emitted.
    pub close_requested: bool,
    /// Whether `HolderOverdue` was emitted.
    pub overdue_reported: bool,
}

/// Which deadline of a channel a timer entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TimerKind {
    /// Idle, login, flush or overdue holder ([`ChannelSnapshot::armed`]).
    Lifecycle,
    /// The stall deadline ([`ChannelSnapshot::stall_armed`]).
    Stall,
}

/// One entry of the deadline heap. Entries whose channel was released, or
/// whose channel is armed at another instant, are stale: the hub skips them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TimerSnapshot {
    /// When it is due.
    pub at: i64,
    /// The channel it was armed for.
    pub id: ChannelId,
    /// Which of its deadlines.
    pub kind: TimerKind,
}

/// One entry of the offline queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OfflineSnapshot {
    /// The channel (live and offline, or released and not yet removed).
    pub id: ChannelId,
    /// When it went offline.
    pub since: i64,
}

/// A shutdown under way, or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ShutdownSnapshot {
    /// When whatever is still closing is aborted.
    pub deadline: i64,
    /// Whether that deadline was acted on, or is moot.
    pub deadline_done: bool,
    /// Whether every channel was released and `ShutdownComplete` emitted.
    pub complete: bool,
}

/// Why [`Hub::snapshot`](crate::Hub::snapshot) could not take a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Actions or events are waiting to be polled: a snapshot is taken
    /// between inputs, after draining (the recorder drains after every
    /// input), so that replaying from it starts with nothing pending.
    #[error(
        "cannot snapshot with outputs pending: {actions} actions and {events} events not yet polled; drain the hub first"
    )]
    OutputsPending {
        /// Actions not yet polled.
        actions: usize,
        /// Events not yet polled.
        events: usize,
    },
    /// An instant of the hub is more than `i64::MAX` nanoseconds (about
    /// 292 years) from the epoch.
    #[error("cannot snapshot: {field} is too far from the epoch for i64 nanoseconds")]
    Instant {
        /// Which instant, e.g. `now` or `channel #3.1 closing_deadline`.
        field: String,
    },
    /// A channel ended with an I/O error whose kind this build cannot name
    /// (see [`ChannelSnapshot::reason`]).
    #[error("cannot snapshot: channel {id} ended with an I/O error of unnamed kind {kind}")]
    ErrorKind {
        /// The channel.
        id: ChannelId,
        /// The kind's Debug form.
        kind: String,
    },
}

/// Why [`Hub::restore`](crate::Hub::restore) refused a snapshot: what is
/// wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// A snapshot format this build does not read.
    #[error("snapshot version {0} is not supported (this build reads version {SNAPSHOT_VERSION})")]
    Version(u32),
    /// The configuration does not validate.
    #[error("snapshot config: {0}")]
    Config(#[from] ConfigError),
    /// A channel's field is wrong, or contradicts another.
    #[error("snapshot channel {id}: {field}: {problem}")]
    Channel {
        /// The channel.
        id: ChannelId,
        /// The field, e.g. `charged`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A hub-level field is wrong, or contradicts the channels.
    #[error("snapshot {field}: {problem}")]
    Hub {
        /// The field, e.g. `free`, `timers`, `stats.usable`.
        field: &'static str,
        /// What is wrong with it (naming the index for lists).
        problem: String,
    },
}
