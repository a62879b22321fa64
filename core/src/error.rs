//! Typed errors. Every message names the channel and its state. A
//! disconnect is never an error: its reason is data in
//! [`Event::Disconnected`](crate::Event::Disconnected).
//!
//! Errors come in two families, after h11: *local misuse* by the
//! application ([`AcceptError`] aside: [`SendError`], [`KickError`]) and
//! *contradictory input* from the adapter ([`InputError`], one type for
//! every adapter input). Stale or unknown ids are [`IdError`], wrapped in
//! each. A rejected call leaves every channel as it was, with one
//! documented exception: [`SendError::QueueFull`] marks the channel
//! backpressured, and under
//! [`OverflowPolicy::KickSlowConsumer`](crate::OverflowPolicy::KickSlowConsumer)
//! aborts it (`kicked: true`, with `Disconnected(SlowConsumer)` and an
//! `Abort` action). Every rejected call is still counted in
//! [`Stats`](crate::Stats), and its `now` still moves the hub's clock (see
//! the crate docs' *time* section).

use crate::id::{ChannelId, IdError};
use crate::output::ChannelState;

/// Why [`Hub::accept`](crate::Hub::accept) refused a connection. The adapter
/// should close the socket; no event is emitted (invariant 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// `max_channels` channels are alive (invariant 12).
    #[error("channel limit reached: {live} of {max} channels alive")]
    LimitReached {
        /// Channels alive.
        live: usize,
        /// The configured limit.
        max: usize,
    },
    /// The hub is shutting down.
    #[error("server is shutting down: no new channels")]
    ShuttingDown,
    /// Every slot of the id table has been used up (each slot is retired
    /// after 2^32 reuses, so this takes about 2^56 connections).
    #[error("channel ids exhausted: every slot of the id table is retired")]
    IdsExhausted,
}

/// Why [`Hub::send`](crate::Hub::send) did not queue the bytes. Nothing was
/// queued; the bytes are still the caller's. Also the per-channel answer of
/// [`Hub::broadcast`](crate::Hub::broadcast) in its
/// [`BroadcastReport`](crate::BroadcastReport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The id is stale or unknown.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The channel is closing or offline: nothing may be sent after a kick
    /// (invariant 4).
    #[error("channel {id} is {state}: cannot send")]
    NotUsable {
        /// The channel.
        id: ChannelId,
        /// Its state.
        state: ChannelState,
    },
    /// The outbound queue's charge would exceed its limit: `charged + len +`
    /// [`message_overhead`](crate::Config::message_overhead) `> limit`. With
    /// [`OverflowPolicy::KickSlowConsumer`](crate::OverflowPolicy::KickSlowConsumer)
    /// the channel was also aborted (`kicked`).
    #[error("channel {id} queue full: {queued} bytes queued, charged {charged}, + {len} (and per-message overhead) > limit {limit}{}", if *kicked { "; kicked as slow consumer" } else { "" })]
    QueueFull {
        /// The channel.
        id: ChannelId,
        /// Bytes queued before this send.
        queued: usize,
        /// The queue's charge before this send: `queued` plus the
        /// per-message overhead of what is queued.
        charged: usize,
        /// Size of the rejected send.
        len: usize,
        /// The configured limit.
        limit: usize,
        /// Whether the channel was kicked for it.
        kicked: bool,
    },
    /// One send whose length plus the per-message overhead is larger than
    /// the whole queue limit: it could never fit.
    #[error(
        "channel {id}: send of {len} bytes (plus per-message overhead) exceeds queue limit {limit}"
    )]
    TooLarge {
        /// The channel.
        id: ChannelId,
        /// Size of the rejected send.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// Why a kick ([`Hub::kick`](crate::Hub::kick),
/// [`Hub::kick_with_reason`](crate::Hub::kick_with_reason),
/// [`Hub::kick_default`](crate::Hub::kick_default)) did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KickError {
    /// The id is stale or unknown.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The channel is already closing or offline; kicks are idempotent.
    /// (An abortive kick of a gracefully closing channel is not an error: it
    /// escalates the close.)
    #[error("channel {id} is already {state}")]
    AlreadyClosing {
        /// The channel.
        id: ChannelId,
        /// Its state.
        state: ChannelState,
    },
}

/// Why an input from the adapter was rejected: bytes received, EOF, an I/O
/// error, bytes written, a holder attaching or detaching, a close confirmed.
/// These contradict what the hub knows, which means the adapter has a bug;
/// the input is ignored, and counted in
/// [`Stats::rejected_input`](crate::Stats::rejected_input) (stale ids in
/// [`Stats::stale_calls`](crate::Stats::stale_calls)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The id is stale or unknown — also the answer to a close confirmed
    /// twice, since the first confirmation released the id.
    #[error(transparent)]
    Id(#[from] IdError),
    /// Bytes or a second EOF reported after the peer's EOF
    /// ([`Hub::handle_received`](crate::Hub::handle_received),
    /// [`Hub::handle_peer_eof`](crate::Hub::handle_peer_eof)).
    #[error("channel {id} is {state}: the peer already sent EOF")]
    AfterEof {
        /// The channel.
        id: ChannelId,
        /// Its state.
        state: ChannelState,
    },
    /// More bytes reported written than are queued
    /// ([`Hub::handle_written`](crate::Hub::handle_written)).
    #[error("channel {id} is {state}: {written} bytes reported written but only {queued} queued")]
    OverWritten {
        /// The channel.
        id: ChannelId,
        /// Its state.
        state: ChannelState,
        /// Bytes reported.
        written: usize,
        /// Bytes queued.
        queued: usize,
    },
    /// [`Hub::attach`](crate::Hub::attach) to a channel that is already
    /// offline: its socket is on its way to being closed and must not gain
    /// holders.
    #[error("channel {id} is {state}: cannot attach a new holder")]
    AttachOffline {
        /// The channel.
        id: ChannelId,
        /// Its state.
        state: ChannelState,
    },
    /// [`Hub::detach`](crate::Hub::detach) with no holder attached.
    #[error("channel {id} is {state}: detach without a matching attach")]
    NotAttached {
        /// The channel.
        id: ChannelId,
        /// Its state.
        state: ChannelState,
    },
    /// More than `u32::MAX` holders attached.
    #[error("channel {id}: too many holders")]
    TooManyHolders {
        /// The channel.
        id: ChannelId,
    },
    /// [`Hub::handle_closed`](crate::Hub::handle_closed) for a socket the hub
    /// has not asked to close ([`Action::CloseSocket`](crate::Action::CloseSocket)).
    #[error("channel {id} is {state}: its socket close was not requested")]
    CloseNotRequested {
        /// The channel.
        id: ChannelId,
        /// Its state.
        state: ChannelState,
    },
}
