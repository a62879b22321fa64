//! The application-facing API: start a server, hold a [`Handle`], read
//! [`Events`].

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::Async;
use bytes::Bytes;
use futures_lite::Stream;
use tether_core::{
    BroadcastReport, ChannelError, ChannelId, ChannelInfo, Config, ConfigError, Event, Hub,
    KickError, KickMode, OfflineEntry, SendError, Stats,
};

use crate::driver::{Command, Driver};
use crate::runtime::Runtime;

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Binding or registering the listener failed.
    #[error("cannot listen: {0}")]
    Io(#[from] io::Error),
}

/// Why a [`Handle`] call failed: the hub refused it, or the server stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `send` refused by the hub (stale id, closing channel, queue full…).
    #[error(transparent)]
    Send(#[from] SendError),
    /// `kick` refused by the hub (stale id, already closing).
    #[error(transparent)]
    Kick(#[from] KickError),
    /// `authenticate` refused by the hub.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The server finished shutting down; its handle no longer reaches a hub.
    #[error("server stopped")]
    Stopped,
}

/// The server: spawn it with [`Server::start`].
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds `addr`, spawns the driver and listener on `runtime`, and
    /// returns the handle and the event stream. Runs until
    /// [`Handle::shutdown`] completes.
    pub fn start<R: Runtime>(
        runtime: R,
        addr: SocketAddr,
        config: Config,
    ) -> Result<(Handle, Events), StartError> {
        let hub = Hub::new(config)?;
        let listener = Async::new(listen(addr)?)?;
        let local_addr = listener.get_ref().local_addr()?;
        let (commands, command_rx) = async_channel::unbounded();
        let (events, event_rx) = async_channel::unbounded();
        let (stopped, stopped_rx) = async_channel::bounded::<()>(1);
        Driver::spawn(runtime, hub, listener, command_rx, events, stopped);
        let handle = Handle {
            inner: Arc::new(Inner {
                commands,
                local_addr,
                stopped: stopped_rx,
            }),
        };
        Ok((handle, Events { rx: event_rx }))
    }
}

/// Connections the kernel may hold completed but not yet accepted. Above
/// std's 128 so a burst of connects is not answered with SYN retries.
const BACKLOG: i32 = 1024;

/// A listening socket with `SO_REUSEADDR` (a restarted server binds at once
/// despite connections in TIME_WAIT) and a deeper backlog than std's.
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[derive(Debug)]
struct Inner {
    /// Unbounded, so `*_nowait` never fails while the server runs; the
    /// hub bounds what the commands may queue on sockets.
    commands: Sender<Command>,
    local_addr: SocketAddr,
    /// Closed when the driver exits.
    stopped: Receiver<()>,
}

/// A cloneable handle to a running server, usable from any task. Every
/// method is one message to the driver task (and, where it answers, one
/// reply); none of them blocks on a socket.
#[derive(Debug, Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

impl Handle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    async fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, Error> {
        let (reply, answer) = async_channel::bounded(1);
        self.inner
            .commands
            .send(make(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        answer.recv().await.map_err(|_| Error::Stopped)
    }

    /// Queues `data` for one channel.
    pub async fn send(&self, id: ChannelId, data: Bytes) -> Result<(), Error> {
        Ok(self
            .ask(|reply| Command::Send {
                id,
                data,
                reply: Some(reply),
            })
            .await??)
    }

    /// Queues `data` for one channel without waiting for the answer; a
    /// refusal is counted in [`Stats::sends_rejected`]. Returns `false` if
    /// the server stopped.
    pub fn send_nowait(&self, id: ChannelId, data: Bytes) -> bool {
        let command = Command::Send {
            id,
            data,
            reply: None,
        };
        self.inner.commands.try_send(command).is_ok()
    }

    /// Sends `data` to every usable channel (the bytes are shared).
    pub async fn broadcast(&self, data: Bytes) -> Result<BroadcastReport, Error> {
        self.ask(|reply| Command::Broadcast {
            data,
            reply: Some(reply),
        })
        .await
    }

    /// Broadcasts without waiting for the report. Returns `false` if the
    /// server stopped.
    pub fn broadcast_nowait(&self, data: Bytes) -> bool {
        let command = Command::Broadcast { data, reply: None };
        self.inner.commands.try_send(command).is_ok()
    }

    /// Kicks a channel: `Disconnected(Kicked{code})` now; FIN after its queue
    /// is flushed (graceful) or RST now (abort).
    pub async fn kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), Error> {
        Ok(self
            .ask(|reply| Command::Kick {
                id,
                mode,
                code,
                reply,
            })
            .await??)
    }

    /// Marks a channel logged in (its login deadline no longer applies).
    pub async fn authenticate(&self, id: ChannelId) -> Result<(), Error> {
        Ok(self
            .ask(|reply| Command::Authenticate {
                id,
                reply: Some(reply),
            })
            .await??)
    }

    /// Marks a channel logged in without waiting for the answer. Returns
    /// `false` if the server stopped.
    pub fn authenticate_nowait(&self, id: ChannelId) -> bool {
        let command = Command::Authenticate { id, reply: None };
        self.inner.commands.try_send(command).is_ok()
    }

    /// The hub's counters.
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.ask(Command::Stats).await
    }

    /// Every live channel.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>, Error> {
        self.ask(Command::Channels).await
    }

    /// The offline queue, oldest first.
    pub async fn offline(&self) -> Result<Vec<OfflineEntry>, Error> {
        self.ask(Command::Offline).await
    }

    /// Starts a graceful shutdown: stop accepting, kick every channel with
    /// `ServerShutdown`, abort what is still closing after `grace`. Await
    /// [`Handle::stopped`] for its end.
    pub async fn shutdown(&self, grace: Duration) -> Result<(), Error> {
        self.ask(|reply| Command::Shutdown { grace, reply }).await
    }

    /// Resolves once the server has stopped: shutdown complete, every
    /// socket closed, the listener closed.
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

/// Blocking versions of the [`Handle`] calls, for code outside any runtime.
/// Each blocks the calling thread until the driver answers.
#[derive(Debug, Clone, Copy)]
pub struct Blocking<'a>(&'a Handle);

impl Blocking<'_> {
    /// See [`Handle::send`].
    pub fn send(&self, id: ChannelId, data: Bytes) -> Result<(), Error> {
        futures_lite::future::block_on(self.0.send(id, data))
    }
    /// See [`Handle::broadcast`].
    pub fn broadcast(&self, data: Bytes) -> Result<BroadcastReport, Error> {
        futures_lite::future::block_on(self.0.broadcast(data))
    }
    /// See [`Handle::kick`].
    pub fn kick(&self, id: ChannelId, mode: KickMode, code: u32) -> Result<(), Error> {
        futures_lite::future::block_on(self.0.kick(id, mode, code))
    }
    /// See [`Handle::authenticate`].
    pub fn authenticate(&self, id: ChannelId) -> Result<(), Error> {
        futures_lite::future::block_on(self.0.authenticate(id))
    }
    /// See [`Handle::stats`].
    pub fn stats(&self) -> Result<Stats, Error> {
        futures_lite::future::block_on(self.0.stats())
    }
    /// See [`Handle::channels`].
    pub fn channels(&self) -> Result<Vec<ChannelInfo>, Error> {
        futures_lite::future::block_on(self.0.channels())
    }
    /// See [`Handle::shutdown`].
    pub fn shutdown(&self, grace: Duration) -> Result<(), Error> {
        futures_lite::future::block_on(self.0.shutdown(grace))
    }
    /// See [`Handle::stopped`]; gives up after `timeout` and returns
    /// whether the server stopped.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        futures_lite::future::block_on(futures_lite::future::or(
            async {
                self.0.stopped().await;
                true
            },
            async {
                async_io::Timer::after(timeout).await;
                false
            },
        ))
    }
}

/// The server's events, in order: `Opened`, `Received`, `Writable`,
/// `ReadClosed`, `Disconnected` (exactly once per channel), `HolderOverdue`,
/// `Released`, `ShutdownComplete`. Ends after `ShutdownComplete`.
///
/// Unbounded: the driver never waits for the application, so read events
/// promptly (or drop `Events` to discard them).
#[derive(Debug, Clone)]
pub struct Events {
    rx: Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the server stopped and every event was read.
    pub async fn next(&self) -> Option<Event> {
        self.rx.recv().await.ok()
    }

    /// The next event if one is ready.
    #[must_use]
    pub fn try_next(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// The next event, waiting at most `timeout` (blocking the thread).
    #[must_use]
    pub fn next_blocking(&self, timeout: Duration) -> Option<Event> {
        futures_lite::future::block_on(futures_lite::future::or(self.next(), async {
            async_io::Timer::after(timeout).await;
            None
        }))
    }

    /// Events not read yet.
    pub fn backlog(&self) -> usize {
        self.rx.len()
    }

    /// As a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = Event> {
        self.rx
    }
}
