//! Hub → [`Snapshot`]. Every struct is destructured field by field, so a
//! field added to the hub, a channel, the books, the gate or the offline
//! queue fails to compile here until the snapshot carries it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::names::reason_is_nameable;
use super::{
    ChannelSnapshot, OfflineSnapshot, SNAPSHOT_VERSION, ShutdownSnapshot, SlotSnapshot, Snapshot,
    SnapshotError, TimerKind, TimerSnapshot,
};
use crate::channel::Channel;
use crate::config::Config;
use crate::id::{ChannelId, IdTable};
use crate::stats::Stats;
use crate::timers::{Kind, Timers};
use crate::transitions::{Books, Gate, Shutdown};

/// Everything a hub holds, borrowed (see `Hub::snapshot`).
pub(crate) struct Parts<'a> {
    pub config: &'a Config,
    pub table: &'a IdTable<Channel>,
    pub timers: &'a Timers,
    pub books: &'a Books,
    /// `Hub::stats()`: the counters of `books.stats` with the gauges.
    pub stats: Stats,
    pub now: Option<Instant>,
    pub held_jump: Option<Instant>,
    pub gate: &'a Gate,
}

/// `t` as signed nanoseconds since `epoch`, if that fits in an `i64`.
pub(crate) fn nanos(t: Instant, epoch: Instant) -> Option<i64> {
    if t >= epoch {
        i64::try_from(t.duration_since(epoch).as_nanos()).ok()
    } else {
        i64::try_from(epoch.duration_since(t).as_nanos())
            .ok()
            .map(|n| -n)
    }
}

/// The instant `n` nanoseconds from `epoch`, if `Instant` can hold it.
pub(crate) fn instant(n: i64, epoch: Instant) -> Option<Instant> {
    let d = Duration::from_nanos(n.unsigned_abs());
    if n >= 0 {
        epoch.checked_add(d)
    } else {
        epoch.checked_sub(d)
    }
}

/// [`instant`], or `epoch` when `Instant` cannot hold it (for snapshots
/// already checked by `Hub::restore`, where every instant exists).
#[cfg(feature = "checker")]
pub(crate) fn instant_or(n: i64, epoch: Instant) -> Instant {
    instant(n, epoch).unwrap_or(epoch)
}

pub(crate) fn kind_of(kind: Kind) -> TimerKind {
    match kind {
        Kind::Lifecycle => TimerKind::Lifecycle,
        Kind::Stall => TimerKind::Stall,
    }
}

/// Converts instants, naming the first that does not fit.
struct Clock {
    epoch: Instant,
}

impl Clock {
    fn at(&self, t: Instant, field: impl FnOnce() -> String) -> Result<i64, SnapshotError> {
        nanos(t, self.epoch).ok_or_else(|| SnapshotError::Instant { field: field() })
    }

    fn opt(
        &self,
        t: Option<Instant>,
        field: impl FnOnce() -> String,
    ) -> Result<Option<i64>, SnapshotError> {
        t.map(|t| self.at(t, field)).transpose()
    }
}

/// Takes the snapshot (see `Hub::snapshot`).
pub(crate) fn take(parts: Parts<'_>, epoch: Instant) -> Result<Snapshot, SnapshotError> {
    let Parts {
        config,
        table,
        timers,
        books,
        stats,
        now,
        held_jump,
        gate,
    } = parts;
    // `stats`, `usable` and `backpressured` are in `stats` (its gauges).
    let Books {
        actions,
        events,
        stats: _,
        offline,
        usable: _,
        backpressured: _,
    } = books;
    if !actions.is_empty() || !events.is_empty() {
        return Err(SnapshotError::OutputsPending {
            actions: actions.len(),
            events: events.len(),
        });
    }
    let clock = Clock { epoch };
    let channels = (table.iter())
        .map(|(id, ch)| channel(id, ch, &clock))
        .collect::<Result<Vec<_>, _>>()?;
    let timers = timer_entries(timers, &clock)?;
    let (entries, _depth, _peak) = offline.parts(); // in `stats`
    let offline = offline_entries(entries, &clock)?;
    let Gate {
        accept_paused,
        shutdown,
    } = *gate;
    let shutdown = shutdown.map(|s| shutdown_of(s, &clock)).transpose()?;
    Ok(Snapshot {
        version: SNAPSHOT_VERSION,
        config: config.clone(),
        now: clock.opt(now, || "now".into())?,
        held_jump: clock.opt(held_jump, || "held_jump".into())?,
        slots: slots(table),
        free: table.free_list(),
        channels,
        timers,
        offline,
        stats,
        accept_paused,
        shutdown,
    })
}

/// Every slot of the id table, vacant and retired ones included.
fn slots(table: &IdTable<Channel>) -> Vec<SlotSnapshot> {
    (table.raw_slots())
        .map(|(generation, value)| SlotSnapshot {
            generation,
            occupied: value.is_some(),
        })
        .collect()
}

/// Every entry of the timer heap in heap order, stale ones included.
fn timer_entries(timers: &Timers, clock: &Clock) -> Result<Vec<TimerSnapshot>, SnapshotError> {
    (timers.entries().enumerate())
        .map(|(i, (at, id, kind))| {
            Ok(TimerSnapshot {
                at: clock.at(at, || format!("timers[{i}].at"))?,
                id,
                kind: kind_of(kind),
            })
        })
        .collect()
}

/// Every entry of the offline queue in order, released ones included.
fn offline_entries(
    entries: &VecDeque<(ChannelId, Instant)>,
    clock: &Clock,
) -> Result<Vec<OfflineSnapshot>, SnapshotError> {
    (entries.iter().enumerate())
        .map(|(i, &(id, since))| {
            Ok(OfflineSnapshot {
                id,
                since: clock.at(since, || format!("offline[{i}].since"))?,
            })
        })
        .collect()
}

/// The gate's shutdown.
fn shutdown_of(s: Shutdown, clock: &Clock) -> Result<ShutdownSnapshot, SnapshotError> {
    let Shutdown {
        deadline,
        deadline_done,
        complete,
    } = s;
    Ok(ShutdownSnapshot {
        deadline: clock.at(deadline, || "shutdown.deadline".into())?,
        deadline_done,
        complete,
    })
}

fn channel(id: ChannelId, ch: &Channel, clock: &Clock) -> Result<ChannelSnapshot, SnapshotError> {
    let Channel {
        peer,
        state,
        opened_at,
        last_activity,
        closing_deadline,
        offline_since,
        armed,
        stall_armed,
        queued,
        charged,
        stall_since,
        holders,
        reason,
        authenticated,
        backpressured,
        peer_eof,
        write_shut,
        aborted,
        close_requested,
        overdue_reported,
    } = *ch;
    if let Some(reason) = reason
        && !reason_is_nameable(reason)
    {
        let crate::DisconnectReason::IoError(kind) = reason else {
            unreachable!("only I/O error kinds may lack a name")
        };
        return Err(SnapshotError::ErrorKind {
            id,
            kind: format!("{kind:?}"),
        });
    }
    let field = |name: &'static str| move || format!("channel {id} {name}");
    Ok(ChannelSnapshot {
        id,
        peer,
        state,
        opened_at: clock.at(opened_at, field("opened_at"))?,
        last_activity: clock.at(last_activity, field("last_activity"))?,
        closing_deadline: clock.at(closing_deadline, field("closing_deadline"))?,
        offline_since: clock.at(offline_since, field("offline_since"))?,
        armed: clock.opt(armed, field("armed"))?,
        stall_armed: clock.opt(stall_armed, field("stall_armed"))?,
        queued,
        charged,
        stall_since: clock.opt(stall_since, field("stall_since"))?,
        holders,
        reason,
        authenticated,
        backpressured,
        peer_eof,
        write_shut,
        aborted,
        close_requested,
        overdue_reported,
    })
}
