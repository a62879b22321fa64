//! The wire format: one versioned, compact binary payload per message.
//!
//! Every payload starts with a header — format version (1), message kind,
//! the sender's node name (length byte + bytes), its incarnation, its
//! per-sender sequence number and its clock (milliseconds since it started)
//! (each `u64`, big-endian) — then the kind's body:
//!
//! | kind | body |
//! |---|---|
//! | 1 heartbeat | channel count `u32` |
//! | 2 line | channel id `u64`, then the text (the rest) |
//! | 3 opened / 4 closed | channel id `u64` |
//! | 5 snapshot | count `u32`, then that many channel ids `u64` (exactly) |
//! | 6 snapshot request | target name |
//! | 7 kick | target name, target incarnation `u64`, request `u64`, id `u64`, mode `u8`, time left `u32` (ms), reason (UTF-8, the rest, ≤ 1 KiB) |
//! | 8 kick reply | origin name, origin incarnation `u64`, request `u64`, result `u8` |
//! | 9 goodbye | nothing |
//!
//! Kicks, kick replies and snapshot requests are outside the ordered
//! stream ([`Body::is_sequenced`]).
//!
//! [`decode`] never panics: a short, long, or malformed payload is a
//! [`DecodeError`].

use bytes::{BufMut, Bytes, BytesMut};
use tether_core::{ChannelId, KickMode};

use crate::io::KickResult;
use crate::name::{NodeName, NodeNameError};

/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;

/// The longest kick reason carried, in bytes.
pub const MAX_REASON: usize = 1024;

/// Who sent a message, and where it stands in the sender's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The sender.
    pub node: NodeName,
    /// The sender's incarnation (it grows on every restart).
    pub incarnation: u64,
    /// The sender's sequence number for this message (consecutive).
    pub seq: u64,
    /// The sender's clock when it sent this: milliseconds since its
    /// `Cluster` started. Receivers estimate a message's delay from it
    /// (against the least offset seen from that sender).
    pub clock_ms: u64,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// I am alive, holding this many channels.
    Heartbeat {
        /// The sender's channel count.
        channels: u32,
    },
    /// A line from one of my channels.
    Line {
        /// The sending channel.
        id: ChannelId,
        /// The text.
        text: Bytes,
    },
    /// A channel of mine opened.
    Opened(ChannelId),
    /// A channel of mine closed.
    Closed(ChannelId),
    /// All my channels (replaces what the receiver holds for me).
    Snapshot(Vec<ChannelId>),
    /// `target`: please publish a snapshot.
    SnapshotRequest {
        /// The node asked.
        target: NodeName,
    },
    /// `target`: please kick your channel `id`.
    Kick {
        /// The owning node.
        target: NodeName,
        /// The owner's incarnation when the kick was asked (a restarted
        /// owner answers stale: its ids are not the old ones).
        target_incarnation: u64,
        /// The asking node's request tag.
        request: u64,
        /// The channel.
        id: ChannelId,
        /// How.
        mode: KickMode,
        /// How long the asker still waits for the reply, in ms, when it
        /// sent this: an owner that estimates the request arrived too late
        /// for its reply to make it drops it instead of executing it.
        remaining_ms: u32,
        /// Why.
        reason: String,
    },
    /// `origin`: your kick `request` is done (or stale).
    KickReply {
        /// The node that asked.
        origin: NodeName,
        /// Its incarnation.
        origin_incarnation: u64,
        /// Its tag.
        request: u64,
        /// The owner's answer.
        result: KickResult,
    },
    /// I am leaving now.
    Goodbye,
}

impl Body {
    /// Whether the message takes a place in its sender's ordered stream.
    /// Kicks, kick replies and snapshot requests do not: they are
    /// idempotent (a request is executed at most once, a repeated reply or
    /// request changes nothing), so a lost one must not hold back the
    /// lines behind it, nor wait behind a lost line. They carry the
    /// sender's *next* sequence number and do not consume it.
    pub fn is_sequenced(&self) -> bool {
        !matches!(
            self,
            Body::Kick { .. } | Body::KickReply { .. } | Body::SnapshotRequest { .. }
        )
    }
}

/// One message: header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender and sequence.
    pub header: Header,
    /// The content.
    pub body: Body,
}

/// Why a payload does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload ended early.
    #[error("payload truncated")]
    Truncated,
    /// A version this crate does not read.
    #[error("unknown wire version {0}")]
    Version(u8),
    /// An unknown message kind.
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// A bad node name.
    #[error("bad node name: {0}")]
    Name(#[from] NodeNameError),
    /// Bytes after a fixed-size body, or a count that disagrees with the length.
    #[error("payload length does not match its content")]
    Length,
    /// An unknown kick mode or result code.
    #[error("bad code {0}")]
    Code(u8),
    /// A kick reason that is not UTF-8 or too long.
    #[error("bad kick reason")]
    Reason,
}

const HEARTBEAT: u8 = 1;
const LINE: u8 = 2;
const OPENED: u8 = 3;
const CLOSED: u8 = 4;
const SNAPSHOT: u8 = 5;
const SNAPSHOT_REQUEST: u8 = 6;
const KICK: u8 = 7;
const KICK_REPLY: u8 = 8;
const GOODBYE: u8 = 9;

/// Encodes a message.
pub fn encode(message: &Message) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.put_u8(VERSION);
    out.put_u8(kind(&message.body));
    put_name(&mut out, &message.header.node);
    out.put_u64(message.header.incarnation);
    out.put_u64(message.header.seq);
    out.put_u64(message.header.clock_ms);
    match &message.body {
        Body::Heartbeat { channels } => out.put_u32(*channels),
        Body::Line { id, text } => {
            out.put_u64(id.to_raw());
            out.put_slice(text);
        }
        Body::Opened(id) | Body::Closed(id) => out.put_u64(id.to_raw()),
        Body::Snapshot(ids) => {
            // A snapshot longer than u32::MAX ids cannot exist (memory).
            out.put_u32(u32::try_from(ids.len()).unwrap_or(u32::MAX));
            for id in ids {
                out.put_u64(id.to_raw());
            }
        }
        Body::SnapshotRequest { target } => put_name(&mut out, target),
        Body::Kick {
            target,
            target_incarnation,
            request,
            id,
            mode,
            remaining_ms,
            reason,
        } => {
            put_name(&mut out, target);
            out.put_u64(*target_incarnation);
            out.put_u64(*request);
            out.put_u64(id.to_raw());
            out.put_u8(match mode {
                KickMode::Abort => 1,
                _ => 0,
            });
            out.put_u32(*remaining_ms);
            out.put_slice(truncate_utf8(reason, MAX_REASON).as_bytes());
        }
        Body::KickReply {
            origin,
            origin_incarnation,
            request,
            result,
        } => {
            put_name(&mut out, origin);
            out.put_u64(*origin_incarnation);
            out.put_u64(*request);
            out.put_u8(match result {
                KickResult::Done => 0,
                KickResult::Stale => 1,
            });
        }
        Body::Goodbye => {}
    }
    out.freeze()
}

/// Decodes a payload; never panics.
pub fn decode(payload: &Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader {
        buf: payload,
        at: 0,
    };
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let kind = r.u8()?;
    let header = Header {
        node: r.name()?,
        incarnation: r.u64()?,
        seq: r.u64()?,
        clock_ms: r.u64()?,
    };
    let body = match kind {
        HEARTBEAT => Body::Heartbeat { channels: r.u32()? },
        LINE => Body::Line {
            id: ChannelId::from_raw(r.u64()?),
            text: r.rest(),
        },
        OPENED => Body::Opened(ChannelId::from_raw(r.u64()?)),
        CLOSED => Body::Closed(ChannelId::from_raw(r.u64()?)),
        SNAPSHOT => {
            let count = r.u32()? as usize;
            // The count must match the bytes: a huge count never allocates.
            if r.remaining() != count.checked_mul(8).ok_or(DecodeError::Length)? {
                return Err(DecodeError::Length);
            }
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(ChannelId::from_raw(r.u64()?));
            }
            Body::Snapshot(ids)
        }
        SNAPSHOT_REQUEST => Body::SnapshotRequest { target: r.name()? },
        KICK => decode_kick(&mut r)?,
        KICK_REPLY => Body::KickReply {
            origin: r.name()?,
            origin_incarnation: r.u64()?,
            request: r.u64()?,
            result: match r.u8()? {
                0 => KickResult::Done,
                1 => KickResult::Stale,
                other => return Err(DecodeError::Code(other)),
            },
        },
        GOODBYE => Body::Goodbye,
        other => return Err(DecodeError::Kind(other)),
    };
    if r.remaining() != 0 {
        return Err(DecodeError::Length);
    }
    Ok(Message { header, body })
}

fn decode_kick(r: &mut Reader<'_>) -> Result<Body, DecodeError> {
    let target = r.name()?;
    let target_incarnation = r.u64()?;
    let request = r.u64()?;
    let id = ChannelId::from_raw(r.u64()?);
    let mode = match r.u8()? {
        0 => KickMode::Graceful,
        1 => KickMode::Abort,
        other => return Err(DecodeError::Code(other)),
    };
    let remaining_ms = r.u32()?;
    let rest = r.rest();
    if rest.len() > MAX_REASON {
        return Err(DecodeError::Reason);
    }
    let reason = std::str::from_utf8(&rest)
        .map_err(|_| DecodeError::Reason)?
        .to_owned();
    Ok(Body::Kick {
        target,
        target_incarnation,
        request,
        id,
        mode,
        remaining_ms,
        reason,
    })
}

fn kind(body: &Body) -> u8 {
    match body {
        Body::Heartbeat { .. } => HEARTBEAT,
        Body::Line { .. } => LINE,
        Body::Opened(_) => OPENED,
        Body::Closed(_) => CLOSED,
        Body::Snapshot(_) => SNAPSHOT,
        Body::SnapshotRequest { .. } => SNAPSHOT_REQUEST,
        Body::Kick { .. } => KICK,
        Body::KickReply { .. } => KICK_REPLY,
        Body::Goodbye => GOODBYE,
    }
}

fn put_name(out: &mut BytesMut, name: &NodeName) {
    // A NodeName is at most 32 bytes, so its length fits a byte.
    out.put_u8(name.as_str().len() as u8);
    out.put_slice(name.as_str().as_bytes());
}

/// The longest prefix of `text` within `max` bytes, on a char boundary.
pub(crate) fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

struct Reader<'a> {
    buf: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.at)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.buf.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn name(&mut self) -> Result<NodeName, DecodeError> {
        let len = self.u8()? as usize;
        Ok(NodeName::from_bytes(self.take(len)?)?)
    }

    fn rest(&mut self) -> Bytes {
        let start = self.at.min(self.buf.len());
        self.at = self.buf.len();
        self.buf.slice(start..)
    }
}
