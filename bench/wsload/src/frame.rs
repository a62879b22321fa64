//! The few pieces of RFC 6455 a load client needs, by hand so that counting
//! a fan-out's messages costs about what counting pc's newlines costs: the
//! upgrade request, masked client frames, and a streaming counter of server
//! frames that never buffers a payload.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Text frame opcode.
pub const TEXT: u8 = 1;
/// Close frame opcode.
pub const CLOSE: u8 = 8;

/// The upgrade request for `/ws` (the key is fixed: the accept key is not checked).
pub fn request(port: u16) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// One masked client frame (FIN set) carrying `payload`.
pub fn masked(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A frame's header: opcode, payload length, header length. `None` while
/// `buf` holds less than the whole header.
fn header(buf: &[u8]) -> Option<(u8, u64, usize)> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    let masked = if b1 & 0x80 != 0 { 4 } else { 0 };
    let (len, at) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    (buf.len() >= at + masked).then_some((b0 & 0x0f, len, at + masked))
}

/// A whole frame at the start of `buf`: opcode, payload, bytes used.
pub fn whole(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let (op, len, at) = header(buf)?;
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    Some((op, buf.get(at..end)?, end))
}

/// Frames completed by the bytes fed so far, without keeping their payloads.
#[derive(Default)]
pub struct Counter {
    head: Vec<u8>,
    left: u64,
    current: (u8, u64),
}

impl Counter {
    /// Feeds bytes; calls `each(opcode, payload_len)` per completed frame.
    pub fn feed(&mut self, mut data: &[u8], mut each: impl FnMut(u8, u64)) {
        while !data.is_empty() {
            if self.left > 0 {
                let take = usize::try_from(self.left).map_or(data.len(), |l| l.min(data.len()));
                self.left -= take as u64;
                data = &data[take..];
                if self.left == 0 {
                    each(self.current.0, self.current.1);
                }
                continue;
            }
            // Fast path: a whole header in `data`, nothing copied (a fan-out
            // counts a million frames; pc only looks for newlines).
            if self.head.is_empty() {
                if let Some((op, len, at)) = header(data) {
                    data = &data[at..];
                    self.current = (op, len);
                    self.left = len;
                    if len == 0 {
                        each(op, 0);
                    }
                    continue;
                }
            }
            // The header straddles reads: keep only its bytes (at most 14).
            let need = if self.head.len() < 2 { 2 } else { 14 };
            let room = need - self.head.len().min(need);
            let before = self.head.len();
            self.head.extend_from_slice(&data[..room.min(data.len())]);
            match header(&self.head) {
                Some((op, len, at)) => {
                    data = &data[(at - before)..];
                    self.head.clear();
                    self.current = (op, len);
                    self.left = len;
                    if len == 0 {
                        each(op, 0);
                    }
                }
                None => data = &data[(self.head.len() - before)..],
            }
        }
    }
}

/// Blocking upgrade: sends the request, reads the `101` and the greeting
/// frame. Returns the greeting's text and any bytes read past it.
pub fn upgrade(stream: &mut TcpStream, port: u16) -> io::Result<(String, Vec<u8>)> {
    stream.write_all(request(port).as_bytes())?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        if !buf.starts_with(b"HTTP/1.1 101") {
            return Err(io::Error::other("no 101 Switching Protocols"));
        }
        if let Some((op, payload, used)) = whole(&buf[end + 4..]) {
            if op != TEXT {
                return Err(io::Error::other("greeting is not a text frame"));
            }
            let text = String::from_utf8_lossy(payload).into_owned();
            return Ok((text, buf[end + 4 + used..].to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(op: u8, len: usize) -> Vec<u8> {
        let mut f = masked(op, &vec![b'x'; len], [0; 4]);
        // unmask: clear the mask bit and drop the key
        f[1] &= 0x7f;
        let at = match len {
            0..126 => 2,
            126..65536 => 4,
            _ => 10,
        };
        f.drain(at..at + 4);
        f
    }

    #[test]
    fn counter_counts_frames_split_at_every_byte() {
        let mut all = Vec::new();
        for len in [0, 5, 125, 126, 300, 70_000] {
            all.extend(server_frame(TEXT, len));
        }
        for step in [1, 2, 3, 7, 4096] {
            let mut c = Counter::default();
            let mut seen = Vec::new();
            for part in all.chunks(step) {
                c.feed(part, |op, len| seen.push((op, len)));
            }
            assert_eq!(
                seen,
                [0, 5, 125, 126, 300, 70_000].map(|l| (TEXT, l)),
                "step {step}"
            );
        }
    }

    #[test]
    fn whole_needs_every_byte() {
        let f = server_frame(TEXT, 200);
        assert!(whole(&f[..f.len() - 1]).is_none());
        let (op, payload, used) = whole(&f).unwrap();
        assert_eq!((op, payload.len(), used), (TEXT, 200, f.len()));
    }
}
