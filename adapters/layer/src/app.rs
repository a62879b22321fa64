//! An application that runs inside the driver: it sees every event in the
//! step that produced it and answers with commands, with no queue, thread
//! or wake-up in between (see [`Options::app`](crate::Options::app)).
//!
//! Its commands follow the same rules as a [`Handle`](crate::Handle)'s:
//! executed in order, a send or broadcast waits while its channel is
//! backpressured. They queue inside the driver. The driver stops taking
//! reads while one of them waits for backpressure, while more than
//! [`REMOTE_AHEAD`] commands (its own or anyone's, looked at once it has
//! relayed there) wait in another shard's queue, or while [`APP_BACKLOG`]
//! wait here: so a flood that makes the application produce faster than
//! its slowest reader reads is paced by that reader, and TCP pushes back
//! on the flooder (docs/design.md §5.2).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;

use async_channel::Sender;
use bytes::Bytes;
use tether_core::{ChannelId, Event, KickMode};

use crate::handle::Command;

/// Commands an in-driver application may have waiting before reads stop.
pub const APP_BACKLOG: usize = 1024;

/// Commands another shard's queue may hold before a driver whose
/// application sends there stops reading: another shard's backpressure
/// paces this one's senders as its own does, with at most this many
/// relayed messages in flight between two shards.
pub const REMOTE_AHEAD: usize = 16;

/// An application run by each shard's driver (see
/// [`Options::app`](crate::Options::app)). It must not block: it runs on the
/// driver's task or thread.
pub trait App: Send + 'static {
    /// Reacts to one event of this shard, in order.
    fn on_event(&mut self, event: &Event, out: &mut AppOut<'_>);
}

/// Makes the application of each shard (its argument is the shard number).
#[derive(Clone)]
pub struct AppFactory(pub Arc<dyn Fn(u8) -> Box<dyn App> + Send + Sync>);

impl std::fmt::Debug for AppFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppFactory(..)")
    }
}

/// Where an in-driver application puts its commands. It cannot wait for a
/// verdict, so it has only the `post_*` forms of the [`Handle`](crate::Handle)'s
/// commands (see its "Verbs and forms"), with the same rules: in order, a
/// send held while its channel is backpressured, refusals counted.
pub struct AppOut<'a> {
    state: &'a mut AppQueues,
}

impl AppOut<'_> {
    /// Queues `data` on a channel (of any shard). A refusal is counted by
    /// the hub (`sends_rejected`).
    pub fn post_send(&mut self, id: ChannelId, data: Bytes) {
        let command = Command::Send {
            id,
            data,
            reply: None,
        };
        self.state.to(usize::from(id.shard()), command);
    }

    /// Sends `data` to every usable channel of every shard.
    pub fn post_broadcast(&mut self, data: Bytes) {
        for shard in 0..self.state.shards() {
            let command = Command::Broadcast {
                data: data.clone(),
                reply: None,
            };
            self.state.to(shard, command);
        }
    }

    /// Marks a channel logged in.
    pub fn post_authenticate(&mut self, id: ChannelId) {
        let command = Command::Authenticate { id, reply: None };
        self.state.to(usize::from(id.shard()), command);
    }

    /// Kicks a channel (after every command queued before).
    pub fn post_kick(&mut self, id: ChannelId, mode: KickMode, code: u32) {
        let command = Command::Kick {
            id,
            mode,
            code,
            reply: None,
        };
        self.state.to(usize::from(id.shard()), command);
    }
}

/// A driver's application and the commands it has waiting.
pub(crate) struct AppState {
    app: Box<dyn App>,
    pub queues: AppQueues,
}

pub(crate) struct AppQueues {
    shard: usize,
    /// Commands for this shard, in order.
    pub local: VecDeque<Command>,
    /// Every shard's command queue (`None` for this one: its commands stay
    /// in `local`).
    remote: Vec<Option<Sender<Command>>>,
    /// Commands for other shards whose queue was full, in order.
    pending: VecDeque<(usize, Command)>,
    /// Commands were handed to another shard's queue since the queues
    /// were last seen below [`REMOTE_AHEAD`] (see `remote_behind`).
    sent_remote: Cell<bool>,
}

impl AppState {
    pub fn new(app: Box<dyn App>, shard: usize, remote: Vec<Option<Sender<Command>>>) -> Self {
        AppState {
            app,
            queues: AppQueues {
                shard,
                local: VecDeque::new(),
                remote,
                pending: VecDeque::new(),
                sent_remote: Cell::new(false),
            },
        }
    }

    pub fn on_event(&mut self, event: &Event) {
        let mut out = AppOut {
            state: &mut self.queues,
        };
        self.app.on_event(event, &mut out);
    }

    /// Whether commands for other shards wait for room in their queues.
    pub fn has_remote_pending(&self) -> bool {
        !self.queues.pending.is_empty()
    }

    /// Whether another shard is behind with this one's commands: some
    /// wait for room in its queue, or its queue holds [`REMOTE_AHEAD`] or
    /// more. Nothing wakes a driver when another shard's queue drains: the
    /// driver looks again soon while this holds.
    ///
    /// The other queues are looked at only while this shard has handed
    /// them commands since they were last seen short: a driver asks this at
    /// every wake-up, and a shard whose application relays nothing would
    /// read every other shard's queue for nothing.
    pub fn remote_behind(&self) -> bool {
        if self.has_remote_pending() {
            return true;
        }
        if !self.queues.sent_remote.get() {
            return false;
        }
        let behind = self
            .queues
            .remote
            .iter()
            .flatten()
            .any(|queue| queue.len() >= REMOTE_AHEAD);
        self.queues.sent_remote.set(behind);
        behind
    }

    /// Commands waiting, here and for other shards.
    pub fn backlog(&self) -> usize {
        self.queues.local.len() + self.queues.pending.len()
    }

    /// Hands waiting commands to other shards' queues, in order, as far as
    /// they have room (never blocking: two drivers must not wait on each
    /// other).
    pub fn flush_remote(&mut self) {
        let q = &mut self.queues;
        while let Some((shard, command)) = q.pending.pop_front() {
            let Some(Some(queue)) = q.remote.get(shard) else {
                continue;
            };
            match queue.try_send(command) {
                Ok(()) => q.sent_remote.set(true),
                Err(async_channel::TrySendError::Full(command)) => {
                    q.pending.push_front((shard, command));
                    return;
                }
                // That shard has stopped: nothing to deliver to.
                Err(async_channel::TrySendError::Closed(_)) => {}
            }
        }
    }
}

impl AppQueues {
    fn shards(&self) -> usize {
        self.remote.len().max(1)
    }

    fn to(&mut self, shard: usize, command: Command) {
        if shard == self.shard || self.remote.get(shard).is_none_or(Option::is_none) {
            // Ids of no shard go to this hub, which rejects them.
            self.local.push_back(command);
        } else {
            self.pending.push_back((shard, command));
        }
    }
}
