//! One connection's transmits not yet taken by the kernel, written with one
//! vectored, non-blocking write per drain.
//!
//! The hub counts these bytes as queued until the driver reports them
//! written, which it does right after each write: so the hub's queue is
//! exactly what the kernel refused, and a channel is slow only when its
//! peer does not read (docs/design.md §5.2), never because the server lagged.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::Bytes;

use crate::glue::Socket;

/// Most buffers handed to one `writev` (Linux's IOV_MAX is 1024; 64 covers
/// a drain's fan-out batch without a large stack array).
pub(crate) const MAX_IOV: usize = 64;

/// The result of one flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued was written.
    Drained,
    /// The kernel took part (or nothing): wait for writability.
    Full,
    /// The socket failed.
    Failed(io::ErrorKind),
}

/// One buffer to write and the hub bytes it stands for: the same for a
/// TCP line; a WebSocket frame's header and framing are not the hub's, and
/// a control frame the transport made itself (ping, pong, close, the
/// upgrade response) stands for none.
#[derive(Debug)]
struct Entry {
    wire: Bytes,
    hub: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Outbound {
    queue: VecDeque<Entry>,
    /// Bytes of the front buffer already written.
    head_written: usize,
    /// Hub bytes of the front buffer already reported.
    head_reported: usize,
}

/// What one flush did, for the hub and the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlushReport {
    pub outcome: Flushed,
    /// Hub bytes written (what `handle_written` is told).
    pub bytes: usize,
    /// Bytes the kernel took, framing included.
    pub wire: usize,
    pub messages: u64,
    pub calls: u64,
}

impl Outbound {
    pub fn push(&mut self, data: Bytes) {
        let hub = data.len();
        self.push_framed(data, hub);
    }

    /// Queues `wire`, which stands for `hub` bytes of the hub's queue.
    pub fn push_framed(&mut self, wire: Bytes, hub: usize) {
        if !wire.is_empty() {
            self.queue.push_back(Entry { wire, hub });
        }
    }

    /// Queues `wire` (standing for no hub bytes) before everything not yet
    /// started: the upgrade response goes ahead of the frames held for it.
    pub fn push_front_unstarted(&mut self, wire: Bytes) {
        if self.head_written == 0 {
            self.queue.push_front(Entry { wire, hub: 0 });
        } else {
            self.queue.insert(1, Entry { wire, hub: 0 });
        }
    }

    /// Drops everything queued and returns the hub bytes not yet reported
    /// (for the driver to report as written: nobody will read them).
    pub fn discard(&mut self) -> usize {
        let hub: usize = self.queue.iter().map(|e| e.hub).sum();
        let left = hub - self.head_reported.min(hub);
        self.clear();
        left
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops everything (abort, or the socket failed): the hub already
    /// counted the bytes dropped (invariant 5).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.head_written = 0;
        self.head_reported = 0;
    }

    /// Writes until drained or the kernel refuses more: one `writev` of up
    /// to [`MAX_IOV`] buffers, repeated only while every byte offered was
    /// taken and more is queued.
    pub fn flush(&mut self, socket: &impl Socket) -> FlushReport {
        let mut report = FlushReport {
            outcome: Flushed::Drained,
            bytes: 0,
            wire: 0,
            messages: 0,
            calls: 0,
        };
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            let mut offered = 0;
            for (i, entry) in self.queue.iter().take(MAX_IOV).enumerate() {
                let buf = &entry.wire;
                let part = if i == 0 {
                    &buf[self.head_written..]
                } else {
                    &buf[..]
                };
                slices[i] = IoSlice::new(part);
                offered += part.len();
                count += 1;
            }
            report.calls += 1;
            let written = match socket.write_vectored(&slices[..count]) {
                Ok(0) => {
                    report.outcome = Flushed::Failed(io::ErrorKind::WriteZero);
                    return report;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    report.outcome = Flushed::Full;
                    return report;
                }
                Err(e) => {
                    report.outcome = Flushed::Failed(e.kind());
                    return report;
                }
            };
            report.wire += written;
            let (hub, done) = self.consume(written);
            report.bytes += hub;
            report.messages += done;
            if written < offered {
                report.outcome = Flushed::Full;
                return report;
            }
        }
        report
    }

    /// Advances past `n` written bytes; the hub bytes they complete and
    /// the number of buffers completed. A buffer part written reports its
    /// share of its hub bytes, never all of them before its last byte (for
    /// a TCP line, exactly the bytes written).
    fn consume(&mut self, mut n: usize) -> (usize, u64) {
        let (mut hub, mut done) = (0, 0);
        while n > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.wire.len() - self.head_written;
            if n >= left {
                n -= left;
                hub += front.hub - self.head_reported.min(front.hub);
                self.queue.pop_front();
                self.head_written = 0;
                self.head_reported = 0;
                done += 1;
            } else {
                self.head_written += n;
                let share = (self.head_written as u128 * front.hub as u128
                    / front.wire.len() as u128) as usize;
                let share = share.min(front.hub.saturating_sub(1));
                hub += share.saturating_sub(self.head_reported);
                self.head_reported = self.head_reported.max(share);
                n = 0;
            }
        }
        (hub, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Shutdown;
    use std::sync::Mutex;

    /// A socket that takes at most `room` bytes per call, recording calls.
    struct Fake {
        room: Mutex<Vec<usize>>,
        taken: Mutex<Vec<u8>>,
    }

    impl Socket for Fake {
        fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut room = self.room.lock().unwrap();
            let Some(mut left) = room.pop() else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(left);
                self.taken.lock().unwrap().extend_from_slice(&b[..take]);
                left -= take;
                n += take;
            }
            Ok(n)
        }
        fn shutdown(&self, _: Shutdown) -> io::Result<()> {
            Ok(())
        }
        fn set_linger_zero(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_call_per_drain_and_partial_writes_resume_in_order() {
        let fake = Fake {
            room: Mutex::new(vec![usize::MAX, 5]),
            taken: Mutex::default(),
        };
        let mut out = Outbound::default();
        for word in ["abc", "defg", "", "hi"] {
            out.push(Bytes::from(word));
        }
        let first = out.flush(&fake);
        assert_eq!(first.outcome, Flushed::Full);
        assert_eq!((first.bytes, first.messages, first.calls), (5, 1, 1));
        let second = out.flush(&fake);
        assert_eq!(second.outcome, Flushed::Drained);
        assert_eq!((second.bytes, second.messages, second.calls), (4, 2, 1));
        assert_eq!(&fake.taken.lock().unwrap()[..], b"abcdefghi");
        assert!(out.is_empty());
    }

    #[test]
    fn framed_buffers_report_their_hub_bytes_only_when_whole() {
        // A 2-byte header over 4 hub bytes, then a control frame (none).
        let fake = Fake {
            room: Mutex::new(vec![usize::MAX, 3, 2]),
            taken: Mutex::default(),
        };
        let mut out = Outbound::default();
        out.push_framed(Bytes::from_static(b"\x81\x03abc"), 4);
        out.push_framed(Bytes::from_static(b"\x89\x00"), 0);
        out.push_front_unstarted(Bytes::from_static(b"HI"));
        let reports: Vec<_> = (0..3).map(|_| out.flush(&fake)).collect();
        let hub: Vec<_> = reports.iter().map(|r| r.bytes).collect();
        let wire: Vec<_> = reports.iter().map(|r| r.wire).collect();
        assert_eq!(wire, [2, 3, 4]);
        assert_eq!(hub.iter().sum::<usize>(), 4);
        assert_eq!(hub[0], 0, "the upgrade response stands for no hub bytes");
        assert!(hub[1] < 4, "not all before the frame's last byte");
        assert!(out.is_empty());
        let mut out = Outbound::default();
        out.push_framed(Bytes::from_static(b"\x81\x03abc"), 4);
        assert_eq!(out.discard(), 4);
    }
}
