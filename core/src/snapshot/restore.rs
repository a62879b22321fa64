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
use crate::id::{ChannelId, IdTable, MAX_SLOTS};
use crate::offline::OfflineQueue;
use crate::output::ChannelState;
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
    clock_rule(
        config,
        now,
        held_jump,
        !channels.is_empty() || shutdown.is_some(),
    )?;
    table(config, slots, free, channels)?;
    let mut by_slot: Vec<Option<Channel>> = vec![None; slots.len()];
    let (mut usable, mut backpressured, mut offline_channels, mut queued) = (0, 0, 0, 0u64);
    for snap in channels {
        let ch = channel(snap, &clock)?;
        // `clock_rule` made sure the clock is set when a channel exists.
        check::channel(snap.id, &ch, config, now.unwrap_or(ch.opened_at))?;
        usable += usize::from(ch.state.is_usable());
        backpressured += usize::from(ch.backpressured);
        offline_channels += usize::from(ch.state == ChannelState::Offline);
        queued += ch.queued as u64;
        by_slot[snap.id.slot() as usize] = Some(ch);
    }
    let known = |id: ChannelId| {
        let slot = slots.get(id.slot() as usize);
        id.shard() == config.shard
            && slot.is_some_and(|s| id.generation() >= 1 && id.generation() <= s.generation)
    };
    let live = |id: ChannelId| {
        by_slot
            .get(id.slot() as usize)
            .and_then(Option::as_ref)
            .filter(|_| known(id) && slots[id.slot() as usize].generation == id.generation())
    };
    let timers = heap(timers, &clock, channels.len(), known)?;
    let entries: BTreeSet<_> = timers.iter().copied().collect();
    for (id, ch) in channels.iter().filter_map(|c| Some((c.id, live(c.id)?))) {
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
    let entries = offline_queue(offline, &clock, now, offline_channels, known, live)?;
    let shutdown = gate(config, *accept_paused, shutdown, &clock, &by_slot, usable)?;
    let oldest = entries
        .front()
        .map(|&(_, since)| now.unwrap_or(since).saturating_duration_since(since));
    let actual = Stats {
        live: channels.len(),
        usable,
        backpressured,
        offline_depth: offline_channels,
        offline_oldest: oldest,
        accept_paused: *accept_paused,
        timer_entries: timers.len(),
        ..Stats::default()
    };
    check::stats(stats, &actual, queued)?;
    if stats.offline_peak < offline_channels || stats.offline_peak > config.max_channels {
        let problem = format!(
            "{} is below the offline depth {offline_channels} or above max_channels",
            stats.offline_peak
        );
        return Err(hub_err("stats.offline_peak", problem));
    }
    let books = Books {
        actions: VecDeque::new(),
        events: VecDeque::new(),
        stats: counters(stats),
        offline: OfflineQueue::from_parts(entries, offline_channels, stats.offline_peak),
        usable,
        backpressured,
    };
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

/// The id table: slots, the free list, and the channels' ids.
fn table(
    config: &Config,
    slots: &[SlotSnapshot],
    free: &[u32],
    channels: &[ChannelSnapshot],
) -> Result<(), RestoreError> {
    if slots.len() > MAX_SLOTS {
        return Err(hub_err(
            "slots",
            format!("{} slots, more than {MAX_SLOTS}", slots.len()),
        ));
    }
    if let Some(i) = slots.iter().position(|s| s.generation == 0) {
        return Err(hub_err(
            "slots",
            format!("slot {i}: generation 0 (they start at 1)"),
        ));
    }
    // A slot is added only when every slot in use is occupied; a slot is
    // retired (never reused) at generation `u32::MAX`.
    let retired = |s: &SlotSnapshot| !s.occupied && s.generation == u32::MAX;
    let in_use = slots.iter().filter(|s| !retired(s)).count();
    if in_use > config.max_channels {
        let max = config.max_channels;
        let problem = format!("{in_use} slots in use, more than max_channels ({max})");
        return Err(hub_err("slots", problem));
    }
    let mut last = None;
    for ch in channels {
        let id = ch.id;
        let err = |problem: String| RestoreError::Channel {
            id,
            field: "id",
            problem,
        };
        if id.shard() != config.shard {
            return Err(err(format!(
                "shard {}, the config's is {}",
                id.shard(),
                config.shard
            )));
        }
        let slot = id.slot() as usize;
        if last.is_some_and(|last| slot <= last) {
            return Err(err(
                "channels are not in strictly increasing slot order".into()
            ));
        }
        last = Some(slot);
        match slots.get(slot) {
            Some(s) if s.occupied && s.generation == id.generation() => {}
            Some(s) => {
                let (g, o) = (s.generation, s.occupied);
                return Err(err(format!("slot {slot} has generation {g}, occupied {o}")));
            }
            None => {
                return Err(err(format!(
                    "slot {slot} is past the {} slots",
                    slots.len()
                )));
            }
        }
    }
    let occupied = slots.iter().filter(|s| s.occupied).count();
    if occupied != channels.len() {
        let problem = format!("{occupied} occupied slots, {} channels", channels.len());
        return Err(hub_err("slots", problem));
    }
    // The free list is exactly the vacant slots that are not retired.
    let mut listed = vec![false; slots.len()];
    for (i, &slot) in free.iter().enumerate() {
        let ok = (slots.get(slot as usize))
            .is_some_and(|s| !s.occupied && !retired(s) && !listed[slot as usize]);
        if !ok {
            let problem =
                format!("free[{i}]: slot {slot} is not a vacant, unlisted, unretired slot");
            return Err(hub_err("free", problem));
        }
        listed[slot as usize] = true;
    }
    let vacant = in_use - occupied;
    if free.len() != vacant {
        let problem = format!(
            "{} slots listed, {vacant} vacant slots not retired",
            free.len()
        );
        return Err(hub_err("free", problem));
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
