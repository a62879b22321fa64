//! Flow control as the model sees it: sends, broadcasts and writes
//! (docs/design.md §5.2).

use std::time::Instant;

use bytes::Bytes;

use super::Model;
use crate::testing::checker::{Outcome, Rejection};
use crate::{Action, ChannelId, ChannelState, DisconnectReason, Event, OverflowPolicy};

impl Model {
    /// A send to one channel (also one recipient of a broadcast).
    pub fn send(&mut self, now: Instant, slot: usize, data: &Bytes) -> Outcome {
        let limit = self.config.queue_limit;
        let overhead = self.config.message_overhead;
        let (high, overflow) = (self.config.high_watermark, self.config.overflow);
        let ch = self.channel(slot);
        let len = data.len();
        if !ch.state.is_usable() {
            return Outcome::Rejected(Rejection::NotUsable);
        }
        if len == 0 {
            return Outcome::Ok; // nothing queued, nothing charged
        }
        // u128: the model's arithmetic cannot overflow, whatever the sizes.
        let cost = len as u128 + overhead as u128;
        if cost > limit as u128 {
            return Outcome::Rejected(Rejection::TooLarge);
        }
        if ch.charged as u128 + cost > limit as u128 {
            let kicked = overflow == OverflowPolicy::KickSlowConsumer;
            if kicked {
                self.disconnect(slot, DisconnectReason::SlowConsumer);
                self.abort(slot, now);
            } else {
                ch.backpressured = true;
            }
            return Outcome::Rejected(Rejection::QueueFull { kicked });
        }
        if ch.queued == 0 {
            ch.stall_since = now;
        }
        ch.queued += len;
        ch.charged += len + overhead;
        if ch.charged >= high {
            ch.backpressured = true;
        }
        let id = ch.id;
        self.bytes_queued += len as u64;
        self.actions.push(Action::Transmit {
            id,
            data: data.clone(),
        });
        Outcome::Ok
    }

    pub fn broadcast(&mut self, now: Instant, data: &Bytes) -> Outcome {
        let (mut sent, mut refused) = (0, 0);
        for slot in 0..self.slots.len() {
            if self.state_is(slot, ChannelState::is_usable) {
                match self.send(now, slot, data) {
                    Outcome::Ok => sent += 1,
                    _ => refused += 1,
                }
            }
        }
        Outcome::Broadcast { sent, refused }
    }

    /// A send to each of `ids` in order, stale and unknown ids refused.
    pub fn broadcast_to(&mut self, now: Instant, ids: &[ChannelId], data: &Bytes) -> Outcome {
        let (mut sent, mut refused) = (0, 0);
        for id in ids {
            match self.lookup(*id).map(|slot| self.send(now, slot, data)) {
                Ok(Outcome::Ok) => sent += 1,
                _ => refused += 1,
            }
        }
        Outcome::Broadcast { sent, refused }
    }

    pub fn written(&mut self, now: Instant, slot: usize, n: usize) -> Outcome {
        let low = self.config.low_watermark;
        let ch = self.channel(slot);
        if n > ch.queued {
            return Outcome::Rejected(Rejection::OverWritten);
        }
        ch.queued -= n;
        ch.charged = if ch.queued == 0 { 0 } else { ch.charged - n };
        if n > 0 {
            ch.stall_since = now;
        }
        if ch.backpressured && ch.charged <= low {
            ch.backpressured = false;
            if ch.state.is_usable() {
                let id = ch.id;
                self.events.push(Event::Writable { id });
            }
        }
        self.bytes_written += n as u64;
        self.progress_close(slot, now);
        Outcome::Ok
    }
}
