//! The room thread: events in, posted sends and broadcasts out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use bytes::Bytes;
use tether_adapter::{Events, Handle};
use tether_core::{ChannelId, Event};

use super::stop::StopWriter;
use super::{ChatCounters, ServeError, spawn_thread};
use crate::{ChatOutput, ChatRoom, log_line};

/// Runs the room until the event stream ends (the server stopped), then
/// waits for the stop to complete and drops `stop`, waking the console and
/// the watcher.
pub(super) fn spawn(
    handle: Handle,
    events: Events,
    counters: Arc<ChatCounters>,
    stop: StopWriter,
    login: bool,
) -> Result<JoinHandle<()>, ServeError> {
    spawn_thread("room", move || {
        run(&handle, &events, &counters, login);
        handle.blocking().stopped();
        drop(stop);
    })
}

/// `login`: whether a login deadline is configured, i.e. whether a
/// member's first line must be reported (otherwise that call is skipped).
fn run(handle: &Handle, events: &Events, counters: &ChatCounters, login: bool) {
    // The adapter queues each member's greeting at accept
    // (`Options::greeting`), before any broadcast can reach it.
    let mut room = ChatRoom::greeted_by_adapter();
    let mut out = Posting {
        handle,
        stopped: false,
        login,
    };
    while let Some(event) = events.next_blocking() {
        match &event {
            Event::HolderOverdue { .. } => {
                if let Some(line) = log_line(&event) {
                    tracing::warn!("{line}");
                }
            }
            Event::ShutdownComplete => tracing::info!("every channel drained and released"),
            _ => {
                if let Some(line) = log_line(&event) {
                    tracing::debug!("{line}");
                }
            }
        }
        room.handle_event(&event, &mut out);
        counters
            .members
            .store(room.members() as u64, Ordering::Relaxed);
        counters
            .lines_relayed
            .store(room.lines_relayed(), Ordering::Relaxed);
        counters
            .lines_dropped
            .store(room.lines_dropped(), Ordering::Relaxed);
    }
}

/// The room's output, posted with the blocking forms: each waits for room
/// in the bounded command queue (that wait is the flow control), none waits
/// for a verdict. A refusal (a member that just left) is counted by the hub
/// (`sends_rejected`); a post fails only once the server has stopped.
struct Posting<'a> {
    handle: &'a Handle,
    stopped: bool,
    login: bool,
}

impl Posting<'_> {
    fn check(&mut self, result: Result<(), tether_adapter::Error>) {
        if let Err(e) = result
            && !self.stopped
        {
            self.stopped = true;
            tracing::debug!("room output ends: {e}");
        }
    }
}

impl ChatOutput for Posting<'_> {
    fn send(&mut self, id: ChannelId, data: Bytes) {
        if !self.stopped {
            let result = self.handle.blocking().post_send(id, data);
            self.check(result);
        }
    }
    fn broadcast(&mut self, data: Bytes) {
        if !self.stopped {
            let result = self.handle.blocking().post_broadcast(data);
            self.check(result);
        }
    }
    fn authenticate(&mut self, id: ChannelId) {
        if !self.stopped && self.login {
            let result = self.handle.blocking().post_authenticate(id);
            self.check(result);
        }
    }
}
