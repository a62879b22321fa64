//! The hub machine: accepting, paused, draining, stopped.

use std::collections::BTreeSet;
use std::time::Instant;

use super::channel::config;
use super::{
    CondKey, ErrorName, Seen, T, drain, err, expected, matching, peer, token_of_action,
    token_of_event,
};
use crate::transitions::table::{Cond, State, TRANSITIONS, Trigger};
use crate::{ChannelId, Event, HalfClosePolicy, Hub, KickMode, OverflowPolicy};

/// The hub machine: built with `max_channels` 3 and resume mark 1.
pub(super) fn check(used: &mut [bool], failures: &mut Vec<String>) {
    #[derive(Debug, Clone, Copy)]
    enum HubSetup {
        Empty,
        One,
        Two,
        PausedFull,
        PausedTwo,
        DrainingTwo,
        DrainingOne,
        Stopped,
    }
    let t0 = Instant::now();
    let config = config(
        HalfClosePolicy::Disallow,
        OverflowPolicy::Reject,
        KickMode::Graceful,
    )
    .with(|c| (c.max_channels, c.accept_resume_at) = (3, Some(1)));
    // A releasable channel (offline, close requested) and `open` open ones.
    let build = |setup: HubSetup| -> (Hub, Option<ChannelId>) {
        let mut hub = Hub::new(config.clone()).unwrap();
        let releasable = |hub: &mut Hub| {
            let id = hub.accept(t0, peer()).unwrap();
            hub.kick(t0, id, KickMode::Abort, 0).unwrap();
            id
        };
        let open = |hub: &mut Hub, n: usize| {
            for _ in 0..n {
                hub.accept(t0, peer()).unwrap();
            }
        };
        let r = match setup {
            HubSetup::Empty | HubSetup::Stopped => None,
            HubSetup::One | HubSetup::DrainingOne => Some(releasable(&mut hub)),
            HubSetup::Two | HubSetup::DrainingTwo => {
                open(&mut hub, 1);
                Some(releasable(&mut hub))
            }
            HubSetup::PausedFull => {
                open(&mut hub, 2);
                Some(releasable(&mut hub))
            }
            HubSetup::PausedTwo => {
                let first = releasable(&mut hub);
                open(&mut hub, 1);
                let r = releasable(&mut hub);
                hub.handle_closed(t0, first).unwrap(); // 2 left: still paused
                Some(r)
            }
        };
        if matches!(
            setup,
            HubSetup::DrainingOne | HubSetup::DrainingTwo | HubSetup::Stopped
        ) {
            hub.shutdown(t0, T);
        }
        drain(&mut hub);
        (hub, r)
    };
    let hub_state = |hub: &Hub| {
        if hub.is_shutdown_complete() {
            State::Stopped
        } else if hub.is_shutting_down() {
            State::Draining
        } else if hub.is_accept_paused() {
            State::Paused
        } else {
            State::Accepting
        }
    };
    use HubSetup::*;
    for setup in [
        Empty,
        One,
        Two,
        PausedFull,
        PausedTwo,
        DrainingTwo,
        DrainingOne,
        Stopped,
    ] {
        for trigger in [
            Trigger::Accept,
            Trigger::Closed,
            Trigger::Shutdown,
            Trigger::GraceDue,
        ] {
            let (mut hub, releasable) = build(setup);
            let state = hub_state(&hub);
            if trigger == Trigger::Closed && releasable.is_none()
                || trigger == Trigger::GraceDue
                    && !matches!(state, State::Draining | State::Stopped)
            {
                continue;
            }
            let live = hub.live();
            let mark = config.resume_mark();
            let max = config.max_channels;
            let facts: BTreeSet<CondKey> = [
                if live < max {
                    Cond::RoomLeft
                } else {
                    Cond::AtLimit
                },
                if live + 1 < max {
                    Cond::BelowLimit
                } else {
                    Cond::ReachesLimit
                },
                if live.saturating_sub(1) > mark {
                    Cond::AboveResumeMark
                } else {
                    Cond::AtResumeMark
                },
                if live > 1 {
                    Cond::OthersLeft
                } else {
                    Cond::LastChannel
                },
                if live > 0 {
                    Cond::ChannelsAlive
                } else {
                    Cond::NoChannel
                },
            ]
            .into_iter()
            .map(CondKey)
            .collect();
            let error = match trigger {
                Trigger::Accept => hub.accept(t0, peer()).err().map(|e| e.name()),
                Trigger::Closed => err(hub.handle_closed(t0, releasable.unwrap())),
                Trigger::Shutdown => {
                    hub.shutdown(t0, T);
                    None
                }
                _ => {
                    hub.handle_timeout(t0 + T);
                    None
                }
            };
            let (actions, events) = drain(&mut hub);
            let seen: Seen = (
                (actions.iter().filter(|a| a.channel().is_none()))
                    .map(token_of_action)
                    .collect(),
                (events.iter())
                    .filter(|e| e.channel().is_none() || matches!(e, Event::Opened { .. }))
                    .map(token_of_event)
                    .collect(),
                error,
            );
            let after = hub_state(&hub);
            let what = format!("hub {setup:?} + {}", trigger.name());
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
            let want = expected(row, 1, None);
            let to = row.to.unwrap_or(state);
            if seen != want || after != to {
                failures.push(format!(
                    "{what}: row {i} says {want:?} → {to:?}, the hub did {seen:?} → {after:?}"
                ));
            }
        }
    }
}
