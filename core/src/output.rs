//! What the hub tells the outside world: actions for the adapter, events for
//! the application, and the data they carry.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::id::ChannelId;

/// The lifecycle state of a live channel. States only move forward, in this
/// order (a channel may skip states, never go back). A released channel has
/// no state: its id is [stale](crate::IdError::Stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "snapshot", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "snapshot", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum ChannelState {
    /// Usable: the app may send, the peer may send.
    Open,
    /// The peer sent EOF and half-close is allowed: the app may still send.
    HalfClosed,
    /// Graceful close under way: flushing the queue, then FIN, then waiting
    /// for the peer's EOF, all bounded by the flush deadline. The app was
    /// already told `Disconnected`.
    Closing,
    /// Done on the wire; waiting for every holder to detach and the adapter
    /// to confirm the socket closed. This is the *offline queue*.
    Offline,
}

impl ChannelState {
    /// Whether the app may still send to a channel in this state.
    pub fn is_usable(self) -> bool {
        matches!(self, ChannelState::Open | ChannelState::HalfClosed)
    }

    /// A short lowercase name, for consoles and logs.
    pub fn name(self) -> &'static str {
        match self {
            ChannelState::Open => "open",
            ChannelState::HalfClosed => "half-closed",
            ChannelState::Closing => "closing",
            ChannelState::Offline => "offline",
        }
    }
}

impl std::fmt::Display for ChannelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a channel ended. Carried by [`Event::Disconnected`]; data, not an
/// error: every channel ends with exactly one (invariant 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed its side (EOF).
    PeerClosed,
    /// The peer reset the connection (RST).
    PeerReset,
    /// Another I/O error on the socket.
    IoError(io::ErrorKind),
    /// The application kicked the channel, with its own reason code.
    Kicked {
        /// The application's reason code (0 for
        /// [`Hub::kick_default`](crate::Hub::kick_default)).
        code: u32,
    },
    /// Nothing was received for [`Config::idle_timeout`](crate::Config::idle_timeout).
    IdleTimeout,
    /// Not authenticated within [`Config::login_timeout`](crate::Config::login_timeout).
    LoginTimeout,
    /// The outbound queue overflowed under
    /// [`OverflowPolicy::KickSlowConsumer`](crate::OverflowPolicy::KickSlowConsumer).
    SlowConsumer,
    /// The server is shutting down ([`Hub::shutdown`](crate::Hub::shutdown)).
    ServerShutdown,
}

impl DisconnectReason {
    /// The reason an I/O error of this kind means.
    pub fn from_io(kind: io::ErrorKind) -> Self {
        match kind {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => DisconnectReason::PeerReset,
            io::ErrorKind::UnexpectedEof => DisconnectReason::PeerClosed,
            other => DisconnectReason::IoError(other),
        }
    }

    /// A short name without payload, e.g. `idle-timeout`, for stats keys.
    pub fn name(&self) -> &'static str {
        match self {
            DisconnectReason::PeerClosed => "peer-closed",
            DisconnectReason::PeerReset => "peer-reset",
            DisconnectReason::IoError(_) => "io-error",
            DisconnectReason::Kicked { .. } => "kicked",
            DisconnectReason::IdleTimeout => "idle-timeout",
            DisconnectReason::LoginTimeout => "login-timeout",
            DisconnectReason::SlowConsumer => "slow-consumer",
            DisconnectReason::ServerShutdown => "server-shutdown",
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::IoError(kind) => write!(f, "io-error({kind})"),
            DisconnectReason::Kicked { code } => write!(f, "kicked({code})"),
            other => f.write_str(other.name()),
        }
    }
}

/// Which directions a [`Action::Shutdown`] closes.
///
/// Exhaustive, like [`Action`]: every executor must act on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShutdownHow {
    /// Our sending side only: the peer reads what was sent, then EOF.
    Write,
    /// Both sides. Besides the FIN, this is the signal for every holder of
    /// the socket to let go: a reader blocked in `read` wakes with 0, a
    /// writer gets an error; both then detach.
    Both,
}

/// Something the adapter must do to a socket or the listener. Drained with
/// [`Hub::poll_action`](crate::Hub::poll_action), in order.
///
/// Deliberately **exhaustive** (unlike [`Event`]): an action must be
/// executed, so an executor matches every variant without a wildcard, and a
/// new action fails to compile in every executor instead of being dropped
/// by a `_ => {}`. Adding one is a breaking change, as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an action must be executed by the adapter"]
pub enum Action {
    /// Write `data` to the socket after everything transmitted before, then
    /// report progress with [`Hub::handle_written`](crate::Hub::handle_written).
    Transmit {
        /// The channel.
        id: ChannelId,
        /// The bytes, shared with every other channel of a broadcast.
        data: Bytes,
    },
    /// Shut the socket down (`shutdown(2)`), after every earlier transmit
    /// of this channel was written.
    Shutdown {
        /// The channel.
        id: ChannelId,
        /// Which side.
        how: ShutdownHow,
    },
    /// Reset the connection: discard untransmitted data, set `SO_LINGER` to
    /// zero so the coming [`Action::CloseSocket`] sends RST, and wake every holder
    /// without sending FIN (e.g. `shutdown(Read)` on Linux, or cancel the
    /// tasks that hold it).
    Abort {
        /// The channel.
        id: ChannelId,
    },
    /// No holder is attached any more: close the socket now, then confirm
    /// with [`Hub::handle_closed`](crate::Hub::handle_closed). Emitted once
    /// per channel (invariant 5).
    CloseSocket {
        /// The channel.
        id: ChannelId,
    },
    /// The channel limit is reached: stop accepting (invariant 12).
    PauseAccept,
    /// Below the resume mark again: accept again.
    ResumeAccept,
}

impl Action {
    /// The channel this action is about, if any.
    pub fn channel(&self) -> Option<ChannelId> {
        match self {
            Action::Transmit { id, .. }
            | Action::Shutdown { id, .. }
            | Action::Abort { id }
            | Action::CloseSocket { id } => Some(*id),
            Action::PauseAccept | Action::ResumeAccept => None,
        }
    }
}

/// Something the application should know. Drained with
/// [`Hub::poll_event`](crate::Hub::poll_event), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "events report lifecycle changes the application must see"]
#[non_exhaustive]
pub enum Event {
    /// A connection was accepted and is now a channel.
    Opened {
        /// The new channel.
        id: ChannelId,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// The peer sent bytes.
    Received {
        /// The channel.
        id: ChannelId,
        /// The bytes, as the adapter read them.
        data: Bytes,
    },
    /// The channel's outbound queue drained to the low watermark after it
    /// was backpressured: sending is welcome again.
    Writable {
        /// The channel.
        id: ChannelId,
    },
    /// The peer sent EOF and half-close is allowed: nothing more will be
    /// received, the app may still send and then kick.
    ReadClosed {
        /// The channel.
        id: ChannelId,
    },
    /// The channel is no longer usable by the app, for `reason`. Exactly one
    /// per opened channel (invariant 1); nothing but `HolderOverdue` and
    /// `Released` follows it for that channel (invariant 2).
    Disconnected {
        /// The channel.
        id: ChannelId,
        /// Why.
        reason: DisconnectReason,
    },
    /// A holder is still attached [`Config::holder_overdue_after`](crate::Config::holder_overdue_after)
    /// after the channel went offline. Reported once; the socket stays open.
    HolderOverdue {
        /// The channel.
        id: ChannelId,
        /// Holders still attached.
        holders: u32,
        /// Time since the channel went offline.
        waited: Duration,
    },
    /// The socket is closed and the slot is free: the id is dead for good.
    Released {
        /// The channel.
        id: ChannelId,
    },
    /// [`Hub::shutdown`](crate::Hub::shutdown) finished: every channel is
    /// released. Emitted once.
    ShutdownComplete,
}

impl Event {
    /// The channel this event is about, if any.
    pub fn channel(&self) -> Option<ChannelId> {
        match self {
            Event::Opened { id, .. }
            | Event::Received { id, .. }
            | Event::Writable { id }
            | Event::ReadClosed { id }
            | Event::Disconnected { id, .. }
            | Event::HolderOverdue { id, .. }
            | Event::Released { id } => Some(*id),
            Event::ShutdownComplete => None,
        }
    }
}
