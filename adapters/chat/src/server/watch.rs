//! The watcher: logs what the server refuses at its limits, once a second
//! at most.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use tether_adapter::{Counter, Handle, ServerStats};

use super::stop::{StopReader, Wake};
use super::{ChatCounters, ServeError, spawn_thread};

/// How often the watcher looks.
const PERIOD: Duration = Duration::from_secs(1);

pub(super) fn spawn(
    handle: Handle,
    counters: Arc<ChatCounters>,
    stopped: StopReader,
) -> Result<JoinHandle<()>, ServeError> {
    spawn_thread("watch", move || run(&handle, &counters, &stopped))
}

/// The counts the watcher compares from one look to the next.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    full: u64,
    resources: u64,
    paused: bool,
}

impl Seen {
    fn of(stats: &ServerStats) -> Seen {
        Seen {
            // The hub's refusals (limit reached, shutting down) and the
            // adapter's own while accepting is paused.
            full: stats.core.refused + stats.adapter.get(Counter::RefusedFull),
            resources: stats.adapter.get(Counter::RefusedResources),
            paused: stats.core.accept_paused,
        }
    }
}

fn run(handle: &Handle, counters: &ChatCounters, stopped: &StopReader) {
    let mut last = Seen::default();
    loop {
        if stopped.wait(None, PERIOD) == Wake::Stopped || handle.is_stopped() {
            return;
        }
        let Ok(stats) = super::call(handle, handle.stats()) else {
            return;
        };
        let now = Seen::of(&stats);
        if counters.draining.load(Ordering::Relaxed) {
            // Pauses and refusals are the drain's now: nothing to report.
            continue;
        }
        report(last, now, &stats);
        last = now;
    }
}

fn report(last: Seen, now: Seen, stats: &ServerStats) {
    if now.paused && !last.paused {
        tracing::warn!(
            live = stats.core.live,
            budget = stats.channel_budget,
            "server full: accepting paused; new clients are refused with `error server full`"
        );
    }
    if !now.paused && last.paused {
        tracing::info!(live = stats.core.live, "accepting again");
    }
    let full = now.full.saturating_sub(last.full);
    if full > 0 {
        tracing::warn!(
            refused = full,
            budget = stats.channel_budget,
            "refused {full} connection(s) in the last second: server full"
        );
    }
    let resources = now.resources.saturating_sub(last.resources);
    if resources > 0 {
        tracing::warn!(
            refused = resources,
            "refused {resources} connection(s) in the last second: out of resources (threads, sockets)"
        );
    }
}
