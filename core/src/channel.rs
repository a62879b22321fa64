//! One channel's record inside the hub.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::output::{ChannelState, DisconnectReason};
use crate::timers::Kind;

/// Everything the hub knows about one live channel. Private: the app sees
/// it through [`ChannelInfo`].
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub peer: SocketAddr,
    pub state: ChannelState,
    pub opened_at: Instant,
    /// Last time bytes were received (or the channel opened): idle timer.
    pub last_activity: Instant,
    /// While `Closing`: when the graceful close escalates to an abort.
    pub closing_deadline: Instant,
    /// While `Offline`: when it went offline.
    pub offline_since: Instant,
    /// The lifecycle deadline (idle, login, flush, overdue holder) this
    /// channel has an entry for in the timer heap.
    pub armed: Option<Instant>,
    /// The stall deadline this channel has an entry for in the timer heap
    /// (a separate entry, so traffic on the queue never disturbs the idle
    /// entry: see `transitions::rearm`).
    pub stall_armed: Option<Instant>,
    /// Bytes sent by the app and not yet reported written.
    pub queued: usize,
    /// `queued` plus `message_overhead` per message queued since the queue
    /// was last empty; what the queue limit and watermarks compare against
    /// (invariant 8: `charged <= queue_limit`). Reset to 0 when `queued`
    /// reaches 0.
    pub charged: usize,
    /// Set exactly while the channel is usable with bytes queued: when its
    /// stall clock last (re)started — the queue went from empty to
    /// non-empty, or a write made progress.
    pub stall_since: Option<Instant>,
    pub holders: u32,
    /// Set when `Disconnected` was emitted (invariant 1: once).
    pub reason: Option<DisconnectReason>,
    pub authenticated: bool,
    pub backpressured: bool,
    pub peer_eof: bool,
    pub write_shut: bool,
    pub aborted: bool,
    pub close_requested: bool,
    pub overdue_reported: bool,
}

impl Channel {
    pub fn new(peer: SocketAddr, now: Instant) -> Self {
        Channel {
            peer,
            state: ChannelState::Open,
            opened_at: now,
            last_activity: now,
            closing_deadline: now,
            offline_since: now,
            armed: None,
            stall_armed: None,
            queued: 0,
            charged: 0,
            stall_since: None,
            holders: 0,
            reason: None,
            authenticated: false,
            backpressured: false,
            peer_eof: false,
            write_shut: false,
            aborted: false,
            close_requested: false,
            overdue_reported: false,
        }
    }

    /// The earliest instant at which a lifecycle timer (idle, login, flush,
    /// overdue holder) of this channel may be due. Lazy for the idle timer:
    /// activity only moves it later, so an early wake-up just re-arms (see
    /// `Hub::handle_timeout`). The stall timer is [`stall_deadline`](Channel::stall_deadline).
    pub fn next_deadline(&self, config: &Config) -> Option<Instant> {
        match self.state {
            ChannelState::Open | ChannelState::HalfClosed => {
                let idle = config
                    .idle_timeout
                    .and_then(|d| self.last_activity.checked_add(d));
                let login = match (self.authenticated, config.login_timeout) {
                    (false, Some(d)) => self.opened_at.checked_add(d),
                    _ => None,
                };
                min_opt(idle, login)
            }
            ChannelState::Closing => Some(self.closing_deadline),
            ChannelState::Offline if self.holders > 0 && !self.overdue_reported => {
                self.offline_since.checked_add(config.holder_overdue_after)
            }
            ChannelState::Offline => None,
        }
    }
}

impl Channel {
    /// When the channel's non-empty queue counts as stalled:
    /// `stall_since + stall_timeout`, only while it is usable with bytes
    /// queued. Lazy like the idle timer: write progress only moves it
    /// later, and a drained queue has none.
    pub fn stall_deadline(&self, config: &Config) -> Option<Instant> {
        let since = self.stall_since?;
        since.checked_add(config.stall_timeout?)
    }

    /// The exact deadline of this kind, if any.
    #[inline]
    pub fn deadline_of(&self, kind: Kind, config: &Config) -> Option<Instant> {
        match kind {
            Kind::Lifecycle => self.next_deadline(config),
            Kind::Stall => self.stall_deadline(config),
        }
    }

    /// The deadline of this kind the channel has a heap entry for.
    pub fn armed(&self, kind: Kind) -> Option<Instant> {
        match kind {
            Kind::Lifecycle => self.armed,
            Kind::Stall => self.stall_armed,
        }
    }

    /// [`armed`](Channel::armed), to change it.
    pub fn armed_mut(&mut self, kind: Kind) -> &mut Option<Instant> {
        match kind {
            Kind::Lifecycle => &mut self.armed,
            Kind::Stall => &mut self.stall_armed,
        }
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A read-only view of one channel, from [`Hub::channel`](crate::Hub::channel)
/// and [`Hub::channels`](crate::Hub::channels).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// The channel's id.
    pub id: crate::ChannelId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Its state.
    pub state: ChannelState,
    /// How long since it opened.
    pub age: Duration,
    /// How long since it last received bytes.
    pub idle: Duration,
    /// Bytes queued, not yet written.
    pub queued: usize,
    /// What the queue is charged against `queue_limit`: `queued` plus
    /// `message_overhead` per message queued since it was last empty.
    pub charged: usize,
    /// Holders attached.
    pub holders: u32,
    /// Whether it was authenticated.
    pub authenticated: bool,
    /// Whether it is backpressured: usable, and its charge reached the high
    /// watermark and has not yet fallen to the low one.
    pub backpressured: bool,
    /// Why it ended, once it has.
    pub reason: Option<DisconnectReason>,
}

impl ChannelInfo {
    pub(crate) fn new(id: crate::ChannelId, ch: &Channel, now: Instant) -> Self {
        ChannelInfo {
            id,
            peer: ch.peer,
            state: ch.state,
            age: now.saturating_duration_since(ch.opened_at),
            idle: now.saturating_duration_since(ch.last_activity),
            queued: ch.queued,
            charged: ch.charged,
            holders: ch.holders,
            authenticated: ch.authenticated,
            backpressured: ch.backpressured,
            reason: ch.reason,
        }
    }
}

/// One entry of the offline queue, from [`Hub::offline`](crate::Hub::offline).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OfflineEntry {
    /// The channel.
    pub id: crate::ChannelId,
    /// Why it ended.
    pub reason: DisconnectReason,
    /// How long it has been offline.
    pub age: Duration,
    /// Holders still attached: the socket closes when this reaches 0.
    pub holders: u32,
    /// Whether the close was requested and awaits the adapter's confirmation.
    pub close_requested: bool,
}
