//! The channel machine: every setup, under every policy, every trigger.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    CondKey, LIMIT, Seen, T, drain, err, expected, matching, peer, token_of_action, token_of_event,
};
use crate::transitions::table::{Cond, State, TRANSITIONS, Trigger};
use crate::{
    ChannelId, ChannelState, Config, DisconnectReason, HalfClosePolicy, Hub, KickMode,
    OverflowPolicy,
};

/// Queue limit 1,000 payload bytes (no overhead), high mark 500, low 100;
/// every deadline off or far unless a trigger needs it.
pub(super) fn config(half: HalfClosePolicy, overflow: OverflowPolicy, kick: KickMode) -> Config {
    Config::default().with(|c| {
        c.max_channels = 8;
        (c.queue_limit, c.high_watermark, c.low_watermark) = (LIMIT, 500, 100);
        c.message_overhead = 0;
        (c.half_close, c.overflow, c.default_kick) = (half, overflow, kick);
        (c.stall_timeout, c.idle_timeout, c.login_timeout) = (None, None, None);
        c.flush_timeout = Duration::from_secs(60);
        c.holder_overdue_after = Duration::from_secs(60);
    })
}

fn configs() -> Vec<Config> {
    let mut all = Vec::new();
    for half in [HalfClosePolicy::Allow, HalfClosePolicy::Disallow] {
        for overflow in [OverflowPolicy::Reject, OverflowPolicy::KickSlowConsumer] {
            for kick in [KickMode::Graceful, KickMode::Abort] {
                all.push(config(half, overflow, kick));
            }
        }
    }
    all
}

/// Where the subject channel is put before the trigger.
#[derive(Debug, Clone, Copy)]
enum Setup {
    OpenEmpty,
    OpenNoHolder,
    OpenQueued,
    OpenBackpressured,
    HalfEmpty,
    HalfQueued,
    ClosingFlushing,
    ClosingFinSent,
    ClosingFlushingAfterEof,
    OfflineAborted,
    OfflineDone,
    OfflineTwoHolders,
    OfflineNoHolder,
    Released,
}

const SETUPS: [Setup; 14] = [
    Setup::OpenEmpty,
    Setup::OpenNoHolder,
    Setup::OpenQueued,
    Setup::OpenBackpressured,
    Setup::HalfEmpty,
    Setup::HalfQueued,
    Setup::ClosingFlushing,
    Setup::ClosingFinSent,
    Setup::ClosingFlushingAfterEof,
    Setup::OfflineAborted,
    Setup::OfflineDone,
    Setup::OfflineTwoHolders,
    Setup::OfflineNoHolder,
    Setup::Released,
];

/// Builds the setup at `t0`; `None` where the config cannot reach it.
fn build(setup: Setup, config: &Config, t0: Instant) -> Option<(Hub, ChannelId)> {
    use Setup::*;
    let allow = config.half_close == HalfClosePolicy::Allow;
    if matches!(setup, HalfEmpty | HalfQueued) && !allow {
        return None;
    }
    let mut hub = Hub::new(config.clone()).unwrap();
    let id = hub.accept(t0, peer()).unwrap();
    let holders = match setup {
        OpenNoHolder | OfflineNoHolder | Released => 0,
        OfflineTwoHolders => 2,
        _ => 1,
    };
    for _ in 0..holders {
        hub.attach(t0, id).unwrap();
    }
    let send = |hub: &mut Hub, n: usize| hub.send(t0, id, Bytes::from(vec![0; n])).unwrap();
    let kick = |hub: &mut Hub, mode| hub.kick(t0, id, mode, 1).unwrap();
    match setup {
        OpenEmpty | OpenNoHolder => {}
        OpenQueued => send(&mut hub, 10),
        OpenBackpressured => send(&mut hub, 600),
        HalfEmpty => hub.handle_peer_eof(t0, id).unwrap(),
        HalfQueued => {
            send(&mut hub, 10);
            hub.handle_peer_eof(t0, id).unwrap();
        }
        ClosingFlushing => {
            send(&mut hub, 10);
            kick(&mut hub, KickMode::Graceful);
        }
        ClosingFinSent => kick(&mut hub, KickMode::Graceful),
        ClosingFlushingAfterEof => {
            send(&mut hub, 10);
            hub.handle_peer_eof(t0, id).unwrap();
            if allow {
                kick(&mut hub, KickMode::Graceful);
            }
        }
        OfflineAborted | OfflineTwoHolders | OfflineNoHolder => kick(&mut hub, KickMode::Abort),
        OfflineDone => {
            kick(&mut hub, KickMode::Graceful);
            hub.handle_peer_eof(t0, id).unwrap();
        }
        Released => {
            kick(&mut hub, KickMode::Abort);
            hub.handle_closed(t0, id).unwrap();
        }
    }
    drain(&mut hub);
    Some((hub, id))
}

/// What a row may depend on, read from the channel's record.
fn channel_facts(hub: &Hub, id: ChannelId) -> (State, BTreeSet<CondKey>) {
    let c = hub.config();
    let mut facts = BTreeSet::new();
    let mut add = |cond: Cond| facts.insert(CondKey(cond));
    add(match c.half_close {
        HalfClosePolicy::Allow => Cond::HalfCloseAllowed,
        HalfClosePolicy::Disallow => Cond::HalfCloseDisallowed,
    });
    add(match c.overflow {
        OverflowPolicy::Reject => Cond::RejectPolicy,
        OverflowPolicy::KickSlowConsumer => Cond::KickPolicy,
    });
    add(match c.default_kick {
        KickMode::Graceful => Cond::DefaultGraceful,
        KickMode::Abort => Cond::DefaultAbort,
    });
    let Some(ch) = hub.record(id) else {
        return (State::Released, facts);
    };
    add(if ch.queued == 0 {
        Cond::QueueEmpty
    } else {
        Cond::BytesQueued
    });
    add(if ch.backpressured {
        Cond::Backpressured
    } else {
        Cond::NotBackpressured
    });
    add(if ch.peer_eof {
        Cond::PeerEofSeen
    } else {
        Cond::PeerEofNotSeen
    });
    add(if ch.close_requested {
        Cond::CloseRequested
    } else {
        Cond::CloseNotRequested
    });
    match ch.holders {
        0 => add(Cond::NoHolder),
        1 => add(Cond::HolderAttached) | add(Cond::LastHolder),
        _ => add(Cond::HolderAttached) | add(Cond::OtherHoldersLeft),
    };
    (channel_state(ch.state), facts)
}

fn channel_state(state: ChannelState) -> State {
    match state {
        ChannelState::Open => State::Open,
        ChannelState::HalfClosed => State::HalfClosed,
        ChannelState::Closing => State::Closing,
        ChannelState::Offline => State::Offline,
    }
}

/// Makes the call(s) of a case; the error's name, if it failed.
type Run = dyn Fn(&mut Hub, ChannelId, Instant) -> Option<&'static str>;

/// One trigger applied: the call(s), the extra facts it brings, the reason
/// a `Disconnected(its reason)` must carry.
struct Case {
    trigger: Trigger,
    label: String,
    extra: Vec<Cond>,
    reason: Option<DisconnectReason>,
    run: Box<Run>,
    /// A deadline trigger: the config it needs.
    tweak: Option<fn(&mut Config)>,
}

fn case(
    trigger: Trigger,
    label: &str,
    extra: Vec<Cond>,
    reason: Option<DisconnectReason>,
    run: impl Fn(&mut Hub, ChannelId, Instant) -> Option<&'static str> + 'static,
) -> Case {
    Case {
        trigger,
        label: label.to_owned(),
        extra,
        reason,
        run: Box::new(run),
        tweak: None,
    }
}

fn deadline(trigger: Trigger, tweak: fn(&mut Config)) -> Case {
    Case {
        trigger,
        label: trigger.name().to_owned(),
        extra: Vec::new(),
        reason: None,
        run: Box::new(|hub, _, t0| {
            hub.handle_timeout(t0 + T);
            None
        }),
        tweak: Some(tweak),
    }
}

/// Every trigger on a channel, with its variants; `queued`, `charged` and
/// the config decide the send and write variants' conditions.
fn channel_cases(queued: usize, charged: usize, config: &Config) -> Vec<Case> {
    let kicked = |code| Some(DisconnectReason::Kicked { code });
    let mut cases = vec![
        case(Trigger::Received, "received", vec![], None, |h, id, t| {
            err(h.handle_received(t, id, Bytes::from_static(b"x")))
        }),
        case(Trigger::PeerEof, "peer EOF", vec![], None, |h, id, t| {
            err(h.handle_peer_eof(t, id))
        }),
        case(
            Trigger::IoError,
            "I/O error",
            vec![],
            Some(DisconnectReason::PeerReset),
            |h, id, t| err(h.handle_io_error(t, id, ErrorKind::ConnectionReset)),
        ),
        case(
            Trigger::KickGraceful,
            "kick graceful",
            vec![],
            kicked(9),
            |h, id, t| err(h.kick(t, id, KickMode::Graceful, 9)),
        ),
        case(
            Trigger::KickAbort,
            "kick abort",
            vec![],
            kicked(9),
            |h, id, t| err(h.kick(t, id, KickMode::Abort, 9)),
        ),
        case(
            Trigger::Authenticate,
            "authenticate",
            vec![],
            None,
            |h, id, t| err(h.authenticate(t, id)),
        ),
        case(Trigger::Attach, "attach", vec![], None, |h, id, t| {
            err(h.attach(t, id))
        }),
        case(Trigger::Detach, "detach", vec![], None, |h, id, t| {
            err(h.detach(t, id))
        }),
        case(Trigger::Closed, "closed", vec![], None, |h, id, t| {
            err(h.handle_closed(t, id))
        }),
        case(Trigger::Shutdown, "shutdown", vec![], None, |h, _, t| {
            h.shutdown(t, Duration::from_secs(30));
            None
        }),
        deadline(Trigger::LoginDue, |c| c.login_timeout = Some(T)),
        deadline(Trigger::IdleDue, |c| c.idle_timeout = Some(T)),
        deadline(Trigger::StallDue, |c| c.stall_timeout = Some(T)),
        deadline(Trigger::FlushDue, |c| c.flush_timeout = T),
        deadline(Trigger::OverdueDue, |c| c.holder_overdue_after = T),
        // The grace deadline of a shutdown started here: only for channels
        // that a shutdown leaves alone (closing or offline).
        case(Trigger::GraceDue, "grace due", vec![], None, |h, _, t| {
            h.shutdown(t, T);
            drain(h);
            h.handle_timeout(t + T);
            None
        }),
    ];
    let default_trigger = match config.default_kick {
        KickMode::Graceful => Trigger::KickGraceful,
        KickMode::Abort => Trigger::KickAbort,
    };
    cases.push(case(
        default_trigger,
        "kick_default",
        vec![],
        kicked(0),
        |h, id, t| err(h.kick_default(t, id)),
    ));
    for len in [10, LIMIT - 5, LIMIT + 1] {
        let fit = if len + config.message_overhead > LIMIT {
            Cond::TooLarge
        } else if charged + len + config.message_overhead > LIMIT {
            Cond::OverLimit
        } else {
            Cond::Fits
        };
        let label = format!("send {len}");
        cases.push(case(
            Trigger::Send,
            &label,
            vec![fit],
            None,
            move |h, id, t| err(h.send(t, id, Bytes::from(vec![0; len]))),
        ));
    }
    let mut writes = vec![(queued, Cond::WritesAll), (queued + 1, Cond::WritesTooMuch)];
    if queued > 1 {
        writes.push((1, Cond::WritesPart));
    }
    for (n, cond) in writes {
        let label = format!("written({n})");
        cases.push(case(
            Trigger::Written,
            &label,
            vec![cond],
            None,
            move |h, id, t| err(h.handle_written(t, id, n)),
        ));
    }
    cases
}

/// Whether a deadline trigger has a deadline to act on in this state.
fn deadline_applies(trigger: Trigger, state: State, facts: &BTreeSet<CondKey>) -> bool {
    let has = |c: Cond| facts.contains(&CondKey(c));
    let usable = matches!(state, State::Open | State::HalfClosed);
    match trigger {
        Trigger::LoginDue | Trigger::IdleDue => usable,
        Trigger::StallDue => usable && has(Cond::BytesQueued),
        Trigger::FlushDue => state == State::Closing,
        Trigger::OverdueDue => state == State::Offline && has(Cond::HolderAttached),
        Trigger::GraceDue => matches!(state, State::Closing | State::Offline),
        _ => true,
    }
}

/// Checks every channel setup against the table, marking the rows used.
pub(super) fn check(used: &mut [bool], failures: &mut Vec<String>) {
    let t0 = Instant::now();
    for config in configs() {
        for setup in SETUPS {
            let Some((probe, id)) = build(setup, &config, t0) else {
                continue;
            };
            let (queued, charged) = probe.record(id).map_or((0, 0), |c| (c.queued, c.charged));
            for case in channel_cases(queued, charged, &config) {
                let mut config = config.clone();
                if let Some(tweak) = case.tweak {
                    tweak(&mut config);
                }
                let (mut hub, id) = build(setup, &config, t0).unwrap();
                let (state, mut facts) = channel_facts(&hub, id);
                facts.extend(case.extra.iter().map(|c| CondKey(*c)));
                let holders = hub.record(id).map_or(0, |c| c.holders);
                let trigger = if state == State::Released {
                    let timed = case.tweak.is_some() || case.trigger == Trigger::GraceDue;
                    if timed || case.trigger == Trigger::Shutdown {
                        continue; // no deadline, no channel to shut down
                    }
                    Trigger::AnyCall
                } else {
                    case.trigger
                };
                let applies = deadline_applies(trigger, state, &facts);
                if trigger == Trigger::GraceDue && !applies {
                    continue; // a shutdown would kick the channel first
                }
                let error = (case.run)(&mut hub, id, t0);
                let (actions, events) = drain(&mut hub);
                let seen: Seen = (
                    (actions.iter())
                        .filter(|a| a.channel() == Some(id))
                        .map(token_of_action)
                        .collect(),
                    (events.iter())
                        .filter(|e| e.channel() == Some(id))
                        .map(token_of_event)
                        .collect(),
                    error,
                );
                let after = channel_facts(&hub, id).0;
                let what = format!("{setup:?} + {} ({config:?})", case.label);
                if !applies {
                    // No row: the deadline must not exist here at all.
                    if seen != (vec![], vec![], None) || after != state {
                        failures.push(format!(
                            "{what}: acted ({seen:?}, → {after:?}) where the table has no row"
                        ));
                    }
                    continue;
                }
                let rows = matching(state, trigger, &facts);
                let [i] = rows[..] else {
                    failures.push(format!(
                        "{what}: {} rows match ({rows:?}) in {state:?}",
                        rows.len()
                    ));
                    continue;
                };
                used[i] = true;
                let row = &TRANSITIONS[i];
                let want = expected(row, holders, case.reason);
                let to = row.to.unwrap_or(state);
                if seen != want || after != to {
                    failures.push(format!(
                        "{what}: row {i} says {want:?} → {to:?}, the hub did {seen:?} → {after:?}"
                    ));
                }
            }
        }
    }
}
