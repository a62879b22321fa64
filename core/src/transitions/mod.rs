//! Every transition of the hub, in one table.
//!
//! Two machines run in a hub. Each **channel** moves forward only:
//! `Open` → `HalfClosed` (only where half-close is allowed) → `Closing`
//! (a graceful close: flush, FIN, wait for the peer's EOF, bounded by the
//! flush deadline) → `Offline` (done on the wire; waiting for every holder
//! to let go and for the adapter to confirm the close) → `Released` (the
//! slot is free, the id stale for good). Aborts and errors skip straight to
//! `Offline`. The **hub** is `Accepting`, `Paused` at the channel limit
//! (until the live channels fall to the resume mark), `Draining` once
//! [`Hub::shutdown`](crate::Hub::shutdown) is called, and `Stopped` when the
//! last channel is released.
//!
//! The table below is [`TRANSITIONS`], rendered by [`markdown`]: one row per
//! transition, with the conditions that select it, the state it leads to,
//! what it emits (in order, for a channel row only the outputs about that
//! channel), other effects, and the invariants of docs/design.md §4 it
//! serves. A test drives every state and trigger through a real hub and
//! compares the outcome with the row, and compares this page with
//! [`markdown`], so code, data and documentation cannot drift apart.
//!
//! ¹ `CloseSocket` comes in the same call only when no holder is attached;
//! otherwise with the last `detach` (invariant 5). Entering `Offline`
//! without an abort emits `Shutdown(Both)`: it finishes the wire and tells
//! every holder to let go.
//!
//! The *charge* of a queue is its payload bytes plus `message_overhead` per
//! message queued since it was last empty; it drops by `n` on `written(n)`
//! and to 0 when the queue drains (message boundaries are unknown here, so
//! overhead is released only then). The limit and both watermarks compare
//! against it. The *stall deadline* of a usable channel is armed when its
//! queue goes from empty to non-empty, pushed back by every `written(n > 0)`
//! and disarmed when the queue drains or the channel stops being usable.
//! When several deadlines of a usable channel are due at once, the stall
//! abort wins over the login and idle kicks: it is the one that frees the
//! queue now.
//!
#![doc = include_str!("table.md")]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::channel::Channel;
use crate::config::Config;
use crate::id::ChannelId;
use crate::offline::OfflineQueue;
use crate::output::{Action, ChannelState, Event};
use crate::stats::Stats;
use crate::timers::{Kind, Timers};

mod channel;
mod hub;
mod table;
#[cfg(test)]
mod tests;

pub(crate) use channel::*;
pub(crate) use hub::Gate;
#[cfg(feature = "snapshot")]
pub(crate) use hub::Shutdown;
pub use table::{Cond, Emit, Row, State, TRANSITIONS, Trigger, markdown};

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

/// How far ahead a deadline that must exist is put when `t + d` cannot be
/// represented: about 136 years, still within a snapshot's `i64`
/// nanoseconds of its epoch.
const FAR: Duration = Duration::from_secs(u32::MAX as u64);

/// `t + d`, or far ahead when that overflows: for deadlines that must exist
/// (closing, shutdown) but were configured beyond what `Instant` holds.
/// Far ahead is `t + FAR`, or, when a clock near the end of `Instant`'s
/// range cannot hold that either, the last whole second after `t` it can
/// hold — not `t` itself, which would end a graceful close or a shutdown's
/// grace at once (invariant 3), unless the clock is at that last second.
pub(crate) fn after_or_far(t: Instant, d: Duration) -> Instant {
    after(t, d)
        .or_else(|| after(t, FAR))
        .unwrap_or_else(|| last_second(t))
}

/// The last instant `t + n` seconds that `Instant` can hold (binary search:
/// at most 64 additions, and only on a clock within `FAR` of its end).
fn last_second(t: Instant) -> Instant {
    let (mut fits, mut overflows) = (0u64, u64::MAX);
    while overflows - fits > 1 {
        let mid = fits + (overflows - fits) / 2;
        if after(t, Duration::from_secs(mid)).is_some() {
            fits = mid;
        } else {
            overflows = mid;
        }
    }
    after(t, Duration::from_secs(fits)).unwrap_or(t)
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
#[inline]
pub(crate) fn rearm(ch: &mut Channel, id: ChannelId, config: &Config, timers: &mut Timers) {
    rearm_lifecycle(ch, id, config, timers);
    rearm_stall(ch, id, config, timers);
}

/// [`rearm`] after an input that touched only the queue (a send, a write),
/// given the state before it: unless the state changed, only the stall
/// half ([`rearm_stall`]).
#[inline]
pub(crate) fn rearm_after_queue(
    ch: &mut Channel,
    id: ChannelId,
    before: ChannelState,
    config: &Config,
    timers: &mut Timers,
) {
    if ch.state == before {
        debug_assert!(
            (ch.next_deadline(config)).is_none_or(|next| ch.armed.is_some_and(|a| a <= next)),
            "a queue input moved the lifecycle deadline earlier"
        );
        rearm_stall(ch, id, config, timers);
    } else {
        rearm(ch, id, config, timers);
    }
}

/// The lifecycle half of [`rearm`]: idle, login, flush, overdue holder.
#[inline]
fn rearm_lifecycle(ch: &mut Channel, id: ChannelId, config: &Config, timers: &mut Timers) {
    match (ch.next_deadline(config), ch.armed) {
        (Some(next), armed) if armed.is_none_or(|armed| next < armed) => {
            ch.armed = Some(next);
            timers.push(next, id, Kind::Lifecycle);
        }
        (Some(next), Some(armed)) if next == armed => {}
        (None, None) => {}
        // Armed early, or with nothing due: an entry that may be the heap's
        // top is no longer exact, `poll_timeout` must settle it again.
        _ => timers.unsettle(),
    }
}

/// The stall half of [`rearm`], alone after an input that touched only
/// the queue (a send or a write that left the state as it was): the
/// lifecycle deadline depends on the state and on times set only when it
/// changes (closing, offline), on activity, holders and login, none of
/// which a queue input moves.
#[inline]
fn rearm_stall(ch: &mut Channel, id: ChannelId, config: &Config, timers: &mut Timers) {
    // Only a channel without a stall entry can need one: the stall clock
    // restarts only at `now`, and the hub's clock never runs backwards while
    // the channel exists, so its stall deadline is never earlier than the
    // one armed.
    match (ch.stall_armed, ch.stall_deadline(config)) {
        (None, Some(next)) => {
            ch.stall_armed = Some(next);
            timers.push(next, id, Kind::Stall);
        }
        (None, None) => {}
        (Some(armed), Some(next)) if armed == next => {}
        (Some(armed), next) => {
            debug_assert!(
                next.is_none_or(|next| armed <= next),
                "a stall deadline earlier than its armed entry"
            );
            timers.unsettle();
        }
    }
}
