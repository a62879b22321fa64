//! The application's side: one [`Handle`] and one [`Events`] stream for
//! every runtime adapter. Each call has an async form and, through
//! [`Handle::blocking`], a blocking one for plain threads.
//!
//! Every queue here is bounded or gated: commands wait for room in a
//! bounded queue, and a send waits (inside the driver) while its channel is
//! backpressured, so an application that produces faster than peers read
//! is slowed down instead of growing memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_lite::future;
use tether_core::{
    BroadcastReport, ChannelId, ChannelInfo, Event, IdError, KickError, KickMode, OfflineEntry,
    SendError,
};

use crate::exec::ThreadSleep;
use crate::glue::Sleep;
use crate::stats::ServerStats;

/// Why a [`Handle`] call failed: the hub refused it, or the server stopped.
/// The same type on every adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `send` refused by the hub (stale id, closing channel, queue full…).
    #[error(transparent)]
    Send(#[from] SendError),
    /// `kick` refused by the hub (stale id, already closing).
    #[error(transparent)]
    Kick(#[from] KickError),
    /// `authenticate` refused by the hub: a stale or unknown id.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The server has stopped; this handle no longer reaches a hub.
    #[error("the server has stopped")]
    Stopped,
}

/// A reply slot: the driver answers once.
pub(crate) type Reply<T> = Sender<T>;

/// An application command that changes channels. Executed in the order
/// posted; a send or broadcast waits at the head of the queue while its
/// target is backpressured.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        id: ChannelId,
        data: Bytes,
        reply: Option<Reply<Result<(), SendError>>>,
    },
    Broadcast {
        data: Bytes,
        reply: Option<Reply<BroadcastReport>>,
    },
    Kick {
        id: ChannelId,
        mode: KickMode,
        code: u32,
        reply: Option<Reply<Result<(), KickError>>>,
    },
    Authenticate {
        id: ChannelId,
        reply: Option<Reply<Result<(), IdError>>>,
    },
}

/// A call answered at once, even while sends wait for room.
#[derive(Debug)]
pub(crate) enum Query {
    Stats(Reply<ServerStats>),
    Channels(Reply<Vec<ChannelInfo>>),
    Offline(Reply<Vec<OfflineEntry>>),
    Shutdown { grace: Duration, reply: Reply<()> },
}

/// One shard's queues, as a handle sees them.
#[derive(Debug)]
pub(crate) struct ShardSenders {
    commands: Sender<Command>,
    queries: Sender<Query>,
}

impl ShardSenders {
    /// The shard's command queue (for in-driver applications of other
    /// shards).
    pub(crate) fn commands(&self) -> &Sender<Command> {
        &self.commands
    }
}

/// Makes one shard's command and query queues.
pub(crate) fn shard_queues(
    command_cap: usize,
) -> ((ShardSenders, Receiver<Command>), Receiver<Query>) {
    let (commands, command_rx) = async_channel::bounded(command_cap.max(1));
    let (queries, query_rx) = async_channel::bounded(64);
    ((ShardSenders { commands, queries }, command_rx), query_rx)
}

#[derive(Debug)]
struct Inner {
    shards: Vec<ShardSenders>,
    local_addr: SocketAddr,
    /// Closed once the server has stopped (every sender dropped).
    stopped: Receiver<()>,
}

/// A cloneable handle to a running server, usable from any task or thread.
/// Each call is one message to the driver of the channel's shard (and,
/// where it answers, one reply); calls about every channel (`broadcast`,
/// `stats`, `channels`, `shutdown`) go to every shard and merge the
/// answers. The same API with one shard or many.
///
/// # Verbs and forms
///
/// One rule for every command (here, in [`Blocking`] and in
/// [`AppOut`](crate::AppOut)):
///
/// * **`verb`** (`send`, `broadcast`, `kick`, `authenticate`) queues the
///   command *and waits for the hub's verdict*, which it returns (a send
///   also waits while its channel is backpressured);
/// * **`post_verb`** (`post_send`, `post_broadcast`, `post_kick`,
///   `post_authenticate`) only queues it (waiting for room in the bounded
///   command queue, never for the verdict); a refusal is counted in the
///   hub's stats. Commands run in the order posted either way.
///   An in-driver [`App`](crate::App) only has these: it cannot wait.
///
/// Every call is `async` here; **`.blocking()`** gives the same calls,
/// with the same names, for a plain thread: [`Handle::blocking`] and
/// [`Events::blocking`].
#[derive(Debug, Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

/// The driver's ends of one shard's queues.
pub(crate) struct HandleQueues {
    pub commands: Receiver<Command>,
    pub queries: Receiver<Query>,
}

impl Handle {
    pub(crate) fn new(
        local_addr: SocketAddr,
        shards: Vec<ShardSenders>,
        stopped: Receiver<()>,
    ) -> Handle {
        Handle {
            inner: Arc::new(Inner {
                shards,
                local_addr,
                stopped,
            }),
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// How many shards (hubs) the server runs.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
    }

    /// The shard that owns `id`; an id naming no shard of this server goes
    /// to shard 0, whose hub rejects it as unknown.
    fn shard(&self, id: ChannelId) -> &ShardSenders {
        let shards = &self.inner.shards;
        shards.get(usize::from(id.shard())).unwrap_or(&shards[0])
    }

    async fn command<T>(
        &self,
        id: ChannelId,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, Error> {
        let (reply, answer) = async_channel::bounded(1);
        post(self.shard(id), make(reply)).await?;
        answer.recv().await.map_err(|_| Error::Stopped)
    }

    /// Asks every shard; the answers in shard order.
    async fn ask_all<T>(&self, make: impl Fn(Reply<T>) -> Query) -> Result<Vec<T>, Error> {
        let mut answers = Vec::with_capacity(self.inner.shards.len());
        for shard in &self.inner.shards {
            let (reply, answer) = async_channel::bounded(1);
            shard
                .queries
                .send(make(reply))
                .await
                .map_err(|_| Error::Stopped)?;
            answers.push(answer);
        }
        let mut out = Vec::with_capacity(answers.len());
        for answer in answers {
            out.push(answer.recv().await.map_err(|_| Error::Stopped)?);
        }
        Ok(out)
    }

    /// Queues `data` on a channel and returns the hub's verdict. Waits while
    /// the channel is backpressured (its queue above the high watermark)
    /// until it drains, ends, or is evicted as a slow consumer.
    pub async fn send(&self, id: ChannelId, data: impl Into<Bytes>) -> Result<(), Error> {
        let data = data.into();
        Ok(self
            .command(id, |reply| Command::Send {
                id,
                data,
                reply: Some(reply),
            })
            .await??)
    }

    /// Like [`send`](Handle::send), without waiting for the verdict: only for
    /// room in the command queue. A refusal is counted in the hub's stats
    /// (`sends_rejected`).
    pub async fn post_send(&self, id: ChannelId, data: impl Into<Bytes>) -> Result<(), Error> {
        let command = Command::Send {
            id,
            data: data.into(),
            reply: None,
        };
        post(self.shard(id), command).await
    }

    /// Sends `data` to every usable channel (the bytes are shared, not
    /// copied). Waits while any usable channel is backpressured.
    pub async fn broadcast(&self, data: impl Into<Bytes>) -> Result<BroadcastReport, Error> {
        let data = data.into();
        let mut answers = Vec::with_capacity(self.inner.shards.len());
        for shard in &self.inner.shards {
            let (reply, answer) = async_channel::bounded(1);
            let command = Command::Broadcast {
                data: data.clone(),
                reply: Some(reply),
            };
            post(shard, command).await?;
            answers.push(answer);
        }
        let mut report = BroadcastReport::default();
        for answer in answers {
            let part = answer.recv().await.map_err(|_| Error::Stopped)?;
            report.sent += part.sent;
            report.refused.extend(part.refused);
        }
        Ok(report)
    }

    /// Like [`broadcast`](Handle::broadcast), without waiting for the report.
    pub async fn post_broadcast(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        let data = data.into();
        for shard in &self.inner.shards {
            let command = Command::Broadcast {
                data: data.clone(),
                reply: None,
            };
            post(shard, command).await?;
        }
        Ok(())
    }

    /// Kicks a channel: `Disconnected(Kicked{code})` at once; FIN once its
    /// queue is written (graceful) or RST now (abort). Ordered after every
    /// send posted before it, so a farewell line sent first is delivered.
    pub async fn kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), Error> {
        Ok(self
            .command(id, |reply| Command::Kick {
                id,
                mode,
                code,
                reply: Some(reply),
            })
            .await??)
    }

    /// Like [`kick`](Handle::kick), without waiting for the verdict (an
    /// unknown or already ended channel is counted, not reported).
    pub async fn post_kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), Error> {
        let command = Command::Kick {
            id,
            mode,
            code,
            reply: None,
        };
        post(self.shard(id), command).await
    }

    /// Marks a channel logged in: its login deadline no longer applies.
    pub async fn authenticate(&self, id: ChannelId) -> Result<(), Error> {
        Ok(self
            .command(id, |reply| Command::Authenticate {
                id,
                reply: Some(reply),
            })
            .await??)
    }

    /// Like [`authenticate`](Handle::authenticate), without waiting for the
    /// verdict.
    pub async fn post_authenticate(&self, id: ChannelId) -> Result<(), Error> {
        post(self.shard(id), Command::Authenticate { id, reply: None }).await
    }

    /// The hub's counters and the adapter's own (see
    /// [`ServerStats::counters`]).
    pub async fn stats(&self) -> Result<ServerStats, Error> {
        let mut parts = self.ask_all(Query::Stats).await?.into_iter();
        let mut stats = parts.next().ok_or(Error::Stopped)?;
        for part in parts {
            // The adapter's counters are shared by every shard already.
            stats.core.merge(&part.core);
        }
        Ok(stats)
    }

    /// Every live channel, in slot order.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>, Error> {
        Ok(self.ask_all(Query::Channels).await?.concat())
    }

    /// The offline queue, oldest first.
    pub async fn offline(&self) -> Result<Vec<OfflineEntry>, Error> {
        let mut all = self.ask_all(Query::Offline).await?.concat();
        all.sort_by_key(|e| std::cmp::Reverse(e.age));
        Ok(all)
    }

    /// Starts a graceful shutdown, in two phases across shards
    /// (docs/design.md §5.5): every shard stops reading and accepting, and
    /// once every relay between shards is in its target's queue (waiting at
    /// most `grace`), each hub kicks every channel with `ServerShutdown`
    /// (queued bytes are flushed, then FIN) and aborts what is still
    /// closing `grace` later. Idempotent: the first call's grace counts.
    /// Await [`stopped`](Handle::stopped) for its end.
    pub async fn shutdown(&self, grace: Duration) -> Result<(), Error> {
        self.ask_all(|reply| Query::Shutdown { grace, reply })
            .await
            .map(drop)
    }

    /// Resolves once the server has stopped: shutdown complete, every
    /// socket and the listener closed.
    pub async fn stopped(&self) {
        let _closed = self.inner.stopped.recv().await;
    }

    /// Whether the server has stopped.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.is_closed()
    }

    /// The same calls for blocking code (threads, tests, a console).
    pub fn blocking(&self) -> Blocking<'_> {
        Blocking(self)
    }
}

/// Posts `command` to a shard, waiting for room in its queue.
async fn post(shard: &ShardSenders, command: Command) -> Result<(), Error> {
    shard
        .commands
        .send(command)
        .await
        .map_err(|_| Error::Stopped)
}

/// Blocking forms of the [`Handle`] calls, for code outside any runtime.
/// Each blocks the calling thread until the driver answers (or, for the
/// `post_*` forms, until the command is queued).
#[derive(Debug, Clone, Copy)]
pub struct Blocking<'a>(&'a Handle);

impl Blocking<'_> {
    /// See [`Handle::send`].
    pub fn send(&self, id: ChannelId, data: impl Into<Bytes>) -> Result<(), Error> {
        future::block_on(self.0.send(id, data))
    }
    /// See [`Handle::post_send`].
    pub fn post_send(&self, id: ChannelId, data: impl Into<Bytes>) -> Result<(), Error> {
        future::block_on(self.0.post_send(id, data))
    }
    /// See [`Handle::broadcast`].
    pub fn broadcast(&self, data: impl Into<Bytes>) -> Result<BroadcastReport, Error> {
        future::block_on(self.0.broadcast(data))
    }
    /// See [`Handle::post_broadcast`].
    pub fn post_broadcast(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        future::block_on(self.0.post_broadcast(data))
    }
    /// See [`Handle::kick`].
    pub fn kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), Error> {
        future::block_on(self.0.kick(id, mode, code))
    }
    /// See [`Handle::post_kick`].
    pub fn post_kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), Error> {
        future::block_on(self.0.post_kick(id, mode, code))
    }
    /// See [`Handle::authenticate`].
    pub fn authenticate(&self, id: ChannelId) -> Result<(), Error> {
        future::block_on(self.0.authenticate(id))
    }
    /// See [`Handle::post_authenticate`].
    pub fn post_authenticate(&self, id: ChannelId) -> Result<(), Error> {
        future::block_on(self.0.post_authenticate(id))
    }
    /// See [`Handle::stats`].
    pub fn stats(&self) -> Result<ServerStats, Error> {
        future::block_on(self.0.stats())
    }
    /// See [`Handle::channels`].
    pub fn channels(&self) -> Result<Vec<ChannelInfo>, Error> {
        future::block_on(self.0.channels())
    }
    /// See [`Handle::offline`].
    pub fn offline(&self) -> Result<Vec<OfflineEntry>, Error> {
        future::block_on(self.0.offline())
    }
    /// See [`Handle::shutdown`].
    pub fn shutdown(&self, grace: Duration) -> Result<(), Error> {
        future::block_on(self.0.shutdown(grace))
    }
    /// Blocks until the server has stopped (see [`Handle::stopped`]).
    pub fn stopped(&self) {
        future::block_on(self.0.stopped());
    }
    /// Waits at most `timeout` for the server to stop; whether it did.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        crate::exec::block_on(future::or(
            async {
                self.0.stopped().await;
                true
            },
            async {
                match deadline {
                    Some(at) => ThreadSleep.sleep_until(at).await,
                    None => future::pending().await,
                }
                self.0.is_stopped()
            },
        ))
    }
}

/// The server's events, in order: `Opened`, `Received`, `Writable`,
/// `ReadClosed`, `Disconnected` (exactly once per channel),
/// `HolderOverdue`, `Released`, `ShutdownComplete`. Ends after
/// `ShutdownComplete`.
///
/// Flow control: while more than
/// [`Options::event_backlog`](crate::Options::event_backlog) received bytes
/// wait here unread, the driver stops taking received data from sockets,
/// so a peer that floods a slow application is pushed back by TCP.
/// Lifecycle events are never held back (there are a handful per channel).
/// Dropping every `Events` discards events instead.
#[derive(Debug, Clone)]
pub struct Events {
    rx: Receiver<Event>,
    unread: Arc<AtomicUsize>,
}

impl Events {
    pub(crate) fn new() -> (Sender<Event>, Events, Arc<AtomicUsize>) {
        let (tx, rx) = async_channel::unbounded();
        let unread = Arc::new(AtomicUsize::new(0));
        (
            tx,
            Events {
                rx,
                unread: unread.clone(),
            },
            unread,
        )
    }

    fn taken(&self, event: Event) -> Event {
        if let Event::Received { data, .. } = &event {
            self.unread.fetch_sub(data.len(), Ordering::AcqRel);
        }
        event
    }

    /// The next event; `None` once the server stopped and every event was
    /// read.
    pub async fn next(&self) -> Option<Event> {
        self.rx.recv().await.ok().map(|e| self.taken(e))
    }

    /// The next event if one is ready.
    #[must_use]
    pub fn try_next(&self) -> Option<Event> {
        self.rx.try_recv().ok().map(|e| self.taken(e))
    }

    /// The same calls for blocking code (threads, tests, a console).
    pub fn blocking(&self) -> BlockingEvents<'_> {
        BlockingEvents(self)
    }

    /// Events not read yet.
    pub fn backlog(&self) -> usize {
        self.rx.len()
    }
}

/// Blocking forms of the [`Events`] calls, for code outside any runtime
/// (see [`Events::blocking`]).
#[derive(Debug, Clone, Copy)]
pub struct BlockingEvents<'a>(&'a Events);

impl BlockingEvents<'_> {
    /// The next event, blocking the thread; `None` once the server stopped
    /// and every event was read (see [`Events::next`]).
    #[must_use]
    pub fn next(&self) -> Option<Event> {
        let events = self.0;
        events.rx.recv_blocking().ok().map(|e| events.taken(e))
    }

    /// The next event, blocking the thread for at most `timeout`; `None`
    /// on timeout or once the server stopped and every event was read.
    #[must_use]
    pub fn next_timeout(&self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now().checked_add(timeout);
        crate::exec::block_on(future::or(self.0.next(), async {
            match deadline {
                Some(at) => ThreadSleep.sleep_until(at).await,
                None => future::pending().await,
            }
            None
        }))
    }
}

/// Blocking: the same as [`BlockingEvents::next`].
impl Iterator for Events {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.blocking().next()
    }
}
