//! The transition table as data: [`TRANSITIONS`], rendered by [`markdown`]
//! into the module documentation. A test drives every (state, trigger)
//! pair through a hub and checks the outcome against its row, and checks
//! the documentation against [`markdown`], so neither can drift.

use std::fmt::Write as _;

/// A state of one of the two machines: a channel's, or the hub's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Channel: usable, both directions open.
    Open,
    /// Channel: the peer sent EOF, half-close is allowed; the app may send.
    HalfClosed,
    /// Channel: graceful close under way (flush, FIN, wait for the peer).
    Closing,
    /// Channel: done on the wire, in the offline queue, waiting for its
    /// holders to let go and the adapter to confirm the close.
    Offline,
    /// Channel: released; its id is stale for good.
    Released,
    /// Hub: accepting connections.
    Accepting,
    /// Hub: at the channel limit; accepting is paused.
    Paused,
    /// Hub: shutting down; every channel is closing.
    Draining,
    /// Hub: shutdown complete; every channel is released.
    Stopped,
}

impl State {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            State::Open => "Open",
            State::HalfClosed => "HalfClosed",
            State::Closing => "Closing",
            State::Offline => "Offline",
            State::Released => "Released",
            State::Accepting => "Accepting",
            State::Paused => "Paused",
            State::Draining => "Draining",
            State::Stopped => "Stopped",
        }
    }

    /// Whether this is a state of the hub-level machine.
    pub fn is_hub(self) -> bool {
        matches!(
            self,
            State::Accepting | State::Paused | State::Draining | State::Stopped
        )
    }
}

/// What happens: a hub input, or one of its deadlines coming due in
/// [`Hub::handle_timeout`](crate::Hub::handle_timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trigger {
    /// [`Hub::accept`](crate::Hub::accept).
    Accept,
    /// [`Hub::handle_received`](crate::Hub::handle_received) with bytes.
    Received,
    /// [`Hub::handle_peer_eof`](crate::Hub::handle_peer_eof).
    PeerEof,
    /// [`Hub::handle_io_error`](crate::Hub::handle_io_error).
    IoError,
    /// [`Hub::send`](crate::Hub::send) (and each channel of a broadcast).
    Send,
    /// [`Hub::handle_written`](crate::Hub::handle_written).
    Written,
    /// A graceful kick: [`Hub::kick`](crate::Hub::kick),
    /// [`Hub::kick_with_reason`](crate::Hub::kick_with_reason), or
    /// [`Hub::kick_default`](crate::Hub::kick_default) when the default is
    /// graceful.
    KickGraceful,
    /// An abortive kick (the same three methods).
    KickAbort,
    /// [`Hub::authenticate`](crate::Hub::authenticate).
    Authenticate,
    /// [`Hub::attach`](crate::Hub::attach).
    Attach,
    /// [`Hub::detach`](crate::Hub::detach).
    Detach,
    /// [`Hub::handle_closed`](crate::Hub::handle_closed).
    Closed,
    /// [`Hub::shutdown`](crate::Hub::shutdown).
    Shutdown,
    /// The login deadline ([`Config::login_timeout`](crate::Config::login_timeout)).
    LoginDue,
    /// The idle deadline ([`Config::idle_timeout`](crate::Config::idle_timeout)).
    IdleDue,
    /// The stall deadline ([`Config::stall_timeout`](crate::Config::stall_timeout)).
    StallDue,
    /// The flush deadline ([`Config::flush_timeout`](crate::Config::flush_timeout)).
    FlushDue,
    /// The overdue-holder deadline
    /// ([`Config::holder_overdue_after`](crate::Config::holder_overdue_after)).
    OverdueDue,
    /// The shutdown's grace deadline.
    GraceDue,
    /// Any call that names a released channel's id.
    AnyCall,
}

impl Trigger {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Accept => "accept",
            Trigger::Received => "received",
            Trigger::PeerEof => "peer EOF",
            Trigger::IoError => "I/O error",
            Trigger::Send => "send",
            Trigger::Written => "written(n)",
            Trigger::KickGraceful => "kick graceful",
            Trigger::KickAbort => "kick abort",
            Trigger::Authenticate => "authenticate",
            Trigger::Attach => "attach",
            Trigger::Detach => "detach",
            Trigger::Closed => "closed",
            Trigger::Shutdown => "shutdown",
            Trigger::LoginDue => "login due",
            Trigger::IdleDue => "idle due",
            Trigger::StallDue => "stall due",
            Trigger::FlushDue => "flush due",
            Trigger::OverdueDue => "overdue due",
            Trigger::GraceDue => "grace due",
            Trigger::AnyCall => "any call",
        }
    }
}

/// A condition a row needs besides its state and trigger. A row applies
/// when all of its conditions hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cond {
    /// Nothing is queued for the channel.
    QueueEmpty,
    /// Bytes are queued for the channel.
    BytesQueued,
    /// The channel is backpressured.
    Backpressured,
    /// The channel is not backpressured.
    NotBackpressured,
    /// The peer's EOF was seen.
    PeerEofSeen,
    /// The peer's EOF was not seen.
    PeerEofNotSeen,
    /// [`HalfClosePolicy::Allow`](crate::HalfClosePolicy::Allow).
    HalfCloseAllowed,
    /// [`HalfClosePolicy::Disallow`](crate::HalfClosePolicy::Disallow).
    HalfCloseDisallowed,
    /// [`Config::default_kick`](crate::Config::default_kick) is graceful.
    DefaultGraceful,
    /// [`Config::default_kick`](crate::Config::default_kick) is abort.
    DefaultAbort,
    /// The send fits: `charge + len + overhead <= queue_limit`.
    Fits,
    /// The send would take the charge over the limit, though it fits alone.
    OverLimit,
    /// `len + overhead > queue_limit`: it could never fit.
    TooLarge,
    /// [`OverflowPolicy::Reject`](crate::OverflowPolicy::Reject).
    RejectPolicy,
    /// [`OverflowPolicy::KickSlowConsumer`](crate::OverflowPolicy::KickSlowConsumer).
    KickPolicy,
    /// `n` is every byte queued (0 with nothing queued).
    WritesAll,
    /// `0 < n <` the bytes queued.
    WritesPart,
    /// `n >` the bytes queued.
    WritesTooMuch,
    /// No holder is attached.
    NoHolder,
    /// At least one holder is attached.
    HolderAttached,
    /// Exactly one holder is attached.
    LastHolder,
    /// More than one holder is attached.
    OtherHoldersLeft,
    /// The hub asked for the socket to be closed (`CloseSocket`).
    CloseRequested,
    /// The hub has not asked for the socket to be closed.
    CloseNotRequested,
    /// Fewer than `max_channels` channels are alive.
    RoomLeft,
    /// `max_channels` channels are alive.
    AtLimit,
    /// The new channel leaves room below `max_channels`.
    BelowLimit,
    /// The new channel reaches `max_channels`.
    ReachesLimit,
    /// After the release, more channels are alive than the resume mark.
    AboveResumeMark,
    /// After the release, at most the resume mark are alive.
    AtResumeMark,
    /// Channels are alive.
    ChannelsAlive,
    /// No channel is alive.
    NoChannel,
    /// The release leaves other channels alive.
    OthersLeft,
    /// The release is of the last channel alive.
    LastChannel,
}

impl Cond {
    /// How the table says it.
    pub fn text(self) -> &'static str {
        match self {
            Cond::QueueEmpty => "queue empty",
            Cond::BytesQueued => "bytes queued",
            Cond::Backpressured => "backpressured",
            Cond::NotBackpressured => "not backpressured",
            Cond::PeerEofSeen => "peer EOF seen",
            Cond::PeerEofNotSeen => "no peer EOF yet",
            Cond::HalfCloseAllowed => "half-close allowed",
            Cond::HalfCloseDisallowed => "half-close disallowed",
            Cond::DefaultGraceful => "default kick graceful",
            Cond::DefaultAbort => "default kick abort",
            Cond::Fits => "fits",
            Cond::OverLimit => "over the limit",
            Cond::TooLarge => "too large",
            Cond::RejectPolicy => "overflow: reject",
            Cond::KickPolicy => "overflow: kick",
            Cond::WritesAll => "n = queued",
            Cond::WritesPart => "0 < n < queued",
            Cond::WritesTooMuch => "n > queued",
            Cond::NoHolder => "no holder",
            Cond::HolderAttached => "a holder attached",
            Cond::LastHolder => "the last holder",
            Cond::OtherHoldersLeft => "other holders left",
            Cond::CloseRequested => "close requested",
            Cond::CloseNotRequested => "close not requested",
            Cond::RoomLeft => "below the limit",
            Cond::AtLimit => "at the limit",
            Cond::BelowLimit => "below the limit after",
            Cond::ReachesLimit => "reaches the limit",
            Cond::AboveResumeMark => "above the resume mark after",
            Cond::AtResumeMark => "at or below the resume mark after",
            Cond::ChannelsAlive => "channels alive",
            Cond::NoChannel => "no channel",
            Cond::OthersLeft => "others left",
            Cond::LastChannel => "the last channel",
        }
    }
}

/// One output of a row, or the error the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Emit {
    /// [`Event::Opened`](crate::Event::Opened).
    Opened,
    /// [`Event::Received`](crate::Event::Received).
    Received,
    /// [`Event::ReadClosed`](crate::Event::ReadClosed).
    ReadClosed,
    /// [`Event::Writable`](crate::Event::Writable).
    Writable,
    /// [`Event::Disconnected`](crate::Event::Disconnected) with the reason of
    /// this [name](crate::DisconnectReason::name), or (`None`) the reason
    /// the input carries: the kick's, or the I/O error's.
    Disconnected(Option<&'static str>),
    /// [`Event::HolderOverdue`](crate::Event::HolderOverdue).
    HolderOverdue,
    /// [`Event::Released`](crate::Event::Released).
    Released,
    /// [`Event::ShutdownComplete`](crate::Event::ShutdownComplete).
    ShutdownComplete,
    /// [`Action::Transmit`](crate::Action::Transmit).
    Transmit,
    /// [`Action::Shutdown`](crate::Action::Shutdown) with
    /// [`ShutdownHow::Write`](crate::ShutdownHow::Write): our FIN.
    ShutdownWrite,
    /// [`Action::Shutdown`](crate::Action::Shutdown) with
    /// [`ShutdownHow::Both`](crate::ShutdownHow::Both): done on the wire,
    /// holders let go.
    ShutdownBoth,
    /// [`Action::Abort`](crate::Action::Abort): RST.
    Abort,
    /// [`Action::CloseSocket`](crate::Action::CloseSocket).
    CloseSocket,
    /// [`Action::CloseSocket`](crate::Action::CloseSocket) if no holder is
    /// attached (else it follows the last detach).
    CloseSocketIfNoHolder,
    /// [`Action::PauseAccept`](crate::Action::PauseAccept).
    PauseAccept,
    /// [`Action::ResumeAccept`](crate::Action::ResumeAccept).
    ResumeAccept,
    /// The call fails with the error variant of this name.
    Error(&'static str),
}

impl Emit {
    fn render(self) -> String {
        match self {
            Emit::Disconnected(Some(reason)) => format!("`Disconnected({reason})`"),
            Emit::Disconnected(None) => "`Disconnected(its reason)`".to_owned(),
            Emit::CloseSocketIfNoHolder => "`CloseSocket`¹".to_owned(),
            Emit::Error(name) => format!("error `{name}`"),
            other => format!("`{other:?}`"),
        }
    }
}

/// One transition: in `from`, on `on`, when every condition of `when`
/// holds, the machine moves to `to` (`None`: stays) and emits `emits`, in
/// order (actions and events are separate queues; each keeps this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Row {
    /// The states it applies in.
    pub from: &'static [State],
    /// What happens.
    pub on: Trigger,
    /// The conditions it needs.
    pub when: &'static [Cond],
    /// The next state; `None`: unchanged.
    pub to: Option<State>,
    /// What it emits (for a channel row, about that channel; for a hub row,
    /// the hub-level outputs and the accepted channel's `Opened`).
    pub emits: &'static [Emit],
    /// What else changes.
    pub note: &'static str,
    /// The invariants of docs/design.md §4 it serves.
    pub invariants: &'static [u8],
}

/// Renders [`TRANSITIONS`] as the Markdown table of the module docs.
pub fn markdown() -> String {
    let mut out = String::from(
        "| from | on | when | to | emits | also | inv. |\n|---|---|---|---|---|---|---|\n",
    );
    for row in TRANSITIONS {
        let from: Vec<_> = row.from.iter().map(|s| s.name()).collect();
        let when: Vec<_> = row.when.iter().map(|c| c.text()).collect();
        let emits: Vec<_> = row.emits.iter().map(|e| e.render()).collect();
        let inv: Vec<_> = row.invariants.iter().map(u8::to_string).collect();
        let dash = |s: String| if s.is_empty() { "—".to_owned() } else { s };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            from.join(", "),
            row.on.name(),
            dash(when.join(", ")),
            row.to.map_or("same", State::name),
            dash(emits.join(", ")),
            dash(row.note.to_owned()),
            dash(inv.join(", ")),
        );
    }
    out
}

use Cond::*;
use Emit::{
    Abort, CloseSocket, CloseSocketIfNoHolder, Disconnected, HolderOverdue, Opened, PauseAccept,
    ReadClosed, ResumeAccept, ShutdownBoth, ShutdownComplete, ShutdownWrite, Transmit, Writable,
};
use State::{Accepting, Closing, Draining, HalfClosed, Offline, Open, Paused, Released, Stopped};
use Trigger::*;

const USABLE: &[State] = &[Open, HalfClosed];
const ALIVE: &[State] = &[Open, HalfClosed, Closing, Offline];
const NOT_OFFLINE: &[State] = &[Open, HalfClosed, Closing];

const fn row(
    from: &'static [State],
    on: Trigger,
    when: &'static [Cond],
    to: Option<State>,
    emits: &'static [Emit],
    note: &'static str,
    invariants: &'static [u8],
) -> Row {
    Row {
        from,
        on,
        when,
        to,
        emits,
        note,
        invariants,
    }
}

const fn err(name: &'static str) -> Emit {
    Emit::Error(name)
}

/// Every transition of both machines. Rows of one state and trigger have
/// conditions that exclude each other; every case the hub can be in is
/// covered by exactly one row (the test `every_transition_is_in_the_table`
/// drives them all).
#[rustfmt::skip]
pub const TRANSITIONS: &[Row] = &[
    // ----- the channel machine: usable states ----------------------------
    row(USABLE, Received, &[PeerEofNotSeen], None, &[Emit::Received], "idle timer restarts", &[2]),
    row(&[HalfClosed], Received, &[PeerEofSeen], None, &[err("AfterEof")], "counted", &[]),
    row(&[Open], PeerEof, &[HalfCloseAllowed], Some(HalfClosed), &[ReadClosed], "", &[1]),
    row(&[Open], PeerEof, &[HalfCloseDisallowed, BytesQueued], Some(Closing), &[Disconnected(Some("peer-closed"))], "the queue is still flushed", &[1, 3]),
    row(&[Open], PeerEof, &[HalfCloseDisallowed, QueueEmpty], Some(Offline), &[Disconnected(Some("peer-closed")), ShutdownBoth, CloseSocketIfNoHolder], "", &[1, 5]),
    row(&[HalfClosed], PeerEof, &[], None, &[err("AfterEof")], "counted", &[]),
    row(USABLE, IoError, &[], Some(Offline), &[Disconnected(None), ShutdownBoth, CloseSocketIfNoHolder], "queue dropped, counted", &[1, 5]),
    row(USABLE, Send, &[Fits], None, &[Transmit], "charge += len + overhead; backpressured at the high mark", &[4, 8]),
    row(USABLE, Send, &[OverLimit, RejectPolicy], None, &[err("QueueFull")], "backpressured", &[8]),
    row(USABLE, Send, &[OverLimit, KickPolicy], Some(Offline), &[err("QueueFull"), Disconnected(Some("slow-consumer")), Abort, CloseSocketIfNoHolder], "queue dropped, counted", &[1, 5, 8]),
    row(USABLE, Send, &[TooLarge], None, &[err("TooLarge")], "", &[8]),
    row(USABLE, Written, &[WritesAll, Backpressured], None, &[Writable], "charge 0", &[2, 8]),
    row(USABLE, Written, &[WritesAll, NotBackpressured], None, &[], "charge 0; stall deadline off", &[8]),
    row(USABLE, Written, &[WritesPart], None, &[], "charge −= n; stall deadline later; `Writable` once at the low mark", &[7, 8]),
    row(ALIVE, Written, &[WritesTooMuch], None, &[err("OverWritten")], "counted", &[4]),
    row(&[Open], KickGraceful, &[QueueEmpty], Some(Closing), &[Disconnected(None), ShutdownWrite], "flush deadline armed", &[1, 3]),
    row(USABLE, KickGraceful, &[BytesQueued], Some(Closing), &[Disconnected(None)], "flush deadline armed; FIN once flushed", &[1, 3]),
    row(&[HalfClosed], KickGraceful, &[QueueEmpty], Some(Offline), &[Disconnected(None), ShutdownBoth, CloseSocketIfNoHolder], "both directions done", &[1, 3, 5]),
    row(USABLE, KickAbort, &[], Some(Offline), &[Disconnected(None), Abort, CloseSocketIfNoHolder], "queue dropped, counted", &[1, 3, 5]),
    row(USABLE, Authenticate, &[], None, &[], "login deadline off", &[]),
    row(USABLE, Shutdown, &[BytesQueued], Some(Closing), &[Disconnected(Some("server-shutdown"))], "as a graceful kick", &[1, 3]),
    row(&[Open], Shutdown, &[QueueEmpty], Some(Closing), &[Disconnected(Some("server-shutdown")), ShutdownWrite], "as a graceful kick", &[1, 3]),
    row(&[HalfClosed], Shutdown, &[QueueEmpty], Some(Offline), &[Disconnected(Some("server-shutdown")), ShutdownBoth, CloseSocketIfNoHolder], "as a graceful kick", &[1, 3, 5]),
    row(&[Open], LoginDue, &[DefaultGraceful, QueueEmpty], Some(Closing), &[Disconnected(Some("login-timeout")), ShutdownWrite], "as a kick in the default mode", &[1, 3, 7]),
    row(USABLE, LoginDue, &[DefaultGraceful, BytesQueued], Some(Closing), &[Disconnected(Some("login-timeout"))], "as a kick in the default mode", &[1, 3, 7]),
    row(&[HalfClosed], LoginDue, &[DefaultGraceful, QueueEmpty], Some(Offline), &[Disconnected(Some("login-timeout")), ShutdownBoth, CloseSocketIfNoHolder], "as a kick in the default mode", &[1, 3, 7]),
    row(USABLE, LoginDue, &[DefaultAbort], Some(Offline), &[Disconnected(Some("login-timeout")), Abort, CloseSocketIfNoHolder], "as a kick in the default mode", &[1, 3, 7]),
    row(&[Open], IdleDue, &[DefaultGraceful, QueueEmpty], Some(Closing), &[Disconnected(Some("idle-timeout")), ShutdownWrite], "as a kick in the default mode", &[1, 3, 7]),
    row(USABLE, IdleDue, &[DefaultGraceful, BytesQueued], Some(Closing), &[Disconnected(Some("idle-timeout"))], "as a kick in the default mode", &[1, 3, 7]),
    row(&[HalfClosed], IdleDue, &[DefaultGraceful, QueueEmpty], Some(Offline), &[Disconnected(Some("idle-timeout")), ShutdownBoth, CloseSocketIfNoHolder], "as a kick in the default mode", &[1, 3, 7]),
    row(USABLE, IdleDue, &[DefaultAbort], Some(Offline), &[Disconnected(Some("idle-timeout")), Abort, CloseSocketIfNoHolder], "as a kick in the default mode", &[1, 3, 7]),
    row(USABLE, StallDue, &[BytesQueued], Some(Offline), &[Disconnected(Some("slow-consumer")), Abort, CloseSocketIfNoHolder], "queue dropped, counted; wins over login and idle", &[1, 5, 7]),
    // ----- the channel machine: closing ----------------------------------
    row(&[Closing, Offline], Received, &[PeerEofNotSeen], None, &[], "bytes discarded, counted", &[2]),
    row(&[Closing, Offline], Received, &[PeerEofSeen], None, &[err("AfterEof")], "counted", &[]),
    row(&[Closing], PeerEof, &[PeerEofNotSeen, QueueEmpty], Some(Offline), &[ShutdownBoth, CloseSocketIfNoHolder], "our FIN was sent: both directions done", &[5]),
    row(&[Closing], PeerEof, &[PeerEofNotSeen, BytesQueued], None, &[], "offline once flushed", &[]),
    row(&[Offline], PeerEof, &[PeerEofNotSeen], None, &[], "noted", &[]),
    row(&[Closing, Offline], PeerEof, &[PeerEofSeen], None, &[err("AfterEof")], "counted", &[]),
    row(&[Closing], IoError, &[], Some(Offline), &[ShutdownBoth, CloseSocketIfNoHolder], "queue dropped, counted; no second `Disconnected`", &[1, 5]),
    row(&[Offline], IoError, &[], None, &[], "ignored: holders see errors as they leave", &[]),
    row(&[Closing, Offline], Send, &[], None, &[err("NotUsable")], "", &[4]),
    row(&[Closing], Written, &[WritesAll, BytesQueued, PeerEofNotSeen], None, &[ShutdownWrite], "flushed: FIN", &[3, 4]),
    row(&[Closing], Written, &[WritesAll, BytesQueued, PeerEofSeen], Some(Offline), &[ShutdownBoth, CloseSocketIfNoHolder], "flushed, and the peer is done", &[3, 5]),
    row(&[Closing, Offline], Written, &[WritesAll, QueueEmpty], None, &[], "`n` = 0: nothing", &[]),
    row(&[Closing], Written, &[WritesPart], None, &[], "", &[]),
    row(&[Closing, Offline], KickGraceful, &[], None, &[err("AlreadyClosing")], "idempotent", &[1]),
    row(&[Closing], KickAbort, &[], Some(Offline), &[Abort, CloseSocketIfNoHolder], "escalation; queue dropped, counted", &[3, 5]),
    row(&[Offline], KickAbort, &[], None, &[err("AlreadyClosing")], "idempotent", &[1]),
    row(&[Closing, Offline], Authenticate, &[], None, &[], "nothing to do", &[]),
    row(&[Closing, Offline], Shutdown, &[], None, &[], "already ending", &[]),
    row(&[Closing], FlushDue, &[], Some(Offline), &[Abort, CloseSocketIfNoHolder], "queue dropped, counted", &[3, 5, 7]),
    row(&[Closing], GraceDue, &[], Some(Offline), &[Abort, CloseSocketIfNoHolder], "queue dropped, counted", &[3, 5, 7]),
    // ----- the channel machine: holders and release ----------------------
    row(NOT_OFFLINE, Attach, &[], None, &[], "holders + 1", &[5]),
    row(&[Offline], Attach, &[], None, &[err("AttachOffline")], "counted", &[5]),
    row(NOT_OFFLINE, Detach, &[HolderAttached], None, &[], "holders − 1", &[5]),
    row(ALIVE, Detach, &[NoHolder], None, &[err("NotAttached")], "counted", &[5]),
    row(&[Offline], Detach, &[LastHolder], None, &[CloseSocket], "", &[5, 11]),
    row(&[Offline], Detach, &[OtherHoldersLeft], None, &[], "holders − 1", &[5]),
    row(ALIVE, Closed, &[CloseNotRequested], None, &[err("CloseNotRequested")], "counted", &[5, 6]),
    row(&[Offline], Closed, &[CloseRequested], Some(Released), &[Emit::Released], "slot freed; the hub may resume accepting", &[6, 11]),
    row(&[Offline], OverdueDue, &[HolderAttached], None, &[HolderOverdue], "once; the socket stays open", &[5, 7]),
    row(&[Offline], GraceDue, &[], None, &[], "", &[]),
    row(&[Released], AnyCall, &[], None, &[err("Stale")], "counted in `stale_calls`", &[6]),
    // ----- the hub machine -----------------------------------------------
    row(&[Accepting], Accept, &[BelowLimit], None, &[Opened], "a new channel, Open", &[1, 12]),
    row(&[Accepting], Accept, &[ReachesLimit], Some(Paused), &[Opened, PauseAccept], "a new channel, Open", &[1, 12]),
    row(&[Paused], Accept, &[RoomLeft], None, &[Opened], "one the adapter accepted before it paused", &[1, 12]),
    row(&[Paused], Accept, &[AtLimit], None, &[err("LimitReached")], "refused, counted", &[1, 12]),
    row(&[Draining, Stopped], Accept, &[], None, &[err("ShuttingDown")], "refused, counted", &[1]),
    row(&[Accepting], Closed, &[], None, &[], "a channel released", &[6]),
    row(&[Paused], Closed, &[AboveResumeMark], None, &[], "a channel released", &[12]),
    row(&[Paused], Closed, &[AtResumeMark], Some(Accepting), &[ResumeAccept], "a channel released", &[12]),
    row(&[Draining], Closed, &[OthersLeft], None, &[], "a channel released", &[]),
    row(&[Draining], Closed, &[LastChannel], Some(Stopped), &[ShutdownComplete], "grace deadline moot", &[11]),
    row(&[Accepting], Shutdown, &[ChannelsAlive], Some(Draining), &[PauseAccept], "every usable channel kicked gracefully", &[1, 3]),
    row(&[Accepting], Shutdown, &[NoChannel], Some(Stopped), &[PauseAccept, ShutdownComplete], "", &[]),
    row(&[Paused], Shutdown, &[], Some(Draining), &[], "every usable channel kicked gracefully", &[1, 3]),
    row(&[Draining, Stopped], Shutdown, &[], None, &[], "idempotent: the first grace period stands", &[]),
    row(&[Draining], GraceDue, &[], None, &[], "every closing channel aborted", &[3, 7]),
    row(&[Stopped], GraceDue, &[], None, &[], "moot: `poll_timeout` is `None`", &[7]),
];
