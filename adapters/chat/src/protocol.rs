//! The chat line protocol: framing bytes into lines, and the room that
//! turns hub events into greetings and broadcasts.
//!
//! On connect a client gets `hello <id>\n` (chat lines broadcast while it
//! was being accepted may reach it first: the hub's broadcast goes to every
//! usable channel, greeted or not); every complete line it sends
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
    greeting(None, id)
}

/// `hello <sender>\n`, the sender as [`push_sender`] writes it.
fn greeting(node: Option<&str>, id: ChannelId) -> Bytes {
    let mut out = Vec::with_capacity(32 + node.map_or(0, str::len));
    out.extend_from_slice(b"hello ");
    push_sender(&mut out, node, id);
    out.push(b'\n');
    Bytes::from(out)
}

/// Appends a channel of this node as the chat names it: `<id>`, or in a
/// cluster `NODE/<id>`.
fn push_sender(out: &mut Vec<u8>, node: Option<&str>, id: ChannelId) {
    if let Some(node) = node {
        out.extend_from_slice(node.as_bytes());
        out.push(b'/');
    }
    push_id(out, id);
}

/// Appends `id` exactly as its `Display` writes it (`#<slot>.<gen>`, or
/// `#<shard>:<slot>.<gen>` off shard 0), with `itoa` instead of the
/// formatting machinery: every greeting and relayed line names an id, and
/// `write!` cost ~560 instructions per connection under churn (callgrind:
/// `fmt::write` and `pad_integral`).
fn push_id(out: &mut Vec<u8>, id: ChannelId) {
    let mut number = itoa::Buffer::new();
    out.push(b'#');
    if id.shard() != 0 {
        out.extend_from_slice(number.format(id.shard()).as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(number.format(id.slot()).as_bytes());
    out.push(b'.');
    out.extend_from_slice(number.format(id.generation()).as_bytes());
}

/// The server log's line for a lifecycle event worth logging (connects,
/// disconnects with their reason, overdue holders); `None` for the rest.
/// One function, so every server's log reads the same.
pub fn log_line(event: &Event) -> Option<String> {
    match event {
        Event::Opened { id, peer } => Some(format!("{id} connected from {peer}")),
        Event::Disconnected { id, reason } => Some(format!("{id} disconnected: {reason}")),
        Event::HolderOverdue {
            id,
            holders,
            waited,
        } => Some(format!(
            "{id} still has {holders} holder(s) after {waited:?}"
        )),
        _ => None,
    }
}

/// What a control character in a relayed line becomes: U+FFFD, visible
/// and not a control character anywhere.
pub const REPLACEMENT: &str = "\u{FFFD}";

/// One chat line as broadcast: `<id>: <line>\n`.
///
/// Relay hygiene: every control character of `line` — the C0 range below
/// 0x20 except tab, DEL (0x7f), and the C1 range U+0080..=U+009F when
/// written as UTF-8 — becomes [`REPLACEMENT`]. So no line can end early
/// and fake another client's id (`\r`, `\n`, backspaces), nor drive a
/// reader's terminal (escape sequences). Other bytes, valid UTF-8 or not,
/// are relayed as they came.
///
/// ```
/// use tether_chat::chat_line;
/// let id = "#1.1".parse().unwrap();
/// assert_eq!(&chat_line(id, b"hi\tthere")[..], b"#1.1: hi\tthere\n");
/// assert_eq!(&chat_line(id, b"x\r#2.1: fake")[..], "#1.1: x\u{FFFD}#2.1: fake\n".as_bytes());
/// ```
pub fn chat_line(id: ChannelId, line: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(line.len() + 16);
    push_relayed(&mut out, None, id, line);
    Bytes::from(out)
}

/// Appends one line relayed from a channel of this node, `<id>: <line>\n`
/// or in a cluster `NODE/<id>: <line>\n`, as [`push_chat_line`] would.
fn push_relayed(out: &mut Vec<u8>, node: Option<&str>, id: ChannelId, line: &[u8]) {
    push_sender(out, node, id);
    out.extend_from_slice(b": ");
    push_line_body(out, line);
}

/// Appends one relayed line, `<id>: <line>\n`, to `out`, with the relay
/// hygiene of [`chat_line`]. `id` is any displayable id: a local
/// [`ChannelId`], or in a cluster a node-qualified one (`n1/#0:3.1`).
pub fn push_chat_line(out: &mut Vec<u8>, id: &dyn std::fmt::Display, line: &[u8]) {
    use std::io::Write as _;
    let _ = write!(out, "{id}: ");
    push_line_body(out, line);
}

/// Appends `line` with the relay hygiene of [`chat_line`], then `\n`.
fn push_line_body(out: &mut Vec<u8>, line: &[u8]) {
    out.reserve(line.len() + 1);
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        let c1 = b == 0xc2 && line.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n));
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            out.extend_from_slice(REPLACEMENT.as_bytes());
        } else if c1 {
            out.extend_from_slice(REPLACEMENT.as_bytes());
            i += 1;
        } else {
            out.push(b);
        }
        i += 1;
    }
    out.push(b'\n');
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
    /// One line the room relayed (raw, without id or newline), after its
    /// broadcast was made: what a cluster node hands to the other nodes.
    /// Nothing by default.
    fn relayed(&mut self, id: ChannelId, line: &[u8]) {
        let _ = (id, line);
    }
}

/// Most bytes of relayed lines gathered into one broadcast: the complete
/// lines of one read go out as one message (one hub send and one queue
/// entry per member instead of one per line), in pieces of at most this.
pub const MAX_BATCH: usize = 8 << 10;

/// Relayed lines go to every member, or back to their sender in echo mode.
fn relay(echo: bool, from: ChannelId, batch: Vec<u8>, out: &mut impl ChatOutput) {
    if echo {
        out.send(from, Bytes::from(batch));
    } else {
        out.broadcast(Bytes::from(batch));
    }
}

/// The greeting on a cluster node: `hello NAME/<id>\n`.
pub fn hello_line_on(node: &str, id: ChannelId) -> Bytes {
    greeting(Some(node), id)
}

/// The chat application, sans-IO: feed it every hub event, it says what to
/// send. Keeps one [`LineBuffer`] per usable channel.
#[derive(Debug)]
pub struct ChatRoom {
    members: HashMap<ChannelId, Member>,
    lines_relayed: u64,
    lines_dropped: u64,
    /// Whether the room greets new members itself (`false` when the
    /// adapter queues the greeting at accept, see
    /// `tether_adapter::Options::greeting`).
    greets: bool,
    /// Whether lines go back to their sender only (see [`ChatRoom::echo`]).
    echo: bool,
    /// In a cluster, this node's name: ids read `NAME/<id>`.
    node: Option<std::sync::Arc<str>>,
}

impl Default for ChatRoom {
    fn default() -> Self {
        ChatRoom {
            members: HashMap::new(),
            lines_relayed: 0,
            lines_dropped: 0,
            greets: true,
            echo: false,
            node: None,
        }
    }
}

#[derive(Debug, Default)]
struct Member {
    lines: LineBuffer,
    logged_in: bool,
}

impl ChatRoom {
    /// A room whose members were greeted ([`hello_line`]) by the adapter
    /// already, before any broadcast could reach them.
    pub fn greeted_by_adapter() -> Self {
        ChatRoom {
            greets: false,
            ..ChatRoom::default()
        }
    }

    /// The same room, but each line goes back to its sender only (as
    /// `<id>: <line>`), not to every member: the cycle of the bare echo
    /// servers the benchmarks compare against (`tether serve --echo`).
    pub fn echo(self) -> Self {
        ChatRoom { echo: true, ..self }
    }

    /// The same room on a cluster node named `node`: relayed lines read
    /// `node/<id>: <line>` (so every node shows the same id for a client).
    pub fn on_node(self, node: &str) -> Self {
        ChatRoom {
            node: Some(node.into()),
            ..self
        }
    }

    /// Reacts to one hub event.
    pub fn handle_event(&mut self, event: &Event, out: &mut impl ChatOutput) {
        match event {
            Event::Opened { id, .. } => {
                self.members.insert(*id, Member::default());
                if self.greets {
                    let hello = match &self.node {
                        Some(node) => hello_line_on(node, *id),
                        None => hello_line(*id),
                    };
                    out.send(*id, hello);
                }
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
        let mut batch = Vec::new();
        while let Some(line) = member.lines.next_line() {
            match line {
                Ok(line) => {
                    if !member.logged_in {
                        member.logged_in = true;
                        out.authenticate(id);
                    }
                    self.lines_relayed += 1;
                    push_relayed(&mut batch, self.node.as_deref(), id, &line);
                    if batch.len() >= MAX_BATCH {
                        relay(self.echo, id, std::mem::take(&mut batch), out);
                    }
                    if !self.echo {
                        out.relayed(id, &line);
                    }
                }
                Err(LineError::TooLong { max }) => {
                    // In order: what came before it goes out first.
                    if !batch.is_empty() {
                        relay(self.echo, id, std::mem::take(&mut batch), out);
                    }
                    self.lines_dropped += 1;
                    out.send(
                        id,
                        Bytes::from(format!("* line longer than {max} bytes dropped\n")),
                    );
                }
            }
        }
        if !batch.is_empty() {
            relay(self.echo, id, batch, out);
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

    #[test]
    fn ids_are_written_as_display_writes_them() {
        let edges = [0, 1, 9, 10, 255, 65_535, u32::MAX / 2, u32::MAX];
        for shard in [0, 1, 9, 10, 255] {
            for slot in edges {
                for generation in edges {
                    let Some(id) = ChannelId::from_parts(shard, slot, generation) else {
                        continue;
                    };
                    let mut out = Vec::new();
                    push_id(&mut out, id);
                    assert_eq!(out, id.to_string().into_bytes(), "{id:?}");
                    assert_eq!(hello_line(id), format!("hello {id}\n"));
                    assert_eq!(hello_line_on("n1", id), format!("hello n1/{id}\n"));
                    let mut relayed = Vec::new();
                    push_relayed(&mut relayed, Some("n1"), id, b"hi\r");
                    assert_eq!(relayed, format!("n1/{id}: hi\u{FFFD}\n").into_bytes());
                }
            }
        }
    }

    #[derive(Default)]
    struct Out(
        Vec<(Option<ChannelId>, Bytes)>,
        Vec<ChannelId>,
        Vec<(ChannelId, Vec<u8>)>,
    );
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
        fn relayed(&mut self, id: ChannelId, line: &[u8]) {
            self.2.push((id, line.to_vec()));
        }
    }

    fn id(s: &str) -> ChannelId {
        s.parse().unwrap()
    }

    #[test]
    fn a_cluster_node_qualifies_ids_and_hands_lines_on() {
        let mut room = ChatRoom::default().on_node("n1");
        let mut out = Out::default();
        let a = id("#1:3.1");
        let peer = "127.0.0.1:1".parse().unwrap();
        room.handle_event(&Event::Opened { id: a, peer }, &mut out);
        let data = Bytes::from_static(b"hi\r\nx\x1by\n");
        room.handle_event(&Event::Received { id: a, data }, &mut out);
        let sent: Vec<Bytes> = out.0.iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(
            sent,
            [
                &b"hello n1/#1:3.1\n"[..],
                "n1/#1:3.1: hi\nn1/#1:3.1: x\u{FFFD}y\n".as_bytes()
            ]
        );
        // The raw lines go to the cluster, one call each, in order.
        assert_eq!(out.2, [(a, b"hi".to_vec()), (a, b"x\x1by".to_vec())]);
    }

    #[test]
    fn chat_lines_carry_no_control_characters() {
        let a = id("#1.1");
        let relayed = |line: &[u8]| chat_line(a, line).to_vec();
        // Every single byte: only tab and printable bytes pass unchanged.
        for b in 0..=u8::MAX {
            let out = relayed(&[b]);
            let body = &out[6..out.len() - 1];
            if b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80 {
                assert_eq!(body, [b], "byte {b:#04x}");
            } else {
                assert_eq!(body, REPLACEMENT.as_bytes(), "byte {b:#04x}");
            }
        }
        let hostile: [&[u8]; 7] = [
            b"innocent\r#2.1: I am someone else",
            b"one\ntwo",
            b"\x1b[2J\x1b[31mred screen",
            b"bell\x07back\x08\x08space\x7f",
            "c1 \u{9b}31m csi".as_bytes(),
            b"nul\0byte",
            b"\xc2",
        ];
        for line in hostile {
            let out = relayed(line);
            assert!(out.starts_with(b"#1.1: "), "{out:?}");
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "{out:?}");
            assert_eq!(out.last(), Some(&b'\n'));
            let body = &out[..out.len() - 1];
            assert!(
                !body.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f),
                "{out:?}"
            );
            let text = String::from_utf8_lossy(body);
            assert!(
                !text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)),
                "{text}"
            );
        }
        assert_eq!(
            relayed(b"innocent\r#2.1: I am someone else"),
            "#1.1: innocent\u{FFFD}#2.1: I am someone else\n".as_bytes()
        );
        // UTF-8 text and tabs pass through untouched.
        assert_eq!(
            relayed("héllo\twörld ✓".as_bytes()),
            "#1.1: héllo\twörld ✓\n".as_bytes()
        );
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
        // The complete lines of one read go out as one broadcast.
        assert_eq!(out.0[1], (None, Bytes::from_static(b"#1.1: x\n#1.1: y\n")));
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
        assert_eq!(out.0.len(), 2);
        assert_eq!(room.lines_relayed(), 2);
    }

    #[test]
    fn echo_room_sends_each_line_back_to_its_sender_only() {
        let mut room = ChatRoom::greeted_by_adapter().echo();
        let mut out = Out::default();
        let (a, b) = (id("#1.1"), id("#2.1"));
        let peer = "127.0.0.1:1".parse().unwrap();
        room.handle_event(&Event::Opened { id: a, peer }, &mut out);
        room.handle_event(&Event::Opened { id: b, peer }, &mut out);
        let data = Bytes::from_static(b"x\ny\n");
        room.handle_event(&Event::Received { id: b, data }, &mut out);
        assert_eq!(
            out.0,
            [(Some(b), Bytes::from_static(b"#2.1: x\n#2.1: y\n"))]
        );
        assert_eq!(
            (out.1.as_slice(), room.lines_relayed()),
            ([b].as_slice(), 2)
        );
    }

    #[test]
    fn a_flood_of_tiny_lines_goes_out_in_bounded_batches_in_order() {
        let mut room = ChatRoom::greeted_by_adapter();
        let mut out = Out::default();
        let a = id("#2.1");
        let peer = "127.0.0.1:1".parse().unwrap();
        room.handle_event(&Event::Opened { id: a, peer }, &mut out);
        assert!(out.0.is_empty(), "the adapter greets");
        let flood = Bytes::from(b"a\n".repeat(8192));
        room.handle_event(&Event::Received { id: a, data: flood }, &mut out);
        assert_eq!(room.lines_relayed(), 8192);
        let relayed: Vec<u8> = out.0.iter().flat_map(|(_, d)| d.to_vec()).collect();
        assert_eq!(relayed, b"#2.1: a\n".repeat(8192));
        assert!(out.0.len() > 1 && out.0.len() <= 8192 * 8 / MAX_BATCH + 1);
        assert!(
            out.0
                .iter()
                .all(|(to, d)| to.is_none() && d.len() < MAX_BATCH + 16)
        );
        // An overlong line flushes what came before it first.
        let mut out = Out::default();
        let mixed = [&b"x\n"[..], &vec![b'z'; MAX_LINE + 1], b"\ny\n"].concat();
        room.handle_event(
            &Event::Received {
                id: a,
                data: Bytes::from(mixed),
            },
            &mut out,
        );
        assert_eq!(out.0[0], (None, Bytes::from_static(b"#2.1: x\n")));
        assert_eq!(out.0[1].0, Some(a));
        assert_eq!(out.0[2], (None, Bytes::from_static(b"#2.1: y\n")));
    }
}
