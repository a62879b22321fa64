//! The simulated broker's bus and each node's driver: deliveries and
//! timers in virtual-time order, and every output carried out and checked.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::Sim;
use crate::io::{Input, KickResult, Output};
use crate::machine::{Cluster, MAX_NODES};
use crate::name::NodeName;
use crate::testing::model::{Violation, violation};

impl Sim {
    pub(super) fn random(&mut self) -> u64 {
        // xorshift64: deterministic faults from the seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    pub(super) fn chance(&mut self, in_256: u8) -> bool {
        in_256 > 0 && (self.random() % 256) < u64::from(in_256)
    }

    /// The broker takes a payload from node `from` and schedules it for
    /// every node (the sender too: the broker echoes).
    pub(super) fn publish(&mut self, from: usize, payload: Bytes) -> Result<(), Violation> {
        if !self.broker_running || self.nodes[from].partitioned {
            return Err(violation(
                "C10",
                format!(
                    "{} published while its link was down",
                    self.nodes[from].name
                ),
            ));
        }
        for to in 0..self.nodes.len() {
            if self.chance(self.drop) {
                continue;
            }
            let copies = if self.chance(self.dup) { 2 } else { 1 };
            for _ in 0..copies {
                let extra = match self.delay_ms {
                    0 => 0,
                    d => self.random() % (u64::from(d) + 1),
                };
                // A stalled broker holds everything until it resumes.
                let at = (self.elapsed + Duration::from_millis(1 + extra))
                    .max(self.stalled_until + Duration::from_millis(1));
                self.flight_seq += 1;
                self.flights
                    .insert((at, self.flight_seq), (to, payload.clone()));
            }
        }
        Ok(())
    }

    /// Lets `d` of virtual time pass: deliveries and timers in time order.
    pub fn advance(&mut self, d: Duration) -> Result<(), Violation> {
        let target = self.elapsed + d;
        for _ in 0..10_000_000u32 {
            let flight = self.flights.keys().next().map(|k| k.0);
            let timer = self.next_timer();
            let next = match (flight, timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > target {
                break;
            }
            self.elapsed = self.elapsed.max(next);
            if flight.is_some_and(|t| t <= self.elapsed) {
                if let Some(((_, _), (to, payload))) = self.flights.pop_first() {
                    self.deliver(to, payload)?;
                }
                continue;
            }
            self.fire_timers()?;
        }
        self.elapsed = self.elapsed.max(target);
        Ok(())
    }

    pub(super) fn next_timer(&self) -> Option<Duration> {
        self.nodes
            .iter()
            .filter_map(|n| n.cluster.as_ref()?.poll_timeout())
            .map(|t| t.saturating_duration_since(self.start))
            .min()
    }

    pub(super) fn fire_timers(&mut self) -> Result<(), Violation> {
        let now = self.now();
        for i in 0..self.nodes.len() {
            let due = self.nodes[i]
                .cluster
                .as_ref()
                .and_then(Cluster::poll_timeout)
                .is_some_and(|t| t <= now);
            if due {
                self.feed(i, Input::Timeout)?;
                let again = self.nodes[i]
                    .cluster
                    .as_ref()
                    .and_then(Cluster::poll_timeout);
                if again.is_some_and(|t| t <= now) {
                    return Err(violation(
                        "C9",
                        format!(
                            "{} has a deadline in the past after its timeout",
                            self.nodes[i].name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn deliver(&mut self, to: usize, payload: Bytes) -> Result<(), Violation> {
        let node = &self.nodes[to];
        if node.cluster.is_none() || node.partitioned || !self.broker_running {
            return Ok(()); // not subscribed: missed
        }
        self.feed(to, Input::Received(payload))
    }

    /// Feeds one input to node `i` and plays its driver: every output is
    /// carried out and checked, kicks executed at once.
    pub(super) fn feed(&mut self, i: usize, input: Input) -> Result<(), Violation> {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let now = self.now();
            let Some(cluster) = self.nodes[i].cluster.as_mut() else {
                return Ok(());
            };
            cluster.handle_input(now, input);
            let mut outputs = Vec::new();
            while let Some(output) = cluster.poll_output() {
                outputs.push(output);
            }
            self.check_bounds(i)?;
            for output in outputs {
                self.carry_out(i, output, &mut inputs)?;
            }
        }
        Ok(())
    }

    pub(super) fn carry_out(
        &mut self,
        i: usize,
        output: Output,
        inputs: &mut VecDeque<Input>,
    ) -> Result<(), Violation> {
        let name = self.nodes[i].name.clone();
        match &output {
            Output::Publish(payload) => return self.publish(i, payload.clone()),
            Output::RenewClaim => return Ok(()),
            Output::Deliver { from, text } => self.model.delivered(i, &name, from, text)?,
            Output::ExecuteKick { ticket, id, .. } => {
                let result = if self.nodes[i].channels.remove(id) {
                    inputs.push_back(Input::Closed(*id));
                    KickResult::Done
                } else {
                    KickResult::Stale
                };
                self.model.executed(&name, ticket, *id, result)?;
                inputs.push_back(Input::KickDone {
                    ticket: ticket.clone(),
                    result,
                });
            }
            Output::KickAnswer { request, result } => {
                let target = self.model_target(*request);
                let fault_free = !self.faulty && !self.shutting;
                self.model.answered(
                    *request,
                    result,
                    self.elapsed,
                    self.config.timeout,
                    target,
                    fault_free,
                )?;
            }
            _ => {}
        }
        self.events.push((self.elapsed, i, output));
        Ok(())
    }

    /// The owner of kick `request` now: its incarnation if it runs.
    pub(super) fn model_target(&self, request: u64) -> Option<u64> {
        let node = self.events_target(request)?;
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.cluster.as_ref().map(|_| n.incarnation))
    }

    pub(super) fn events_target(&self, request: u64) -> Option<NodeName> {
        self.model.kick_target(request)
    }

    /// C9: what a node holds stays within its bounds.
    pub(super) fn check_bounds(&self, i: usize) -> Result<(), Violation> {
        let Some(cluster) = &self.nodes[i].cluster else {
            return Ok(());
        };
        let f = cluster.footprint();
        let c = &self.config;
        let ok = f.peers <= MAX_NODES
            && f.early_messages <= c.reorder_window
            && f.outbox_bytes <= c.outbox_bytes
            && cluster.stats().outbox_bytes <= c.outbox_bytes as u64
            && f.pending_kicks <= crate::MAX_PENDING_KICKS
            && f.served_kicks <= crate::MAX_SERVED_KICKS
            && f.departed <= 256
            && f.clocks <= 2 * MAX_NODES + 1;
        if ok {
            Ok(())
        } else {
            Err(violation(
                "C9",
                format!("{} out of bounds: {f:?}", self.nodes[i].name),
            ))
        }
    }
}
