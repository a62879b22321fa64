//! The tokio glue: how a `tokio::net` socket waits for readiness, how the
//! listener accepts, how to sleep (`tokio::time`) and spawn. The tasks
//! themselves (listener, a reader per connection, a waiter while a send
//! buffer is full) are `tether-adapter`'s, the same for every async
//! runtime; the driver writes every socket itself.

use std::io::{self, IoSlice, Read};
use std::net::{Shutdown, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tether_adapter::runtime::Sleep;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle as Runtime;

/// A connected socket on tokio's reactor.
///
/// Registered with the reactor of the runtime it is first used on: at once
/// when accepted by a listener of its shard's runtime, or — when the round-
/// robin listener hands it to another shard's runtime ([`crate::start_on_threads`]) —
/// by the first of that shard's driver and reader to touch it, so that its
/// readiness wakes tasks on its own shard's thread.
#[derive(Debug)]
pub struct TokioSocket {
    registered: OnceLock<TcpStream>,
    /// The socket until it is registered (taken then).
    pending: Mutex<Option<std::net::TcpStream>>,
}

impl tether_adapter::runtime::AsyncSocket for TokioSocket {
    async fn readable(&self) -> io::Result<()> {
        self.stream()?.readable().await
    }
    async fn writable(&self) -> io::Result<()> {
        self.stream()?.writable().await
    }
    /// `TcpStream::try_read`, except that a short read also clears
    /// tokio's read readiness, as tokio's own `AsyncRead` does
    /// (`PollEvented::poll_read`, tokio issue 5866): with an edge-triggered
    /// selector (epoll, kqueue), fewer bytes than asked for mean the
    /// socket's receive queue was empty. `try_read` clears readiness only
    /// on `WouldBlock`, so the reader would otherwise wake at once for a
    /// read that finds nothing (one `recvfrom` returning EAGAIN per line).
    /// Race-free: the clear is for the readiness event the read was made
    /// under, so an event that arrived since is kept, and a peer's close
    /// (`READ_CLOSED`) is never cleared.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let stream = self.stream()?;
        if !EDGE_TRIGGERED {
            return stream.try_read(buf);
        }
        let len = buf.len();
        let mut short = None;
        let read = stream.try_io(Interest::READABLE, || {
            // Directly on the socket: tokio's own methods would touch the
            // readiness `try_io` is managing.
            let n = (&*socket2::SockRef::from(stream)).read(buf)?;
            if 0 < n && n < len {
                // `WouldBlock` is how `try_io` is told to clear readiness.
                short = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        short.map_or(read, Ok)
    }
}

/// Whether tokio's reactor is edge-triggered here (mio on epoll or kqueue),
/// the platforms on which tokio itself clears readiness after a short read.
/// `mio_unsupported_force_poll_poll` (a `--cfg` for mio's level-triggered
/// `poll(2)` backend) turns it off, as it does in tokio.
#[allow(unexpected_cfgs)]
const EDGE_TRIGGERED: bool = cfg!(all(
    not(mio_unsupported_force_poll_poll),
    any(
        target_os = "android",
        target_os = "illumos",
        target_os = "linux",
        target_os = "redox",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "ios",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "tvos",
        target_os = "visionos",
        target_os = "watchos",
    )
));

impl TokioSocket {
    /// A socket already registered with its runtime's reactor.
    pub fn new(stream: TcpStream) -> Self {
        TokioSocket {
            registered: OnceLock::from(stream),
            pending: Mutex::new(None),
        }
    }

    /// A socket to be registered by its first use, with the reactor of the
    /// tokio runtime current then. `stream` must be non-blocking.
    pub fn unregistered(stream: std::net::TcpStream) -> Self {
        TokioSocket {
            registered: OnceLock::new(),
            pending: Mutex::new(Some(stream)),
        }
    }

    /// The tokio stream, registered now if it was not yet (with the current
    /// runtime's reactor). Fails without a current runtime, if the reactor
    /// refuses the socket (`epoll_ctl`: out of memory, `max_user_watches`),
    /// and ever after such a failure (the socket is closed then).
    pub fn stream(&self) -> io::Result<&TcpStream> {
        if let Some(stream) = self.registered.get() {
            return Ok(stream);
        }
        // Never poisoned: nothing below panics while it is held.
        let mut pending = self.pending.lock().map_err(|_| unregistered())?;
        if let Some(stream) = self.registered.get() {
            return Ok(stream); // registered by the other holder meanwhile
        }
        // `from_std` panics outside a runtime: ask first, keeping the
        // socket for a later call from inside one.
        tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let std = pending.take().ok_or_else(unregistered)?;
        // It also panics (before registering; the socket is closed as it
        // unwinds) in a runtime built without its I/O driver.
        let stream = catch_unwind(AssertUnwindSafe(|| TcpStream::from_std(std)))
            .map_err(|_| io::Error::other(crate::RuntimeError::IoDisabled))??;
        Ok(self.registered.get_or_init(|| stream))
    }

    /// `f` on the socket, registered or not (for calls that need no
    /// readiness: shutdown, options, a refusal's direct write).
    fn with_fd<R>(&self, f: impl FnOnce(socket2::SockRef<'_>) -> io::Result<R>) -> io::Result<R> {
        if let Some(stream) = self.registered.get() {
            return f(socket2::SockRef::from(stream));
        }
        let pending = self.pending.lock().map_err(|_| unregistered())?;
        match (&*pending, self.registered.get()) {
            (_, Some(stream)) => f(socket2::SockRef::from(stream)),
            (Some(std), None) => f(socket2::SockRef::from(std)),
            (None, None) => Err(unregistered()),
        }
    }
}

/// The error of a socket whose registration failed (it was closed then).
fn unregistered() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "socket closed: registering it with tokio's reactor failed",
    )
}

impl tether_adapter::runtime::Socket for TokioSocket {
    /// `TcpStream::try_write_vectored`, which never blocks, and where it
    /// says `WouldBlock`, a direct write (`send`) that asks the kernel.
    ///
    /// tokio does not even try the write while its cached readiness says
    /// "not writable" — and after one refusal it says so until the reactor
    /// reports the socket writable again, which epoll does only once a
    /// third of the send buffer is free. A peer that reads steadily but
    /// slowly (4 KiB every 10 ms against a 3 MB send buffer) frees that
    /// third only after seconds, so the driver's probe ("does the peer
    /// still take bytes?", docs/design.md §5.2) must reach the kernel, or
    /// a reader is evicted as a slow consumer (it was, on tokio only). A
    /// socket's readiness is also first learnt at the reactor's next turn
    /// after it was registered (unless tokio assumes it, as it does for
    /// accepted sockets since 1.54), so the first transmit to a new
    /// connection takes this path too. The cost is one more `EAGAIN` per
    /// refused write; the driver writes to a refused socket only to probe
    /// it or when its waiter wakes. A direct write leaves tokio's
    /// readiness as it is, which can only make a later `writable()` return
    /// early (the driver then writes again), never miss a wake-up; tokio's
    /// own refusal before it clears the cached readiness, so a waiter does
    /// not spin.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let stream = self.stream()?;
        match stream.try_write_vectored(bufs) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket2::SockRef::from(stream).send_vectored(bufs)
            }
            other => other,
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.with_fd(|fd| fd.shutdown(how))
    }

    fn set_linger_zero(&self) -> io::Result<()> {
        // The close that follows is the driver's drop of a non-blocking
        // socket: with a zero linger it sends RST and never blocks.
        self.with_fd(|fd| fd.set_linger(Some(Duration::ZERO)))
    }
}

/// Spawns on a tokio runtime.
#[derive(Debug, Clone)]
pub struct TokioSpawn(pub Runtime);

impl tether_adapter::runtime::Spawn for TokioSpawn {
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        drop(self.0.spawn(future));
    }
}

/// The listening socket.
#[derive(Debug)]
pub struct TokioListener {
    listener: TcpListener,
    hand_off: bool,
}

impl TokioListener {
    /// A listener whose connections stay on its own runtime's reactor.
    pub fn new(listener: TcpListener) -> Self {
        TokioListener {
            listener,
            hand_off: false,
        }
    }

    /// A listener whose connections go to other runtimes (the round-robin
    /// listener of [`crate::start_on_threads`]): each is taken out of this
    /// runtime's reactor and registered by its shard's runtime on first
    /// use.
    pub fn handing_off(listener: TcpListener) -> Self {
        TokioListener {
            listener,
            hand_off: true,
        }
    }
}

impl tether_adapter::runtime::AsyncListener for TokioListener {
    type Socket = TokioSocket;

    async fn accept(&self) -> io::Result<(TokioSocket, SocketAddr)> {
        // `accept` is cancel-safe: losing a race loses no connection.
        let (stream, peer) = self.listener.accept().await?;
        // Small chat lines and FINs should leave at once.
        let _ = stream.set_nodelay(true);
        let socket = if self.hand_off {
            // tokio registers what it accepts; `into_std` deregisters it
            // (and leaves it non-blocking).
            TokioSocket::unregistered(stream.into_std()?)
        } else {
            TokioSocket::new(stream)
        };
        Ok((socket, peer))
    }

    fn refuse(socket: &TokioSocket, line: &[u8]) {
        // Directly, whatever tokio knows of its readiness yet.
        let _ = socket.with_fd(|fd| fd.send(line));
    }
}

/// [`Sleep`] on `tokio::time`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

impl Sleep for TokioSleep {
    async fn sleep_until(&mut self, at: Instant) {
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tether_core::ChannelId;

    /// A current-thread runtime with I/O and time, for one test.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// An upper bound on a reader task's state: what an idle connection
    /// costs besides its socket.
    const MAX_READER_FUTURE: usize = 512;

    #[test]
    fn idle_tasks_hold_no_read_buffer() {
        let rt = runtime();
        let _entered = rt.enter();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let socket = Arc::new(TokioSocket::new(TcpStream::from_std(client).unwrap()));
        let (inputs, _queues) = tether_adapter::runtime::test_inputs::<TokioSocket, ()>();
        let (_cancel, cancelled) = async_channel::bounded(1);
        let id = ChannelId::from_parts(0, 0, 1).unwrap();
        let reader = tether_adapter::runtime::read_task(
            id,
            socket.clone(),
            inputs.clone(),
            cancelled.clone(),
            1024,
        );
        let size = std::mem::size_of_val(&reader);
        assert!(size <= MAX_READER_FUTURE, "{size}");
        let waiter = tether_adapter::runtime::wait_task(id, socket, inputs, cancelled);
        let size = std::mem::size_of_val(&waiter);
        assert!(size <= MAX_READER_FUTURE, "{size}");
    }

    /// A new socket's first write goes out even before tokio's reactor has
    /// seen it writable.
    #[test]
    fn the_first_write_does_not_wait_for_the_reactor() {
        use std::io::Read;
        use tether_adapter::runtime::Socket;
        let rt = runtime();
        let _entered = rt.enter();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut client, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        // Registered, but the reactor never turned (nothing runs on `rt`).
        let socket = TokioSocket::new(TcpStream::from_std(server).unwrap());
        assert_eq!(
            socket.stream().unwrap().try_write(b"x").unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "tokio refuses before its reactor turned"
        );
        let n = socket.write_vectored(&[IoSlice::new(b"hello\n")]).unwrap();
        assert_eq!(n, 6);
        let mut got = [0u8; 6];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello\n");
    }

    /// After one refusal tokio caches "not writable" until its reactor
    /// reports the socket writable again (epoll: once a third of the send
    /// buffer is free). A peer that has read since must still be seen to
    /// take bytes — the driver's probe of a slow but steady reader — so a
    /// write asks the kernel, without waiting for the reactor.
    #[test]
    fn a_write_after_a_refusal_asks_the_kernel() {
        use std::io::Read;
        use std::time::{Duration, Instant};
        use tether_adapter::runtime::{AsyncSocket, Socket};
        let rt = runtime();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut client, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        rt.block_on(async {
            let socket = TokioSocket::new(TcpStream::from_std(server).unwrap());
            socket.writable().await.unwrap(); // tokio now knows it writable
            let chunk = [b'x'; 16 * 1024];
            let mut sent = 0usize;
            // Fill until tokio's own write is refused (its cache says
            // "not writable" from then on: no await below lets it learn
            // otherwise).
            while socket.stream().unwrap().try_write(&chunk).is_ok_and(|n| {
                sent += n;
                true
            }) {}
            assert!(sent > 0);
            // The peer reads a little: far less than a third of the buffer.
            let mut got = vec![0u8; 64 * 1024];
            let read = client.read(&mut got).unwrap();
            assert!(read > 0);
            let deadline = Instant::now() + Duration::from_secs(10);
            let taken = loop {
                match socket.write_vectored(&[IoSlice::new(&chunk[..512])]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("write: {e}"),
                }
                assert!(
                    Instant::now() < deadline,
                    "the kernel took nothing for 10 s after the peer read {read} bytes"
                );
                std::thread::sleep(Duration::from_millis(1));
            };
            assert!(taken > 0);
            assert_eq!(
                socket.stream().unwrap().try_write(b"x").unwrap_err().kind(),
                io::ErrorKind::WouldBlock,
                "tokio's cache still said not writable: the write went around it"
            );
        });
    }

    /// In a runtime without its I/O driver, registering is a typed error
    /// (tokio panics; the socket is closed), and so is every later use.
    #[test]
    fn registering_without_an_io_driver_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        server.set_nonblocking(true).unwrap();
        let socket = TokioSocket::unregistered(server);
        let no_io = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _entered = no_io.enter();
        let error = socket.stream().unwrap_err();
        assert!(error.to_string().contains("I/O driver"), "{error}");
        assert_eq!(
            socket.stream().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        use tether_adapter::runtime::Socket;
        assert!(socket.shutdown(Shutdown::Both).is_err());
    }

    /// A socket handed to another runtime unregistered: outside a runtime
    /// its use is an error that keeps the socket; options and shutdown need
    /// no registration; the first use inside a runtime registers it there,
    /// and it reads and writes as any other.
    #[test]
    fn an_unregistered_socket_registers_on_first_use() {
        use std::io::{Read, Write};
        use tether_adapter::runtime::{AsyncSocket, Socket};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut client, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let socket = TokioSocket::unregistered(server);
        let error = socket.stream().unwrap_err();
        assert!(error.to_string().contains("runtime"), "{error}");
        assert!(
            socket.write_vectored(&[IoSlice::new(b"x")]).is_err(),
            "no write outside a runtime"
        );
        socket.set_linger_zero().unwrap();
        let rt = runtime();
        rt.block_on(async {
            let n = socket.write_vectored(&[IoSlice::new(b"hello\n")]).unwrap();
            assert_eq!(n, 6);
            client.write_all(b"ping\n").unwrap();
            socket.readable().await.unwrap();
            let mut buf = [0u8; 16];
            let n = socket.try_read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"ping\n");
        });
        let mut got = [0u8; 6];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello\n");
        socket.shutdown(Shutdown::Both).unwrap();
        assert_eq!(client.read(&mut got).unwrap(), 0, "EOF after shutdown");
    }
}
