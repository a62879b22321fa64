//! Why a recording did not parse, and where.

use super::{MAX_LINE, MAX_PAYLOAD, VERSION};

/// Why a recording did not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: ParseErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The last line has no `\n`: the recorder stopped mid-write. Every
    /// line before it parsed.
    #[error("truncated: the last line has no newline (the recorder stopped mid-write)")]
    Truncated,
    /// The line is longer than [`MAX_LINE`] (not counting a payload's hex).
    #[error("line too long: {len} bytes, at most {MAX_LINE} (not counting a payload's hex)")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The line is not UTF-8.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// A field is not what the format has there.
    #[error("expected {expected}, found {found:?}")]
    Expected {
        /// What the format has there.
        expected: &'static str,
        /// What the line has (at most 40 characters of it).
        found: String,
    },
    /// The header names a format version this reader does not know.
    #[error("unknown format version {0:?}: this reader knows version {VERSION}")]
    UnknownVersion(String),
    /// An `io-error` line names a kind this reader does not know.
    #[error("unknown io::ErrorKind {0:?}")]
    UnknownErrorKind(String),
    /// A payload's hex is not two lowercase digits per declared byte.
    #[error("a payload of {declared} bytes needs {} lowercase hex digits, found {found:?}", declared * 2)]
    BadPayload {
        /// The declared length.
        declared: u64,
        /// What the line has (at most 40 characters of it).
        found: String,
    },
    /// A payload length over [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes: at most {MAX_PAYLOAD}")]
    PayloadTooLarge(u64),
    /// A time whose nanoseconds do not fit in a `u64` (about 584 years).
    #[error("time {0:?} out of range")]
    TimeOutOfRange(String),
    /// The snapshot is not a valid `Snapshot` in JSON.
    #[error("bad snapshot: {0}")]
    Snapshot(String),
}
