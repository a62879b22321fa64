//! The owner thread: the one owner of the [`Cluster`]. It waits on one
//! bounded channel (fed by the reader, the writer, the kick thread and the
//! server) with a timeout until the machine's next deadline, feeds each
//! message in as an input, and executes the outputs without ever blocking:
//! payloads and claim renewals go to the writer's queue, remote lines to
//! the delivery thread's, kicks to the kick thread's.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_cluster::{
    Cluster, Input, KickError, KickMode, KickResult, KickTicket, NodeId, NodeInfo, Output,
};
use tether_core::ChannelId;

use crate::counters::{DriverCounters, RateLimit, bump};
use crate::workers::{KickJob, ReadGate, WriteJob};

/// Messages the owner takes, from every other thread.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A local channel joined.
    Opened(ChannelId),
    /// A local channel left.
    Closed(ChannelId),
    /// A local client's line (raw, no id, no newline).
    Line { from: ChannelId, text: Bytes },
    /// The console asks for a remote kick; answered on `reply`.
    Kick {
        target: NodeId,
        mode: KickMode,
        reason: String,
        reply: SyncSender<Result<(), KickError>>,
    },
    /// The console asks what the machine knows.
    Query(Query),
    /// Payloads read from the bus (one `XREAD`).
    Received(Vec<Bytes>),
    /// A Redis thread lost or regained its connection.
    Link { side: Side, up: bool },
    /// A Redis operation failed.
    BrokerError,
    /// The kick thread executed a remote node's kick.
    KickDone {
        ticket: KickTicket,
        result: KickResult,
    },
    /// Goodbye: publish it, release the claim, end; answered on `reply`.
    Shutdown { reply: SyncSender<()> },
}

/// Questions for the owner.
#[derive(Debug)]
pub(crate) enum Query {
    /// Live nodes, this one first.
    Nodes(SyncSender<Vec<NodeInfo>>),
    /// Every channel of every live node.
    Presence(SyncSender<Vec<NodeId>>),
    /// The machine's counters.
    Stats(SyncSender<Vec<(&'static str, u64)>>),
}

/// Which Redis connection a link event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The bus reader's.
    Reader,
    /// The writer's (publishes and the claim).
    Writer,
}

/// Kick requests waiting for their answer at most (each console session
/// has one at a time; beyond this, a new one is answered `unavailable`).
const MAX_PENDING_KICKS: usize = 4096;
/// Longest the owner sleeps with nothing due: it also rechecks held
/// deliveries this often while some are held.
const IDLE_WAIT: Duration = Duration::from_millis(500);
const HELD_WAIT: Duration = Duration::from_millis(2);
/// Messages taken per wake-up before the machine's outputs are drained.
const BATCH: usize = 256;

/// What one held line costs besides its text (its id and bookkeeping), so
/// a flood of empty lines is not free.
pub(crate) const HELD_LINE_OVERHEAD: usize = 64;

/// The held cost of a batch of deliveries.
fn weight(lines: &[(NodeId, Bytes)]) -> usize {
    lines
        .iter()
        .map(|(_, text)| text.len() + HELD_LINE_OVERHEAD)
        .sum()
}

/// The owner's state besides the machine.
pub(crate) struct Owner {
    cluster: Cluster,
    inbox: Receiver<Msg>,
    writer: SyncSender<WriteJob>,
    deliveries: SyncSender<Vec<(NodeId, Bytes)>>,
    kicks: SyncSender<KickJob>,
    gate: Arc<ReadGate>,
    counters: Arc<DriverCounters>,
    timeout: Duration,
    /// Deliveries the delivery thread had no room for, oldest first.
    held: VecDeque<Vec<(NodeId, Bytes)>>,
    /// Their bytes (text plus [`HELD_LINE_OVERHEAD`] per line).
    held_bytes: usize,
    /// Above this many held bytes the reader pauses (the stream is the
    /// buffer); below it the owner goes on reading, so heartbeats keep
    /// coming while local clients are briefly slow. Held bytes stay below
    /// this plus what the reader had in flight
    /// ([`READS_IN_FLIGHT`](crate::workers::READS_IN_FLIGHT) batches).
    hold_bytes: usize,
    pending_kicks: HashMap<u64, SyncSender<Result<(), KickError>>>,
    next_request: u64,
    reader_up: bool,
    writer_up: bool,
    publish_logs: RateLimit,
    kick_logs: RateLimit,
}

/// The owner's ends of its channels.
pub(crate) struct Ends {
    pub inbox: Receiver<Msg>,
    pub writer: SyncSender<WriteJob>,
    pub deliveries: SyncSender<Vec<(NodeId, Bytes)>>,
    pub kicks: SyncSender<KickJob>,
}

impl Owner {
    /// An owner for a machine whose links are both up (and told so).
    pub fn new(
        mut cluster: Cluster,
        ends: Ends,
        gate: Arc<ReadGate>,
        counters: Arc<DriverCounters>,
        hold_bytes: usize,
    ) -> Owner {
        cluster.handle_input(Instant::now(), Input::BrokerUp);
        Owner {
            timeout: cluster.config().timeout,
            cluster,
            inbox: ends.inbox,
            writer: ends.writer,
            deliveries: ends.deliveries,
            kicks: ends.kicks,
            gate,
            counters,
            held: VecDeque::new(),
            held_bytes: 0,
            hold_bytes,
            pending_kicks: HashMap::new(),
            next_request: 0,
            reader_up: true,
            writer_up: true,
            publish_logs: RateLimit::new(),
            kick_logs: RateLimit::new(),
        }
    }

    /// Runs until `Shutdown` (or every sender is gone).
    pub fn run(mut self) {
        self.drain();
        loop {
            let now = Instant::now();
            let wait = match self.cluster.poll_timeout() {
                Some(deadline) => deadline.saturating_duration_since(now).min(IDLE_WAIT),
                None => IDLE_WAIT,
            };
            let wait = if self.held.is_empty() {
                wait
            } else {
                wait.min(HELD_WAIT)
            };
            let first = match self.inbox.recv_timeout(wait) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut next = first;
            let mut taken = 0;
            while let Some(msg) = next.take() {
                if let Msg::Shutdown { reply } = msg {
                    self.goodbye();
                    let _ = reply.send(());
                    return;
                }
                self.handle(msg);
                taken += 1;
                if taken < BATCH {
                    next = self.inbox.try_recv().ok();
                }
            }
            let now = Instant::now();
            if self.cluster.poll_timeout().is_some_and(|at| at <= now) {
                self.cluster.handle_input(now, Input::Timeout);
            }
            self.drain();
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        let input = match msg {
            Msg::Opened(id) => Input::Opened(id),
            Msg::Closed(id) => Input::Closed(id),
            Msg::Line { from, text } => Input::Line { from, text },
            Msg::Received(payloads) => {
                self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
                // Drained once after the whole batch (by `run`): the lines
                // of one read become one delivery, one broadcast per 8 KiB
                // on the local side rather than one per line.
                for payload in payloads {
                    self.cluster.handle_input(now, Input::Received(payload));
                }
                return;
            }
            Msg::Kick {
                target,
                mode,
                reason,
                reply,
            } => {
                if self.pending_kicks.len() >= MAX_PENDING_KICKS {
                    let _ = reply.send(Err(KickError::Unavailable));
                    return;
                }
                self.next_request = self.next_request.wrapping_add(1);
                let request = self.next_request;
                self.pending_kicks.insert(request, reply);
                Input::Kick {
                    request,
                    target,
                    mode,
                    reason,
                }
            }
            Msg::Query(query) => {
                self.answer(query, now);
                return;
            }
            Msg::Link { side, up } => {
                let was = self.reader_up && self.writer_up;
                match side {
                    Side::Reader => self.reader_up = up,
                    Side::Writer => self.writer_up = up,
                }
                match (was, self.reader_up && self.writer_up) {
                    (false, true) => Input::BrokerUp,
                    (true, false) => Input::BrokerDown,
                    _ => return,
                }
            }
            Msg::BrokerError => Input::BrokerError,
            Msg::KickDone { ticket, result } => Input::KickDone { ticket, result },
            Msg::Shutdown { reply } => {
                let _ = reply.send(());
                return;
            }
        };
        self.cluster.handle_input(now, input);
    }

    fn answer(&self, query: Query, now: Instant) {
        match query {
            Query::Nodes(reply) => {
                let _ = reply.try_send(self.cluster.nodes(now).collect());
            }
            Query::Presence(reply) => {
                let _ = reply.try_send(self.cluster.presence().collect());
            }
            Query::Stats(reply) => {
                let _ = reply.try_send(self.cluster.stats().snapshot().to_vec());
            }
        }
    }

    /// Executes every output the machine has, never blocking.
    fn drain(&mut self) {
        let mut lines: Vec<(NodeId, Bytes)> = Vec::new();
        while let Some(output) = self.cluster.poll_output() {
            match output {
                Output::Deliver { from, text } => lines.push((from, text)),
                // Everything else at once; the lines are gathered into
                // one delivery, in order.
                other => self.execute(other),
            }
        }
        if !lines.is_empty() {
            self.held_bytes = self.held_bytes.saturating_add(weight(&lines));
            self.held.push_back(lines);
        }
        self.flush_held();
    }

    /// Hands held deliveries to the delivery thread while it has room;
    /// pauses the reader while any are left (the stream is the buffer).
    fn flush_held(&mut self) {
        while let Some(batch) = self.held.pop_front() {
            let bytes = weight(&batch);
            match self.deliveries.try_send(batch) {
                Ok(()) => self.held_bytes = self.held_bytes.saturating_sub(bytes),
                Err(TrySendError::Full(batch)) => {
                    self.held.push_front(batch);
                    break;
                }
                Err(TrySendError::Disconnected(batch)) => {
                    self.held_bytes = self.held_bytes.saturating_sub(bytes);
                    for _ in &batch {
                        bump(&self.counters.deliveries_dropped);
                    }
                }
            }
        }
        self.gate
            .paused
            .store(self.held_bytes > self.hold_bytes, Ordering::Release);
    }

    fn execute(&mut self, output: Output) {
        match output {
            Output::Publish(payload) => self.queue_write(WriteJob::Publish(payload)),
            Output::RenewClaim => self.queue_write(WriteJob::Renew),
            Output::ExecuteKick {
                ticket,
                id,
                mode,
                reason,
            } => {
                let job = KickJob {
                    ticket,
                    id,
                    mode,
                    reason,
                };
                if self.kicks.try_send(job).is_err() {
                    bump(&self.counters.kicks_dropped);
                    if let Some(count) = self.kick_logs.hit() {
                        tracing::warn!(
                            dropped = count,
                            "cluster: remote kicks dropped: the kick queue is full"
                        );
                    }
                }
            }
            Output::KickAnswer { request, result } => {
                if let Some(reply) = self.pending_kicks.remove(&request) {
                    let _ = reply.try_send(result);
                }
            }
            Output::NodeUp(node) => tracing::info!(%node, "cluster: node up"),
            Output::NodeDown { node, why } => tracing::info!(%node, ?why, "cluster: node down"),
            Output::Lost { node, messages } => {
                tracing::warn!(%node, messages, "cluster: messages lost (a gap that did not fill, or the outbox overflowed)");
            }
            Output::Deliver { .. } => {}
            _ => {}
        }
    }

    fn queue_write(&mut self, job: WriteJob) {
        match self.writer.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(WriteJob::Renew)) => {} // the next heartbeat renews
            Err(_) => {
                bump(&self.counters.publish_dropped);
                if let Some(count) = self.publish_logs.hit() {
                    tracing::warn!(
                        dropped = count,
                        "cluster: payloads dropped: Redis is too slow for the writer's queue (receivers count the gap)"
                    );
                }
            }
        }
    }

    /// `Shutdown`: the goodbye goes out, then the claim is deleted; both
    /// bounded by the timeout.
    fn goodbye(&mut self) {
        self.cluster.handle_input(Instant::now(), Input::Shutdown);
        self.drain();
        // Answer every kick still waiting: nothing will.
        for (_, reply) in self.pending_kicks.drain() {
            let _ = reply.try_send(Err(KickError::Unavailable));
        }
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self.writer.try_send(WriteJob::Release(done)).is_ok()
            && wait.recv_timeout(self.timeout + self.timeout).is_err()
        {
            tracing::warn!("cluster: the goodbye and the claim's release did not complete in time");
        }
    }
}
