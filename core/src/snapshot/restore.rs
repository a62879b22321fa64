//! [`Snapshot`] → hub, after checking everything.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use super::take::instant;
use super::{
    ChannelSnapshot, OfflineSnapshot, RestoreError, SNAPSHOT_VERSION, ShutdownSnapshot,
    SlotSnapshot, Snapshot, TimerKind, TimerSnapshot, check,
};
use crate::channel::Channel;
use crate::config::Config;
use crate::id::{ChannelId, IdTable};
use crate::offline::OfflineQueue;
use crate::output::ChannelState;
use crate::stats::Stats;
use crate::timers::{Kind, Timers};
use crate::transitions::{Books, Gate, Shutdown};

mod table;

use table::table;

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
    // Every field named: one added to `Snapshot` fails to compile here.
    let Snapshot {
        version,
        config,
        now: _,       // placed by `hub_clock`
        held_jump: _, // placed by `hub_clock`
        slots,
        free,
        channels,
        timers,
        offline,
        stats: _, // checked by `books`
        accept_paused,
        shutdown,
    } = snapshot;
    if *version != SNAPSHOT_VERSION {
        return Err(RestoreError::Version(*version));
    }
    config.validate()?;
    let clock = Clock { epoch };
    let (now, held_jump) = hub_clock(snapshot, &clock)?;
    table(config, slots, free, channels)?;
    let (by_slot, counts) = channels_by_slot(config, slots.len(), channels, &clock, now)?;
    let ids = Ids {
        config,
        slots,
        by_slot: &by_slot,
    };
    let timers = heap(timers, &clock, channels.len(), |id| ids.known(id))?;
    armed_in_heap(channels, &timers, &ids)?;
    let entries = offline_queue(
        offline,
        &clock,
        now,
        counts.offline,
        |id| ids.known(id),
        |id| ids.live(id),
    )?;
    let shutdown = gate(
        config,
        *accept_paused,
        shutdown,
        &clock,
        &by_slot,
        counts.usable,
    )?;
    let books = books(snapshot, &counts, entries, now, timers.len())?;
    let raw = (slots.iter().zip(by_slot))
        .map(|(s, ch)| (s.generation, ch))
        .collect();
    Ok(Restored {
        config: config.clone(),
        table: IdTable::from_raw(config.shard, raw, free),
        timers: Timers::from_entries(
            timers
                .into_iter()
                .map(|(at, raw, kind)| (at, ChannelId::from_raw(raw), kind)),
        ),
        books,
        now,
        held_jump,
        gate: Gate {
            accept_paused: *accept_paused,
            shutdown,
        },
    })
}

/// The gauges the books keep, counted over the rebuilt channels.
struct Counts {
    usable: usize,
    backpressured: usize,
    /// Channels in state `Offline` (the offline queue's depth).
    offline: usize,
    /// Bytes queued over all channels (checked against `stats`).
    queued: u64,
}

/// Rebuilds every channel into its slot and checks it on its own, counting
/// the gauges on the way. `table` has checked the ids, so every slot index
/// is in range and taken once.
fn channels_by_slot(
    config: &Config,
    slot_count: usize,
    channels: &[ChannelSnapshot],
    clock: &Clock,
    now: Option<Instant>,
) -> Result<(Vec<Option<Channel>>, Counts), RestoreError> {
    let mut by_slot: Vec<Option<Channel>> = vec![None; slot_count];
    let mut counts = Counts {
        usable: 0,
        backpressured: 0,
        offline: 0,
        queued: 0,
    };
    for snap in channels {
        let ch = channel(snap, clock)?;
        // `clock_rule` made sure the clock is set when a channel exists.
        check::channel(snap.id, &ch, config, now.unwrap_or(ch.opened_at))?;
        counts.usable += usize::from(ch.state.is_usable());
        counts.backpressured += usize::from(ch.backpressured);
        counts.offline += usize::from(ch.state == ChannelState::Offline);
        counts.queued += ch.queued as u64;
        by_slot[snap.id.slot() as usize] = Some(ch);
    }
    Ok((by_slot, counts))
}

/// Which ids the hub handed out and which are live, for the entries of the
/// timer heap and the offline queue (both may hold stale ids).
struct Ids<'a> {
    config: &'a Config,
    slots: &'a [SlotSnapshot],
    by_slot: &'a [Option<Channel>],
}

impl<'a> Ids<'a> {
    /// `id` was handed out: this shard, an existing slot, a generation
    /// that slot has had.
    fn known(&self, id: ChannelId) -> bool {
        let slot = self.slots.get(id.slot() as usize);
        id.shard() == self.config.shard
            && slot.is_some_and(|s| id.generation() >= 1 && id.generation() <= s.generation)
    }

    /// The channel `id` names, if it is live (not released).
    fn live(&self, id: ChannelId) -> Option<&'a Channel> {
        self.by_slot
            .get(id.slot() as usize)
            .and_then(Option::as_ref)
            .filter(|_| {
                self.known(id) && self.slots[id.slot() as usize].generation == id.generation()
            })
    }
}

/// Every timer a live channel has armed has its entry in the heap: the hub
/// only learns a deadline passed from the heap.
fn armed_in_heap(
    channels: &[ChannelSnapshot],
    heap: &[(Instant, u64, Kind)],
    ids: &Ids<'_>,
) -> Result<(), RestoreError> {
    let entries: BTreeSet<_> = heap.iter().copied().collect();
    for (id, ch) in channels
        .iter()
        .filter_map(|c| Some((c.id, ids.live(c.id)?)))
    {
        for (kind, armed, field) in [
            (Kind::Lifecycle, ch.armed, "armed"),
            (Kind::Stall, ch.stall_armed, "stall_armed"),
        ] {
            if let Some(at) = armed
                && !entries.contains(&(at, id.to_raw(), kind))
            {
                let problem = "armed, but the timer heap has no entry for it".into();
                return Err(RestoreError::Channel { id, field, problem });
            }
        }
    }
    Ok(())
}

/// The books: `snapshot.stats` checked against what the rest of the
/// snapshot holds, its peak against the depth and the limit, and the
/// offline queue.
fn books(
    snapshot: &Snapshot,
    counts: &Counts,
    entries: VecDeque<(ChannelId, Instant)>,
    now: Option<Instant>,
    timer_entries: usize,
) -> Result<Books, RestoreError> {
    let (stats, config, depth) = (&snapshot.stats, &snapshot.config, counts.offline);
    let oldest = entries
        .front()
        .map(|&(_, since)| now.unwrap_or(since).saturating_duration_since(since));
    let actual = Stats {
        live: snapshot.channels.len(),
        usable: counts.usable,
        backpressured: counts.backpressured,
        offline_depth: depth,
        offline_oldest: oldest,
        accept_paused: snapshot.accept_paused,
        timer_entries,
        ..Stats::default()
    };
    check::stats(stats, &actual, counts.queued)?;
    if stats.offline_peak < depth || stats.offline_peak > config.max_channels {
        let problem = format!(
            "{} is below the offline depth {depth} or above max_channels",
            stats.offline_peak
        );
        return Err(hub_err("stats.offline_peak", problem));
    }
    Ok(Books {
        actions: VecDeque::new(),
        events: VecDeque::new(),
        stats: counters(stats),
        offline: OfflineQueue::from_parts(entries, depth, stats.offline_peak),
        usable: counts.usable,
        backpressured: counts.backpressured,
    })
}

/// The hub's clock and held jump, placed by `clock`, under the clock rule.
fn hub_clock(
    snapshot: &Snapshot,
    clock: &Clock,
) -> Result<(Option<Instant>, Option<Instant>), RestoreError> {
    let now = clock.opt(snapshot.now).map_err(|p| hub_err("now", p))?;
    let held_jump = (clock.opt(snapshot.held_jump)).map_err(|p| hub_err("held_jump", p))?;
    let holds_time = !snapshot.channels.is_empty() || snapshot.shutdown.is_some();
    clock_rule(&snapshot.config, now, held_jump, holds_time)?;
    Ok((now, held_jump))
}

/// The hub's clock rule (`Hub::clock`): a hub that holds anything has a
/// clock, and a held jump is one the clock did not believe: more than
/// `max_clock_jump` ahead of it.
fn clock_rule(
    config: &Config,
    now: Option<Instant>,
    held_jump: Option<Instant>,
    holds_time: bool,
) -> Result<(), RestoreError> {
    if now.is_none() && (holds_time || held_jump.is_some()) {
        let problem = "unset while channels, a shutdown or a held jump exist";
        return Err(hub_err("now", problem));
    }
    if let (Some(now), Some(held)) = (now, held_jump)
        && now
            .checked_add(config.max_clock_jump)
            .is_none_or(|far| held <= far)
    {
        let problem = "within max_clock_jump of the clock: it would have been believed";
        return Err(hub_err("held_jump", problem));
    }
    Ok(())
}

/// The timer heap's entries: ids the hub handed out (live or stale), no
/// more than the checker's bound on bookkeeping (invariant 8).
fn heap(
    timers: &[TimerSnapshot],
    clock: &Clock,
    live: usize,
    known: impl Fn(ChannelId) -> bool,
) -> Result<Vec<(Instant, u64, Kind)>, RestoreError> {
    if timers.len() > 6 * live + 64 {
        let problem = format!(
            "{} entries for {live} channels: more than 6 per channel + 64",
            timers.len()
        );
        return Err(hub_err("timers", problem));
    }
    let mut heap = Vec::with_capacity(timers.len());
    for (i, t) in timers.iter().enumerate() {
        let at = clock
            .at(t.at)
            .map_err(|p| hub_err("timers", format!("timers[{i}].at: {p}")))?;
        if !known(t.id) {
            let problem = format!("timers[{i}]: {} was never handed out", t.id);
            return Err(hub_err("timers", problem));
        }
        let kind = match t.kind {
            TimerKind::Lifecycle => Kind::Lifecycle,
            TimerKind::Stall => Kind::Stall,
        };
        heap.push((at, t.id.to_raw(), kind));
    }
    Ok(heap)
}

/// The offline queue (`OfflineQueue`): oldest first, every offline channel
/// exactly once at the time it went offline, released ones only behind a
/// live one (the front is cleaned on every release), no more than twice
/// the depth plus 32 entries (its compaction rule).
fn offline_queue<'c>(
    offline: &[OfflineSnapshot],
    clock: &Clock,
    now: Option<Instant>,
    depth: usize,
    known: impl Fn(ChannelId) -> bool,
    live: impl Fn(ChannelId) -> Option<&'c Channel>,
) -> Result<VecDeque<(ChannelId, Instant)>, RestoreError> {
    let err = |i: usize, problem: String| hub_err("offline", format!("offline[{i}]: {problem}"));
    if offline.len() > 2 * depth + 32 {
        let problem = format!("{} entries for {depth} offline channels", offline.len());
        return Err(hub_err("offline", problem));
    }
    let mut entries = VecDeque::with_capacity(offline.len());
    let mut seen = BTreeSet::new();
    let mut last = None;
    for (i, e) in offline.iter().enumerate() {
        let since = clock.at(e.since).map_err(|p| err(i, p))?;
        if last.is_some_and(|last| since < last) || now.is_none_or(|now| since > now) {
            return Err(err(i, "out of order, or after the hub's clock".into()));
        }
        last = Some(since);
        match live(e.id) {
            Some(ch) => {
                if ch.state != ChannelState::Offline || ch.offline_since != since {
                    let problem = format!("{} is {}, offline since another time", e.id, ch.state);
                    return Err(err(i, problem));
                }
                if !seen.insert(e.id) {
                    return Err(err(i, format!("{} is listed twice", e.id)));
                }
            }
            None if i == 0 => {
                return Err(err(
                    i,
                    format!("{} is released: the front is always live", e.id),
                ));
            }
            None if !known(e.id) => return Err(err(i, format!("{} was never handed out", e.id))),
            None => {}
        }
        entries.push_back((e.id, since));
    }
    if seen.len() != depth {
        let problem = format!("{} offline channels listed, {depth} offline", seen.len());
        return Err(hub_err("offline", problem));
    }
    Ok(entries)
}

/// The hub-level machine (`Gate`): paused at the limit and until the
/// resume mark (invariant 12), always while shutting down; a shutdown
/// kicked every usable channel, completes with the last release, and
/// aborted what was closing at its deadline.
fn gate(
    config: &Config,
    paused: bool,
    shutdown: &Option<ShutdownSnapshot>,
    clock: &Clock,
    channels: &[Option<Channel>],
    usable: usize,
) -> Result<Option<Shutdown>, RestoreError> {
    let live = channels.iter().flatten().count();
    let closing = channels
        .iter()
        .flatten()
        .any(|ch| ch.state == ChannelState::Closing);
    let problem = if live >= config.max_channels && !paused {
        Some(("accept_paused", "not paused at the channel limit"))
    } else if paused && shutdown.is_none() && live <= config.resume_mark() {
        Some(("accept_paused", "paused at or below the resume mark"))
    } else if shutdown.is_some() && !paused {
        Some(("accept_paused", "not paused while shutting down"))
    } else if shutdown.is_some() && usable > 0 {
        Some(("shutdown", "usable channels while shutting down"))
    } else if let Some(s) = shutdown
        && (s.complete != (live == 0) || (s.complete && !s.deadline_done))
    {
        Some(("shutdown", "complete does not match the live channels"))
    } else if shutdown.is_some_and(|s| s.deadline_done && !s.complete) && closing {
        Some((
            "shutdown",
            "channels still closing after the deadline was acted on",
        ))
    } else {
        None
    };
    if let Some((field, problem)) = problem {
        return Err(hub_err(field, format!("{problem} ({live} live)")));
    }
    shutdown
        .map(|s| {
            Ok(Shutdown {
                deadline: (clock.at(s.deadline)).map_err(|p| hub_err("shutdown", p))?,
                deadline_done: s.deadline_done,
                complete: s.complete,
            })
        })
        .transpose()
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
