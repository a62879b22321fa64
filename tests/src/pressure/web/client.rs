//! A small blocking WebSocket client over `std::net::TcpStream`, written
//! for the tests: it sends whatever frames a scenario asks for (hostile
//! ones too: unmasked, reserved bits, binary, oversized) and reads the
//! server's frames one by one, every read bounded by a deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A close: its code (if any) and reason.
    Close(Option<u16>, String),
    /// A ping.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The connection ended (EOF or reset) before a complete frame.
    End,
    /// Nothing complete before the deadline.
    Timeout,
}

/// A WebSocket client.
#[derive(Debug)]
pub struct WsClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Opcodes.
pub const TEXT: u8 = 1;
/// Binary.
pub const BINARY: u8 = 2;
/// Close.
pub const CLOSE: u8 = 8;
/// Ping.
pub const PING: u8 = 9;
/// Pong.
pub const PONG: u8 = 10;

/// A client frame: `first` is the first byte (FIN, RSV, opcode), masked
/// unless `masked` is false.
pub fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n < 65_536 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

impl WsClient {
    /// Connects and upgrades on `/ws`; the error says which step failed.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<WsClient, String> {
        let stream = crate::pressure::net::connect_timeout(addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        WsClient::upgrade(stream, timeout)
    }

    /// Upgrades a connected stream.
    pub fn upgrade(mut stream: TcpStream, timeout: Duration) -> Result<WsClient, String> {
        let _ = stream.set_nodelay(true);
        let request = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
        stream
            .set_write_timeout(Some(timeout))
            .and_then(|()| stream.write_all(request.as_bytes()))
            .map_err(|e| format!("send the upgrade: {e}"))?;
        let deadline = Instant::now() + timeout;
        let mut client = WsClient {
            stream,
            buf: Vec::new(),
        };
        let head = loop {
            if let Some(end) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&client.buf[..end]).into_owned();
                client.buf.drain(..end + 4);
                break head;
            }
            if !client
                .fill(deadline)
                .map_err(|e| format!("read the upgrade: {e}"))?
            {
                return Err(format!("no complete response head: {:?}", client.buf));
            }
        };
        if !head.starts_with("HTTP/1.1 101")
            || !head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            || head.to_ascii_lowercase().contains("extensions")
        {
            return Err(format!("not a plain upgrade: {head:?}"));
        }
        Ok(client)
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one masked text message.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send_raw(&frame(0x80 | TEXT, text.as_bytes(), true))
    }

    /// Reads more bytes: false at EOF, `Err` on reset; `TimedOut` past
    /// the deadline.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 16 << 10];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(io::ErrorKind::TimedOut.into())
            }
            Err(e) => Err(e),
        }
    }

    /// The next frame from the server, by `deadline`.
    pub fn next(&mut self, deadline: Instant) -> Frame {
        loop {
            if let Some(frame) = self.parse() {
                return frame;
            }
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Frame::End,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Frame::Timeout,
                Err(_) => return Frame::End,
            }
        }
    }

    /// The next text message, skipping pings; `Err` with what came instead.
    pub fn next_text(&mut self, deadline: Instant) -> Result<String, Frame> {
        loop {
            match self.next(deadline) {
                Frame::Text(text) => return Ok(text),
                Frame::Ping(_) => {}
                other => return Err(other),
            }
        }
    }

    /// The close frame that ends the connection, skipping messages, and
    /// whether the FIN followed it.
    pub fn close(&mut self, deadline: Instant) -> (Option<(Option<u16>, String)>, bool) {
        loop {
            match self.next(deadline) {
                Frame::Close(code, reason) => {
                    let fin = matches!(self.next(deadline), Frame::End);
                    return (Some((code, reason)), fin);
                }
                Frame::End => return (None, true),
                Frame::Timeout => return (None, false),
                _ => {}
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let buf = &self.buf;
        if buf.len() < 2 {
            return None;
        }
        let opcode = buf[0] & 0x0f;
        let (len, at) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&buf[2..10]);
                (
                    usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX),
                    10,
                )
            }
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if buf.len() - at < len {
            return None;
        }
        let payload: Vec<u8> = buf[at..at + len].to_vec();
        self.buf.drain(..at + len);
        Some(match opcode {
            TEXT => {
                Frame::Text(String::from_utf8(payload).unwrap_or_else(|e| {
                    panic!("the server sent invalid UTF-8 in a text frame: {e}")
                }))
            }
            BINARY => Frame::Binary(payload),
            CLOSE => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                let reason =
                    String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                Frame::Close(code, reason)
            }
            PING => Frame::Ping(payload),
            _ => Frame::Pong,
        })
    }
}
