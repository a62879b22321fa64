//! The per-connection threads: a blocking reader for every channel, and a
//! writer only for a channel whose peer did not take a write at once.
//!
//! Both are *holders* of the socket (the owner attached them before they
//! started). Each drops its `Arc<Sock>` **before** posting its detach,
//! so when the hub emits `Close` the owner holds the last reference and the
//! close really closes the descriptor (see the crate docs).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use socket2::SockRef;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use tether_core::{Bytes, ChannelId};

use crate::owner::Input;

/// One connection's socket, shared by the owner and the holders.
#[derive(Debug)]
pub(crate) struct Sock {
    pub stream: TcpStream,
    /// Set by the owner before it shuts down our sending side (or aborts):
    /// from then on a failed send says nothing about the peer.
    pub shut_by_us: AtomicBool,
}

impl Sock {
    pub fn new(stream: TcpStream) -> Arc<Sock> {
        Arc::new(Sock {
            stream,
            shut_by_us: AtomicBool::new(false),
        })
    }

    /// After `read` returned 0: was that the peer's FIN, or its RST?
    ///
    /// A reset wakes a reader with 0 rather than `ECONNRESET` when another
    /// thread's blocked `send` took the socket's pending error first (the
    /// kernel hands it to one caller only). A zero-length send tells them
    /// apart without sending anything: after a FIN it succeeds, on a reset
    /// socket it fails — unless we shut our own sending side, which the
    /// owner flags first.
    fn was_reset(&self) -> bool {
        !self.shut_by_us.load(Ordering::SeqCst)
            && SockRef::from(&self.stream)
                .send_with_flags(&[], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                .is_err()
    }
}

/// Reads until EOF or an error, posting what it reads; then lets go.
///
/// The first `read` starts before the id is known: the owner attached this
/// reader in the same step as it accepted the connection, so the hub
/// already counts it as a holder, and waiting for the id only after the
/// first bytes (or EOF) saves a wake-up per connection. If the hub refused
/// the connection, the owner shuts the socket down, which ends that read,
/// and drops `started`, which ends this thread.
///
/// Woken from a blocked `read` by the owner: `shutdown(Both)` when the
/// channel goes offline, `shutdown(Read)` for an abort. Either makes `read`
/// return 0; the reader cannot tell that from the peer's FIN and need not:
/// the hub ignores an EOF on a channel that is already offline.
pub(crate) fn run_reader(
    stream: Arc<Sock>,
    started: Receiver<ChannelId>,
    tx: Sender<Input>,
    buffer_size: usize,
) {
    let mut buf = vec![0u8; buffer_size.max(1)];
    let mut result = (&stream.stream).read(&mut buf);
    let Ok(id) = started.recv() else {
        return; // refused: no channel, nothing to report
    };
    loop {
        match result {
            Ok(0) => {
                let _ = tx.send(if stream.was_reset() {
                    Input::ReadError {
                        id,
                        kind: io::ErrorKind::ConnectionReset,
                    }
                } else {
                    Input::PeerEof { id }
                });
                break;
            }
            Ok(n) => {
                let data = Bytes::copy_from_slice(&buf[..n]);
                if tx.send(Input::Received { id, data }).is_err() {
                    break; // the owner is gone: nobody to tell
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Input::ReadError { id, kind: e.kind() });
                break;
            }
        }
        result = (&stream.stream).read(&mut buf);
    }
    drop(stream); // before the detach: the owner must hold the last reference
    let _ = tx.send(Input::Detach { id });
}

/// What the owner posts to a channel's writer thread.
pub(crate) enum WriterJob {
    /// Write these bytes after everything before.
    Write(Bytes),
    /// Let go: the channel is offline (its queue is flushed or dropped).
    Stop,
}

/// The writer's side of its channel: the job queue and the stop flag.
pub(crate) struct WriterLink {
    pub jobs: Sender<WriterJob>,
    /// Set by the owner on abort or offline: drop what is left and exit. A
    /// writer blocked in `write` on a peer that does not read sees it at its
    /// next write-timeout tick.
    pub stop: Arc<AtomicBool>,
}

/// Writes each job in order, reporting progress after every partial write,
/// until stopped or the socket fails; then lets go.
///
/// The socket has a write timeout of `tick`: a write that makes no progress
/// for that long returns, so the writer checks `stop` at least once per tick
/// even when the peer never reads (the abort path, which must not send FIN
/// and so cannot use `shutdown(Write)` to wake it).
pub(crate) fn run_writer(
    id: ChannelId,
    stream: Arc<Sock>,
    jobs: Receiver<WriterJob>,
    stop: Arc<AtomicBool>,
    tx: Sender<Input>,
    first: Bytes,
) {
    let mut next = Some(WriterJob::Write(first));
    'jobs: loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => break, // the owner dropped the channel's record
            },
        };
        let WriterJob::Write(data) = job else {
            break;
        };
        let mut off = 0;
        while off < data.len() {
            if stop.load(Ordering::Acquire) {
                break 'jobs;
            }
            match (&stream.stream).write(&data[off..]) {
                Ok(0) => {
                    let _ = tx.send(Input::WriteError {
                        id,
                        kind: io::ErrorKind::WriteZero,
                    });
                    break 'jobs;
                }
                Ok(n) => {
                    off += n;
                    if tx.send(Input::Written { id, n }).is_err() {
                        break 'jobs;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue; // a tick without progress: check `stop`, retry
                }
                Err(e) => {
                    if !stop.load(Ordering::Acquire) {
                        let _ = tx.send(Input::WriteError { id, kind: e.kind() });
                    }
                    break 'jobs;
                }
            }
        }
    }
    drop(stream); // before the detach, as for the reader
    let _ = tx.send(Input::Detach { id });
}

/// The write timeout a writer thread puts on its socket.
pub(crate) fn set_write_tick(sock: &Sock, tick: Duration) -> io::Result<()> {
    sock.stream
        .set_write_timeout(Some(tick.max(Duration::from_millis(1))))
}
