//! The model of a hub restored from a [`Snapshot`]: every field the model
//! keeps is in the snapshot, so checking continues from it as if the
//! checker had watched the hub from its start (see
//! [`Checker::from_snapshot`](crate::testing::Checker::from_snapshot)).

use std::time::Instant;

use super::{Model, ModelChannel, ModelShutdown, Slot};
use crate::snapshot::{ChannelSnapshot, Snapshot};
use crate::{ChannelState, RejectedInputs};

impl Model {
    /// The model of the hub `snapshot` restores to at `epoch`. The
    /// snapshot must have been accepted by `Hub::restore` (the caller
    /// checks): its instants then all exist.
    pub fn from_snapshot(snapshot: &Snapshot, epoch: Instant) -> Model {
        let at = |n: i64| crate::snapshot::instant_or(n, epoch);
        let mut slots: Vec<Slot> = (snapshot.slots.iter())
            .map(|s| Slot {
                generation: s.generation,
                channel: None,
            })
            .collect();
        for ch in &snapshot.channels {
            if let Some(slot) = slots.get_mut(ch.id.slot() as usize) {
                slot.channel = Some(channel(ch, at));
            }
        }
        let offline = (snapshot.channels.iter())
            .filter(|ch| ch.state == ChannelState::Offline)
            .count();
        let stats = &snapshot.stats;
        Model {
            config: snapshot.config.clone(),
            slots,
            live: snapshot.channels.len(),
            now: snapshot.now.map(at),
            held_jump: snapshot.held_jump.map(at),
            paused: snapshot.accept_paused,
            shutdown: snapshot.shutdown.map(|s| ModelShutdown {
                deadline: at(s.deadline),
                deadline_done: s.deadline_done,
                complete: s.complete,
            }),
            offline,
            bytes_queued: stats.bytes_queued,
            bytes_written: stats.bytes_written,
            bytes_dropped: stats.bytes_dropped,
            rejected: RejectedInputs::clone(&stats.rejected_input),
            actions: Vec::new(),
            events: Vec::new(),
        }
    }
}

fn channel(ch: &ChannelSnapshot, at: impl Fn(i64) -> Instant) -> ModelChannel {
    let opened_at = at(ch.opened_at);
    ModelChannel {
        id: ch.id,
        state: ch.state,
        holders: ch.holders,
        queued: ch.queued,
        charged: ch.charged,
        // The hub keeps the stall clock only while it runs (usable with
        // bytes queued); the model's is read only then.
        stall_since: ch.stall_since.map_or(opened_at, &at),
        peer_eof: ch.peer_eof,
        write_shut: ch.write_shut,
        aborted: ch.aborted,
        close_requested: ch.close_requested,
        disconnected: ch.reason.is_some(),
        authenticated: ch.authenticated,
        backpressured: ch.backpressured,
        overdue_reported: ch.overdue_reported,
        opened_at,
        last_activity: at(ch.last_activity),
        closing_deadline: at(ch.closing_deadline),
        offline_since: at(ch.offline_since),
    }
}
