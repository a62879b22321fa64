//! What `Hub::restore` checks about one channel, and about the hub-level
//! counts, against the relations the hub keeps (each one cited where the
//! hub makes it true). A snapshot that breaks one was not taken of a hub:
//! restoring it could panic later, or break an invariant of
//! docs/design.md §4.

use std::time::Instant;

use super::RestoreError;
use crate::channel::Channel;
use crate::config::{Config, HalfClosePolicy};
use crate::id::ChannelId;
use crate::output::ChannelState;
use crate::stats::Stats;

/// A channel field is wrong: `Err(RestoreError::Channel)` unless `ok`.
fn need(
    ok: bool,
    id: ChannelId,
    field: &'static str,
    problem: impl FnOnce() -> String,
) -> Result<(), RestoreError> {
    if ok {
        Ok(())
    } else {
        Err(RestoreError::Channel {
            id,
            field,
            problem: problem(),
        })
    }
}

/// A channel's instant `at` lies in its life so far: from `opened_at` to
/// the hub's clock `now`.
fn in_life(
    ch: &Channel,
    at: Instant,
    now: Instant,
    id: ChannelId,
    field: &'static str,
) -> Result<(), RestoreError> {
    need(ch.opened_at <= at && at <= now, id, field, || {
        "not between opened_at and the hub's clock".into()
    })
}

/// Checks one restored channel against the configuration and the hub's
/// clock `now` (set whenever a channel exists).
pub(super) fn channel(
    id: ChannelId,
    ch: &Channel,
    config: &Config,
    now: Instant,
) -> Result<(), RestoreError> {
    let usable = ch.state.is_usable();
    // Time never runs backwards while a channel exists.
    need(ch.opened_at <= now, id, "opened_at", || {
        "after the hub's clock".into()
    })?;
    in_life(ch, ch.last_activity, now, id, "last_activity")?;
    queue(id, ch, config)?;
    // `disconnect` sets the reason exactly when a channel stops being usable.
    need(ch.reason.is_some() != usable, id, "reason", || {
        format!("{} with reason {:?}", ch.state, ch.reason)
    })?;
    // `set_backpressured`: only usable channels; a usable channel is marked
    // when its charge reaches the high watermark (cleared at the low one).
    need(!ch.backpressured || usable, id, "backpressured", || {
        format!("set while {}", ch.state)
    })?;
    need(
        !usable || ch.backpressured || ch.charged < config.high_watermark,
        id,
        "backpressured",
        || {
            format!(
                "not set with charge {} at the high watermark {}",
                ch.charged, config.high_watermark
            )
        },
    )?;
    // The stall clock runs exactly while usable with bytes queued.
    need(
        ch.stall_since.is_some() == (usable && ch.queued > 0),
        id,
        "stall_since",
        || {
            format!(
                "{:?} while {} with {} bytes queued",
                ch.stall_since, ch.state, ch.queued
            )
        },
    )?;
    if let Some(since) = ch.stall_since {
        in_life(ch, since, now, id, "stall_since")?;
    }
    flags(id, ch, config, now)?;
    armed(id, ch, config, now)
}

/// Invariant 8: the charge is the queued bytes plus `message_overhead` per
/// message queued since the queue was last empty, within `queue_limit`.
fn queue(id: ChannelId, ch: &Channel, config: &Config) -> Result<(), RestoreError> {
    let (queued, charged, limit) = (ch.queued, ch.charged, config.queue_limit);
    need(queued <= charged && charged <= limit, id, "charged", || {
        format!("{queued} bytes queued, charged {charged}, queue limit {limit}")
    })?;
    need((queued == 0) == (charged == 0), id, "charged", || {
        format!("charged {charged} with {queued} bytes queued")
    })?;
    let overhead = config.message_overhead;
    let extra = charged - queued;
    let whole = if overhead == 0 {
        extra == 0
    } else {
        extra % overhead == 0 && (queued == 0 || extra >= overhead)
    };
    need(whole, id, "charged", || {
        format!(
            "charged {charged} for {queued} bytes is not a whole number of {overhead}-byte message overheads"
        )
    })
}

/// The flags each state allows (the rows of the transition table).
fn flags(id: ChannelId, ch: &Channel, config: &Config, now: Instant) -> Result<(), RestoreError> {
    let state = ch.state;
    let only_offline = |flag: bool, field| {
        need(!flag || state == ChannelState::Offline, id, field, || {
            format!("set while {state}")
        })
    };
    only_offline(ch.close_requested, "close_requested")?;
    only_offline(ch.overdue_reported, "overdue_reported")?;
    match state {
        ChannelState::Open | ChannelState::HalfClosed => {
            let half = state == ChannelState::HalfClosed;
            need(ch.peer_eof == half, id, "peer_eof", || {
                format!("{} while {state}", ch.peer_eof)
            })?;
            need(
                !half || config.half_close == HalfClosePolicy::Allow,
                id,
                "state",
                || "half-closed while the config disallows half-close".into(),
            )?;
            need(!ch.write_shut, id, "write_shut", || {
                format!("set while {state}")
            })?;
            need(!ch.aborted, id, "aborted", || format!("set while {state}"))?;
        }
        ChannelState::Closing => {
            // `progress_close`: FIN once flushed; offline once both
            // directions are done.
            need(!ch.aborted, id, "aborted", || "set while closing".into())?;
            let flushed = ch.queued == 0;
            need(ch.write_shut == flushed, id, "write_shut", || {
                format!("{} with {} bytes queued", ch.write_shut, ch.queued)
            })?;
            need(!(flushed && ch.peer_eof), id, "peer_eof", || {
                "closing, flushed and the peer's EOF received: it would be offline".into()
            })?;
        }
        ChannelState::Offline => {
            // `go_offline` after the queue is flushed or dropped; FIN or RST.
            need(ch.queued == 0, id, "queued", || {
                format!("{} bytes queued while offline", ch.queued)
            })?;
            need(ch.write_shut || ch.aborted, id, "write_shut", || {
                "offline with neither write_shut nor aborted".into()
            })?;
            // `maybe_request_close`: as soon as no holder is attached (and
            // holders cannot attach to an offline channel).
            need(
                ch.close_requested == (ch.holders == 0),
                id,
                "close_requested",
                || format!("{} with {} holders", ch.close_requested, ch.holders),
            )?;
            in_life(ch, ch.offline_since, now, id, "offline_since")?;
        }
    }
    Ok(())
}

/// `transitions::rearm`: each deadline the channel has is armed no later
/// than it (an earlier entry fires early and re-arms); a stall entry is
/// never later than the latest stall deadline the clock allows.
fn armed(id: ChannelId, ch: &Channel, config: &Config, now: Instant) -> Result<(), RestoreError> {
    if let Some(deadline) = ch.next_deadline(config) {
        need(ch.armed.is_some_and(|a| a <= deadline), id, "armed", || {
            format!(
                "{:?} does not cover the lifecycle deadline {deadline:?}",
                ch.armed
            )
        })?;
    }
    if let Some(deadline) = ch.stall_deadline(config) {
        need(
            ch.stall_armed.is_some_and(|a| a <= deadline),
            id,
            "stall_armed",
            || {
                format!(
                    "{:?} does not cover the stall deadline {deadline:?}",
                    ch.stall_armed
                )
            },
        )?;
    }
    if let Some(armed) = ch.stall_armed {
        let latest = config.stall_timeout.map(|t| now.checked_add(t));
        need(
            latest.is_some_and(|l| l.is_none_or(|l| armed <= l)),
            id,
            "stall_armed",
            || "later than any stall deadline the configuration and clock allow".into(),
        )?;
    }
    Ok(())
}

/// The gauges of `stats` as the hub would report them, recomputed, and the
/// counters' own relations (invariants 1 and 5).
pub(super) fn stats(given: &Stats, actual: &Stats, queued: u64) -> Result<(), RestoreError> {
    let err = |field, problem: String| Err(RestoreError::Hub { field, problem });
    let gauges = [
        ("stats.live", given.live, actual.live),
        ("stats.usable", given.usable, actual.usable),
        (
            "stats.backpressured",
            given.backpressured,
            actual.backpressured,
        ),
        (
            "stats.offline_depth",
            given.offline_depth,
            actual.offline_depth,
        ),
        (
            "stats.timer_entries",
            given.timer_entries,
            actual.timer_entries,
        ),
        (
            "stats.accept_paused",
            given.accept_paused.into(),
            actual.accept_paused.into(),
        ),
    ];
    for (field, given, actual) in gauges {
        if given != actual {
            return err(
                field,
                format!("{given}, but the snapshot's contents make it {actual}"),
            );
        }
    }
    if given.offline_oldest != actual.offline_oldest {
        let (g, a) = (given.offline_oldest, actual.offline_oldest);
        return err(
            "stats.offline_oldest",
            format!("{g:?}, but the offline queue makes it {a:?}"),
        );
    }
    for (name, value) in given.counters() {
        // Room to count on: no counter can overflow later (invariant 10).
        if value > i64::MAX as u64 {
            return err("stats", format!("{name} is {value}, above i64::MAX"));
        }
    }
    let live = given.live as u64;
    if given.opened != given.released + live {
        let (o, r) = (given.opened, given.released);
        return err(
            "stats.opened",
            format!("{o} opened, but {r} released + {live} live"),
        );
    }
    let ended = (given.disconnected.iter()).fold(0u128, |sum, (_, n)| sum + u128::from(n));
    if ended + given.usable as u128 != u128::from(given.opened) {
        let (o, u) = (given.opened, given.usable);
        return err(
            "stats.disconnected",
            format!("{ended} disconnects, but {o} opened - {u} usable"),
        );
    }
    let accounted = u128::from(given.bytes_written) + u128::from(given.bytes_dropped);
    if u128::from(given.bytes_queued) != accounted + u128::from(queued) {
        let (q, w, d) = (given.bytes_queued, given.bytes_written, given.bytes_dropped);
        return err(
            "stats.bytes_queued",
            format!("{q}, but {w} written + {d} dropped + {queued} still queued"),
        );
    }
    Ok(())
}
