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
//! on the flooder (docs/design.md §5.2). A driver held back by another
//! shard's queue is woken by that shard's driver when it has taken the
//! queue below [`REMOTE_AHEAD`] ([`QueueDrained`]).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;

use async_channel::Sender;
use bytes::Bytes;
use event_listener::{Event as Signal, EventListener};
use tether_core::{ChannelId, Event, KickMode};

use crate::handle::Command;

/// Commands an in-driver application may have waiting before reads stop.
pub const APP_BACKLOG: usize = 1024;

/// Commands another shard's queue may hold before a driver whose
/// application sends there stops reading: another shard's backpressure
/// paces this one's senders as its own does, with at most this many
/// relayed messages in flight between two shards.
pub const REMOTE_AHEAD: usize = 16;

/// One event per shard, notified by that shard's driver whenever it takes
/// commands from its queue and leaves fewer than [`REMOTE_AHEAD`] there:
/// what a driver held back by that queue waits for, instead of looking
/// again every millisecond. Notifying with nobody listening costs a fence
/// and a load, so a driver notifies whether or not an application runs.
#[derive(Debug)]
pub(crate) struct QueueDrained(Box<[Signal]>);

impl QueueDrained {
    pub fn new(shards: usize) -> Arc<QueueDrained> {
        Arc::new(QueueDrained((0..shards).map(|_| Signal::new()).collect()))
    }

    /// Shard `shard`'s driver took commands and left `left` in its queue.
    pub fn took(&self, shard: usize, left: usize) {
        if left < REMOTE_AHEAD
            && let Some(event) = self.0.get(shard)
        {
            event.notify(usize::MAX);
        }
    }

    fn listen(&self, shard: usize) -> Option<EventListener> {
        self.0.get(shard).map(Signal::listen)
    }
}

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
    /// What wakes this driver when another shard's queue drains.
    drained: Arc<QueueDrained>,
}

impl AppState {
    pub fn new(
        app: Box<dyn App>,
        shard: usize,
        remote: Vec<Option<Sender<Command>>>,
        drained: Arc<QueueDrained>,
    ) -> Self {
        AppState {
            app,
            queues: AppQueues {
                shard,
                local: VecDeque::new(),
                remote,
                pending: VecDeque::new(),
                sent_remote: Cell::new(false),
                drained,
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
    /// more. A driver that finds this true waits for [`Self::listen_remote`]'s
    /// listeners.
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

    /// Listens for the drain of every other shard's queue, then hands
    /// waiting commands over as far as they fit. Listen first, then look:
    /// a queue taken below [`REMOTE_AHEAD`] after this notifies a listener,
    /// so a caller that then finds [`Self::remote_behind`] true may wait
    /// for one without missing the drain. Every other shard, not only
    /// those behind now: the hand-over here may put another one behind.
    /// (A queue shorter than [`REMOTE_AHEAD`] but full, with
    /// `Options::command_queue` below it, notifies at every take.)
    pub fn listen_remote(&mut self, listeners: &mut Vec<EventListener>) {
        let q = &self.queues;
        for (shard, queue) in q.remote.iter().enumerate() {
            if queue.is_some() {
                listeners.extend(q.drained.listen(shard));
            }
        }
        self.flush_remote();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use event_listener::Listener as _;

    use super::*;

    struct Relay;

    impl App for Relay {
        fn on_event(&mut self, _: &Event, _: &mut AppOut<'_>) {}
    }

    fn broadcast() -> Command {
        Command::Broadcast {
            data: Bytes::from_static(b"x\n"),
            reply: None,
        }
    }

    /// Shard 0's application, relaying to shard 1 through a queue of
    /// `capacity`: the receiving end stands for shard 1's driver.
    fn relay(
        capacity: usize,
    ) -> (
        AppState,
        async_channel::Receiver<Command>,
        Arc<QueueDrained>,
    ) {
        let (tx, rx) = async_channel::bounded(capacity);
        let drained = QueueDrained::new(2);
        let app = AppState::new(Box::new(Relay), 0, vec![None, Some(tx)], drained.clone());
        (app, rx, drained)
    }

    /// The wake that replaced looking again every millisecond: a driver
    /// held back by another shard's queue listens, and that shard's driver
    /// notifies it once it has taken the queue below `REMOTE_AHEAD`, not
    /// before.
    #[test]
    fn a_driver_held_back_by_a_queue_is_woken_when_it_is_taken_short() {
        let (mut app, rx, drained) = relay(1024);
        for _ in 0..REMOTE_AHEAD {
            app.queues.to(1, broadcast());
        }
        app.flush_remote();
        assert!(
            app.remote_behind(),
            "{REMOTE_AHEAD} wait in shard 1's queue"
        );
        let mut listeners = Vec::new();
        app.listen_remote(&mut listeners);
        assert_eq!(listeners.len(), 1, "one other shard");
        assert!(app.remote_behind(), "still behind after listening");
        drained.took(1, rx.len());
        assert!(
            !drained.0[1].is_notified(),
            "a queue of {REMOTE_AHEAD} is not short: no wake"
        );
        rx.try_recv().unwrap();
        drained.took(1, rx.len());
        let listener = listeners.pop().unwrap();
        assert!(
            listener.wait_timeout(Duration::from_secs(5)).is_some(),
            "taken to {} (below {REMOTE_AHEAD}): woken",
            rx.len()
        );
        assert!(!app.remote_behind(), "and reading may go on");
    }

    /// A command waiting for room in a full queue shorter than
    /// `REMOTE_AHEAD` (`Options::command_queue` below it): listening hands
    /// over what fits, and the next take wakes the driver.
    #[test]
    fn a_driver_waiting_for_room_in_a_small_queue_is_woken_by_the_next_take() {
        let (mut app, rx, drained) = relay(2);
        for _ in 0..3 {
            app.queues.to(1, broadcast());
        }
        let mut listeners = Vec::new();
        app.listen_remote(&mut listeners);
        assert_eq!(rx.len(), 2, "what fits was handed over");
        assert!(app.remote_behind(), "one waits for room");
        rx.try_recv().unwrap();
        drained.took(1, rx.len());
        assert!(
            listeners
                .pop()
                .unwrap()
                .wait_timeout(Duration::from_secs(5))
                .is_some()
        );
        app.flush_remote();
        assert_eq!((rx.len(), app.backlog()), (2, 0), "the third went over");
    }
}
