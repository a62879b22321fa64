//! What an input returned: typed ([`Answer`]) or without payload
//! ([`Outcome`], [`Rejection`]).

use crate::{AcceptError, BroadcastReport, ChannelId, IdError, InputError, KickError, SendError};

/// What an input returned, typed: the result of the [`Hub`](crate::Hub) method the
/// input names. [`Answer::outcome`] is its payload-free form.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an input may be rejected"]
pub enum Answer {
    /// [`Input::Accept`](crate::Input::Accept): the new channel, or why not.
    Accept(Result<ChannelId, AcceptError>),
    /// The adapter's inputs on a channel: `Received`, `PeerEof`,
    /// `IoError`, `Written`, `Attach`, `Detach`, `Closed`.
    Channel(Result<(), InputError>),
    /// [`Input::Send`](crate::Input::Send).
    Send(Result<(), SendError>),
    /// [`Input::Broadcast`](crate::Input::Broadcast) and [`Input::BroadcastTo`](crate::Input::BroadcastTo).
    Broadcast(BroadcastReport),
    /// [`Input::Kick`](crate::Input::Kick), [`Input::KickDefault`](crate::Input::KickDefault), [`Input::KickWithReason`](crate::Input::KickWithReason).
    Kick(Result<(), KickError>),
    /// [`Input::Authenticate`](crate::Input::Authenticate).
    Authenticate(Result<(), IdError>),
    /// [`Input::Timeout`](crate::Input::Timeout) and [`Input::Shutdown`](crate::Input::Shutdown), which cannot fail.
    Done,
}

impl Answer {
    /// The answer without payload: what a recording holds and the checker
    /// compares.
    pub fn outcome(&self) -> Outcome {
        match self {
            Answer::Accept(Ok(id)) => Outcome::Opened(*id),
            Answer::Accept(Err(e)) => Outcome::Rejected((*e).into()),
            Answer::Channel(r) => Outcome::of(*r),
            Answer::Send(r) => Outcome::of(*r),
            Answer::Kick(r) => Outcome::of(*r),
            Answer::Authenticate(r) => Outcome::of(*r),
            Answer::Broadcast(report) => Outcome::Broadcast {
                sent: report.sent,
                refused: report.refused.len(),
            },
            Answer::Done => Outcome::Ok,
        }
    }
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
