//! The threads around the owner: the bus reader, the writer (publishes and
//! the claim), the delivery thread and the kick thread. Each talks to the
//! owner through bounded channels only; none ever panics on what Redis
//! answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_cluster::{KickMode, NodeId};
use tether_core::ChannelId;

use crate::counters::{DriverCounters, RateLimit, bump};
use crate::link::{Backoff, Link, Renewal, StreamId};
use crate::owner::{Msg, Side};
use crate::url::RedisUrl;
use crate::{Local, Stop};

/// Entries one `XREAD` takes at most.
pub(crate) const READ_COUNT: usize = 512;
/// How long one `XREAD` blocks: the reader notices a stop or a pause
/// within this.
pub(crate) const READ_BLOCK: Duration = Duration::from_millis(250);
/// Payloads the writer sends in one pipelined round trip at most.
pub(crate) const WRITE_BATCH: usize = 256;
/// Read batches the owner may have waiting before the reader pauses: so
/// the reader never fills the owner's channel and crowds out the server.
pub(crate) const READS_IN_FLIGHT: usize = 2;

/// The reader's brake, set by the owner: reads in flight, and a pause while
/// deliveries are held back.
#[derive(Debug, Default)]
pub(crate) struct ReadGate {
    pub in_flight: AtomicUsize,
    pub paused: AtomicBool,
}

impl ReadGate {
    fn blocked(&self) -> bool {
        self.paused.load(Ordering::Acquire)
            || self.in_flight.load(Ordering::Acquire) >= READS_IN_FLIGHT
    }
}

/// What the writer thread is asked to do, in order.
#[derive(Debug)]
pub(crate) enum WriteJob {
    /// `XADD` one payload.
    Publish(Bytes),
    /// Refresh the node-name claim.
    Renew,
    /// Publish what is queued, delete the claim, answer, end.
    Release(SyncSender<()>),
}

/// What every Redis thread needs to reconnect and report.
#[derive(Clone)]
pub(crate) struct Env {
    pub url: RedisUrl,
    pub timeout: Duration,
    pub owner: SyncSender<Msg>,
    pub stop: Arc<Stop>,
    pub counters: Arc<DriverCounters>,
}

impl Env {
    /// Tells the owner; `false` once it is gone.
    fn tell(&self, msg: Msg) -> bool {
        self.owner.send(msg).is_ok()
    }

    /// Reports the link down, then reconnects with capped backoff until it
    /// works or the node stops. Every failure is counted by the machine
    /// (`BrokerError`) and logged at most once a second.
    fn reconnect(&self, side: Side, error: &redis::RedisError) -> Option<Link> {
        tracing::warn!(?side, "redis: {error}; reconnecting");
        if !self.tell(Msg::BrokerError) || !self.tell(Msg::Link { side, up: false }) {
            return None;
        }
        let mut backoff = Backoff::default();
        let mut logs = RateLimit::new();
        loop {
            if self.stop.sleep(backoff.next_wait()) {
                return None;
            }
            match Link::connect(&self.url, self.timeout) {
                Ok(link) => {
                    tracing::info!(?side, url = %self.url, "redis: reconnected");
                    return Some(link);
                }
                Err(e) => {
                    if !self.tell(Msg::BrokerError) {
                        return None;
                    }
                    if let Some(count) = logs.hit() {
                        tracing::warn!(?side, url = %self.url, failures = count, "redis: cannot reconnect: {e}");
                    }
                }
            }
        }
    }
}

/// The bus reader: `XREAD BLOCK` from the last id seen, handing payloads
/// to the owner in batches; paused while the owner holds deliveries back.
pub(crate) fn read_loop(env: &Env, mut link: Link, gate: &ReadGate, mut last: StreamId) {
    let _ = link.set_reply_timeout(READ_BLOCK + env.timeout);
    let mut pausing = false;
    while !env.stop.is_set() {
        if gate.blocked() {
            if !pausing && gate.paused.load(Ordering::Acquire) {
                bump(&env.counters.reads_paused);
            }
            pausing = true;
            env.stop.sleep(Duration::from_millis(2));
            continue;
        }
        pausing = false;
        match link.read(last, READ_COUNT, READ_BLOCK) {
            Ok((entries, bad)) => {
                for _ in 0..bad {
                    bump(&env.counters.bad_entries);
                }
                let mut payloads = Vec::with_capacity(entries.len());
                for entry in entries {
                    last = last.max(entry.id);
                    match entry.payload {
                        Some(payload) => payloads.push(payload),
                        None => bump(&env.counters.bad_entries),
                    }
                }
                if !payloads.is_empty() {
                    gate.in_flight.fetch_add(1, Ordering::AcqRel);
                    if !env.tell(Msg::Received(payloads)) {
                        return;
                    }
                }
            }
            Err(e) => {
                let Some(new) = env.reconnect(Side::Reader, &e) else {
                    return;
                };
                link = new;
                let _ = link.set_reply_timeout(READ_BLOCK + env.timeout);
                // A stream whose tail is behind our last id was made anew
                // (Redis restarted without persistence): read it whole.
                match link.tail() {
                    Ok(tail) if tail.is_none_or(|tail| tail < last) => last = StreamId::default(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("redis: reading the bus tail: {e}");
                        continue; // the next read fails too and reconnects
                    }
                }
                if !env.tell(Msg::Link {
                    side: Side::Reader,
                    up: true,
                }) {
                    return;
                }
            }
        }
    }
}

/// The writer: publishes payloads in pipelined batches and keeps the claim,
/// in the order the owner asked. A batch that failed is sent again after
/// the reconnect (receivers drop what they already have, by sequence
/// number), so a blip loses nothing the owner handed over.
pub(crate) fn write_loop(env: &Env, mut link: Link, jobs: &Receiver<WriteJob>, claim: &Claim) {
    let mut batch: Vec<Bytes> = Vec::with_capacity(WRITE_BATCH);
    let mut next: Option<WriteJob> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv_timeout(Duration::from_millis(200)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) if env.stop.is_set() => return,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        match job {
            WriteJob::Publish(payload) => {
                batch.push(payload);
                while batch.len() < WRITE_BATCH {
                    match jobs.try_recv() {
                        Ok(WriteJob::Publish(payload)) => batch.push(payload),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                let Some(l) = retry(env, link, false, |l| l.publish(&batch)) else {
                    return;
                };
                link = l;
                batch.clear();
            }
            WriteJob::Renew => {
                let mut renewal = Renewal::Renewed;
                let Some(l) = retry(env, link, true, |l| {
                    renewal = l.renew(&claim.node, claim.incarnation, claim.ttl)?;
                    Ok(())
                }) else {
                    return;
                };
                link = l;
                claim.report(renewal, &env.counters);
            }
            WriteJob::Release(done) => {
                // Best effort within the timeout: the goodbye is already out
                // (published before this job), the claim expires anyway.
                match link.release(&claim.node, claim.incarnation) {
                    Ok(_) => tracing::info!(node = %claim.node, "released the node name"),
                    Err(e) => {
                        tracing::warn!(node = %claim.node, "cannot release the node name: {e}")
                    }
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

/// Runs `op` until it succeeds; `None` once the node stops. A lost link
/// (I/O error, timeout, connection dropped) is made again; an error *reply*
/// (Redis out of memory, a command refused) leaves the link as it is: it is
/// counted and logged, and the op is tried again after a backoff, or given
/// up when `give_up_on_reply` (a claim renewal: the next heartbeat renews).
fn retry(
    env: &Env,
    mut link: Link,
    give_up_on_reply: bool,
    mut op: impl FnMut(&mut Link) -> redis::RedisResult<()>,
) -> Option<Link> {
    let mut backoff = Backoff::default();
    let mut logs = RateLimit::new();
    loop {
        match op(&mut link) {
            Ok(()) => return Some(link),
            Err(e) if link_lost(&e) => {
                link = env.reconnect(Side::Writer, &e)?;
                if !env.tell(Msg::Link {
                    side: Side::Writer,
                    up: true,
                }) {
                    return None;
                }
            }
            Err(e) => {
                if !env.tell(Msg::BrokerError) {
                    return None;
                }
                if let Some(count) = logs.hit() {
                    tracing::warn!(failures = count, "redis refused a write: {e}");
                }
                if give_up_on_reply {
                    return Some(link);
                }
                if env.stop.sleep(backoff.next_wait()) {
                    return None;
                }
            }
        }
    }
}

/// Whether an error means the connection is gone (or in an unknown state,
/// after a timeout), rather than an error reply on a working one.
fn link_lost(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// The node-name claim the writer keeps.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub node: String,
    pub incarnation: u64,
    pub ttl: Duration,
}

impl Claim {
    fn report(&self, renewal: Renewal, counters: &DriverCounters) {
        match renewal {
            Renewal::Renewed => {}
            Renewal::Retaken => {
                bump(&counters.claim_retaken);
                tracing::info!(node = %self.node, "the node name's claim had expired (Redis restarted?): taken again");
            }
            Renewal::Lost => {
                bump(&counters.claim_lost);
                tracing::error!(
                    node = %self.node,
                    "another process holds this node's name in Redis: two nodes run under one name"
                );
            }
        }
    }
}

/// Delivers remote lines to the local server, in order; waits as long as
/// the server's flow control makes it (the owner holds later lines back and
/// stops reading the bus meanwhile).
pub(crate) fn deliver_loop(local: &dyn Local, lines: &Receiver<Vec<(NodeId, Bytes)>>) {
    while let Ok(batch) = lines.recv() {
        local.deliver(&batch);
    }
}

/// One remote kick to execute here.
#[derive(Debug)]
pub(crate) struct KickJob {
    pub ticket: tether_cluster::KickTicket,
    pub id: ChannelId,
    pub mode: KickMode,
    pub reason: String,
}

/// Executes remote kicks on local channels and reports each result to the
/// owner. A thread of its own, so a kick never waits behind deliveries held
/// by a slow reader.
pub(crate) fn kick_loop(local: &dyn Local, jobs: &Receiver<KickJob>, owner: &SyncSender<Msg>) {
    while let Ok(job) = jobs.recv() {
        let started = Instant::now();
        let result = local.kick(job.id, job.mode, &job.reason);
        tracing::info!(
            id = %job.id,
            from = %job.ticket.origin(),
            mode = ?job.mode,
            reason = %job.reason,
            ?result,
            took = ?started.elapsed(),
            "kick asked by another node"
        );
        if owner
            .send(Msg::KickDone {
                ticket: job.ticket,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}
