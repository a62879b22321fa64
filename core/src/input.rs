//! The hub's input vocabulary: one hub call as a value ([`Input`]), made by
//! the one entry point [`Hub::handle_input`], and its result, typed
//! ([`Answer`]) or without payload ([`Outcome`], [`Rejection`]). Always
//! compiled: the adapter layer's observers (the flight recorder) see every
//! input this way, and the invariant checker (feature `checker`), the
//! simulator, the fuzz targets and the recording format speak it too.
//!
//! Adding a hub input touches three files: its typed method on [`Hub`]
//! (`hub/*.rs`); this one — a variant, with its arm in
//! [`Hub::handle_input`], [`Input::name`], [`Input::channels`] (and
//! `_mut`), and its recording line's arguments ([`Input::args`],
//! [`Input::signature`], [`Input::from_args`]: the recording format has no
//! case of its own per input); and its prediction in the checker's
//! reference model (`testing/model/mod.rs`, feature `checker`). The
//! compiler points at each match: `Input` is exhaustive on purpose. (The
//! docs: a row in docs/recording.md's table; the simulator draws it once
//! it has an op.)

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smallvec::{SmallVec, smallvec};

use crate::{ChannelId, DisconnectReason, Hub, KickMode};

mod outcome;
#[cfg(test)]
mod tests;

pub use outcome::{Answer, Outcome, Rejection};

/// One input call to a [`Hub`], with its arguments (the time is separate):
/// one variant per public `Hub` method that takes `now`. Make it with
/// [`Hub::handle_input`].
///
/// Not `#[non_exhaustive]`, on purpose: whoever consumes inputs (the
/// flight recorder's format, the checker's model, the simulator) must
/// handle every one, and an exhaustive match makes the compiler say where
/// a new input is missing instead of a wildcard dropping it silently. A
/// new input is therefore a breaking change of this crate.
///
/// ```
/// use std::time::Instant;
/// use tether_core::{Answer, Bytes, Config, Hub, Input, Outcome};
/// let mut hub = Hub::new(Config::default()).unwrap();
/// let now = Instant::now();
/// let peer = "127.0.0.1:4000".parse().unwrap();
/// let Answer::Accept(Ok(id)) = hub.handle_input(now, Input::Accept { peer }) else { panic!() };
/// let send = Input::Send { id, data: Bytes::from_static(b"hi\n") };
/// assert_eq!(hub.handle_input(now, send).outcome(), Outcome::Ok);
/// ```
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
    /// [`Hub::kick_with_reason`].
    KickWithReason {
        /// The channel.
        id: ChannelId,
        /// Graceful or abort.
        mode: KickMode,
        /// The reason its `Disconnected` carries.
        reason: DisconnectReason,
    },
    /// [`Hub::broadcast_to`].
    BroadcastTo {
        /// The channels, in order (repeats and stale ids included).
        ids: Vec<ChannelId>,
        /// The bytes.
        data: Bytes,
    },
}

/// One argument of an input, in the order its recording line has them
/// (docs/recording.md). With [`Input::args`], [`Input::signature`] and
/// [`Input::from_args`] the flight recorder's format writes and reads
/// every input without a case of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A peer address (`127.0.0.1:4000`).
    Peer(SocketAddr),
    /// A channel (`#slot.gen`).
    Id(ChannelId),
    /// Channels: their count, then each.
    Ids(Vec<ChannelId>),
    /// Bytes: their length, then (in a recording with bytes) the bytes.
    Payload(Bytes),
    /// A byte count.
    Count(usize),
    /// An I/O error kind.
    ErrorKind(io::ErrorKind),
    /// A kick mode.
    Mode(KickMode),
    /// The application's reason code.
    Code(u32),
    /// A disconnect reason.
    Reason(DisconnectReason),
    /// A duration.
    Duration(Duration),
}

/// The kind of an [`Arg`]: what a parser reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each is the `Arg` of the same name
pub enum ArgKind {
    Peer,
    Id,
    Ids,
    Payload,
    Count,
    ErrorKind,
    Mode,
    Code,
    Reason,
    Duration,
}

impl Arg {
    /// Its kind.
    pub fn kind(&self) -> ArgKind {
        match self {
            Arg::Peer(_) => ArgKind::Peer,
            Arg::Id(_) => ArgKind::Id,
            Arg::Ids(_) => ArgKind::Ids,
            Arg::Payload(_) => ArgKind::Payload,
            Arg::Count(_) => ArgKind::Count,
            Arg::ErrorKind(_) => ArgKind::ErrorKind,
            Arg::Mode(_) => ArgKind::Mode,
            Arg::Code(_) => ArgKind::Code,
            Arg::Reason(_) => ArgKind::Reason,
            Arg::Duration(_) => ArgKind::Duration,
        }
    }
}

/// An input's arguments (at most three; no allocation).
pub type Args = SmallVec<[Arg; 3]>;

impl Hub {
    /// The one entry point for every input: makes the call `input` names
    /// at `now` and answers what that method returns. The typed methods
    /// (`accept`, `handle_received`, `send`, …) are the same calls, each
    /// documented with the transitions it drives; this is what an observer
    /// (the flight recorder), a checker or a simulator goes through.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Hub, Input, KickMode, Outcome, Rejection};
    /// let mut hub = Hub::new(Config::default()).unwrap();
    /// let now = Instant::now();
    /// let peer = "127.0.0.1:4000".parse().unwrap();
    /// let Outcome::Opened(id) = hub.handle_input(now, Input::Accept { peer }).outcome() else {
    ///     panic!()
    /// };
    /// let kick = Input::Kick { id, mode: KickMode::Graceful, code: 7 };
    /// assert_eq!(hub.handle_input(now, kick.clone()).outcome(), Outcome::Ok);
    /// let again = hub.handle_input(now, kick).outcome();
    /// assert_eq!(again, Outcome::Rejected(Rejection::AlreadyClosing));
    /// ```
    #[inline]
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Answer {
        match input {
            Input::Accept { peer } => Answer::Accept(self.accept(now, peer)),
            Input::Received { id, data } => Answer::Channel(self.handle_received(now, id, data)),
            Input::PeerEof { id } => Answer::Channel(self.handle_peer_eof(now, id)),
            Input::IoError { id, kind } => Answer::Channel(self.handle_io_error(now, id, kind)),
            Input::Written { id, n } => Answer::Channel(self.handle_written(now, id, n)),
            Input::Attach { id } => Answer::Channel(self.attach(now, id)),
            Input::Detach { id } => Answer::Channel(self.detach(now, id)),
            Input::Closed { id } => Answer::Channel(self.handle_closed(now, id)),
            Input::Send { id, data } => Answer::Send(self.send(now, id, data)),
            Input::Broadcast { data } => Answer::Broadcast(self.broadcast(now, data)),
            Input::BroadcastTo { ids, data } => {
                Answer::Broadcast(self.broadcast_to(now, ids, data))
            }
            Input::Kick { id, mode, code } => Answer::Kick(self.kick(now, id, mode, code)),
            Input::KickDefault { id } => Answer::Kick(self.kick_default(now, id)),
            Input::KickWithReason { id, mode, reason } => {
                Answer::Kick(self.kick_with_reason(now, id, mode, reason))
            }
            Input::Authenticate { id } => Answer::Authenticate(self.authenticate(now, id)),
            Input::Timeout => {
                self.handle_timeout(now);
                Answer::Done
            }
            Input::Shutdown { grace } => {
                self.shutdown(now, grace);
                Answer::Done
            }
        }
    }
}

impl Input {
    /// Makes this call on `hub` at `now` and returns its outcome
    /// ([`Hub::handle_input`] with a copy of the input: payloads are shared,
    /// not copied).
    pub fn apply(&self, hub: &mut Hub, now: Instant) -> Outcome {
        hub.handle_input(now, self.clone()).outcome()
    }

    /// The input's name: the word its line starts with in a recording
    /// (docs/recording.md), e.g. `eof` for [`Input::PeerEof`]; also how
    /// the checker names it in a violation.
    pub fn name(&self) -> &'static str {
        match self {
            Input::Accept { .. } => "accept",
            Input::Received { .. } => "received",
            Input::PeerEof { .. } => "eof",
            Input::IoError { .. } => "io-error",
            Input::Written { .. } => "written",
            Input::Attach { .. } => "attach",
            Input::Detach { .. } => "detach",
            Input::Closed { .. } => "closed",
            Input::Timeout => "timeout",
            Input::Send { .. } => "send",
            Input::Broadcast { .. } => "broadcast",
            Input::Kick { .. } => "kick",
            Input::KickDefault { .. } => "kick-default",
            Input::Authenticate { .. } => "auth",
            Input::Shutdown { .. } => "shutdown",
            Input::KickWithReason { .. } => "kick-reason",
            Input::BroadcastTo { .. } => "broadcast-to",
        }
    }

    /// Its arguments, in the order of its recording line ([`Arg`]);
    /// payloads are shared, not copied.
    pub fn args(&self) -> Args {
        use Arg as A;
        match self {
            Input::Accept { peer } => smallvec![A::Peer(*peer)],
            Input::Received { id, data } | Input::Send { id, data } => {
                smallvec![A::Id(*id), A::Payload(data.clone())]
            }
            Input::Broadcast { data } => smallvec![A::Payload(data.clone())],
            Input::BroadcastTo { ids, data } => {
                smallvec![A::Ids(ids.clone()), A::Payload(data.clone())]
            }
            Input::IoError { id, kind } => smallvec![A::Id(*id), A::ErrorKind(*kind)],
            Input::Written { id, n } => smallvec![A::Id(*id), A::Count(*n)],
            Input::Kick { id, mode, code } => smallvec![A::Id(*id), A::Mode(*mode), A::Code(*code)],
            Input::KickWithReason { id, mode, reason } => {
                smallvec![A::Id(*id), A::Mode(*mode), A::Reason(*reason)]
            }
            Input::PeerEof { id }
            | Input::Attach { id }
            | Input::Detach { id }
            | Input::Closed { id }
            | Input::KickDefault { id }
            | Input::Authenticate { id } => smallvec![A::Id(*id)],
            Input::Timeout => SmallVec::new(),
            Input::Shutdown { grace } => smallvec![A::Duration(*grace)],
        }
    }

    /// The kinds of the arguments of the input named `name`
    /// ([`Input::name`]), in order; `None` for no input of that name.
    pub fn signature(name: &str) -> Option<&'static [ArgKind]> {
        use ArgKind as K;
        Some(match name {
            "accept" => &[K::Peer],
            "received" | "send" => &[K::Id, K::Payload],
            "broadcast" => &[K::Payload],
            "broadcast-to" => &[K::Ids, K::Payload],
            "io-error" => &[K::Id, K::ErrorKind],
            "written" => &[K::Id, K::Count],
            "kick" => &[K::Id, K::Mode, K::Code],
            "kick-reason" => &[K::Id, K::Mode, K::Reason],
            "eof" | "attach" | "detach" | "closed" | "kick-default" | "auth" => &[K::Id],
            "timeout" => &[],
            "shutdown" => &[K::Duration],
            _ => return None,
        })
    }

    /// The input named `name` with these arguments (the inverse of
    /// [`Input::name`] and [`Input::args`]); `None` if there is no such
    /// input or the arguments are not its own.
    pub fn from_args(name: &str, args: impl IntoIterator<Item = Arg>) -> Option<Input> {
        use Arg as A;
        let mut args = args.into_iter();
        let input = match (name, args.next(), args.next(), args.next()) {
            ("accept", Some(A::Peer(peer)), None, None) => Input::Accept { peer },
            ("received", Some(A::Id(id)), Some(A::Payload(data)), None) => {
                Input::Received { id, data }
            }
            ("send", Some(A::Id(id)), Some(A::Payload(data)), None) => Input::Send { id, data },
            ("broadcast", Some(A::Payload(data)), None, None) => Input::Broadcast { data },
            ("broadcast-to", Some(A::Ids(ids)), Some(A::Payload(data)), None) => {
                Input::BroadcastTo { ids, data }
            }
            ("io-error", Some(A::Id(id)), Some(A::ErrorKind(kind)), None) => {
                Input::IoError { id, kind }
            }
            ("written", Some(A::Id(id)), Some(A::Count(n)), None) => Input::Written { id, n },
            ("kick", Some(A::Id(id)), Some(A::Mode(mode)), Some(A::Code(code))) => {
                Input::Kick { id, mode, code }
            }
            ("kick-reason", Some(A::Id(id)), Some(A::Mode(mode)), Some(A::Reason(reason))) => {
                Input::KickWithReason { id, mode, reason }
            }
            ("eof", Some(A::Id(id)), None, None) => Input::PeerEof { id },
            ("attach", Some(A::Id(id)), None, None) => Input::Attach { id },
            ("detach", Some(A::Id(id)), None, None) => Input::Detach { id },
            ("closed", Some(A::Id(id)), None, None) => Input::Closed { id },
            ("kick-default", Some(A::Id(id)), None, None) => Input::KickDefault { id },
            ("auth", Some(A::Id(id)), None, None) => Input::Authenticate { id },
            ("timeout", None, None, None) => Input::Timeout,
            ("shutdown", Some(A::Duration(grace)), None, None) => Input::Shutdown { grace },
            _ => return None,
        };
        args.next().is_none().then_some(input)
    }

    /// The one channel this input is about, if any ([`Input::BroadcastTo`]
    /// names several: see [`channels`](Input::channels)).
    pub fn channel(&self) -> Option<ChannelId> {
        match self {
            Input::BroadcastTo { .. } => None,
            _ => self.channels().first().copied(),
        }
    }

    /// Every channel this input names, in order.
    pub fn channels(&self) -> &[ChannelId] {
        match self {
            Input::BroadcastTo { ids, .. } => ids,
            Input::Received { id, .. }
            | Input::PeerEof { id }
            | Input::IoError { id, .. }
            | Input::Written { id, .. }
            | Input::Send { id, .. }
            | Input::Kick { id, .. }
            | Input::KickDefault { id }
            | Input::KickWithReason { id, .. }
            | Input::Authenticate { id }
            | Input::Attach { id }
            | Input::Detach { id }
            | Input::Closed { id } => std::slice::from_ref(id),
            Input::Accept { .. }
            | Input::Broadcast { .. }
            | Input::Timeout
            | Input::Shutdown { .. } => &[],
        }
    }

    /// Every channel this input names, to change (e.g. to map a
    /// recording's ids onto a replay's).
    pub fn channels_mut(&mut self) -> &mut [ChannelId] {
        match self {
            Input::BroadcastTo { ids, .. } => ids,
            Input::Received { id, .. }
            | Input::PeerEof { id }
            | Input::IoError { id, .. }
            | Input::Written { id, .. }
            | Input::Send { id, .. }
            | Input::Kick { id, .. }
            | Input::KickDefault { id }
            | Input::KickWithReason { id, .. }
            | Input::Authenticate { id }
            | Input::Attach { id }
            | Input::Detach { id }
            | Input::Closed { id } => std::slice::from_mut(id),
            Input::Accept { .. }
            | Input::Broadcast { .. }
            | Input::Timeout
            | Input::Shutdown { .. } => &mut [],
        }
    }

    /// The bytes this input carries, if any (received, sent or broadcast).
    pub fn payload(&self) -> Option<&Bytes> {
        match self {
            Input::Received { data, .. }
            | Input::Send { data, .. }
            | Input::Broadcast { data }
            | Input::BroadcastTo { data, .. } => Some(data),
            Input::Accept { .. }
            | Input::PeerEof { .. }
            | Input::IoError { .. }
            | Input::Written { .. }
            | Input::Kick { .. }
            | Input::KickDefault { .. }
            | Input::KickWithReason { .. }
            | Input::Authenticate { .. }
            | Input::Attach { .. }
            | Input::Detach { .. }
            | Input::Closed { .. }
            | Input::Timeout
            | Input::Shutdown { .. } => None,
        }
    }
}
