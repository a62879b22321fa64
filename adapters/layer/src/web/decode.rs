//! Client frames to messages: a per-connection decoder over byte buffers,
//! built on tungstenite's frame-header codec (`FrameHeader::parse`). It
//! holds at most one message (bounded by its limit) plus one frame header,
//! and turns every violation of RFC 6455 into the close code it deserves.

use std::io::Cursor;

use bytes::{Buf, Bytes, BytesMut};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Why the server closes: a close code and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub code: u16,
    pub text: &'static str,
}

const fn violation(code: u16, text: &'static str) -> Violation {
    Violation { code, text }
}

/// A protocol error (RFC 6455 §7.4.1: 1002).
const PROTOCOL: u16 = 1002;

/// One complete thing a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A text message, valid UTF-8.
    Text(Bytes),
    /// A binary message (the decoder admits them only when asked to).
    Binary(Bytes),
    /// A ping, with its payload (answered with a pong of the same).
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A close, with the code to echo (`None` for an empty close).
    Close(Option<u16>),
}

/// A message being reassembled from fragments.
#[derive(Debug)]
struct Partial {
    binary: bool,
    data: BytesMut,
}

/// One connection's decoder.
#[derive(Debug)]
pub(crate) struct Decoder {
    buf: BytesMut,
    partial: Option<Partial>,
    /// Longest message admitted (bytes of payload).
    max_message: usize,
    /// Binary messages are admitted (echo); else 1003.
    binary: bool,
}

impl Decoder {
    pub(crate) fn new(max_message: usize, binary: bool) -> Self {
        Decoder {
            buf: BytesMut::new(),
            partial: None,
            max_message,
            binary,
        }
    }

    /// Takes `data` and appends every complete item to `out`; stops at the
    /// first violation (the connection is then closed with its code, and
    /// nothing more is decoded).
    pub(crate) fn feed(&mut self, data: &[u8], out: &mut Vec<Decoded>) -> Result<(), Violation> {
        self.buf.extend_from_slice(data);
        while let Some(item) = self.next()? {
            if let Some(item) = item {
                out.push(item);
            }
        }
        // An idle connection keeps no buffer.
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
        Ok(())
    }

    /// The next frame: `None` if incomplete; `Some(None)` for a fragment
    /// that completes no message.
    fn next(&mut self) -> Result<Option<Option<Decoded>>, Violation> {
        let mut cursor = Cursor::new(&self.buf[..]);
        let (header, length) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(None),
            Err(_) => return Err(violation(PROTOCOL, "reserved opcode")),
        };
        let head = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
        self.check(&header, length)?;
        // `check` bounded `length` by the message limit (or 125).
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if self.buf.len() - head < length {
            return Ok(None);
        }
        self.buf.advance(head);
        let mut payload = self.buf.split_to(length);
        if let Some(mask) = header.mask {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i & 3];
            }
        }
        self.frame(&header, payload).map(Some)
    }

    /// Rejects what the header alone shows to be wrong, before any payload
    /// is buffered: so a hostile length never makes the buffer grow.
    fn check(&self, header: &FrameHeader, length: u64) -> Result<(), Violation> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(violation(PROTOCOL, "reserved bits set"));
        }
        if header.mask.is_none() {
            return Err(violation(PROTOCOL, "client frames must be masked"));
        }
        match header.opcode {
            OpCode::Control(_) => {
                if !header.is_final {
                    return Err(violation(PROTOCOL, "fragmented control frame"));
                }
                if length > 125 {
                    return Err(violation(PROTOCOL, "control frame over 125 bytes"));
                }
            }
            OpCode::Data(data) => {
                let (continuing, binary) = match data {
                    Data::Continue => match &self.partial {
                        Some(p) => (p.data.len() as u64, p.binary),
                        None => return Err(violation(PROTOCOL, "continuation without a message")),
                    },
                    _ if self.partial.is_some() => {
                        return Err(violation(PROTOCOL, "new message inside a fragmented one"));
                    }
                    Data::Binary => (0, true),
                    _ => (0, false),
                };
                if binary && !self.binary {
                    return Err(violation(1003, "binary messages are not accepted"));
                }
                if continuing.saturating_add(length) > self.max_message as u64 {
                    return Err(violation(1009, "message too long"));
                }
            }
        }
        Ok(())
    }

    fn frame(
        &mut self,
        header: &FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Decoded>, Violation> {
        match header.opcode {
            OpCode::Control(Control::Ping) => Ok(Some(Decoded::Ping(payload.freeze()))),
            OpCode::Control(Control::Pong) => Ok(Some(Decoded::Pong)),
            OpCode::Control(Control::Close) => {
                close(&payload).map(|code| Some(Decoded::Close(code)))
            }
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                Err(violation(PROTOCOL, "reserved opcode"))
            }
            OpCode::Data(data) => {
                let mut partial = match (data, self.partial.take()) {
                    (Data::Continue, Some(mut partial)) => {
                        partial.data.extend_from_slice(&payload);
                        partial
                    }
                    (data, _) => Partial {
                        binary: data == Data::Binary,
                        data: payload,
                    },
                };
                if !header.is_final {
                    self.partial = Some(partial);
                    return Ok(None);
                }
                let data = std::mem::take(&mut partial.data).freeze();
                if partial.binary {
                    return Ok(Some(Decoded::Binary(data)));
                }
                match std::str::from_utf8(&data) {
                    Ok(_) => Ok(Some(Decoded::Text(data))),
                    Err(_) => Err(violation(1007, "text is not valid UTF-8")),
                }
            }
        }
    }
}

/// A close frame's code to echo (RFC 6455 §5.5.1, §7.4).
fn close(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(violation(PROTOCOL, "close payload of one byte")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(violation(PROTOCOL, "invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(violation(1007, "close reason is not valid UTF-8"));
            }
            Ok(Some(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    fn decode(max: usize, binary: bool, input: &[u8]) -> (Vec<Decoded>, Result<(), Violation>) {
        let mut decoder = Decoder::new(max, binary);
        let mut out = Vec::new();
        let result = decoder.feed(input, &mut out);
        (out, result)
    }

    #[test]
    fn fragments_and_interleaved_pings_byte_by_byte() {
        let input = [
            frame(0x01, b"hel"),
            frame(0x89, b"p"),
            frame(0x00, b"lo \xc3"),
            frame(0x80, b"\xa9"),
            frame(0x8a, b""),
        ]
        .concat();
        let mut decoder = Decoder::new(64, false);
        let mut out = Vec::new();
        for byte in &input {
            decoder.feed(std::slice::from_ref(byte), &mut out).unwrap();
        }
        assert_eq!(
            out,
            [
                Decoded::Ping(Bytes::from_static(b"p")),
                Decoded::Text(Bytes::from("hello é")),
                Decoded::Pong
            ]
        );
        assert!(decoder.buf.is_empty() && decoder.partial.is_none());
    }

    #[test]
    fn each_violation_gets_its_code() {
        let code = |input: Vec<u8>| decode(16, false, &input).1.unwrap_err().code;
        assert_eq!(code(frame(0x82, b"bin")), 1003);
        assert_eq!(code(frame(0x81, &[b'x'; 17])), 1009);
        assert_eq!(
            code([frame(0x01, &[b'x'; 9]), frame(0x80, &[b'x'; 8])].concat()),
            1009
        );
        assert_eq!(code(frame(0x81, b"\xff")), 1007);
        assert_eq!(code(frame(0xc1, b"x")), 1002, "rsv1");
        assert_eq!(code(frame(0x83, b"x")), 1002, "reserved data opcode");
        assert_eq!(code(frame(0x8b, b"x")), 1002, "reserved control opcode");
        assert_eq!(code(frame(0x09, b"x")), 1002, "fragmented ping");
        assert_eq!(code(frame(0x89, &[0; 126])), 1002, "oversized ping");
        assert_eq!(
            code(frame(0x80, b"x")),
            1002,
            "continuation without a start"
        );
        assert_eq!(code([frame(0x01, b"x"), frame(0x81, b"y")].concat()), 1002);
        assert_eq!(code(frame(0x88, b"\x03")), 1002, "one-byte close");
        assert_eq!(
            code(frame(0x88, b"\x03\xed")),
            1002,
            "close code 1005 on the wire"
        );
        assert_eq!(code(frame(0x88, b"\x03\xe8\xff")), 1007);
        // Unmasked.
        assert_eq!(decode(16, false, b"\x81\x01x").1.unwrap_err().code, 1002);
    }

    #[test]
    fn a_hostile_length_is_refused_from_the_header_alone() {
        // 2^63 bytes announced, nothing sent: refused without buffering.
        let mut input = vec![0x81, 0x80 | 127];
        input.extend_from_slice(&(1u64 << 63).to_be_bytes());
        input.extend_from_slice(&[0; 4]);
        assert_eq!(decode(1 << 24, true, &input).1.unwrap_err().code, 1009);
    }

    #[test]
    fn echo_admits_binary_and_big_messages_and_closes_echo_codes() {
        let big = vec![7u8; 70_000];
        let (out, result) = decode(
            1 << 24,
            true,
            &[frame(0x82, &big), frame(0x88, b"\x03\xe8ok")].concat(),
        );
        result.unwrap();
        assert_eq!(
            out,
            [
                Decoded::Binary(Bytes::from(big)),
                Decoded::Close(Some(1000))
            ]
        );
    }
}
