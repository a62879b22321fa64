//! [`Snapshot`] → hub, after checking everything.

use std::collections::VecDeque;
use std::time::Instant;

use super::take::instant;
use super::{ChannelSnapshot, RestoreError, SNAPSHOT_VERSION, Snapshot, TimerKind};
use crate::channel::Channel;
use crate::config::Config;
use crate::id::IdTable;
use crate::offline::OfflineQueue;
use crate::stats::Stats;
use crate::timers::{Kind, Timers};
use crate::transitions::{Books, Gate, Shutdown};

/// Everything a hub holds, rebuilt from a snapshot (see `Hub::restore`).
pub(crate) struct Restored {
    pub config: Config,
    pub table: IdTable<Channel>,
    pub timers: Timers,
    pub books: Books,
    pub now: Option<Instant>,
    pub held_jump: Option<Instant>,
    pub gate: Gate,
}

fn hub_err(field: &'static str, problem: impl Into<String>) -> RestoreError {
    RestoreError::Hub {
        field,
        problem: problem.into(),
    }
}

/// Places snapshot instants relative to the epoch.
struct Clock {
    epoch: Instant,
}

impl Clock {
    fn at(&self, n: i64) -> Result<Instant, String> {
        instant(n, self.epoch)
            .ok_or_else(|| format!("{n} ns from the epoch is not a representable instant"))
    }

    fn opt(&self, n: Option<i64>) -> Result<Option<Instant>, String> {
        n.map(|n| self.at(n)).transpose()
    }
}

/// Checks `snapshot` and rebuilds the hub's parts (see `Hub::restore`).
pub(crate) fn restore(snapshot: &Snapshot, epoch: Instant) -> Result<Restored, RestoreError> {
    let Snapshot {
        version,
        config,
        now,
        held_jump,
        slots,
        free,
        channels,
        timers,
        offline,
        stats,
        accept_paused,
        shutdown,
    } = snapshot;
    if *version != SNAPSHOT_VERSION {
        return Err(RestoreError::Version(*version));
    }
    config.validate()?;
    let clock = Clock { epoch };
    let now = clock.opt(*now).map_err(|p| hub_err("now", p))?;
    let held_jump = clock.opt(*held_jump).map_err(|p| hub_err("held_jump", p))?;
    let mut by_slot: Vec<Option<Channel>> = vec![None; slots.len()];
    for ch in channels {
        let slot = ch.id.slot() as usize;
        let record = channel(ch, &clock)?;
        if let Some(place) = by_slot.get_mut(slot) {
            *place = Some(record);
        }
    }
    let raw = (slots.iter().zip(by_slot))
        .map(|(s, ch)| (s.generation, ch))
        .collect();
    let table = IdTable::from_raw(config.shard, raw, free);
    let timers = (timers.iter())
        .map(|t| {
            let kind = match t.kind {
                TimerKind::Lifecycle => Kind::Lifecycle,
                TimerKind::Stall => Kind::Stall,
            };
            Ok((
                clock.at(t.at).map_err(|p| hub_err("timers", p))?,
                t.id,
                kind,
            ))
        })
        .collect::<Result<Vec<_>, RestoreError>>()?;
    let entries = (offline.iter())
        .map(|e| Ok((e.id, clock.at(e.since).map_err(|p| hub_err("offline", p))?)))
        .collect::<Result<VecDeque<_>, RestoreError>>()?;
    let books = Books {
        actions: VecDeque::new(),
        events: VecDeque::new(),
        stats: counters(stats),
        offline: OfflineQueue::from_parts(entries, stats.offline_depth, stats.offline_peak),
        usable: stats.usable,
        backpressured: stats.backpressured,
    };
    let shutdown = shutdown
        .map(|s| {
            Ok::<_, RestoreError>(Shutdown {
                deadline: clock.at(s.deadline).map_err(|p| hub_err("shutdown", p))?,
                deadline_done: s.deadline_done,
                complete: s.complete,
            })
        })
        .transpose()?;
    Ok(Restored {
        config: config.clone(),
        table,
        timers: Timers::from_entries(timers),
        books,
        now,
        held_jump,
        gate: Gate {
            accept_paused: *accept_paused,
            shutdown,
        },
    })
}

/// The counters of `stats`, its gauges as the hub keeps them (unset: the
/// hub computes them in `Hub::stats`).
fn counters(stats: &Stats) -> Stats {
    Stats {
        live: 0,
        usable: 0,
        backpressured: 0,
        offline_depth: 0,
        offline_peak: 0,
        offline_oldest: None,
        accept_paused: false,
        timer_entries: 0,
        ..stats.clone()
    }
}

fn channel(ch: &ChannelSnapshot, clock: &Clock) -> Result<Channel, RestoreError> {
    let ChannelSnapshot {
        id,
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
    let err =
        |field: &'static str| move |problem: String| RestoreError::Channel { id, field, problem };
    Ok(Channel {
        peer,
        state,
        opened_at: clock.at(opened_at).map_err(err("opened_at"))?,
        last_activity: clock.at(last_activity).map_err(err("last_activity"))?,
        closing_deadline: clock
            .at(closing_deadline)
            .map_err(err("closing_deadline"))?,
        offline_since: clock.at(offline_since).map_err(err("offline_since"))?,
        armed: clock.opt(armed).map_err(err("armed"))?,
        stall_armed: clock.opt(stall_armed).map_err(err("stall_armed"))?,
        queued,
        charged,
        stall_since: clock.opt(stall_since).map_err(err("stall_since"))?,
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
