//! The per-channel machine: `Open` → `HalfClosed` → `Closing` → `Offline`,
//! one function per input. Rows `Open`…`Released` of the
//! [table](super::TRANSITIONS).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::{Books, after, after_or_far};
use crate::channel::Channel;
use crate::config::{Config, HalfClosePolicy, KickMode, OverflowPolicy};
use crate::error::{InputError, KickError, SendError};
use crate::id::ChannelId;
use crate::output::{Action, ChannelState, DisconnectReason, Event, ShutdownHow};
use crate::stats::count;

/// A channel was made for an accepted connection: `Opened` (invariant 1:
/// its `Disconnected` will follow, exactly once).
pub(crate) fn opened(id: ChannelId, peer: SocketAddr, b: &mut Books) {
    count(&mut b.stats.opened, 1);
    b.usable += 1;
    b.events.push_back(Event::Opened { id, peer });
}

/// The adapter confirmed the close: the channel is gone from the table;
/// `Released` (invariant 6: its id is stale from now on).
pub(crate) fn released(id: ChannelId, b: &mut Books) {
    count(&mut b.stats.released, 1);
    b.events.push_back(Event::Released { id });
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
        count(&mut b.stats.bytes_received, data.len() as u64);
        if !data.is_empty() {
            b.events.push_back(Event::Received { id, data });
        }
    } else {
        // Invariant 2: nothing reaches the app after `Disconnected`.
        count(&mut b.stats.bytes_discarded, data.len() as u64);
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

/// The bytes of one send: owned by a single send, which moves them into
/// its `Transmit` (no reference-count round trip), or shared by a
/// broadcast, where each channel's `Transmit` takes a clone.
pub(crate) trait Payload {
    fn len(&self) -> usize;
    fn into_bytes(self) -> Bytes;
}

impl Payload for Bytes {
    #[inline]
    fn len(&self) -> usize {
        Bytes::len(self)
    }
    #[inline]
    fn into_bytes(self) -> Bytes {
        self
    }
}

impl Payload for &Bytes {
    #[inline]
    fn len(&self) -> usize {
        Bytes::len(self)
    }
    #[inline]
    fn into_bytes(self) -> Bytes {
        self.clone()
    }
}

pub(crate) fn send(
    ch: &mut Channel,
    id: ChannelId,
    data: impl Payload,
    b: &mut Books,
    config: &Config,
    now: Instant,
) -> Result<(), SendError> {
    let len = data.len();
    let limit = config.queue_limit;
    // What this message adds to the charge (saturating: a `len` near
    // `usize::MAX` is just too large, never an overflow: invariant 10).
    let cost = len.saturating_add(config.message_overhead);
    // Invariant 8: the charge after this message, within the limit. `validate`
    // keeps `charged + cost` (each at most the limit) representable; a sum
    // that overflowed anyway is past every limit: refused, never wrapped to
    // a small charge and admitted.
    let fits = ch
        .charged
        .checked_add(cost)
        .is_some_and(|total| total <= limit);
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
    } else if !fits {
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
        count(&mut b.stats.sends_rejected, 1);
        return Err(err);
    }
    if ch.queued == 0 {
        // The queue goes from empty to non-empty: the stall clock starts
        // (invariant 7: its deadline is armed by `rearm` after this call).
        ch.stall_since = Some(now);
    }
    // Invariant 8: the charge (payload + overhead) never exceeds the limit,
    // so neither do the queued bytes. Neither sum overflows: `fits` checked
    // `charged + cost <= limit`, and `queued <= charged`, `len <= cost`.
    ch.queued += len;
    ch.charged += cost;
    count(&mut b.stats.bytes_queued, len as u64);
    if ch.charged >= config.high_watermark {
        set_backpressured(ch, b, true);
    }
    b.actions.push_back(Action::Transmit {
        id,
        data: data.into_bytes(),
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
    count(&mut b.stats.bytes_written, n as u64);
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
                count(&mut b.stats.holders_overdue, 1);
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
    count(&mut b.stats.bytes_dropped, ch.queued as u64);
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
