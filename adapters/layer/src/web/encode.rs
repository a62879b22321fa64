//! Server frames. Unmasked (RFC 6455 §5.1), so a frame depends only on its
//! payload: one broadcast is framed once and the same `Bytes` are queued
//! for every WebSocket client (the driver's frame cache). Headers are
//! written by tungstenite's codec (`FrameHeader::format`).

use bytes::{BufMut, Bytes, BytesMut};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Longest close reason: a control payload is at most 125 bytes, 2 of
/// them the code.
const MAX_REASON: usize = 123;

fn put_frame(out: &mut BytesMut, opcode: OpCode, payload: &[u8]) {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: None,
    };
    let length = payload.len() as u64;
    let mut head = [0u8; 10];
    let mut cursor = std::io::Cursor::new(&mut head[..]);
    // Ten bytes hold any unmasked header: formatting into them cannot fail.
    if header.format(length, &mut cursor).is_ok() {
        let n = usize::try_from(cursor.position()).unwrap_or(0);
        out.put_slice(&head[..n]);
    }
    out.put_slice(payload);
}

/// Lines (`\n`-separated, the last one with or without its newline) as one
/// text message each, without the newline; bytes that are not UTF-8 become
/// U+FFFD, so a TCP client's line always reaches a browser as valid text.
pub(crate) fn lines(data: &[u8]) -> Bytes {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    let mut out = BytesMut::with_capacity(data.len() + 4);
    for line in data.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        put_frame(&mut out, OpCode::Data(Data::Text), text.as_bytes());
    }
    out.freeze()
}

/// One message as it came (echo): text or binary.
pub(crate) fn message(binary: bool, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    let data = if binary { Data::Binary } else { Data::Text };
    put_frame(&mut out, OpCode::Data(data), payload);
    out.freeze()
}

/// Whether `data` is exactly one unmasked, final server frame (what echo
/// mode queues), as opposed to a line of the application's.
pub(crate) fn is_frame(data: &[u8]) -> bool {
    let mut cursor = std::io::Cursor::new(data);
    match FrameHeader::parse(&mut cursor) {
        Ok(Some((header, length))) => {
            header.is_final
                && header.mask.is_none()
                && !(header.rsv1 || header.rsv2 || header.rsv3)
                && cursor.position().checked_add(length) == Some(data.len() as u64)
        }
        _ => false,
    }
}

/// A ping (with an empty payload) or a pong echoing `payload`.
pub(crate) fn control(pong: bool, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 2);
    let control = if pong { Control::Pong } else { Control::Ping };
    put_frame(
        &mut out,
        OpCode::Control(control),
        &payload[..payload.len().min(125)],
    );
    out.freeze()
}

/// A close frame with `code` and `reason` (cut to 123 bytes at a
/// character boundary).
pub(crate) fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    let mut out = BytesMut::with_capacity(payload.len() + 2);
    put_frame(&mut out, OpCode::Control(Control::Close), &payload);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_one_text_frame_and_invalid_utf8_is_replaced() {
        assert_eq!(&lines(b"hello #1.1\n")[..], b"\x81\x0ahello #1.1");
        assert_eq!(&lines(b"a\nb")[..], b"\x81\x01a\x81\x01b");
        assert_eq!(&lines(b"\xff\n")[..], b"\x81\x03\xef\xbf\xbd");
        let long = vec![b'x'; 300];
        let framed = lines(&long);
        assert_eq!(&framed[..4], b"\x81\x7e\x01\x2c");
        assert_eq!(framed.len(), 304);
    }

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        let frame = close(4000, &"é".repeat(100));
        assert_eq!(frame[0], 0x88);
        let len = frame[1] as usize;
        assert!(len <= 125);
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
        assert_eq!(&frame[2..4], &4000u16.to_be_bytes());
        assert_eq!(&control(false, b"")[..], b"\x89\x00");
        assert_eq!(&message(true, b"\x00")[..], b"\x82\x01\x00");
        assert!(is_frame(&message(false, &[b'x'; 300])));
        assert!(!is_frame(b"* kicked: spam\n"));
        assert!(!is_frame(b"hello #1.1\n"));
    }
}
