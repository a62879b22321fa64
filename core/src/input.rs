//! The hub's input vocabulary: one hub call as a value ([`Input`]) and its
//! result ([`Outcome`], [`Rejection`]). Always compiled: the adapter layer's
//! observers (the flight recorder) see every input this way, and the
//! invariant checker (feature `checker`) and the simulator speak it too.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{AcceptError, ChannelId, Hub, IdError, InputError, KickError, KickMode, SendError};

/// One input call to a [`Hub`], with its arguments (the time is separate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// [`Hub::accept`].
    Accept {
        /// The peer address.
        peer: SocketAddr,
    },
    /// [`Hub::handle_received`].
    Received {
        /// The channel.
        id: ChannelId,
        /// The bytes.
        data: Bytes,
    },
    /// [`Hub::handle_peer_eof`].
    PeerEof {
        /// The channel.
        id: ChannelId,
    },
    /// [`Hub::handle_io_error`].
    IoError {
        /// The channel.
        id: ChannelId,
        /// The error kind.
        kind: io::ErrorKind,
    },
    /// [`Hub::handle_written`].
    Written {
        /// The channel.
        id: ChannelId,
        /// Bytes written.
        n: usize,
    },
    /// [`Hub::send`].
    Send {
        /// The channel.
        id: ChannelId,
        /// The bytes.
        data: Bytes,
    },
    /// [`Hub::broadcast`].
    Broadcast {
        /// The bytes.
        data: Bytes,
    },
    /// [`Hub::kick`].
    Kick {
        /// The channel.
        id: ChannelId,
        /// Graceful or abort.
        mode: KickMode,
        /// The app's reason code.
        code: u32,
    },
    /// [`Hub::kick_default`].
    KickDefault {
        /// The channel.
        id: ChannelId,
    },
    /// [`Hub::authenticate`].
    Authenticate {
        /// The channel.
        id: ChannelId,
    },
    /// [`Hub::attach`].
    Attach {
        /// The channel.
        id: ChannelId,
    },
    /// [`Hub::detach`].
    Detach {
        /// The channel.
        id: ChannelId,
    },
    /// [`Hub::handle_closed`].
    Closed {
        /// The channel.
        id: ChannelId,
    },
    /// [`Hub::handle_timeout`].
    Timeout,
    /// [`Hub::shutdown`].
    Shutdown {
        /// The grace period.
        grace: Duration,
    },
}

/// Why a call was rejected, without its payload: what a recording holds and
/// the checker compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the error variant of the same name
pub enum Rejection {
    Stale,
    Unknown,
    LimitReached,
    ShuttingDown,
    IdsExhausted,
    NotUsable,
    AlreadyClosing,
    QueueFull { kicked: bool },
    TooLarge,
    AfterEof,
    OverWritten,
    AttachOffline,
    NotAttached,
    TooManyHolders,
    CloseNotRequested,
}

/// The result of one input call, without its payload (what a recording
/// holds and the checker compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// `accept` opened this channel.
    Opened(ChannelId),
    /// A broadcast reached `sent` channels and was refused by `refused`.
    Broadcast {
        /// Channels that queued it.
        sent: usize,
        /// Channels that refused it.
        refused: usize,
    },
    /// It was rejected.
    Rejected(Rejection),
}

impl From<IdError> for Rejection {
    fn from(e: IdError) -> Self {
        match e {
            IdError::Stale(_) => Rejection::Stale,
            IdError::Unknown(_) => Rejection::Unknown,
        }
    }
}

/// Converts one of the hub's error types to a [`Rejection`].
macro_rules! rejection_from {
    ($t:ty, $($pat:pat => $r:expr),* $(,)?) => {
        impl From<$t> for Rejection {
            fn from(e: $t) -> Self {
                match e { $($pat => $r),* }
            }
        }
    };
}
rejection_from!(AcceptError,
    AcceptError::LimitReached { .. } => Rejection::LimitReached,
    AcceptError::ShuttingDown => Rejection::ShuttingDown,
    AcceptError::IdsExhausted => Rejection::IdsExhausted);
rejection_from!(SendError,
    SendError::Id(e) => e.into(),
    SendError::NotUsable { .. } => Rejection::NotUsable,
    SendError::QueueFull { kicked, .. } => Rejection::QueueFull { kicked },
    SendError::TooLarge { .. } => Rejection::TooLarge);
rejection_from!(KickError,
    KickError::Id(e) => e.into(),
    KickError::AlreadyClosing { .. } => Rejection::AlreadyClosing);
rejection_from!(InputError,
    InputError::Id(e) => e.into(),
    InputError::AfterEof { .. } => Rejection::AfterEof,
    InputError::OverWritten { .. } => Rejection::OverWritten,
    InputError::AttachOffline { .. } => Rejection::AttachOffline,
    InputError::NotAttached { .. } => Rejection::NotAttached,
    InputError::TooManyHolders { .. } => Rejection::TooManyHolders,
    InputError::CloseNotRequested { .. } => Rejection::CloseNotRequested);

impl Outcome {
    /// The outcome of a call that returns `Result<(), E>`.
    pub fn of<E: Into<Rejection>>(r: Result<(), E>) -> Outcome {
        match r {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Rejected(e.into()),
        }
    }
}

impl Input {
    /// Makes this call on `hub` at `now` and returns its outcome.
    pub fn apply(&self, hub: &mut Hub, now: Instant) -> Outcome {
        match self {
            Input::Accept { peer } => match hub.accept(now, *peer) {
                Ok(id) => Outcome::Opened(id),
                Err(e) => Outcome::Rejected(e.into()),
            },
            Input::Received { id, data } => {
                Outcome::of(hub.handle_received(now, *id, data.clone()))
            }
            Input::PeerEof { id } => Outcome::of(hub.handle_peer_eof(now, *id)),
            Input::IoError { id, kind } => Outcome::of(hub.handle_io_error(now, *id, *kind)),
            Input::Written { id, n } => Outcome::of(hub.handle_written(now, *id, *n)),
            Input::Send { id, data } => Outcome::of(hub.send(now, *id, data.clone())),
            Input::Broadcast { data } => {
                let report = hub.broadcast(now, data.clone());
                Outcome::Broadcast {
                    sent: report.sent,
                    refused: report.refused.len(),
                }
            }
            Input::Kick { id, mode, code } => Outcome::of(hub.kick(now, *id, *mode, *code)),
            Input::KickDefault { id } => Outcome::of(hub.kick_default(now, *id)),
            Input::Authenticate { id } => Outcome::of(hub.authenticate(now, *id)),
            Input::Attach { id } => Outcome::of(hub.attach(now, *id)),
            Input::Detach { id } => Outcome::of(hub.detach(now, *id)),
            Input::Closed { id } => Outcome::of(hub.handle_closed(now, *id)),
            Input::Timeout => {
                hub.handle_timeout(now);
                Outcome::Ok
            }
            Input::Shutdown { grace } => {
                hub.shutdown(now, *grace);
                Outcome::Ok
            }
        }
    }

    /// The channel this input names, if any.
    pub fn channel(&self) -> Option<ChannelId> {
        self.clone().channel_mut().copied()
    }

    /// The channel this input names, if any, to change (e.g. to map a
    /// recording's ids onto a replay's).
    pub fn channel_mut(&mut self) -> Option<&mut ChannelId> {
        match self {
            Input::Received { id, .. }
            | Input::PeerEof { id }
            | Input::IoError { id, .. }
            | Input::Written { id, .. }
            | Input::Send { id, .. }
            | Input::Kick { id, .. }
            | Input::KickDefault { id }
            | Input::Authenticate { id }
            | Input::Attach { id }
            | Input::Detach { id }
            | Input::Closed { id } => Some(id),
            Input::Accept { .. }
            | Input::Broadcast { .. }
            | Input::Timeout
            | Input::Shutdown { .. } => None,
        }
    }
}
