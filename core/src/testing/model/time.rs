//! The model's deadlines: which are armed, which is next, and what each
//! does when `handle_timeout` reaches it (invariant 7).

use std::time::{Duration, Instant};

use super::{Model, ModelChannel, after};
use crate::testing::checker::Outcome;
use crate::{ChannelState, DisconnectReason, Event, KickMode};

/// Where a deadline that must exist goes when `now + d` overflows: about
/// 136 years ahead, or the last whole second `Instant` holds after `now`
/// (found bit by bit here, by bisection in the hub): `now` itself only on a
/// clock already at that last second.
pub(super) fn far_future(now: Instant) -> Instant {
    after(now, Duration::from_secs(u64::from(u32::MAX))).unwrap_or_else(|| {
        let secs = (0..64).rev().fold(0u64, |secs, bit| {
            let more = secs | 1 << bit;
            if after(now, Duration::from_secs(more)).is_some() {
                more
            } else {
                secs
            }
        });
        after(now, Duration::from_secs(secs)).unwrap_or(now)
    })
}

impl Model {
    /// The exact next deadline of one channel, if any (invariant 7).
    pub fn deadline_of(&self, ch: &ModelChannel) -> Option<Instant> {
        let c = &self.config;
        match ch.state {
            ChannelState::Open | ChannelState::HalfClosed => {
                let login = c
                    .login_timeout
                    .filter(|_| !ch.authenticated)
                    .and_then(|d| after(ch.opened_at, d));
                let idle = c.idle_timeout.and_then(|d| after(ch.last_activity, d));
                [login, idle, self.stall_deadline(ch)]
                    .into_iter()
                    .flatten()
                    .min()
            }
            ChannelState::Closing => Some(ch.closing_deadline),
            ChannelState::Offline if ch.holders > 0 && !ch.overdue_reported => {
                after(ch.offline_since, c.holder_overdue_after)
            }
            ChannelState::Offline => None,
        }
    }

    /// When a usable channel's non-empty queue counts as stalled.
    fn stall_deadline(&self, ch: &ModelChannel) -> Option<Instant> {
        if ch.queued == 0 || !ch.state.is_usable() {
            return None;
        }
        after(ch.stall_since, self.config.stall_timeout?)
    }

    /// The earliest deadline of the whole hub (channels and shutdown).
    pub fn earliest_deadline(&self) -> Option<Instant> {
        let channels = self
            .slots
            .iter()
            .filter_map(|s| s.channel.as_ref())
            .filter_map(|ch| self.deadline_of(ch));
        let shutdown = self
            .shutdown
            .filter(|s| !s.deadline_done)
            .map(|s| s.deadline);
        channels.chain(shutdown).min()
    }

    /// `handle_timeout(now)`: every due deadline acted on (invariant 7).
    pub fn timeout(&mut self, now: Instant) -> Outcome {
        // Until none is due: a deadline set by acting on another can be due
        // already (a flush deadline at `now` on a clock at the last second
        // `Instant` holds), and the hub acts on it in the same call.
        let mut acted = true;
        while acted {
            acted = false;
            for slot in 0..self.slots.len() {
                let Some(ch) = self.slots[slot].channel.as_ref() else {
                    continue;
                };
                if self.deadline_of(ch).is_some_and(|d| d <= now) {
                    self.deadline(slot, now);
                    acted = true;
                }
            }
        }
        if let Some(s) = self.shutdown.as_mut()
            && !s.deadline_done
            && s.deadline <= now
        {
            s.deadline_done = true;
            for slot in 0..self.slots.len() {
                if self.state_is(slot, |s| s == ChannelState::Closing) {
                    self.abort(slot, now);
                }
            }
        }
        Outcome::Ok
    }

    /// One channel's due deadline (the caller checked it is due).
    fn deadline(&mut self, slot: usize, now: Instant) {
        let (login, kick) = (self.config.login_timeout, self.config.default_kick);
        let stalled = {
            let ch = self.slots[slot].channel.as_ref().expect("live slot");
            self.stall_deadline(ch).is_some_and(|t| t <= now)
        };
        if stalled {
            // Slow consumer: abort, the queue dropped and counted. Wins over
            // login and idle when they are due at the same time.
            self.disconnect(slot, DisconnectReason::SlowConsumer);
            self.abort(slot, now);
            return;
        }
        let ch = self.channel(slot);
        match ch.state {
            ChannelState::Open | ChannelState::HalfClosed => {
                let login_due = !ch.authenticated
                    && login
                        .and_then(|d| after(ch.opened_at, d))
                        .is_some_and(|t| t <= now);
                let reason = if login_due {
                    DisconnectReason::LoginTimeout
                } else {
                    DisconnectReason::IdleTimeout
                };
                self.disconnect(slot, reason);
                match kick {
                    KickMode::Graceful => self.begin_graceful(slot, now),
                    KickMode::Abort => self.abort(slot, now),
                }
            }
            ChannelState::Closing => self.abort(slot, now),
            ChannelState::Offline => {
                ch.overdue_reported = true;
                let (id, holders) = (ch.id, ch.holders);
                let waited = now.saturating_duration_since(ch.offline_since);
                self.events.push(Event::HolderOverdue {
                    id,
                    holders,
                    waited,
                });
            }
        }
    }
}
