//! The recording format, version 1 (docs/recording.md): the [`Header`] of
//! a segment and its input [`Line`]s, their encoders, and the parser
//! ([`Recording::parse`]).
//!
//! Encoding is exact: [`Recording::parse`] gives back exactly what
//! [`encode_header`] and [`encode_line`] wrote (times are nanoseconds,
//! written with nine decimals), with two documented exceptions: without
//! `bytes on`, payloads come back as zero bytes of the recorded length;
//! and an IPv6 peer's flow info is not recorded (its scope id is).
//!
//! ```
//! use tether_core::ChannelId;
//! use tether_core::testing::{Input, Outcome};
//! use tether_record::format::{encode_line, Line};
//! use tether_record::Checksum;
//!
//! let id = ChannelId::from_parts(0, 1, 1).unwrap();
//! let line = Line {
//!     at_ns: 12_000_345_678,
//!     input: Input::Written { id, n: 6 },
//!     outcome: Outcome::Ok,
//!     checksum: Checksum { hash: 0x9f0e_6c2a_77d1_e003, outputs: 2 },
//! };
//! let mut out = Vec::new();
//! encode_line(&line, false, &mut out);
//! assert_eq!(out, b"12.000345678 written #1.1 6 => ok 9f0e6c2a77d1e003 2\n");
//! ```

use std::io::Write as _;
use std::time::Duration;

use tether_core::testing::{Input, Outcome, Rejection};
use tether_core::{Arg, ChannelId, DisconnectReason, KickMode, Snapshot};

use crate::checksum::Checksum;
use crate::errorkind::kind_name;

mod error;
mod parse;
#[cfg(test)]
mod tests;

pub use error::{ParseError, ParseErrorKind};
pub use parse::{Recording, Segment};

/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;

/// The first word of a header: `tether-record <version>`.
pub const MAGIC: &str = "tether-record";

/// The longest line the parser accepts, in bytes, except a header's
/// `snapshot` line, a payload's hex (bounded by its declared length) and a
/// `broadcast-to`'s ids.
pub const MAX_LINE: usize = 1 << 20;

/// The largest payload length (`received`, `send`, `broadcast`, …) the parser
/// accepts: 256 MiB.
pub const MAX_PAYLOAD: u64 = 1 << 28;

/// The header of one segment: who recorded it, and the hub's state when
/// the segment started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The hub's shard (`Config::shard`).
    pub shard: u8,
    /// 0 for the first segment of a run, +1 per rotation.
    pub segment: u64,
    /// Wall-clock time since the Unix epoch at which the segment started
    /// (informational only).
    pub started: Duration,
    /// Whether payloads are in the recording (`bytes on`).
    pub bytes: bool,
    /// The running checksum at the start of the segment.
    pub checksum: Checksum,
    /// The hub as it was when the segment started; its instants are
    /// nanoseconds since the recording's epoch.
    pub snapshot: Snapshot,
}

/// One input line: what the hub was fed, when, what it answered, and the
/// running checksum after its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Nanoseconds since the recording's epoch.
    pub at_ns: u64,
    /// The hub call and its arguments. Without `bytes on`, payloads are
    /// recorded by length (and parsed back as zeros).
    pub input: Input,
    /// What the call returned.
    pub outcome: Outcome,
    /// The running checksum after this input's outputs.
    pub checksum: Checksum,
}

/// The snapshot of a header could not be encoded as JSON.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the hub snapshot as JSON: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// Appends `n` in decimal, without allocating.
#[inline]
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `secs.nnnnnnnnn`.
#[inline]
pub(crate) fn push_time(out: &mut Vec<u8>, secs: u64, nanos: u32) {
    push_u64(out, secs);
    out.push(b'.');
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(nanos.min(999_999_999)).as_bytes();
    out.extend_from_slice(&b"000000000"[..9 - digits.len()]);
    out.extend_from_slice(digits);
}

fn push_duration(out: &mut Vec<u8>, d: Duration) {
    push_time(out, d.as_secs(), d.subsec_nanos());
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex16(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 16];
    for (i, digit) in buf.iter_mut().enumerate() {
        *digit = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.extend_from_slice(&buf);
}

fn push_id(out: &mut Vec<u8>, id: ChannelId) {
    out.push(b'#');
    if id.shard() != 0 {
        push_u64(out, u64::from(id.shard()));
        out.push(b':');
    }
    push_u64(out, u64::from(id.slot()));
    out.push(b'.');
    push_u64(out, u64::from(id.generation()));
}

fn push_checksum(out: &mut Vec<u8>, sum: Checksum) {
    push_hex16(out, sum.hash);
    out.push(b' ');
    push_u64(out, sum.outputs);
}

/// `<len>` and, with `bytes`, ` <hex>`.
fn push_payload(out: &mut Vec<u8>, data: &[u8], bytes: bool) {
    push_u64(out, data.len() as u64);
    if bytes {
        out.push(b' ');
        out.reserve(2 * data.len());
        for b in data {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
    }
}

/// The kebab-case name of a rejection, as in an `rejected <reason>` outcome.
pub fn rejection_name(r: Rejection) -> &'static str {
    match r {
        Rejection::Stale => "stale",
        Rejection::Unknown => "unknown",
        Rejection::LimitReached => "limit-reached",
        Rejection::ShuttingDown => "shutting-down",
        Rejection::IdsExhausted => "ids-exhausted",
        Rejection::NotUsable => "not-usable",
        Rejection::AlreadyClosing => "already-closing",
        Rejection::QueueFull { kicked: false } => "queue-full",
        Rejection::QueueFull { kicked: true } => "queue-full-kicked",
        Rejection::TooLarge => "too-large",
        Rejection::AfterEof => "after-eof",
        Rejection::OverWritten => "over-written",
        Rejection::AttachOffline => "attach-offline",
        Rejection::NotAttached => "not-attached",
        Rejection::TooManyHolders => "too-many-holders",
        Rejection::CloseNotRequested => "close-not-requested",
    }
}

/// Every rejection, for parsing.
pub(crate) const REJECTIONS: [Rejection; 16] = [
    Rejection::Stale,
    Rejection::Unknown,
    Rejection::LimitReached,
    Rejection::ShuttingDown,
    Rejection::IdsExhausted,
    Rejection::NotUsable,
    Rejection::AlreadyClosing,
    Rejection::QueueFull { kicked: false },
    Rejection::QueueFull { kicked: true },
    Rejection::TooLarge,
    Rejection::AfterEof,
    Rejection::OverWritten,
    Rejection::AttachOffline,
    Rejection::NotAttached,
    Rejection::TooManyHolders,
    Rejection::CloseNotRequested,
];

/// `graceful` or `abort`.
fn push_mode(out: &mut Vec<u8>, mode: KickMode) {
    out.extend_from_slice(match mode {
        KickMode::Graceful => b"graceful",
        KickMode::Abort => b"abort",
        // A mode added later: written, does not parse back.
        _ => b"unknown-mode",
    });
}

/// An `io::ErrorKind` by its `Debug` name.
fn push_kind(out: &mut Vec<u8>, kind: std::io::ErrorKind) {
    match kind_name(kind) {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        // Written so a reader can name it; it does not parse back.
        None => {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{kind:?}");
        }
    }
}

/// A disconnect reason as one word: its name ([`DisconnectReason::name`]),
/// with `:<kind>` for an I/O error (`io-error:TimedOut`) and `:<code>` for
/// a kick (`kicked:7`).
fn push_reason(out: &mut Vec<u8>, reason: &DisconnectReason) {
    out.extend_from_slice(reason.name().as_bytes());
    match reason {
        DisconnectReason::IoError(kind) => {
            out.push(b':');
            push_kind(out, *kind);
        }
        DisconnectReason::Kicked { code } => {
            out.push(b':');
            push_u64(out, u64::from(*code));
        }
        _ => {}
    }
}

/// Appends the input and its arguments (`send #1.1 6`), without the time:
/// its name ([`Input::name`]) and each of its [`Input::args`]. Payloads
/// are written as hex only with `bytes`.
pub fn encode_input(input: &Input, bytes: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(input.name().as_bytes());
    for arg in input.args() {
        out.push(b' ');
        encode_arg(&arg, bytes, out);
    }
}

/// Appends one argument of an input line.
fn encode_arg(arg: &Arg, bytes: bool, out: &mut Vec<u8>) {
    match arg {
        Arg::Peer(peer) => {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{peer}");
        }
        Arg::Id(id) => push_id(out, *id),
        Arg::Ids(ids) => {
            push_u64(out, ids.len() as u64);
            for id in ids {
                out.push(b' ');
                push_id(out, *id);
            }
        }
        Arg::Payload(data) => push_payload(out, data, bytes),
        Arg::Count(n) => push_u64(out, *n as u64),
        Arg::ErrorKind(kind) => push_kind(out, *kind),
        Arg::Mode(mode) => push_mode(out, *mode),
        Arg::Code(code) => push_u64(out, u64::from(*code)),
        Arg::Reason(reason) => push_reason(out, reason),
        Arg::Duration(d) => push_duration(out, *d),
    }
}

/// Appends the outcome (`ok`, `opened #1.1`, `broadcast 3 0`,
/// `rejected stale`).
pub fn encode_outcome(outcome: &Outcome, out: &mut Vec<u8>) {
    match outcome {
        Outcome::Ok => out.extend_from_slice(b"ok"),
        Outcome::Opened(id) => {
            out.extend_from_slice(b"opened ");
            push_id(out, *id);
        }
        Outcome::Broadcast { sent, refused } => {
            out.extend_from_slice(b"broadcast ");
            push_u64(out, *sent as u64);
            out.push(b' ');
            push_u64(out, *refused as u64);
        }
        Outcome::Rejected(r) => {
            out.extend_from_slice(b"rejected ");
            out.extend_from_slice(rejection_name(*r).as_bytes());
        }
    }
}

/// Appends one input line, `\n` included:
/// `<t> <input> [<args>…] => <outcome> <checksum> <outputs>`. Payloads are
/// written as hex only with `bytes` (the segment's `bytes on`). Writes
/// straight into `out`: no allocation but `out`'s own growth.
pub fn encode_line(line: &Line, bytes: bool, out: &mut Vec<u8>) {
    push_time(
        out,
        line.at_ns / 1_000_000_000,
        (line.at_ns % 1_000_000_000) as u32,
    );
    out.push(b' ');
    encode_input(&line.input, bytes, out);
    out.extend_from_slice(b" => ");
    encode_outcome(&line.outcome, out);
    out.push(b' ');
    push_checksum(out, line.checksum);
    out.push(b'\n');
}

/// Appends a segment's header, seven lines ending with the snapshot as
/// one line of JSON. On error `out` is left as it was.
pub fn encode_header(header: &Header, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(MAGIC.as_bytes());
    out.push(b' ');
    push_u64(out, u64::from(header.version));
    out.extend_from_slice(b"\nshard ");
    push_u64(out, u64::from(header.shard));
    out.extend_from_slice(b"\nsegment ");
    push_u64(out, header.segment);
    out.extend_from_slice(b"\nstarted ");
    push_duration(out, header.started);
    out.extend_from_slice(if header.bytes {
        b"\nbytes on\nchecksum "
    } else {
        b"\nbytes off\nchecksum "
    });
    push_checksum(out, header.checksum);
    out.extend_from_slice(b"\nsnapshot ");
    if let Err(e) = serde_json::to_writer(&mut *out, &header.snapshot) {
        out.truncate(start);
        return Err(e.into());
    }
    out.push(b'\n');
    Ok(())
}
