//! Every state transition of a channel, in one place.
//!
//! States only move down this table's columns (invariant: monotonic); a cell
//! names what the input does and what it emits. `D(r)` is
//! `Event::Disconnected{reason: r}`, emitted once per channel (invariant 1).
//!
//! | input \ state    | Open                                   | HalfClosed                  | Closing (graceful)                       | Offline                         |
//! |------------------|----------------------------------------|-----------------------------|------------------------------------------|---------------------------------|
//! | received         | `Received`, idle timer reset           | error `AfterEof`            | discarded, counted (inv. 2)              | discarded, counted              |
//! | peer EOF         | Allow: → HalfClosed, `ReadClosed`; Disallow: `D(PeerClosed)`, → Closing | error `AfterEof` | FIN sent: → Offline; else noted | noted                   |
//! | I/O error        | `D(from_io)`, drop queue, → Offline    | same                        | drop queue, → Offline                    | ignored                         |
//! | send             | `Transmit`, charge += len + overhead; over limit: overflow policy (inv. 8) | same | error `NotUsable` (inv. 4)   | error `NotUsable`               |
//! | written(n)       | queue, charge −= n; n > 0 pushes the stall deadline back; `Writable` at low mark | same | queue −= n; flushed: FIN / → Offline | error if n > 0   |
//! | kick graceful    | `D(r)`, → Closing, FIN if flushed (inv. 3) | same                    | error `AlreadyClosing`                   | error `AlreadyClosing`          |
//! | kick abort       | `D(r)`, `Abort`, → Offline (inv. 3)    | same                        | `Abort`, → Offline (escalation)          | error `AlreadyClosing`          |
//! | idle/login due   | kick (default mode), `D(IdleTimeout/LoginTimeout)` | same            | —                                        | —                               |
//! | stall deadline   | `D(SlowConsumer)`, `Abort`, queue dropped and counted, → Offline (inv. 5, 7) | same | — (flush deadline governs) | —                      |
//! | flush deadline   | —                                      | —                           | `Abort`, → Offline (inv. 3)              | —                               |
//! | attach           | holders + 1                            | same                        | same                                     | error `Offline`                 |
//! | detach           | holders − 1                            | same                        | same                                     | holders − 1; at 0: `CloseSocket` (inv. 5) |
//! | overdue deadline | —                                      | —                           | —                                        | `HolderOverdue` once            |
//! | closed confirmed | error `NotRequested`                   | same                        | same                                     | after `CloseSocket`: → Released (inv. 6) |
//!
//! The *charge* of a queue is its payload bytes plus `message_overhead` per
//! message queued since it was last empty; it drops by `n` on `written(n)`
//! and to 0 when the queue drains (message boundaries are unknown here, so
//! overhead is released only then). The limit and both watermarks compare
//! against it. The *stall deadline* of a usable channel is armed when its
//! queue goes from empty to non-empty, pushed back by every `written(n > 0)`
//! and disarmed when the queue drains or the channel stops being usable. When
//! several deadlines of a usable channel are due at once, the stall abort
//! wins over the login and idle kicks: it is the one that frees the queue now.
//!
//! Entering Offline emits `Shutdown(Both)` (unless aborted): it finishes the
//! wire and tells every holder to let go. `CloseSocket` follows as soon as no
//! holder is attached — never before (invariant 5).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::channel::Channel;
use crate::config::{Config, HalfClosePolicy, KickMode, OverflowPolicy};
use crate::error::{InputError, KickError, SendError};
use crate::id::ChannelId;
use crate::offline::OfflineQueue;
use crate::output::{Action, ChannelState, DisconnectReason, Event, ShutdownHow};
use crate::stats::Stats;
use crate::timers::{Kind, Timers};

/// Everything a transition may write to besides the channel itself.
#[derive(Debug, Default)]
pub(crate) struct Books {
    pub actions: VecDeque<Action>,
    pub events: VecDeque<Event>,
    pub stats: Stats,
    pub offline: OfflineQueue,
    /// Channels Open or HalfClosed.
    pub usable: usize,
    /// Usable channels with `backpressured` set (only usable channels ever
    /// have it set: `disconnect` clears it). Kept by `set_backpressured`
    /// and `disconnect` only; the checker compares it with a recount.
    pub backpressured: usize,
}

/// `t + d`, or `None` if that is past what `Instant` can hold (never due).
pub(crate) fn after(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

/// `t + d`, or the furthest instant we can represent when that overflows:
/// for deadlines that must exist (closing, shutdown) but were configured
/// beyond what `Instant` holds.
pub(crate) fn after_or_far(t: Instant, d: Duration) -> Instant {
    after(t, d)
        .or_else(|| after(t, Duration::from_secs(u32::MAX as u64)))
        .or_else(|| after(t, Duration::from_secs(u16::MAX as u64)))
        .unwrap_or(t)
}

/// Arms the channel's next deadline of each kind in the timer heap, but
/// only when it is *earlier* than the one already armed (or none is). A
/// later deadline — received bytes moving the idle deadline, write progress
/// moving the stall deadline, a drained queue or a state change that needs
/// none — leaves the armed entry in place: it fires early, finds nothing due
/// and re-arms then (see `Hub::handle_timeout`). So receiving costs no heap
/// push, and a channel adds O(1) entries per state change, never per message
/// (invariants 8, 11).
///
/// The stall deadline has its own entry (`Kind::Stall`): since the stall
/// clock only restarts at `now`, a new stall deadline is never earlier than
/// an armed one, so a channel pushes a stall entry only when it has none —
/// after the previous one fired or was settled — and keeps at most one in
/// the heap. The idle entry is never disturbed by the queue's traffic.
pub(crate) fn rearm(ch: &mut Channel, id: ChannelId, config: &Config, timers: &mut Timers) {
    for kind in [Kind::Lifecycle, Kind::Stall] {
        let Some(next) = ch.deadline_of(kind, config) else {
            continue;
        };
        let armed = ch.armed_mut(kind);
        if armed.is_none_or(|armed| next < armed) {
            *armed = Some(next);
            timers.push(next, id, kind);
        }
    }
}

pub(crate) fn received(
    ch: &mut Channel,
    id: ChannelId,
    data: Bytes,
    b: &mut Books,
    now: Instant,
) -> Result<(), InputError> {
    if ch.peer_eof {
        return Err(InputError::AfterEof {
            id,
            state: ch.state,
        });
    }
    if ch.state.is_usable() {
        ch.last_activity = now;
        b.stats.bytes_received += data.len() as u64;
        if !data.is_empty() {
            b.events.push_back(Event::Received { id, data });
        }
    } else {
        // Invariant 2: nothing reaches the app after `Disconnected`.
        b.stats.bytes_discarded += data.len() as u64;
    }
    Ok(())
}

pub(crate) fn peer_eof(
    ch: &mut Channel,
    id: ChannelId,
    b: &mut Books,
    config: &Config,
    now: Instant,
) -> Result<(), InputError> {
    if ch.peer_eof {
        return Err(InputError::AfterEof {
            id,
            state: ch.state,
        });
    }
    ch.peer_eof = true;
    match ch.state {
        ChannelState::Open => match config.half_close {
            HalfClosePolicy::Allow => {
                ch.state = ChannelState::HalfClosed;
                b.events.push_back(Event::ReadClosed { id });
            }
            HalfClosePolicy::Disallow => {
                // Flush what the app already queued; never drop it silently.
                disconnect(ch, id, DisconnectReason::PeerClosed, b);
                begin_graceful(ch, id, b, config, now);
            }
        },
        ChannelState::Closing => progress_close(ch, id, b, now),
        ChannelState::HalfClosed | ChannelState::Offline => {}
    }
    Ok(())
}

pub(crate) fn io_error(
    ch: &mut Channel,
    id: ChannelId,
    kind: std::io::ErrorKind,
    b: &mut Books,
    now: Instant,
) {
    match ch.state {
        ChannelState::Open | ChannelState::HalfClosed | ChannelState::Closing => {
            disconnect(ch, id, DisconnectReason::from_io(kind), b);
            drop_queue(ch, b);
            go_offline(ch, id, b, now);
        }
        // The socket is already finished; holders see errors as they leave.
        ChannelState::Offline => {}
    }
}

pub(crate) fn send(
    ch: &mut Channel,
    id: ChannelId,
    data: &Bytes,
    b: &mut Books,
    config: &Config,
    now: Instant,
) -> Result<(), SendError> {
    let len = data.len();
    let limit = config.queue_limit;
    // What this message adds to the charge (saturating: a `len` near
    // `usize::MAX` is just too large, never an overflow: invariant 10).
    let cost = len.saturating_add(config.message_overhead);
    let rejected = if !ch.state.is_usable() {
        // Invariant 4: nothing is transmitted after a kick.
        Some(SendError::NotUsable {
            id,
            state: ch.state,
        })
    } else if len == 0 {
        // Nothing to queue, nothing to charge.
        return Ok(());
    } else if cost > limit {
        Some(SendError::TooLarge { id, len, limit })
    } else if ch.charged + cost > limit {
        let kicked = config.overflow == OverflowPolicy::KickSlowConsumer;
        let err = SendError::QueueFull {
            id,
            queued: ch.queued,
            charged: ch.charged,
            len,
            limit,
            kicked,
        };
        if kicked {
            disconnect(ch, id, DisconnectReason::SlowConsumer, b);
            abort(ch, id, b, now);
        } else {
            set_backpressured(ch, b, true);
        }
        Some(err)
    } else {
        None
    };
    if let Some(err) = rejected {
        b.stats.sends_rejected += 1;
        return Err(err);
    }
    if ch.queued == 0 {
        // The queue goes from empty to non-empty: the stall clock starts
        // (invariant 7: its deadline is armed by `rearm` after this call).
        ch.stall_since = Some(now);
    }
    // Invariant 8: the charge (payload + overhead) never exceeds the limit,
    // so neither do the queued bytes.
    ch.queued += len;
    ch.charged += cost;
    b.stats.bytes_queued += len as u64;
    if ch.charged >= config.high_watermark {
        set_backpressured(ch, b, true);
    }
    b.actions.push_back(Action::Transmit {
        id,
        data: data.clone(),
    });
    Ok(())
}

pub(crate) fn written(
    ch: &mut Channel,
    id: ChannelId,
    n: usize,
    b: &mut Books,
    config: &Config,
    now: Instant,
) -> Result<(), InputError> {
    if n > ch.queued {
        return Err(InputError::OverWritten {
            id,
            state: ch.state,
            written: n,
            queued: ch.queued,
        });
    }
    ch.queued -= n;
    // Message boundaries are unknown here: overhead is released only when
    // the queue drains empty (conservative: the charge never undercounts).
    ch.charged = if ch.queued == 0 {
        0
    } else {
        ch.charged.saturating_sub(n)
    };
    b.stats.bytes_written += n as u64;
    if ch.queued == 0 {
        // Drained: no stall deadline (its heap entry, if any, is left to
        // fire early or be settled: see `rearm`).
        ch.stall_since = None;
    } else if n > 0 && ch.state.is_usable() {
        // Progress: the kernel took bytes, so the peer reads. The stall
        // deadline moves later (lazily: no heap push, see `rearm`).
        ch.stall_since = Some(now);
    }
    if ch.backpressured && ch.charged <= config.low_watermark {
        set_backpressured(ch, b, false);
        // Invariant 2: only usable channels are backpressured, so this is
        // never after `Disconnected`.
        b.events.push_back(Event::Writable { id });
    }
    if ch.state == ChannelState::Closing {
        progress_close(ch, id, b, now);
    }
    Ok(())
}

pub(crate) fn kick(
    ch: &mut Channel,
    id: ChannelId,
    mode: KickMode,
    reason: DisconnectReason,
    b: &mut Books,
    config: &Config,
    now: Instant,
) -> Result<(), KickError> {
    match (ch.state, mode) {
        (ChannelState::Open | ChannelState::HalfClosed, KickMode::Graceful) => {
            disconnect(ch, id, reason, b);
            begin_graceful(ch, id, b, config, now);
        }
        (ChannelState::Open | ChannelState::HalfClosed, KickMode::Abort) => {
            disconnect(ch, id, reason, b);
            abort(ch, id, b, now);
        }
        // Escalation: an abortive kick cuts a graceful close short.
        (ChannelState::Closing, KickMode::Abort) => abort(ch, id, b, now),
        (ChannelState::Closing | ChannelState::Offline, _) => {
            return Err(KickError::AlreadyClosing {
                id,
                state: ch.state,
            });
        }
    }
    Ok(())
}

/// The login deadline no longer applies. On a channel that is no longer
/// usable it has none anyway: nothing changes, nothing to reject.
pub(crate) fn authenticate(ch: &mut Channel) {
    if ch.state.is_usable() {
        ch.authenticated = true;
    }
}

pub(crate) fn attach(ch: &mut Channel, id: ChannelId) -> Result<(), InputError> {
    if ch.state == ChannelState::Offline {
        return Err(InputError::AttachOffline {
            id,
            state: ch.state,
        });
    }
    ch.holders = ch
        .holders
        .checked_add(1)
        .ok_or(InputError::TooManyHolders { id })?;
    Ok(())
}

pub(crate) fn detach(ch: &mut Channel, id: ChannelId, b: &mut Books) -> Result<(), InputError> {
    if ch.holders == 0 {
        return Err(InputError::NotAttached {
            id,
            state: ch.state,
        });
    }
    ch.holders -= 1;
    maybe_request_close(ch, id, b);
    Ok(())
}

/// A due deadline of this channel (stall, login, idle, flush, overdue
/// holder), or an early wake-up that finds nothing due and re-arms.
pub(crate) fn deadline(
    ch: &mut Channel,
    id: ChannelId,
    b: &mut Books,
    config: &Config,
    now: Instant,
) {
    let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
    match ch.state {
        ChannelState::Open | ChannelState::HalfClosed => {
            // Invariant 7: a non-empty queue with no write progress for
            // `stall_timeout` is a slow consumer. Abort, exactly like the
            // `KickSlowConsumer` overflow: RST now, the queue dropped and
            // counted (invariant 5). It wins over login and idle when due
            // together: it frees the queue now, a graceful kick would not.
            if ch.queued > 0 && due(ch.stall_deadline(config)) {
                disconnect(ch, id, DisconnectReason::SlowConsumer, b);
                abort(ch, id, b, now);
                return;
            }
            let login = config
                .login_timeout
                .filter(|_| !ch.authenticated)
                .and_then(|d| after(ch.opened_at, d));
            let idle = config.idle_timeout.and_then(|d| after(ch.last_activity, d));
            let reason = if due(login) {
                DisconnectReason::LoginTimeout
            } else if due(idle) {
                DisconnectReason::IdleTimeout
            } else {
                return; // activity or progress moved the deadline: re-arm
            };
            disconnect(ch, id, reason, b);
            match config.default_kick {
                KickMode::Graceful => begin_graceful(ch, id, b, config, now),
                KickMode::Abort => abort(ch, id, b, now),
            }
        }
        // Invariant 3: a graceful close that runs out escalates to RST.
        ChannelState::Closing if ch.closing_deadline <= now => abort(ch, id, b, now),
        ChannelState::Closing => {}
        ChannelState::Offline => {
            let overdue = after(ch.offline_since, config.holder_overdue_after);
            if ch.holders > 0 && !ch.overdue_reported && due(overdue) {
                ch.overdue_reported = true;
                b.stats.holders_overdue += 1;
                b.events.push_back(Event::HolderOverdue {
                    id,
                    holders: ch.holders,
                    waited: now.saturating_duration_since(ch.offline_since),
                });
            }
        }
    }
}

/// The server's shutdown deadline passed: abort what is still closing.
pub(crate) fn shutdown_deadline(ch: &mut Channel, id: ChannelId, b: &mut Books, now: Instant) {
    if ch.state == ChannelState::Closing {
        abort(ch, id, b, now);
    }
}

/// Emits `Disconnected` the first time a channel stops being usable.
fn disconnect(ch: &mut Channel, id: ChannelId, reason: DisconnectReason, b: &mut Books) {
    if ch.reason.is_some() {
        return; // invariant 1: exactly once
    }
    // Only usable channels are backpressured (`Hub::backpressured` counts
    // them) and have a stall deadline: both end here, whatever ended it.
    set_backpressured(ch, b, false);
    ch.stall_since = None;
    ch.reason = Some(reason);
    b.usable -= 1;
    b.stats.disconnected.count(reason);
    b.events.push_back(Event::Disconnected { id, reason });
}

fn begin_graceful(ch: &mut Channel, id: ChannelId, b: &mut Books, config: &Config, now: Instant) {
    ch.state = ChannelState::Closing;
    ch.closing_deadline = after_or_far(now, config.flush_timeout);
    progress_close(ch, id, b, now);
}

/// Moves a graceful close on: FIN once flushed (invariant 3), offline once
/// both directions are finished.
fn progress_close(ch: &mut Channel, id: ChannelId, b: &mut Books, now: Instant) {
    if ch.state != ChannelState::Closing || ch.queued > 0 {
        return;
    }
    if ch.peer_eof {
        go_offline(ch, id, b, now);
    } else if !ch.write_shut {
        ch.write_shut = true;
        b.actions.push_back(Action::Shutdown {
            id,
            how: ShutdownHow::Write,
        });
    }
}

fn drop_queue(ch: &mut Channel, b: &mut Books) {
    // Invariant 5: dropped bytes are counted, never silently lost.
    b.stats.bytes_dropped += ch.queued as u64;
    ch.queued = 0;
    ch.charged = 0;
    ch.stall_since = None;
    set_backpressured(ch, b, false);
}

/// Sets or clears `backpressured`, keeping `Books::backpressured` equal to
/// the number of channels with it set. Only a usable channel may gain it.
fn set_backpressured(ch: &mut Channel, b: &mut Books, on: bool) {
    if ch.backpressured == on || (on && ch.reason.is_some()) {
        return;
    }
    ch.backpressured = on;
    if on {
        b.backpressured += 1;
    } else {
        b.backpressured -= 1;
    }
}

fn abort(ch: &mut Channel, id: ChannelId, b: &mut Books, now: Instant) {
    drop_queue(ch, b);
    ch.aborted = true;
    b.actions.push_back(Action::Abort { id });
    go_offline(ch, id, b, now);
}

fn go_offline(ch: &mut Channel, id: ChannelId, b: &mut Books, now: Instant) {
    ch.state = ChannelState::Offline;
    ch.offline_since = now;
    if !ch.aborted {
        ch.write_shut = true;
        b.actions.push_back(Action::Shutdown {
            id,
            how: ShutdownHow::Both,
        });
    }
    b.offline.push(id, now);
    maybe_request_close(ch, id, b);
}

/// Invariant 5: `CloseSocket` once, and only when no holder is attached.
fn maybe_request_close(ch: &mut Channel, id: ChannelId, b: &mut Books) {
    if ch.state == ChannelState::Offline && ch.holders == 0 && !ch.close_requested {
        ch.close_requested = true;
        b.actions.push_back(Action::CloseSocket { id });
    }
}
