//! The chat room, run inside each shard's driver (`tether_adapter::App`):
//! events in, sends and broadcasts out, in the same step, with no thread or
//! queue in between.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use bytes::Bytes;
use tether_adapter::{App, AppFactory, AppOut, Handle};
use tether_core::{ChannelId, Event};

use super::cluster::ClusterNode;
use super::presence::Presence;
use super::stop::StopWriter;
use super::{ChatCounters, ServeError, spawn_thread};
use crate::{ChatOutput, ChatRoom, log_line};

/// The room of each shard. `login`: whether a login deadline is configured,
/// i.e. whether a member's first line must be reported (otherwise that
/// call is skipped); `echo`: lines go back to their sender only; `cluster`:
/// the node every open, close and line is handed to (ids read `NAME/<id>`);
/// `presence`: who is online on this node, for the chat page (kept only
/// when the page is served).
pub(super) fn factory(
    counters: Arc<ChatCounters>,
    presence: Option<Arc<Presence>>,
    login: bool,
    echo: bool,
    cluster: ClusterNode,
) -> AppFactory {
    AppFactory(Arc::new(move |_shard| {
        // The adapter queues each member's greeting at accept
        // (`Options::greeting`), before any broadcast can reach it.
        let room = ChatRoom::greeted_by_adapter();
        let room = if echo { room.echo() } else { room };
        let room = match &cluster {
            Some(node) => room.on_node(node.name().as_str()),
            None => room,
        };
        Box::new(Room {
            room,
            counters: counters.clone(),
            presence: presence.clone(),
            login,
            cluster: cluster.clone(),
        })
    }))
}

/// Waits for the server to stop, then drops `stop`, waking the console and
/// the watcher.
pub(super) fn spawn_stop_watch(
    handle: Handle,
    stop: StopWriter,
) -> Result<JoinHandle<()>, ServeError> {
    spawn_thread("room", move || {
        handle.blocking().stopped();
        drop(stop);
    })
}

struct Room {
    room: ChatRoom,
    counters: Arc<ChatCounters>,
    /// Who is online, for the chat page (`GET /presence`), if it is served.
    presence: Option<Arc<Presence>>,
    login: bool,
    cluster: ClusterNode,
}

impl App for Room {
    fn on_event(&mut self, event: &Event, out: &mut AppOut<'_>) {
        match event {
            Event::HolderOverdue { .. } => {
                if let Some(line) = log_line(event) {
                    tracing::warn!("{line}");
                }
            }
            Event::ShutdownComplete => tracing::info!("every channel drained and released"),
            Event::Opened { .. } | Event::Disconnected { .. } => {
                match (event, &self.presence) {
                    (Event::Opened { id, .. }, Some(presence)) => presence.join(*id),
                    (Event::Disconnected { id, .. }, Some(presence)) => presence.leave(*id),
                    _ => {}
                }
                if tracing::enabled!(tracing::Level::DEBUG)
                    && let Some(line) = log_line(event)
                {
                    tracing::debug!("{line}");
                }
            }
            _ => {}
        }
        // Presence for the other nodes: a hand-off that never blocks.
        if let Some(node) = &self.cluster {
            match event {
                Event::Opened { id, .. } => node.opened(*id),
                Event::Disconnected { id, .. } => node.closed(*id),
                _ => {}
            }
        }
        let (members, relayed, dropped) = self.totals();
        let mut output = Output {
            out,
            login: self.login,
            cluster: self.cluster.as_deref(),
        };
        self.room.handle_event(event, &mut output);
        // Every shard has a room of its own: the counters add them up. They
        // are shared by every shard, so only a change is written (an add
        // of 0 would still take the cache line from the other shards).
        let (members_now, relayed_now, dropped_now) = self.totals();
        let c = &self.counters;
        if members_now > members {
            c.members
                .fetch_add(members_now - members, Ordering::Relaxed);
        } else if members > members_now {
            c.members
                .fetch_sub(members - members_now, Ordering::Relaxed);
        }
        if relayed_now > relayed {
            c.lines_relayed
                .fetch_add(relayed_now - relayed, Ordering::Relaxed);
        }
        if dropped_now > dropped {
            c.lines_dropped
                .fetch_add(dropped_now - dropped, Ordering::Relaxed);
        }
    }
}

impl Room {
    fn totals(&self) -> (u64, u64, u64) {
        (
            self.room.members() as u64,
            self.room.lines_relayed(),
            self.room.lines_dropped(),
        )
    }
}

/// The room's output, as driver commands: executed in order, a broadcast
/// waiting while a channel is backpressured (the driver stops reading while
/// too many wait). A refusal (a member that just left) is counted by the
/// hub (`sends_rejected`).
struct Output<'a, 'b> {
    out: &'a mut AppOut<'b>,
    login: bool,
    cluster: Option<&'a tether_redis::Node>,
}

impl ChatOutput for Output<'_, '_> {
    fn send(&mut self, id: ChannelId, data: Bytes) {
        self.out.post_send(id, data);
    }
    fn broadcast(&mut self, data: Bytes) {
        self.out.post_broadcast(data);
    }
    fn authenticate(&mut self, id: ChannelId) {
        if self.login {
            self.out.post_authenticate(id);
        }
    }
    fn relayed(&mut self, id: ChannelId, line: &[u8]) {
        // To the other nodes, without blocking the driver: a full hand-off
        // is counted (`cluster.handoff_dropped`) and logged.
        if let Some(node) = self.cluster {
            node.line(id, Bytes::copy_from_slice(line));
        }
    }
}
