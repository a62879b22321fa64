//! The cloneable handle: any thread posts commands to the owner thread.

use std::sync::mpsc::{self, Sender, SyncSender};
use std::time::Duration;

use tether_core::{
    BroadcastReport, Bytes, ChannelError, ChannelId, ChannelInfo, KickError, KickMode,
    OfflineEntry, SendError, Stats,
};

use crate::owner::Input;

/// A one-shot reply slot: the owner answers once, the caller waits once.
pub(crate) type Reply<T> = SyncSender<T>;

/// A command from the application, executed by the owner thread in the
/// order it was posted (per posting thread).
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
        reply: Option<Reply<Result<(), ChannelError>>>,
    },
    Channels {
        reply: Reply<Vec<ChannelInfo>>,
    },
    Offline {
        reply: Reply<Vec<OfflineEntry>>,
    },
    Stats {
        reply: Reply<AdapterStats>,
    },
    Shutdown {
        grace: Duration,
    },
}

/// Why a call through a [`Handle`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError<E: std::error::Error + 'static> {
    /// The hub rejected the command (stale id, closing channel, full queue…).
    #[error(transparent)]
    Rejected(E),
    /// The owner thread has exited: the server shut down.
    #[error("the server has stopped")]
    Stopped,
}

/// The owner thread has exited: the server shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server has stopped")]
pub struct Stopped;

/// Flattens the owner's verdict and the round trip's outcome.
fn verdict<T, E: std::error::Error + 'static>(
    answer: Result<Result<T, E>, Stopped>,
) -> Result<T, CallError<E>> {
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(CallError::Rejected(e)),
        Err(Stopped) => Err(CallError::Stopped),
    }
}

/// The hub's counters plus what only the adapter knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterStats {
    /// The core's counters and gauges.
    pub core: Stats,
    /// Connections handed over by the acceptor thread since start.
    pub accepted: u64,
    /// Accepted sockets the hub refused (limit or shutdown) and closed at once.
    pub refused_closed: u64,
    /// `accept(2)` errors (e.g. out of file descriptors).
    pub accept_errors: u64,
    /// Connection threads (readers and writers) running now.
    pub io_threads: usize,
    /// Writer threads started since start: one per channel whose peer did
    /// not take a write at once.
    pub writers_started: u64,
    /// Transmits written by the owner thread directly, without waiting.
    pub direct_writes: u64,
    /// Sockets closed after every holder detached.
    pub sockets_closed: u64,
}

impl AdapterStats {
    /// Every counter as a `key=value`-ready pair, core counters first.
    pub fn iter(&self) -> impl Iterator<Item = (String, String)> + '_ {
        let c = &self.core;
        let mut pairs: Vec<(String, String)> = vec![
            ("opened".into(), c.opened.to_string()),
            ("refused".into(), c.refused.to_string()),
            ("released".into(), c.released.to_string()),
            ("live".into(), c.live.to_string()),
            ("usable".into(), c.usable.to_string()),
            ("offline_depth".into(), c.offline_depth.to_string()),
            (
                "offline_oldest_ms".into(),
                c.offline_oldest.map_or(0, |d| d.as_millis()).to_string(),
            ),
            ("accept_paused".into(), c.accept_paused.to_string()),
            ("bytes_queued".into(), c.bytes_queued.to_string()),
            ("bytes_written".into(), c.bytes_written.to_string()),
            ("bytes_dropped".into(), c.bytes_dropped.to_string()),
            ("bytes_received".into(), c.bytes_received.to_string()),
            ("sends_rejected".into(), c.sends_rejected.to_string()),
            ("stale_calls".into(), c.stale_calls.to_string()),
            ("holders_overdue".into(), c.holders_overdue.to_string()),
        ];
        for (reason, n) in c.disconnected.iter() {
            pairs.push((format!("disconnected.{reason}"), n.to_string()));
        }
        pairs.extend([
            ("threads.accepted".into(), self.accepted.to_string()),
            (
                "threads.refused_closed".into(),
                self.refused_closed.to_string(),
            ),
            (
                "threads.accept_errors".into(),
                self.accept_errors.to_string(),
            ),
            ("threads.io_threads".into(), self.io_threads.to_string()),
            (
                "threads.writers_started".into(),
                self.writers_started.to_string(),
            ),
            (
                "threads.direct_writes".into(),
                self.direct_writes.to_string(),
            ),
            (
                "threads.sockets_closed".into(),
                self.sockets_closed.to_string(),
            ),
        ]);
        pairs.into_iter()
    }
}

/// Posts commands to the owner thread; cheap to clone, usable from any
/// thread. It holds no lock and never touches a socket: the owner thread
/// alone decides, so two threads kicking the same id at once get one `ok`
/// and one `AlreadyClosing`, never a double close.
///
/// Calls that return a verdict wait for the owner's answer (a round trip
/// through a channel, microseconds); the `*_no_reply` variants only post.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: Sender<Input>,
}

impl Handle {
    pub(crate) fn new(tx: Sender<Input>) -> Self {
        Handle { tx }
    }

    fn post(&self, command: Command) -> Result<(), Stopped> {
        self.tx.send(Input::Command(command)).map_err(|_| Stopped)
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Stopped> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.post(make(reply))?;
        answer.recv().map_err(|_| Stopped)
    }

    /// Queues `data` on a channel; `Ok` means the hub accepted it (it is
    /// written in order, without blocking any other channel).
    pub fn send(&self, id: ChannelId, data: impl Into<Bytes>) -> Result<(), CallError<SendError>> {
        let data = data.into();
        verdict(self.call(|reply| Command::Send {
            id,
            data,
            reply: Some(reply),
        }))
    }

    /// Like [`send`](Handle::send) without waiting for the verdict: a
    /// rejected send is counted in the hub's stats only.
    pub fn send_no_reply(&self, id: ChannelId, data: impl Into<Bytes>) -> Result<(), Stopped> {
        self.post(Command::Send {
            id,
            data: data.into(),
            reply: None,
        })
    }

    /// Sends `data` to every usable channel; the bytes are shared.
    pub fn broadcast(&self, data: impl Into<Bytes>) -> Result<BroadcastReport, Stopped> {
        let data = data.into();
        self.call(|reply| Command::Broadcast {
            data,
            reply: Some(reply),
        })
    }

    /// Like [`broadcast`](Handle::broadcast) without waiting for the report.
    pub fn broadcast_no_reply(&self, data: impl Into<Bytes>) -> Result<(), Stopped> {
        self.post(Command::Broadcast {
            data: data.into(),
            reply: None,
        })
    }

    /// Kicks a channel: `Disconnected` at once; FIN once its queue is
    /// written (graceful) or RST now (abort). A second kick answers
    /// [`KickError::AlreadyClosing`].
    pub fn kick(
        &self,
        id: ChannelId,
        mode: KickMode,
        code: u32,
    ) -> Result<(), CallError<KickError>> {
        verdict(self.call(|reply| Command::Kick {
            id,
            mode,
            code,
            reply: Some(reply),
        }))
    }

    /// Like [`kick`](Handle::kick) without waiting for the verdict.
    pub fn kick_no_reply(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), Stopped> {
        self.post(Command::Kick {
            id,
            mode,
            code,
            reply: None,
        })
    }

    /// Marks a channel as logged in: the login deadline no longer applies.
    pub fn authenticate(&self, id: ChannelId) -> Result<(), CallError<ChannelError>> {
        verdict(self.call(|reply| Command::Authenticate {
            id,
            reply: Some(reply),
        }))
    }

    /// Like [`authenticate`](Handle::authenticate) without waiting.
    pub fn authenticate_no_reply(&self, id: ChannelId) -> Result<(), Stopped> {
        self.post(Command::Authenticate { id, reply: None })
    }

    /// Every live channel, in slot order.
    pub fn channels(&self) -> Result<Vec<ChannelInfo>, Stopped> {
        self.call(|reply| Command::Channels { reply })
    }

    /// The offline queue, oldest first.
    pub fn offline(&self) -> Result<Vec<OfflineEntry>, Stopped> {
        self.call(|reply| Command::Offline { reply })
    }

    /// The hub's counters and the adapter's own.
    pub fn stats(&self) -> Result<AdapterStats, Stopped> {
        self.call(|reply| Command::Stats { reply })
    }

    /// Shuts the server down: stop accepting, kick every channel with
    /// `ServerShutdown`, abort what is still closing after `grace`, and stop
    /// every thread once every channel is released. Idempotent; wait for the
    /// end with [`Server::wait`](crate::Server::wait).
    pub fn shutdown(&self, grace: Duration) -> Result<(), Stopped> {
        self.post(Command::Shutdown { grace })
    }
}
