//! The async-io glue: how a socket waits for readiness, how the listener
//! accepts, how to sleep and spawn. Written against `async-io` (reactor,
//! `Async` sockets, timers), which async-std and smol both run on; only
//! [`Runtime`] names a runtime. The tasks themselves (listener, a reader per
//! connection, a waiter while a send buffer is full) are `tether-adapter`'s,
//! the same for every async runtime; the driver writes every socket itself.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use tether_adapter::runtime::Sleep;

use crate::runtime::Runtime;

/// A connected socket registered with the reactor.
#[derive(Debug)]
pub struct AsyncSocket(Async<TcpStream>);

impl tether_adapter::runtime::AsyncSocket for AsyncSocket {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        self.0.readable()
    }
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        self.0.writable()
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // The std socket inside `Async` is non-blocking.
        self.0.get_ref().read(buf)
    }
}

impl tether_adapter::runtime::Socket for AsyncSocket {
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // The std socket inside `Async` is non-blocking.
        self.0.get_ref().write_vectored(bufs)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.get_ref().shutdown(how)
    }
    fn set_linger_zero(&self) -> io::Result<()> {
        socket2::SockRef::from(self.0.get_ref()).set_linger(Some(Duration::ZERO))
    }
}

impl tether_adapter::runtime::Spawn for crate::AsyncStd {
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        Runtime::spawn(self, future);
    }
}

impl tether_adapter::runtime::Spawn for crate::Smol {
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        Runtime::spawn(self, future);
    }
}

/// The listening socket, registered with the reactor.
#[derive(Debug)]
pub struct AsyncListener(pub(crate) Async<TcpListener>);

impl tether_adapter::runtime::AsyncListener for AsyncListener {
    type Socket = AsyncSocket;

    async fn accept(&self) -> io::Result<(AsyncSocket, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        // Small chat lines and FINs should leave at once.
        let _ = stream.get_ref().set_nodelay(true);
        Ok((AsyncSocket(stream), peer))
    }

    fn refuse(socket: &AsyncSocket, line: &[u8]) {
        let _ = socket.0.get_ref().write(line);
    }
}

/// [`Sleep`] on async-io's timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncIoSleep;

impl Sleep for AsyncIoSleep {
    async fn sleep_until(&mut self, at: Instant) {
        Timer::at(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::READ_CHUNK;
    use std::sync::Arc;
    use tether_core::ChannelId;

    /// An upper bound on a reader task's state: what an idle connection
    /// costs besides its socket.
    const MAX_READER_FUTURE: usize = 512;

    #[test]
    fn idle_tasks_hold_no_read_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let socket = Arc::new(AsyncSocket(Async::new(client).unwrap()));
        let (inputs, _queues) = tether_adapter::runtime::test_inputs::<AsyncSocket, ()>();
        let (_cancel, cancelled) = async_channel::bounded(1);
        let id = ChannelId::from_parts(0, 0, 1).unwrap();
        let reader = tether_adapter::runtime::read_task(
            id,
            socket.clone(),
            inputs.clone(),
            cancelled.clone(),
            READ_CHUNK,
        );
        let size = std::mem::size_of_val(&reader);
        assert!(size <= MAX_READER_FUTURE, "{size}");
        let waiter = tether_adapter::runtime::wait_task(id, socket, inputs, cancelled);
        let size = std::mem::size_of_val(&waiter);
        assert!(size <= MAX_READER_FUTURE, "{size}");
    }
}
