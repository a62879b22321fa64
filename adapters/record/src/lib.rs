//! # tether-record
//!
//! The flight recorder of tether: what one shard's [`Hub`] was fed, with
//! the time it was fed and what it answered, plus a running checksum of
//! every action and event it emitted — so that the run can be replayed
//! exactly through a fresh hub on a virtual clock. The format (text, one
//! input per line, versioned) is specified in the project's
//! `docs/recording.md`.
//!
//! * [`format`](mod@format) — the [`Header`] and [`Line`] types, their encoders, and
//!   the parser ([`Recording::parse`]), which returns every complete line
//!   before the first error and never panics.
//! * [`checksum`] — the running output checksum ([`Checksum`]) and its
//!   canonical encoding.
//! * [`errorkind`] — the `io::ErrorKind` names a recording may hold.
//! * [`recorded`] — [`Recorder`]: the flight recorder as tether-adapter's
//!   `HubObserver` (and [`RecordOptions`] as its `ObserverFactory`, what a
//!   server's `Options::record` takes), recording each input, its time,
//!   its outcome and the running checksum; [`recording`] records one hub
//!   outside a server ([`RecordedHub`]).
//! * [`writer`] — [`RecordOptions`] (path, `max_bytes`, `keep`, `bytes`)
//!   and the [`SegmentWriter`]: one file per shard, rotated by size, each
//!   segment starting with a header and a snapshot; buffered; an I/O error
//!   stops the recording, never the server.
//! * [`replay`] — replay one or more consecutive segments through a hub
//!   restored from the first snapshot, on a virtual clock, under the
//!   invariant checker: every outcome and running checksum compared, the
//!   first divergence reported with its line ([`replay::ReplayReport`]).
//! * [`timeline`] — a replay as readable text, one line per input with its
//!   outputs, filtered by channel and time window.
//! * [`shrink`] — a recording that breaks an invariant
//!   (or any failure a predicate names) shrunk to the few lines that still
//!   do, re-recorded so that it replays exactly.
//! * [`rerecord`] — recording on a virtual clock in memory (what the
//!   shrinker writes with); `synthetic` (feature `test-support`) — seeded
//!   chat-like recordings for tests and trying `tether replay`; `fuzz`
//!   (feature `test-support`) — the `record_parse` fuzz target's body.
//!
//! [`Hub`]: tether_core::Hub
//!
//! ```
//! use tether_core::ChannelId;
//! use tether_core::testing::{Input, Outcome};
//! use tether_record::{Checksum, Line, Recording, encode_line};
//!
//! let id = ChannelId::from_parts(0, 1, 1).unwrap();
//! let line = Line {
//!     at_ns: 4_000_000,
//!     input: Input::PeerEof { id },
//!     outcome: Outcome::Ok,
//!     checksum: Checksum { hash: 0x0c77_aa0e_2f13_b5e1, outputs: 3 },
//! };
//! let mut text = Vec::new();
//! encode_line(&line, false, &mut text);
//! assert_eq!(text, b"0.004000000 eof #1.1 => ok 0c77aa0e2f13b5e1 3\n");
//!
//! // Input lines need a header first: the parser says so, naming the line.
//! let (recording, error) = Recording::parse(&text);
//! assert!(recording.segments.is_empty());
//! let error = error.unwrap();
//! assert_eq!(error.line, 1);
//! assert!(error.to_string().starts_with("line 1: expected the header"));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checksum;
pub mod errorkind;
pub mod format;
#[cfg(feature = "test-support")]
pub mod fuzz;
pub mod recorded;
pub mod replay;
pub mod rerecord;
pub mod shrink;
#[cfg(feature = "test-support")]
pub mod synthetic;
pub mod timeline;
pub mod writer;

pub use checksum::Checksum;
pub use format::{
    EncodeError, Header, Line, ParseError, ParseErrorKind, Recording, Segment, encode_header,
    encode_line,
};
pub use recorded::{RecordStartError, RecordedHub, Recorder, recording};
pub use writer::{OptionsError, RecordError, RecordOptions, RecordStats, SegmentWriter};
