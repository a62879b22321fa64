//! The application's commands and queries, and when a send must wait for backpressure.
use std::time::Instant;

use tether_core::ChannelId;

use super::Driver;
use crate::glue::Glue;
use crate::handle::{Command, Query};
use crate::stats::{Counter, ServerStats};

/// Commands run back to back between two drains at most (see
/// [`Driver::next_commands`]): bounds what waits in the hub's action queue
/// unwritten (a broadcast's transmits, one per member) to this many
/// commands' worth.
const COMMANDS_PER_DRAIN: usize = 8;

impl<G: Glue> Driver<G> {
    /// Until when `command` must wait for backpressure to clear, if it
    /// must: a send while its channel is backpressured, a broadcast while
    /// any usable channel is — as long as that channel's peer is taking
    /// bytes. The wait ends when the channel drains to its low watermark,
    /// ends, is evicted, or takes no bytes for `Options::send_wait`.
    pub(super) fn wait_until(&mut self, now: Instant, command: &Command) -> Option<Instant> {
        match command {
            Command::Send { id, .. } => {
                let (until, stalled) = self.hold_of(now, *id);
                until.or_else(|| stalled.then(|| self.still_taking(now, &[*id])).flatten())
            }
            Command::Broadcast { .. } if self.hub.backpressured() > 0 => {
                // O(channels), only while some channel is backpressured
                // (its transmits may still wait in the hub's action queue,
                // so the connection's own queue cannot tell).
                let mut until: Option<Instant> = None;
                let mut stalled = Vec::new();
                for id in self.conns.keys() {
                    match self.hold_of(now, *id) {
                        (Some(at), _) => until = Some(until.map_or(at, |u| u.min(at))),
                        (None, true) => stalled.push(*id),
                        (None, false) => {}
                    }
                }
                until.or_else(|| self.still_taking(now, &stalled))
            }
            _ => None,
        }
    }

    /// Whether `id` holds sends up: `(Some(until), _)` while it is
    /// backpressured and took bytes within `send_wait`; `(None, true)` when
    /// it is backpressured but took none that long, as far as the driver
    /// saw (see [`Self::still_taking`]).
    fn hold_of(&self, now: Instant, id: ChannelId) -> (Option<Instant>, bool) {
        if !self.hub.is_backpressured(id).unwrap_or(false) {
            return (None, false);
        }
        let Some(conn) = self.conns.get(&id) else {
            return (None, false);
        };
        let until = conn.progress + self.options.send_wait;
        if until > now {
            (Some(until), false)
        } else {
            (None, !conn.dead)
        }
    }

    /// Asks the kernel whether each of `stalled` takes bytes now, before
    /// believing that its peer stopped reading: the driver's own lag (a
    /// long step on a loaded machine, a writability report still queued)
    /// must never pass for the peer's (docs/design.md §5.2). A peer that
    /// read since its last write has room in its send buffer, so a
    /// non-blocking write takes bytes. Returns until when to hold, if any
    /// of them still holds (see [`Self::probe`]).
    fn still_taking(&mut self, now: Instant, stalled: &[ChannelId]) -> Option<Instant> {
        let mut until: Option<Instant> = None;
        for id in stalled {
            if let Some(at) = self.probe(now, *id) {
                until = Some(until.map_or(at, |u| u.min(at)));
            }
        }
        until
    }

    /// A command from the queue (a [`Handle`](crate::Handle)'s). While a
    /// send is held for backpressure, later sends and broadcasts wait behind
    /// it, in order; a kick or an authentication goes ahead at once —
    /// unless a waiting send is for its channel (a farewell stays before
    /// its kick) — so an operator's kick never waits for a slow reader
    /// elsewhere. A kick thus overtakes a held broadcast: the kicked
    /// client does not get that line, as it would not had the kick come
    /// first.
    pub(super) fn command(&mut self, now: Instant, command: Command) {
        if self.held.is_none() && self.behind.is_empty() {
            return self.run_command(now, command);
        }
        if self.overtakes(&command) {
            self.run_command(now, command);
        } else {
            self.behind.push_back(command);
        }
    }

    /// Whether `command` may run before the held send and those behind it.
    fn overtakes(&self, command: &Command) -> bool {
        let target = match command {
            Command::Kick { id, .. } | Command::Authenticate { id, .. } => *id,
            Command::Send { .. } | Command::Broadcast { .. } => return false,
        };
        let held = self.held.as_ref().map(|(command, _)| command);
        !held
            .into_iter()
            .chain(&self.behind)
            .any(|c| matches!(c, Command::Send { id, .. } if *id == target))
    }

    /// Executes `command` now, or holds it if it is a send that must wait
    /// for backpressure.
    pub(super) fn run_command(&mut self, now: Instant, command: Command) {
        if let Some(until) = self.wait_until(now, &command) {
            self.counters.bump(Counter::SendsHeld);
            self.held = Some((command, until));
            return;
        }
        let hub = &mut self.hub;
        // A caller that stopped waiting for its reply is not an error.
        match command {
            Command::Send { id, data, reply } => {
                let result = hub.send(now, id, data);
                if let Some(reply) = reply {
                    let _ = reply.try_send(result);
                }
            }
            Command::Broadcast { data, reply } => {
                let report = hub.broadcast(now, data);
                if let Some(reply) = reply {
                    let _ = reply.try_send(report);
                }
            }
            Command::Kick {
                id,
                mode,
                code,
                reply,
            } => {
                let result = hub.kick(now, id, mode, code);
                if result.is_ok()
                    && let Some(conn) = self.conns.get_mut(&id)
                {
                    conn.kicked_at = Some(now);
                }
                // The answer follows the wire: it is sent after the step's
                // next drain, so an abort's RST or a graceful kick's FIN
                // (when nothing is queued) is out when it arrives
                // (invariant 3).
                if let Some(reply) = reply {
                    self.kick_replies.push((reply, result));
                }
            }
            Command::Authenticate { id, reply } => {
                let result = hub.authenticate(now, id);
                if let Some(reply) = reply {
                    let _ = reply.try_send(result);
                }
            }
        }
    }

    /// Runs the next command whose turn it is, if any: the held one once
    /// its wait is over, then those that waited behind it, in order, then
    /// the in-driver application's (what it asked of other shards goes to
    /// their queues). Whether one ran; [`Self::next_commands`] says when
    /// the step drains after it.
    pub(super) fn next_command(&mut self, now: Instant) -> bool {
        if let Some(app) = &mut self.app {
            app.flush_remote();
        }
        if let Some((command, _)) = self.held.take() {
            if let Some(until) = self.wait_until(now, &command) {
                self.held = Some((command, until));
                return false;
            }
            self.run_command(now, command);
            return true;
        }
        let next = self.behind.pop_front().or_else(|| {
            let app = self.app.as_mut()?;
            app.queues.local.pop_front()
        });
        match next {
            Some(command) => {
                self.run_command(now, command);
                true
            }
            None => false,
        }
    }

    /// Runs the commands whose turn came: the next one, then more back to
    /// back, up to [`COMMANDS_PER_DRAIN`], while none could be made to wait
    /// — no channel is backpressured (so none is held), so a drain first could not change
    /// whether the next send or broadcast waits (docs/design.md §5.2). Their
    /// transmits then go out in one vectored write per socket at the next
    /// drain, instead of one write per command: a read's lines relayed as
    /// three broadcasts cost each member one write, not three. A kick with
    /// a reply ends the run (its FIN goes out, then its answer). Whether one
    /// ran.
    pub(super) fn next_commands(&mut self, now: Instant) -> bool {
        if !self.next_command(now) {
            return false;
        }
        // A held command implies a backpressured channel: no separate check.
        for _ in 1..COMMANDS_PER_DRAIN {
            if self.hub.backpressured() > 0
                || !self.kick_replies.is_empty()
                || !self.next_command(now)
            {
                break;
            }
        }
        true
    }

    /// Answers the kicks of this step, now that their FIN or RST is out.
    pub(super) fn answer_kicks(&mut self) {
        for (reply, result) in self.kick_replies.drain(..) {
            // A caller that stopped waiting for its reply is not an error.
            let _ = reply.try_send(result);
        }
    }

    pub(super) fn query(&mut self, now: Instant, query: Query) {
        match query {
            Query::Stats(reply) => {
                self.sync_record();
                let (kick_latency, kick_latency_sum_seconds, kick_latency_count) =
                    self.counters.kick_latency().snapshot();
                let stats = ServerStats {
                    core: self.hub.stats(),
                    adapter: self.counters.snapshot(),
                    runtime: self.runtime,
                    channel_budget: self.budget,
                    kick_latency,
                    kick_latency_sum_seconds,
                    kick_latency_count,
                };
                let _ = reply.try_send(stats);
            }
            Query::Channels(reply) => {
                let _ = reply.try_send(self.hub.channels().collect());
            }
            Query::Offline(reply) => {
                let _ = reply.try_send(self.hub.offline().collect());
            }
            Query::Shutdown { grace, reply } => {
                self.begin_stop(now, grace);
                let _ = reply.try_send(());
            }
        }
    }
}
