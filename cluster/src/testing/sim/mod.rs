//! The simulated broker: N nodes, each a [`Cluster`] with a well-behaved
//! driver, on one virtual clock, with delivery faults, partitions, broker
//! restarts and node crashes. Every output goes through the model.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::{ChannelId, KickMode};

mod bus;

use super::EVIL;
use super::model::{KickInfo, Model, Violation, violation};
use super::op::Op;
use crate::config::ClusterConfig;
use crate::io::{Input, Output};
use crate::machine::Cluster;
use crate::name::{NodeId, NodeName};
use crate::wire;

/// The most simulated nodes.
pub const MAX_SIM_NODES: usize = 8;

/// A simulated node: its process (if running) and the truth about it.
#[derive(Debug)]
struct Node {
    name: NodeName,
    incarnation: u64,
    cluster: Option<Cluster>,
    partitioned: bool,
    /// Its clients, the truth.
    channels: BTreeSet<ChannelId>,
    next_slot: u32,
    lines: u64,
    /// When its process last started.
    booted: Duration,
}

/// One simulated run (see the module docs).
#[derive(Debug)]
pub struct Sim {
    config: ClusterConfig,
    start: Instant,
    elapsed: Duration,
    nodes: Vec<Node>,
    broker_running: bool,
    /// A paused broker (SIGSTOP) delivers nothing before this.
    stalled_until: Duration,
    /// In flight: (delivery time, order) → (recipient, payload).
    flights: BTreeMap<(Duration, u64), (usize, Bytes)>,
    flight_seq: u64,
    drop: u8,
    dup: u8,
    delay_ms: u8,
    rng: u64,
    /// A fault happened since the last settle.
    faulty: bool,
    /// A shutdown is being fed (its `Unavailable` answers are expected).
    shutting: bool,
    next_request: u64,
    model: Model,
    events: Vec<(Duration, usize, Output)>,
}

impl Sim {
    /// `nodes` nodes (1..=8) named `n0`, `n1`, …, all started with the
    /// broker up, on a virtual clock; `seed` drives the faults.
    pub fn new(nodes: usize, config: ClusterConfig, seed: u64) -> Result<Sim, Violation> {
        config
            .validate()
            .map_err(|e| violation("config", e.to_string()))?;
        let count = nodes.clamp(1, MAX_SIM_NODES);
        let start = Instant::now();
        let mut sim = Sim {
            config,
            start,
            elapsed: Duration::ZERO,
            nodes: Vec::with_capacity(count),
            broker_running: true,
            stalled_until: Duration::ZERO,
            flights: BTreeMap::new(),
            flight_seq: 0,
            drop: 0,
            dup: 0,
            delay_ms: 0,
            rng: seed | 1,
            faulty: false,
            shutting: false,
            next_request: 0,
            model: Model::default(),
            events: Vec::new(),
        };
        for i in 0..count {
            let name: NodeName = format!("n{i}")
                .parse()
                .map_err(|_| violation("sim", "name".into()))?;
            sim.nodes.push(Node {
                name,
                incarnation: 0,
                cluster: None,
                partitioned: false,
                channels: BTreeSet::new(),
                next_slot: 0,
                lines: 0,
                booted: Duration::ZERO,
            });
        }
        // Every node exists before any starts, so that the first
        // announcements reach them all (as subscribers that were waiting).
        for i in 0..count {
            sim.boot(i)?;
        }
        Ok(sim)
    }

    /// The virtual now.
    pub fn now(&self) -> Instant {
        self.start + self.elapsed
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// How many nodes are simulated.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is simulated (never: at least one is).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s name.
    pub fn name(&self, i: usize) -> &NodeName {
        &self.nodes[i % self.nodes.len()].name
    }

    /// Node `i`'s machine, if its process runs.
    pub fn cluster(&self, i: usize) -> Option<&Cluster> {
        self.nodes[i % self.nodes.len()].cluster.as_ref()
    }

    /// Node `i`'s clients (the truth).
    pub fn channels(&self, i: usize) -> impl Iterator<Item = ChannelId> + '_ {
        self.nodes[i % self.nodes.len()].channels.iter().copied()
    }

    /// Every output except `Publish` and `RenewClaim` so far: (time since
    /// start, node, output). [`Sim::take_events`] empties it.
    pub fn events(&self) -> &[(Duration, usize, Output)] {
        &self.events
    }

    /// Takes the recorded outputs.
    pub fn take_events(&mut self) -> Vec<(Duration, usize, Output)> {
        std::mem::take(&mut self.events)
    }

    /// Runs `ops`, then settles and checks the end state.
    pub fn run(&mut self, ops: &[Op]) -> Result<(), Violation> {
        for op in ops {
            self.step(op)?;
        }
        self.settle()
    }

    /// Applies one op, checking every output it causes.
    pub fn step(&mut self, op: &Op) -> Result<(), Violation> {
        if op.is_fault() {
            self.faulty = true;
            self.model.fault();
        }
        let n = self.nodes.len();
        match op {
            Op::Open { node } => {
                self.open(usize::from(*node) % n)?;
            }
            Op::Close { node, pick } => self.close(usize::from(*node) % n, *pick)?,
            Op::Line { node, pick } => self.line(usize::from(*node) % n, *pick)?,
            Op::Kick {
                from,
                to,
                pick,
                stale,
            } => {
                let (from, to) = (usize::from(*from) % n, usize::from(*to) % n);
                let id = match self.nodes[to].channels.iter().nth(usize::from(*pick)) {
                    Some(&id) if !stale => id,
                    _ => self.nodes[to]
                        .channels
                        .iter()
                        .next()
                        .filter(|_| !stale)
                        .copied()
                        .unwrap_or(STALE),
                };
                self.kick(from, to, id)?;
            }
            Op::Advance { ms } => self.advance(Duration::from_millis(u64::from(*ms)))?,
            Op::Faults {
                drop,
                dup,
                delay_ms,
            } => (self.drop, self.dup, self.delay_ms) = (*drop, *dup, *delay_ms),
            Op::Calm => (self.drop, self.dup, self.delay_ms) = (0, 0, 0),
            Op::Partition { node } => self.set_partition(usize::from(*node) % n, true)?,
            Op::Heal { node } => self.set_partition(usize::from(*node) % n, false)?,
            Op::BrokerStop => self.broker(false)?,
            Op::BrokerStart => self.broker(true)?,
            Op::Stall { ms } => self.stall(Duration::from_millis(u64::from(*ms))),
            Op::Crash { node } => self.crash(usize::from(*node) % n),
            Op::Restart { node } => {
                let i = usize::from(*node) % n;
                if self.nodes[i].cluster.is_none() {
                    self.boot(i)?;
                }
            }
            Op::Shutdown { node } => self.shutdown(usize::from(*node) % n)?,
            Op::Garbage { node, bytes } => self.garbage(usize::from(*node) % n, bytes)?,
        }
        Ok(())
    }

    /// A client connects to node `i`; its id, if the node runs.
    pub fn open(&mut self, i: usize) -> Result<Option<ChannelId>, Violation> {
        let node = &mut self.nodes[i];
        if node.cluster.is_none() {
            return Ok(None);
        }
        node.next_slot = node.next_slot.wrapping_add(1) % 0x00FF_FFFF;
        let id = ChannelId::from_parts(0, node.next_slot, node.incarnation as u32).unwrap_or(STALE);
        node.channels.insert(id);
        self.feed(i, Input::Opened(id))?;
        Ok(Some(id))
    }

    fn close(&mut self, i: usize, pick: u8) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let Some(&id) = node
            .channels
            .iter()
            .nth(usize::from(pick) % node.channels.len().max(1))
        else {
            return Ok(());
        };
        node.channels.remove(&id);
        self.feed(i, Input::Closed(id))
    }

    /// A line from node `i`'s `pick`-th client (none without a client).
    pub fn line(&mut self, i: usize, pick: u8) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        if node.cluster.is_none() {
            return Ok(());
        }
        let Some(&id) = node
            .channels
            .iter()
            .nth(usize::from(pick) % node.channels.len().max(1))
        else {
            return Ok(());
        };
        node.lines += 1;
        let token = Bytes::from(format!("{}.{}.{}", node.name, node.incarnation, node.lines));
        let (name, incarnation, n) = (node.name.clone(), node.incarnation, node.lines);
        self.model
            .published_line(token.clone(), name, incarnation, n, id);
        if !self.faulty {
            // C4 without faults: every other running node gets it (unless
            // it dies first, which forgets the expectation).
            for j in (0..self.nodes.len()).filter(|&j| j != i) {
                if self.nodes[j].cluster.is_some() {
                    self.model.expect(j, token.clone());
                }
            }
        }
        self.feed(
            i,
            Input::Line {
                from: id,
                text: token,
            },
        )
    }

    /// Node `from`'s console kicks `to`'s channel `id`; the request tag.
    pub fn kick(&mut self, from: usize, to: usize, id: ChannelId) -> Result<u64, Violation> {
        self.next_request += 1;
        let request = self.next_request;
        if self.nodes[from].cluster.is_none() {
            return Ok(request);
        }
        let target = NodeId {
            node: self.nodes[to].name.clone(),
            id,
        };
        let target_incarnation = self.nodes[to]
            .cluster
            .as_ref()
            .map(|_| self.nodes[to].incarnation);
        // A round trip after both booted, the asker knows the owner.
        let settled = |n: &Node| n.booted + Duration::from_millis(2) <= self.elapsed;
        let owner_known =
            target_incarnation.is_some() && settled(&self.nodes[from]) && settled(&self.nodes[to]);
        let info = KickInfo {
            origin: self.nodes[from].name.clone(),
            target: target.clone(),
            target_incarnation,
            asked: self.elapsed,
            fault_free: !self.faulty,
            owner_known,
            answered: false,
            executed: None,
        };
        self.model.asked(request, info);
        let input = Input::Kick {
            request,
            target,
            mode: KickMode::Graceful,
            reason: "sim".into(),
        };
        self.feed(from, input)?;
        Ok(request)
    }

    /// Calm the broker, start it, heal every link, and let time pass until
    /// everything must have converged (C8); then check the end state.
    pub fn settle(&mut self) -> Result<(), Violation> {
        self.step(&Op::Calm)?;
        if !self.broker_running {
            self.broker(true)?;
        }
        for i in 0..self.nodes.len() {
            self.set_partition(i, false)?;
        }
        if self.stalled_until > self.elapsed {
            self.advance(self.stalled_until - self.elapsed)?; // faults stop here
        }
        let c = &self.config;
        // C8's bound, plus the longest a faulty delivery was delayed
        // (255 ms) and one more for its answer; kicks end by their timeout.
        let bound = c.ttl.max(c.heartbeat + c.gap_wait) + c.heartbeat;
        let wait = bound.max(c.timeout) + Duration::from_millis(2 * 256);
        self.advance(wait)?;
        self.faulty = false;
        self.model.complete(&self.names())?;
        self.converged()
    }

    /// C8: every running node sees exactly the running nodes and their
    /// channels.
    pub fn converged(&self) -> Result<(), Violation> {
        let truth: BTreeSet<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.cluster.is_some())
            .flat_map(|n| {
                n.channels.iter().map(|&id| NodeId {
                    node: n.name.clone(),
                    id,
                })
            })
            .collect();
        let live: BTreeSet<NodeName> = self
            .nodes
            .iter()
            .filter(|n| n.cluster.is_some())
            .map(|n| n.name.clone())
            .collect();
        for node in &self.nodes {
            let Some(cluster) = &node.cluster else {
                continue;
            };
            let seen: BTreeSet<NodeId> = cluster.presence().collect();
            if seen != truth {
                let missing: Vec<_> = truth.difference(&seen).take(3).collect();
                let extra: Vec<_> = seen.difference(&truth).take(3).collect();
                return Err(violation(
                    "C8",
                    format!(
                        "{} sees presence missing {missing:?}, extra {extra:?}",
                        node.name
                    ),
                ));
            }
            let nodes: BTreeSet<NodeName> = cluster.nodes(self.now()).map(|n| n.name).collect();
            if nodes != live {
                return Err(violation(
                    "C8",
                    format!("{} sees nodes {nodes:?}, live {live:?}", node.name),
                ));
            }
        }
        Ok(())
    }

    fn names(&self) -> Vec<NodeName> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Starts node `i`'s process in a new incarnation.
    fn boot(&mut self, i: usize) -> Result<(), Violation> {
        let now = self.now();
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        node.booted = self.elapsed;
        node.partitioned = false;
        node.channels.clear();
        let cluster = Cluster::new(
            self.config.clone(),
            node.name.clone(),
            node.incarnation,
            now,
        )
        .map_err(|e| violation("config", e.to_string()))?;
        node.cluster = Some(cluster);
        if self.broker_running {
            self.feed(i, Input::BrokerUp)?;
        }
        Ok(())
    }

    fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.cluster.take().is_some() {
            node.channels.clear();
            // What was in flight to the dead process dies with its
            // connection: a new one subscribes afresh.
            self.flights.retain(|_, (to, _)| *to != i);
            let name = node.name.clone();
            self.model.node_died(i, &name);
        }
    }

    fn shutdown(&mut self, i: usize) -> Result<(), Violation> {
        if self.nodes[i].cluster.is_none() {
            return Ok(());
        }
        self.shutting = true;
        let result = self.feed(i, Input::Shutdown);
        self.shutting = false;
        result?;
        self.crash(i);
        Ok(())
    }

    /// The broker pauses for `d`: what is in flight and what is published
    /// meanwhile arrives once it resumes, in order (links stay up).
    fn stall(&mut self, d: Duration) {
        self.stalled_until = self.stalled_until.max(self.elapsed + d);
        let until = self.stalled_until;
        let flights = std::mem::take(&mut self.flights);
        for ((at, seq), flight) in flights {
            self.flights.insert((at.max(until), seq), flight);
        }
    }

    fn set_partition(&mut self, i: usize, cut: bool) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        if node.partitioned == cut || node.cluster.is_none() {
            node.partitioned = cut;
            return Ok(());
        }
        node.partitioned = cut;
        if !self.broker_running {
            return Ok(());
        }
        self.feed(
            i,
            if cut {
                Input::BrokerDown
            } else {
                Input::BrokerUp
            },
        )
    }

    fn broker(&mut self, running: bool) -> Result<(), Violation> {
        if self.broker_running == running {
            return Ok(());
        }
        self.broker_running = running;
        if !running {
            self.flights.clear(); // the stream is lost with the broker
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].cluster.is_some() && !self.nodes[i].partitioned {
                self.feed(
                    i,
                    if running {
                        Input::BrokerUp
                    } else {
                        Input::BrokerDown
                    },
                )?;
            }
        }
        Ok(())
    }

    fn garbage(&mut self, i: usize, bytes: &[u8]) -> Result<(), Violation> {
        let mut payload = Bytes::copy_from_slice(bytes);
        if let Ok(mut message) = wire::decode(&payload) {
            // A forged payload may not speak for a real node.
            message.header.node = EVIL.parse().map_err(|_| violation("sim", "evil".into()))?;
            payload = wire::encode(&message);
        }
        self.feed(i, Input::Received(payload))
    }
}

/// An id no simulated node ever hands out (its slot is never used).
pub const STALE: ChannelId = match ChannelId::from_parts(0, 0x00FF_FFFF, 1) {
    Some(id) => id,
    None => ChannelId::from_raw(u64::MAX),
};
