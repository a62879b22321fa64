//! The parser: every complete line up to the first error, and that error
//! with its line number. It never panics, whatever the input.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tether_core::{ChannelId, Snapshot};

use super::MAX_PAYLOAD;
use super::error::{ParseError, ParseErrorKind};
use super::{Header, Line, MAGIC, MAX_LINE, VERSION};
use crate::checksum::Checksum;

mod input;

/// A parsed recording: one or more segments (a file holds one; files
/// concatenated hold several, each starting with its header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

/// One segment: a header, then input lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The header.
    pub header: Header,
    /// The 1-based line number of the header's first line.
    pub header_line: usize,
    /// The input lines, in order.
    pub lines: Vec<Line>,
    /// The 1-based line number of each of `lines` in the text.
    pub line_numbers: Vec<usize>,
}

impl Segment {
    /// Each input line with its 1-based line number.
    pub fn numbered(&self) -> impl Iterator<Item = (usize, &Line)> + '_ {
        self.line_numbers.iter().copied().zip(self.lines.iter())
    }
}

fn found(s: &str) -> String {
    s.chars().take(40).collect()
}

fn expected(expected: &'static str, got: &str) -> ParseErrorKind {
    ParseErrorKind::Expected {
        expected,
        found: found(got),
    }
}

/// The space-separated fields of one line.
struct Tokens<'a> {
    it: std::str::Split<'a, char>,
}

impl<'a> Tokens<'a> {
    fn new(line: &'a str) -> Self {
        Tokens {
            it: line.split(' '),
        }
    }

    /// The next field, which must be there and not empty.
    fn next(&mut self, what: &'static str) -> Result<&'a str, ParseErrorKind> {
        match self.it.next() {
            Some(t) if !t.is_empty() => Ok(t),
            Some(_) => Err(expected(what, "an empty field (two spaces)")),
            None => Err(expected(what, "the end of the line")),
        }
    }

    fn word(&mut self, word: &'static str, what: &'static str) -> Result<(), ParseErrorKind> {
        let t = self.next(what)?;
        if t == word {
            Ok(())
        } else {
            Err(expected(what, t))
        }
    }

    fn end(&mut self) -> Result<(), ParseErrorKind> {
        match self.it.next() {
            None => Ok(()),
            Some(t) => Err(expected("the end of the line", t)),
        }
    }
}

fn number(t: &str, what: &'static str) -> Result<u64, ParseErrorKind> {
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected(what, t));
    }
    t.parse::<u64>().map_err(|_| expected(what, t))
}

fn usize_of(t: &str, what: &'static str) -> Result<usize, ParseErrorKind> {
    usize::try_from(number(t, what)?).map_err(|_| expected(what, t))
}

/// `secs.nnnnnnnnn` as (seconds, nanoseconds).
fn time(t: &str, what: &'static str) -> Result<(u64, u32), ParseErrorKind> {
    let (secs, frac) = t.split_once('.').ok_or_else(|| expected(what, t))?;
    if frac.len() != 9 {
        return Err(expected(what, t));
    }
    let secs = number(secs, what)?;
    let nanos = u32::try_from(number(frac, what)?).map_err(|_| expected(what, t))?;
    Ok((secs, nanos))
}

fn duration(t: &str, what: &'static str) -> Result<Duration, ParseErrorKind> {
    let (secs, nanos) = time(t, what)?;
    Ok(Duration::new(secs, nanos))
}

fn instant_ns(t: &str) -> Result<u64, ParseErrorKind> {
    let (secs, nanos) = time(t, "a time in seconds with nine decimals")?;
    secs.checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(u64::from(nanos)))
        .ok_or_else(|| ParseErrorKind::TimeOutOfRange(found(t)))
}

fn id(t: &str) -> Result<ChannelId, ParseErrorKind> {
    const WHAT: &str = "a channel id (#slot.gen or #shard:slot.gen)";
    if !t.starts_with('#') {
        return Err(expected(WHAT, t));
    }
    t.parse().map_err(|_| expected(WHAT, t))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn checksum(tokens: &mut Tokens<'_>) -> Result<Checksum, ParseErrorKind> {
    const WHAT: &str = "a checksum (16 lowercase hex digits)";
    let t = tokens.next(WHAT)?;
    if t.len() != 16 {
        return Err(expected(WHAT, t));
    }
    let mut hash = 0u64;
    for b in t.bytes() {
        let d = hex_digit(b).ok_or_else(|| expected(WHAT, t))?;
        hash = hash << 4 | u64::from(d);
    }
    let outputs = number(tokens.next("an output count")?, "an output count")?;
    Ok(Checksum { hash, outputs })
}

/// The parser's state across lines.
pub(super) struct Parser {
    /// Zeros shared by every payload of a recording without bytes.
    zeros: Bytes,
}

impl Parser {
    /// `<len> [<hex>]`; returns the payload and the hex's length.
    fn payload(
        &mut self,
        tokens: &mut Tokens<'_>,
        bytes: bool,
    ) -> Result<(Bytes, usize), ParseErrorKind> {
        let declared = number(tokens.next("a payload length")?, "a payload length")?;
        if declared > MAX_PAYLOAD {
            return Err(ParseErrorKind::PayloadTooLarge(declared));
        }
        // At most MAX_PAYLOAD (2^28): fits in usize on every target we build.
        let len =
            usize::try_from(declared).map_err(|_| ParseErrorKind::PayloadTooLarge(declared))?;
        if !bytes {
            if self.zeros.len() < len {
                // Grown geometrically (lines still hold the old buffer), so
                // a hostile file makes at most ~17 of them, never one a line.
                let cap = usize::try_from(MAX_PAYLOAD).unwrap_or(usize::MAX);
                let size = len.max(self.zeros.len().saturating_mul(2)).max(4096);
                self.zeros = Bytes::from(vec![0u8; size.min(cap).max(len)]);
            }
            return Ok((self.zeros.slice(..len), 0));
        }
        // Present exactly when bytes are on; empty for an empty payload.
        let hex = tokens.it.next().unwrap_or_default();
        let bad = || ParseErrorKind::BadPayload {
            declared,
            found: found(hex),
        };
        if hex.len() != len.saturating_mul(2) {
            return Err(bad());
        }
        let mut data = Vec::with_capacity(len);
        for pair in hex.as_bytes().chunks_exact(2) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_digit(*hi), hex_digit(*lo)),
                _ => (None, None),
            };
            match (hi, lo) {
                (Some(hi), Some(lo)) => data.push(hi << 4 | lo),
                _ => return Err(bad()),
            }
        }
        Ok((Bytes::from(data), hex.len()))
    }
}

#[cfg(test)]
pub(super) fn tests_parser() -> Parser {
    Parser {
        zeros: Bytes::new(),
    }
}

#[cfg(test)]
impl Parser {
    pub(super) fn line_for_tests(
        &mut self,
        text: &str,
        bytes: bool,
    ) -> Result<Line, ParseErrorKind> {
        self.line(text, bytes).map(|(line, _)| line)
    }
}

/// The header's fields read so far.
#[derive(Default)]
struct Partial {
    line: usize,
    shard: u8,
    segment: u64,
    started: Duration,
    bytes: bool,
    checksum: Checksum,
}

/// Where the parser is in a segment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Magic,
    Shard,
    Segment,
    Started,
    Bytes,
    Checksum,
    Snapshot,
    Body,
}

impl Expect {
    fn what(self) -> &'static str {
        match self {
            Expect::Magic => "the header `tether-record <version>`",
            Expect::Shard => "`shard <n>`",
            Expect::Segment => "`segment <n>`",
            Expect::Started => "`started <unix-seconds with nine decimals>`",
            Expect::Bytes => "`bytes on` or `bytes off`",
            Expect::Checksum => "`checksum <hex16> <outputs>`",
            Expect::Snapshot => "`snapshot <json>`",
            Expect::Body => "an input line",
        }
    }
}

fn header_line(expect: Expect, text: &str, p: &mut Partial) -> Result<(), ParseErrorKind> {
    let mut t = Tokens::new(text);
    let what = expect.what();
    match expect {
        Expect::Magic => {
            t.word(MAGIC, what)?;
            let v = t.next("a format version")?;
            if v != "1" {
                return Err(ParseErrorKind::UnknownVersion(found(v)));
            }
        }
        Expect::Shard => {
            t.word("shard", what)?;
            let n = t.next("a shard number")?;
            p.shard = u8::try_from(number(n, "a shard number")?)
                .map_err(|_| expected("a shard number (0-255)", n))?;
        }
        Expect::Segment => {
            t.word("segment", what)?;
            p.segment = number(t.next("a segment number")?, "a segment number")?;
        }
        Expect::Started => {
            t.word("started", what)?;
            const WHAT: &str = "a Unix time in seconds with nine decimals";
            p.started = duration(t.next(WHAT)?, WHAT)?;
        }
        Expect::Bytes => {
            t.word("bytes", what)?;
            p.bytes = match t.next("on or off")? {
                "on" => true,
                "off" => false,
                other => return Err(expected("on or off", other)),
            };
        }
        Expect::Checksum => {
            t.word("checksum", what)?;
            p.checksum = checksum(&mut t)?;
        }
        Expect::Snapshot | Expect::Body => return Err(expected(what, text)),
    }
    t.end()
}

fn next(expect: Expect) -> Expect {
    match expect {
        Expect::Magic => Expect::Shard,
        Expect::Shard => Expect::Segment,
        Expect::Segment => Expect::Started,
        Expect::Started => Expect::Bytes,
        Expect::Bytes => Expect::Checksum,
        Expect::Checksum => Expect::Snapshot,
        Expect::Snapshot | Expect::Body => Expect::Body,
    }
}

impl Recording {
    /// Parses a recording: every complete line up to the first error, and
    /// that error (`None` when the whole text parsed). A last line without
    /// its `\n` is [`ParseErrorKind::Truncated`]. Never panics.
    ///
    /// ```
    /// use tether_record::format::{ParseErrorKind, Recording};
    /// let (rec, err) = Recording::parse("tether-record 2\n");
    /// assert!(rec.segments.is_empty());
    /// let err = err.unwrap();
    /// assert_eq!(err.line, 1);
    /// assert_eq!(err.kind, ParseErrorKind::UnknownVersion("2".into()));
    /// ```
    pub fn parse(text: impl AsRef<[u8]>) -> (Recording, Option<ParseError>) {
        let mut rec = Recording::default();
        let err = parse_into(text.as_ref(), &mut rec).err();
        (rec, err)
    }

    /// Reads and parses a file (see [`Recording::parse`]); only reading it
    /// can fail here.
    pub fn read(path: impl AsRef<Path>) -> std::io::Result<(Recording, Option<ParseError>)> {
        Ok(Recording::parse(std::fs::read(path)?))
    }

    /// Every input line of every segment, with its 1-based line number.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &Line)> + '_ {
        self.segments.iter().flat_map(Segment::numbered)
    }
}

fn parse_into(data: &[u8], rec: &mut Recording) -> Result<(), ParseError> {
    let mut parser = Parser {
        zeros: Bytes::new(),
    };
    let mut expect = Expect::Magic;
    let mut partial = Partial::default();
    let mut rest = data;
    let mut number = 0usize;
    while !rest.is_empty() {
        number += 1;
        let at = |kind| ParseError { line: number, kind };
        let text = split_line(&mut rest, expect).map_err(at)?;
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if expect == Expect::Body && text.starts_with(MAGIC) {
            expect = Expect::Magic;
        }
        match expect {
            Expect::Body => body_line(&mut parser, rec, text, number).map_err(at)?,
            Expect::Snapshot => rec.segments.push(segment(text, &partial).map_err(at)?),
            header => {
                if header == Expect::Magic {
                    partial = Partial {
                        line: number,
                        ..Partial::default()
                    };
                }
                header_line(header, text, &mut partial).map_err(at)?;
            }
        }
        expect = next(expect);
    }
    if expect != Expect::Body && expect != Expect::Magic {
        return Err(ParseError {
            line: number + 1,
            kind: expected(expect.what(), "the end of the file"),
        });
    }
    Ok(())
}

/// Takes the next line, without its `\n`, off the front of `rest`: it must
/// be complete, within [`MAX_LINE`] unless exempt, and UTF-8.
fn split_line<'a>(rest: &mut &'a [u8], expect: Expect) -> Result<&'a str, ParseErrorKind> {
    let all = *rest;
    let Some(end) = all.iter().position(|b| *b == b'\n') else {
        return Err(ParseErrorKind::Truncated);
    };
    let (raw, tail) = all.split_at(end);
    *rest = tail.get(1..).unwrap_or_default();
    // The snapshot line, payloads' hex and lists of ids may be longer;
    // checked by their parsers.
    let exempt = (expect == Expect::Snapshot || expect == Expect::Body)
        && raw.first().is_some_and(|b| *b != b'#');
    if raw.len() > MAX_LINE && !exempt {
        return Err(ParseErrorKind::TooLong { len: raw.len() });
    }
    std::str::from_utf8(raw).map_err(|_| ParseErrorKind::NotUtf8)
}

/// An input line (`number` in the text), added to the last segment; only
/// its exempt parts may take it past [`MAX_LINE`].
fn body_line(
    parser: &mut Parser,
    rec: &mut Recording,
    text: &str,
    number: usize,
) -> Result<(), ParseErrorKind> {
    let Some(segment) = rec.segments.last_mut() else {
        return Err(expected(Expect::Magic.what(), text));
    };
    let (line, exempt) = parser.line(text, segment.header.bytes)?;
    if text.len() - exempt > MAX_LINE {
        return Err(ParseErrorKind::TooLong { len: text.len() });
    }
    segment.lines.push(line);
    segment.line_numbers.push(number);
    Ok(())
}

/// The snapshot line, which ends the header read so far into `partial`:
/// the new segment, without lines yet.
fn segment(text: &str, partial: &Partial) -> Result<Segment, ParseErrorKind> {
    let json = text
        .strip_prefix("snapshot ")
        .ok_or_else(|| expected(Expect::Snapshot.what(), text))?;
    let snapshot = serde_json::from_str::<Snapshot>(json)
        .map_err(|e| ParseErrorKind::Snapshot(e.to_string()))?;
    Ok(Segment {
        header: Header {
            version: VERSION,
            shard: partial.shard,
            segment: partial.segment,
            started: partial.started,
            bytes: partial.bytes,
            checksum: partial.checksum,
            snapshot,
        },
        header_line: partial.line,
        lines: Vec::new(),
        line_numbers: Vec::new(),
    })
}
