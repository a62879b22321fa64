//! The chat line protocol: framing bytes into lines, and the room that
//! turns hub events into greetings and broadcasts.
//!
//! On connect a client gets `hello <id>\n`; every complete line it sends
//! (`\n`-terminated, a trailing `\r` stripped) is broadcast to every client
//! as `<id>: <line>\n`. A client's first complete line also logs it in
//! (see [`ChatOutput::authenticate`]), which is what a `--login-timeout`
//! waits for.

use std::collections::HashMap;

use bytes::Bytes;
use tether_core::{ChannelId, Event};

/// Longest line the chat server accepts, in bytes (without the newline).
pub const MAX_LINE: usize = 4096;

/// The greeting a client gets on connect: `hello <id>\n`.
pub fn hello_line(id: ChannelId) -> Bytes {
    Bytes::from(format!("hello {id}\n"))
}

/// The server log's line for a lifecycle event worth logging (connects,
/// disconnects with their reason, overdue holders); `None` for the rest.
/// Shared by every adapter's `serve` so their logs read the same.
pub fn log_line(event: &Event) -> Option<String> {
    match event {
        Event::Opened { id, peer } => Some(format!("tether: {id} connected from {peer}")),
        Event::Disconnected { id, reason } => Some(format!("tether: {id} disconnected: {reason}")),
        Event::HolderOverdue {
            id,
            holders,
            waited,
        } => Some(format!(
            "tether: {id} still has {holders} holder(s) after {waited:?}"
        )),
        _ => None,
    }
}

/// One chat line as broadcast: `<id>: <line>\n`.
pub fn chat_line(id: ChannelId, line: &[u8]) -> Bytes {
    let prefix = format!("{id}: ");
    let mut out = Vec::with_capacity(prefix.len() + line.len() + 1);
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(line);
    out.push(b'\n');
    Bytes::from(out)
}

/// A line that could not be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line grew past the buffer's limit; its bytes up to the next
    /// newline are dropped.
    #[error("line longer than {max} bytes dropped")]
    TooLong {
        /// The limit.
        max: usize,
    },
}

/// Splits a byte stream into `\n`-terminated lines of bounded length.
///
/// ```
/// use tether_chat::LineBuffer;
/// let mut lines = LineBuffer::new(16);
/// lines.push(b"one\r\ntw");
/// assert_eq!(lines.next_line(), Some(Ok(b"one".to_vec())));
/// assert_eq!(lines.next_line(), None);
/// lines.push(b"o\n");
/// assert_eq!(lines.next_line(), Some(Ok(b"two".to_vec())));
/// ```
#[derive(Debug, Clone)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Where to resume the newline search: bytes before it have none.
    scanned: usize,
    max: usize,
    /// Dropping the rest of an overlong line, up to its newline.
    discarding: bool,
}

impl Default for LineBuffer {
    fn default() -> Self {
        LineBuffer::new(MAX_LINE)
    }
}

impl LineBuffer {
    /// A buffer that accepts lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            scanned: 0,
            max: max_line,
            discarding: false,
        }
    }

    /// Appends bytes as they were read.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered that are not yet a complete line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete line without its `\n` (and `\r`), an error for an
    /// overlong one (reported once, then skipped), or `None` until more
    /// bytes arrive.
    #[must_use]
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineError>> {
        loop {
            let found = self.buf[self.scanned..].iter().position(|&b| b == b'\n');
            match found {
                Some(offset) => {
                    let end = self.scanned + offset;
                    let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                    self.scanned = 0;
                    line.pop(); // the '\n'
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() > self.max {
                        return Some(Err(LineError::TooLong { max: self.max }));
                    }
                    return Some(Ok(line));
                }
                None if self.buf.len() > self.max => {
                    // Bounded memory: drop the overlong prefix now.
                    self.buf.clear();
                    self.scanned = 0;
                    if self.discarding {
                        return None;
                    }
                    self.discarding = true;
                    return Some(Err(LineError::TooLong { max: self.max }));
                }
                None => {
                    self.scanned = self.buf.len();
                    return None;
                }
            }
        }
    }
}

/// Where a [`ChatRoom`] puts its output: the adapter forwards these to its
/// server handle (`send`, `broadcast`, `authenticate`), ignoring refusals
/// for channels that are gone — the hub reports those as events anyway.
pub trait ChatOutput {
    /// Send `data` to one channel.
    fn send(&mut self, id: ChannelId, data: Bytes);
    /// Send `data` to every usable channel.
    fn broadcast(&mut self, data: Bytes);
    /// The channel sent its first line: it is logged in.
    fn authenticate(&mut self, id: ChannelId);
}

/// The chat application, sans-IO: feed it every hub event, it says what to
/// send. Keeps one [`LineBuffer`] per usable channel.
#[derive(Debug, Default)]
pub struct ChatRoom {
    members: HashMap<ChannelId, Member>,
    lines_relayed: u64,
    lines_dropped: u64,
}

#[derive(Debug, Default)]
struct Member {
    lines: LineBuffer,
    logged_in: bool,
}

impl ChatRoom {
    /// Reacts to one hub event.
    pub fn handle_event(&mut self, event: &Event, out: &mut impl ChatOutput) {
        match event {
            Event::Opened { id, .. } => {
                self.members.insert(*id, Member::default());
                out.send(*id, hello_line(*id));
            }
            Event::Received { id, data } => self.received(*id, data, out),
            Event::ReadClosed { id } | Event::Disconnected { id, .. } => {
                self.members.remove(id);
            }
            _ => {}
        }
    }

    fn received(&mut self, id: ChannelId, data: &[u8], out: &mut impl ChatOutput) {
        let Some(member) = self.members.get_mut(&id) else {
            return; // not a member (already left): nothing to relay
        };
        member.lines.push(data);
        while let Some(line) = member.lines.next_line() {
            match line {
                Ok(line) => {
                    if !member.logged_in {
                        member.logged_in = true;
                        out.authenticate(id);
                    }
                    self.lines_relayed += 1;
                    out.broadcast(chat_line(id, &line));
                }
                Err(LineError::TooLong { max }) => {
                    self.lines_dropped += 1;
                    out.send(
                        id,
                        Bytes::from(format!("* line longer than {max} bytes dropped\n")),
                    );
                }
            }
        }
    }

    /// Members (channels open to the chat).
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Lines broadcast so far.
    pub fn lines_relayed(&self) -> u64 {
        self.lines_relayed
    }

    /// Overlong lines dropped so far.
    pub fn lines_dropped(&self) -> u64 {
        self.lines_dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::DisconnectReason;

    #[derive(Default)]
    struct Out(Vec<(Option<ChannelId>, Bytes)>, Vec<ChannelId>);
    impl ChatOutput for Out {
        fn send(&mut self, id: ChannelId, data: Bytes) {
            self.0.push((Some(id), data));
        }
        fn broadcast(&mut self, data: Bytes) {
            self.0.push((None, data));
        }
        fn authenticate(&mut self, id: ChannelId) {
            self.1.push(id);
        }
    }

    fn id(s: &str) -> ChannelId {
        s.parse().unwrap()
    }

    #[test]
    fn lines_split_across_reads_and_crlf() {
        let mut b = LineBuffer::new(8);
        b.push(b"ab");
        assert_eq!(b.next_line(), None);
        b.push(b"c\r\nd\n\n");
        assert_eq!(b.next_line(), Some(Ok(b"abc".to_vec())));
        assert_eq!(b.next_line(), Some(Ok(b"d".to_vec())));
        assert_eq!(b.next_line(), Some(Ok(Vec::new())));
        assert_eq!(b.next_line(), None);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn overlong_line_is_reported_once_and_skipped() {
        let mut b = LineBuffer::new(4);
        b.push(b"0123456789");
        assert_eq!(b.next_line(), Some(Err(LineError::TooLong { max: 4 })));
        b.push(b"more garbage");
        assert_eq!(b.next_line(), None);
        b.push(b"tail\nok\n");
        assert_eq!(b.next_line(), Some(Ok(b"ok".to_vec())));
        b.push(b"toolong\n");
        assert_eq!(b.next_line(), Some(Err(LineError::TooLong { max: 4 })));
        assert_eq!(b.next_line(), None);
    }

    #[test]
    fn room_greets_relays_logs_in_once_and_forgets() {
        let mut room = ChatRoom::default();
        let mut out = Out::default();
        let a = id("#1.1");
        let peer = "127.0.0.1:1".parse().unwrap();
        room.handle_event(&Event::Opened { id: a, peer }, &mut out);
        room.handle_event(
            &Event::Received {
                id: a,
                data: Bytes::from_static(b"x\ny\n"),
            },
            &mut out,
        );
        assert_eq!(out.1, [a]);
        assert_eq!(out.0[0], (Some(a), Bytes::from_static(b"hello #1.1\n")));
        assert_eq!(out.0[1], (None, Bytes::from_static(b"#1.1: x\n")));
        assert_eq!(out.0[2], (None, Bytes::from_static(b"#1.1: y\n")));
        assert_eq!(room.members(), 1);
        let reason = DisconnectReason::PeerClosed;
        room.handle_event(&Event::Disconnected { id: a, reason }, &mut out);
        assert_eq!(room.members(), 0);
        room.handle_event(
            &Event::Received {
                id: a,
                data: Bytes::from_static(b"z\n"),
            },
            &mut out,
        );
        assert_eq!(out.0.len(), 3);
        assert_eq!(room.lines_relayed(), 2);
    }
}
