//! [`Node`]: starting a node (connect, claim the name, start the threads),
//! the server's non-blocking hand-offs, the console's bounded requests, and
//! the goodbye.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tether_cluster::{
    Cluster, ClusterConfig, ClusterConfigError, KickError, KickMode, KickResult, NodeId, NodeInfo,
    NodeName,
};
use tether_core::ChannelId;

use crate::counters::{DriverCounters, RateLimit, bump};
use crate::link::{Link, StreamId, claim_key};
use crate::owner::{Ends, Msg, Owner, Query};
use crate::url::RedisUrl;
use crate::workers::{self, Claim, Env, ReadGate};

/// Messages the owner's channel holds: local lines, opens and closes beyond
/// this are dropped (counted, logged) rather than block a shard's driver.
pub const OWNER_QUEUE: usize = 16_384;
/// Payloads queued for the writer thread at most.
pub const WRITER_QUEUE: usize = 8_192;
/// Batches of remote lines queued for the delivery thread at most; beyond,
/// the owner holds them and the reader stops reading the bus.
pub const DELIVERY_QUEUE: usize = 64;
/// Remote kicks queued for the kick thread at most.
pub const KICK_QUEUE: usize = 1_024;

/// What the local server does for the cluster: relay remote lines to its
/// clients and execute remote kicks on its channels. Called on the driver's
/// own threads (never the owner's), so both may wait.
pub trait Local: Send + Sync + 'static {
    /// Relays remote clients' lines, in order, to every local client (on the
    /// delivery thread; waiting here is the flow control: the bus is not
    /// read further meanwhile).
    fn deliver(&self, lines: &[(NodeId, Bytes)]);
    /// Kicks a local channel for another node (on the kick thread):
    /// `Done` once the kick is done, `Stale` when the id is not live here.
    fn kick(&self, id: ChannelId, mode: KickMode, reason: &str) -> KickResult;
}

/// Bytes of remote lines the owner holds for slow local clients before the
/// reader stops reading the bus (see [`NodeOptions::hold_bytes`]).
pub const DEFAULT_HOLD_BYTES: usize = 4 << 20;

/// How to run a node ([`NodeOptions::new`], then the `with_*` methods).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeOptions {
    /// Where Redis is.
    pub url: RedisUrl,
    /// This node's name (claimed in Redis while it runs).
    pub name: NodeName,
    /// Heartbeat, TTL, timeout, outbox.
    pub config: ClusterConfig,
    /// Remote lines held for this node's clients while they are slow
    /// (bytes, plus 64 per line) before the reader stops reading the bus
    /// and the stream becomes the buffer. Reading on while under it keeps
    /// heartbeats coming: a reader paused longer than the TTL would see
    /// every other node expire. Default [`DEFAULT_HOLD_BYTES`].
    pub hold_bytes: usize,
}

impl NodeOptions {
    /// A node named `name` on the Redis at `url`.
    pub fn new(url: RedisUrl, name: NodeName, config: ClusterConfig) -> NodeOptions {
        NodeOptions {
            url,
            name,
            config,
            hold_bytes: DEFAULT_HOLD_BYTES,
        }
    }

    /// Sets [`NodeOptions::hold_bytes`].
    pub fn with_hold_bytes(self, hold_bytes: usize) -> NodeOptions {
        NodeOptions { hold_bytes, ..self }
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is refused by the state machine.
    #[error("invalid cluster configuration: {0}")]
    Config(#[from] ClusterConfigError),
    /// Redis did not answer at `url` within the timeout.
    #[error("cannot reach Redis at {address}: {source}")]
    Unreachable {
        /// `HOST:PORT`.
        address: String,
        /// What the client said.
        source: redis::RedisError,
    },
    /// Another live node holds the name.
    #[error(
        "the node name {node} is live elsewhere (Redis key {key} is held by another process); \
         stop that node, wait for its claim to expire, or choose another --node"
    )]
    NameTaken {
        /// The name.
        node: NodeName,
        /// The claim's key.
        key: String,
    },
    /// A thread could not be started.
    #[error("cannot start the cluster's {what} thread: {source}")]
    Thread {
        /// Which.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
}

/// The cluster could not answer in time (Redis down or slow, the node
/// stopping): what the console prints as `error cluster unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cluster unavailable")]
pub struct Unavailable;

/// A stop flag the threads sleep on.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    set: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    pub(crate) fn is_set(&self) -> bool {
        self.set.lock().map_or(true, |set| *set)
    }

    pub(crate) fn set(&self) {
        if let Ok(mut set) = self.set.lock() {
            *set = true;
        }
        self.wake.notify_all();
    }

    /// Sleeps `d` or until stopped; `true` if stopped.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let Ok(set) = self.set.lock() else {
            return true;
        };
        match self.wake.wait_timeout_while(set, d, |set| !*set) {
            Ok((set, _)) => *set,
            Err(_) => true,
        }
    }
}

/// One running cluster node: the state machine's owner thread and the
/// Redis reader, writer, delivery and kick threads around it. Share it in
/// an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Node {
    name: NodeName,
    url: RedisUrl,
    timeout: Duration,
    owner: SyncSender<Msg>,
    stop: Arc<Stop>,
    counters: Arc<DriverCounters>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stopped: AtomicBool,
    handoff_logs: Mutex<RateLimit>,
}

impl Node {
    /// Connects to Redis, claims the node's name (`SET tether:node:<name>
    /// <incarnation> NX PX <ttl>`), and starts the threads. Returns once the
    /// node is live; fails when Redis cannot be reached or the name is held.
    pub fn start(options: NodeOptions, local: Arc<dyn Local>) -> Result<Node, StartError> {
        let joined = join(&options)?;
        let NodeOptions {
            url,
            name,
            config,
            hold_bytes,
        } = options;
        let (owner_tx, owner_rx) = sync_channel(OWNER_QUEUE);
        let (writer_tx, writer_rx) = sync_channel(WRITER_QUEUE);
        let (deliver_tx, deliver_rx) = sync_channel(DELIVERY_QUEUE);
        let (kick_tx, kick_rx) = sync_channel(KICK_QUEUE);
        let node = Node {
            name: name.clone(),
            url: url.clone(),
            timeout: config.timeout,
            owner: owner_tx.clone(),
            stop: Arc::new(Stop::default()),
            counters: Arc::new(DriverCounters::default()),
            threads: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            handoff_logs: Mutex::new(RateLimit::new()),
        };
        let gate = Arc::new(ReadGate::default());
        let ends = Ends {
            inbox: owner_rx,
            writer: writer_tx,
            deliveries: deliver_tx,
            kicks: kick_tx,
        };
        let owner = Owner::new(
            joined.cluster,
            ends,
            gate.clone(),
            node.counters.clone(),
            hold_bytes,
        );
        let env = Env {
            url: url.clone(),
            timeout: config.timeout,
            owner: owner_tx.clone(),
            stop: node.stop.clone(),
            counters: node.counters.clone(),
        };
        let claim = Claim {
            node: name.as_str().to_owned(),
            incarnation: joined.incarnation,
            ttl: config.ttl,
        };
        let (reader_link, writer_link) = (joined.reader, joined.writer);
        let last = joined.tail.unwrap_or_default();
        let spawned = (|| {
            let reader_env = env.clone();
            node.spawn("cluster-read", move || {
                workers::read_loop(&reader_env, reader_link, &gate, last);
            })?;
            node.spawn("cluster-write", move || {
                workers::write_loop(&env, writer_link, &writer_rx, &claim);
            })?;
            let deliver_local = local.clone();
            node.spawn("cluster-deliver", move || {
                workers::deliver_loop(&*deliver_local, &deliver_rx);
            })?;
            node.spawn("cluster-kick", move || {
                workers::kick_loop(&*local, &kick_rx, &owner_tx);
            })?;
            node.spawn("cluster", move || owner.run())
        })();
        if let Err(e) = spawned {
            node.shutdown();
            return Err(e);
        }
        tracing::info!(node = %name, url = %url, incarnation = joined.incarnation, "cluster node live");
        Ok(node)
    }

    fn spawn(
        &self,
        what: &'static str,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), StartError> {
        let thread = std::thread::Builder::new()
            .name(format!("tether-{what}"))
            .spawn(f)
            .map_err(|source| StartError::Thread { what, source })?;
        if let Ok(mut threads) = self.threads.lock() {
            threads.push(thread);
        }
        Ok(())
    }

    /// This node's name.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// Where its Redis is.
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// The driver's own counters (the machine's are in [`Node::stats`]).
    pub fn counters(&self) -> &DriverCounters {
        &self.counters
    }

    /// A local channel joined. Never blocks (see [`OWNER_QUEUE`]).
    pub fn opened(&self, id: ChannelId) {
        self.hand_off(Msg::Opened(id));
    }

    /// A local channel left. Never blocks.
    pub fn closed(&self, id: ChannelId) {
        self.hand_off(Msg::Closed(id));
    }

    /// A local client's line, for every other node. Never blocks: when the
    /// owner's queue is full, the line is counted
    /// (`cluster.handoff_dropped`) and logged, never silently lost.
    pub fn line(&self, from: ChannelId, text: Bytes) {
        self.hand_off(Msg::Line { from, text });
    }

    fn hand_off(&self, msg: Msg) {
        match self.owner.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(msg) | TrySendError::Disconnected(msg)) => {
                bump(&self.counters.handoff_dropped);
                let hit = self.handoff_logs.try_lock().ok().and_then(|mut l| l.hit());
                if let Some(count) = hit {
                    tracing::warn!(
                        dropped = count,
                        what = msg_kind(&msg),
                        "cluster: hand-off to the cluster dropped (its queue is full or it stopped)"
                    );
                }
            }
        }
    }

    /// Kicks a channel of another node; returns once that node did it
    /// (`Ok`), or with why not. Answers within the cluster timeout (plus a
    /// margin): `Unavailable` when nothing answered.
    pub fn kick(&self, target: NodeId, mode: KickMode, reason: String) -> Result<(), KickError> {
        let (reply, answer) = sync_channel(1);
        let msg = Msg::Kick {
            target,
            mode,
            reason,
            reply,
        };
        if self.owner.try_send(msg).is_err() {
            return Err(KickError::Unavailable);
        }
        answer
            .recv_timeout(self.timeout + QUERY_MARGIN)
            .unwrap_or(Err(KickError::Unavailable))
    }

    /// The live nodes, this one first.
    pub fn nodes(&self) -> Result<Vec<NodeInfo>, Unavailable> {
        self.ask(Query::Nodes)
    }

    /// Every channel of every live node (this one's included).
    pub fn presence(&self) -> Result<Vec<NodeId>, Unavailable> {
        self.ask(Query::Presence)
    }

    /// Every `cluster.*` counter: the state machine's, then the driver's.
    pub fn stats(&self) -> Result<Vec<(&'static str, u64)>, Unavailable> {
        let mut stats = self.ask(Query::Stats)?;
        stats.extend(self.counters.snapshot());
        Ok(stats)
    }

    fn ask<T>(&self, make: impl FnOnce(SyncSender<T>) -> Query) -> Result<T, Unavailable> {
        let (reply, answer) = sync_channel(1);
        self.owner
            .try_send(Msg::Query(make(reply)))
            .map_err(|_| Unavailable)?;
        answer
            .recv_timeout(self.timeout + QUERY_MARGIN)
            .map_err(|_| Unavailable)
    }

    /// Deregisters: publishes the goodbye, deletes the claim, stops every
    /// thread. Bounded by about twice the timeout; idempotent.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let (reply, done) = sync_channel(1);
        if self.owner.send(Msg::Shutdown { reply }).is_ok()
            && done.recv_timeout(self.timeout * 3 + QUERY_MARGIN).is_err()
        {
            tracing::warn!(node = %self.name, "cluster: the goodbye did not complete in time");
        }
        self.stop.set();
        // Bounded: a delivery or kick stuck in the local server (which
        // should have stopped first) is left behind, not waited for.
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t));
        let deadline = Instant::now() + self.timeout * 2 + QUERY_MARGIN;
        for thread in threads.unwrap_or_default() {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!(
                    node = %self.name,
                    thread = thread.thread().name().unwrap_or("?"),
                    "cluster: a thread did not end in time; left behind"
                );
            }
        }
        tracing::info!(node = %self.name, "cluster node left");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A node's first steps in Redis: both links, the claim, the bus's tail.
struct Joined {
    writer: Link,
    reader: Link,
    tail: Option<StreamId>,
    cluster: Cluster,
    incarnation: u64,
}

/// Connects both links and claims the name (released again if a later
/// step fails).
fn join(options: &NodeOptions) -> Result<Joined, StartError> {
    let NodeOptions {
        url, name, config, ..
    } = options;
    config.validate()?;
    let unreachable = |source| StartError::Unreachable {
        address: url.host_port(),
        source,
    };
    let incarnation = incarnation();
    let mut writer = Link::connect(url, config.timeout).map_err(unreachable)?;
    if !writer
        .claim(name.as_str(), incarnation, config.ttl)
        .map_err(unreachable)?
    {
        return Err(StartError::NameTaken {
            key: claim_key(name.as_str()),
            node: name.clone(),
        });
    }
    let rest = (|| {
        let mut reader = Link::connect(url, config.timeout).map_err(unreachable)?;
        let tail = reader.tail().map_err(unreachable)?;
        let cluster = Cluster::new(config.clone(), name.clone(), incarnation, Instant::now())?;
        Ok::<_, StartError>((reader, tail, cluster))
    })();
    match rest {
        Ok((reader, tail, cluster)) => Ok(Joined {
            writer,
            reader,
            tail,
            cluster,
            incarnation,
        }),
        Err(e) => {
            let _ = writer.release(name.as_str(), incarnation);
            Err(e)
        }
    }
}

/// Added to the timeout when waiting for the owner's answer: the machine
/// answers a kick by the timeout itself; this covers the thread hop.
const QUERY_MARGIN: Duration = Duration::from_millis(250);

fn msg_kind(msg: &Msg) -> &'static str {
    match msg {
        Msg::Opened(_) => "opened",
        Msg::Closed(_) => "closed",
        Msg::Line { .. } => "line",
        _ => "other",
    }
}

/// A fresh incarnation: nanoseconds since the epoch, so a restarted node
/// always has a new (and larger) one.
fn incarnation() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    nanos.max(1)
}
