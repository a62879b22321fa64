//! Waking the server's own threads the moment it stops: a pipe whose write
//! end the room thread drops once the server has stopped, so its read end
//! is readable (EOF) from then on. poll(2) waits on it and, for the
//! console, on the listener too.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::pipe::{PipeFlags, pipe_with};

/// Dropped when the server has stopped.
#[derive(Debug)]
pub(super) struct StopWriter(#[allow(dead_code)] OwnedFd);

/// Waits for the [`StopWriter`] to be dropped.
#[derive(Debug, Clone)]
pub(super) struct StopReader(Arc<OwnedFd>);

/// Why [`StopReader::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    /// The server stopped.
    Stopped,
    /// The other descriptor is ready.
    Ready,
    /// Neither, within the timeout (or a signal interrupted the wait).
    Timeout,
}

pub(super) fn stop_pipe() -> io::Result<(StopReader, StopWriter)> {
    let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
    Ok((StopReader(Arc::new(read)), StopWriter(write)))
}

impl StopReader {
    /// Waits at most `timeout` for the stop, or for `other` to be readable.
    pub(super) fn wait(&self, other: Option<&dyn AsFd>, timeout: Duration) -> Wake {
        let timeout = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = Vec::with_capacity(2);
        fds.push(PollFd::new(&*self.0, PollFlags::IN));
        if let Some(fd) = other {
            fds.push(PollFd::from_borrowed_fd(fd.as_fd(), PollFlags::IN));
        }
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(_) => Wake::Timeout,
            Ok(_) if !fds[0].revents().is_empty() => Wake::Stopped,
            Ok(_) => Wake::Ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_writer_wakes_every_waiter() {
        let (reader, writer) = stop_pipe().unwrap();
        assert_eq!(reader.wait(None, Duration::from_millis(10)), Wake::Timeout);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(
            reader.wait(Some(&listener), Duration::from_millis(10)),
            Wake::Timeout
        );
        let _client = std::net::TcpStream::connect(addr).unwrap();
        assert_eq!(
            reader.wait(Some(&listener), Duration::from_secs(5)),
            Wake::Ready
        );
        let other = reader.clone();
        let waiter = std::thread::spawn(move || other.wait(None, Duration::from_secs(30)));
        drop(writer);
        assert_eq!(waiter.join().unwrap(), Wake::Stopped);
        assert_eq!(reader.wait(Some(&listener), Duration::ZERO), Wake::Stopped);
    }
}
