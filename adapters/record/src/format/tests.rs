//! Round trips (quickcheck) and parse errors.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quickcheck::{Arbitrary, Gen, QuickCheck};
use tether_core::testing::{Input, Outcome};
use tether_core::{ChannelId, Config, DisconnectReason, Hub, KickMode};

use super::*;
use crate::errorkind::ERROR_KINDS;

/// A line and whether its segment records bytes.
#[derive(Debug, Clone)]
struct Arb(Line, bool);

fn pick<T: Copy>(g: &mut Gen, items: &[T]) -> T {
    *g.choose(items).expect("non-empty")
}

fn id(g: &mut Gen) -> ChannelId {
    ChannelId::from_raw(u64::arbitrary(g))
}

fn data(g: &mut Gen, bytes: bool) -> Bytes {
    let len = usize::arbitrary(g) % 64;
    if bytes {
        Bytes::from((0..len).map(|_| u8::arbitrary(g)).collect::<Vec<_>>())
    } else {
        Bytes::from(vec![0; len])
    }
}

fn peer(g: &mut Gen) -> SocketAddr {
    if bool::arbitrary(g) {
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u32::arbitrary(g)),
            u16::arbitrary(g),
        ))
    } else {
        // The flow info is not recorded (SocketAddr's text form omits it).
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(u128::arbitrary(g)),
            u16::arbitrary(g),
            0,
            u32::arbitrary(g),
        ))
    }
}

fn reason(g: &mut Gen) -> DisconnectReason {
    match u8::arbitrary(g) % 8 {
        0 => DisconnectReason::PeerClosed,
        1 => DisconnectReason::PeerReset,
        2 => DisconnectReason::IoError(pick(g, ERROR_KINDS).0),
        3 => DisconnectReason::Kicked {
            code: u32::arbitrary(g),
        },
        4 => DisconnectReason::IdleTimeout,
        5 => DisconnectReason::LoginTimeout,
        6 => DisconnectReason::SlowConsumer,
        _ => DisconnectReason::ServerShutdown,
    }
}

fn duration(g: &mut Gen) -> Duration {
    Duration::new(u64::arbitrary(g), u32::arbitrary(g) % 1_000_000_000)
}

impl Arbitrary for Arb {
    fn arbitrary(g: &mut Gen) -> Self {
        let bytes = bool::arbitrary(g);
        let input = match u8::arbitrary(g) % 17 {
            0 => Input::Accept { peer: peer(g) },
            1 => Input::Received {
                id: id(g),
                data: data(g, bytes),
            },
            2 => Input::PeerEof { id: id(g) },
            3 => Input::IoError {
                id: id(g),
                kind: pick(g, ERROR_KINDS).0,
            },
            4 => Input::Written {
                id: id(g),
                n: usize::arbitrary(g),
            },
            5 => Input::Send {
                id: id(g),
                data: data(g, bytes),
            },
            6 => Input::Broadcast {
                data: data(g, bytes),
            },
            7 => Input::Kick {
                id: id(g),
                mode: pick(g, &[KickMode::Graceful, KickMode::Abort]),
                code: u32::arbitrary(g),
            },
            8 => Input::KickDefault { id: id(g) },
            9 => Input::Authenticate { id: id(g) },
            10 => Input::Attach { id: id(g) },
            11 => Input::Detach { id: id(g) },
            12 => Input::Closed { id: id(g) },
            13 => Input::Timeout,
            14 => Input::Shutdown { grace: duration(g) },
            15 => Input::KickWithReason {
                id: id(g),
                mode: pick(g, &[KickMode::Graceful, KickMode::Abort]),
                reason: reason(g),
            },
            _ => Input::BroadcastTo {
                ids: (0..usize::arbitrary(g) % 5).map(|_| id(g)).collect(),
                data: data(g, bytes),
            },
        };
        let outcome = match u8::arbitrary(g) % 4 {
            0 => Outcome::Ok,
            1 => Outcome::Opened(id(g)),
            2 => Outcome::Broadcast {
                sent: usize::arbitrary(g),
                refused: usize::arbitrary(g),
            },
            _ => Outcome::Rejected(pick(g, &REJECTIONS)),
        };
        let line = Line {
            at_ns: u64::arbitrary(g),
            input,
            outcome,
            checksum: Checksum {
                hash: u64::arbitrary(g),
                outputs: u64::arbitrary(g),
            },
        };
        Arb(line, bytes)
    }
}

pub(crate) fn header(bytes: bool, segment: u64) -> Header {
    let epoch = Instant::now();
    let mut hub = Hub::new(Config::default()).unwrap();
    let id = hub
        .accept(epoch, "127.0.0.1:4000".parse().unwrap())
        .unwrap();
    hub.send(epoch, id, Bytes::from_static(b"hello")).unwrap();
    while hub.poll_action().is_some() {}
    while hub.poll_event().is_some() {}
    Header {
        version: VERSION,
        shard: 0,
        segment,
        started: Duration::new(1_764_441_600, 123_456_789),
        bytes,
        checksum: Checksum {
            hash: 0x0123_4567_89ab_cdef,
            outputs: 17,
        },
        snapshot: hub.snapshot(epoch).unwrap(),
    }
}

fn text(header: &Header, lines: &[Line]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(header, &mut out).unwrap();
    for line in lines {
        encode_line(line, header.bytes, &mut out);
    }
    out
}

#[test]
fn lines_round_trip_exactly() {
    fn prop(lines: Vec<Arb>, bytes: bool) -> bool {
        let lines: Vec<Line> = lines
            .into_iter()
            .filter(|Arb(_, b)| *b == bytes)
            .map(|Arb(l, _)| l)
            .collect();
        let header = header(bytes, 3);
        let (rec, err) = Recording::parse(text(&header, &lines));
        err.is_none()
            && rec.segments.len() == 1
            && rec.segments[0].header == header
            && rec.segments[0].lines == lines
            && rec.segments[0].line_numbers == (8..8 + lines.len()).collect::<Vec<_>>()
    }
    QuickCheck::new()
        .tests(200)
        .quickcheck(prop as fn(Vec<Arb>, bool) -> bool);
}

#[test]
fn one_line_round_trips_through_the_parser() {
    fn prop(arb: Arb) -> bool {
        let Arb(line, bytes) = arb;
        let mut out = Vec::new();
        encode_line(&line, bytes, &mut out);
        let mut parser = parse::tests_parser();
        let text = std::str::from_utf8(&out).unwrap();
        let text = text.strip_suffix('\n').unwrap();
        matches!(parser.line_for_tests(text, bytes), Ok(l) if l == line)
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Arb) -> bool);
}

#[test]
fn times_have_nine_decimals() {
    let mut out = Vec::new();
    let line = Line {
        at_ns: 1,
        input: Input::Shutdown {
            grace: Duration::from_millis(1500),
        },
        outcome: Outcome::Ok,
        checksum: Checksum::ZERO,
    };
    encode_line(&line, false, &mut out);
    assert_eq!(
        out,
        b"0.000000001 shutdown 1.500000000 => ok 0000000000000000 0\n"
    );
}

#[test]
fn concatenated_segments_and_comments_parse() {
    let a = header(false, 0);
    let b = header(true, 1);
    let line = Line {
        at_ns: 5,
        input: Input::Timeout,
        outcome: Outcome::Ok,
        checksum: Checksum::ZERO,
    };
    let mut all = b"# a comment\n\n".to_vec();
    all.extend(text(&a, std::slice::from_ref(&line)));
    all.extend(b"# between\n");
    all.extend(text(&b, &[line.clone(), line.clone()]));
    let (rec, err) = Recording::parse(&all);
    assert_eq!(err, None);
    assert_eq!(rec.segments.len(), 2);
    assert_eq!(rec.segments[0].header_line, 3);
    assert_eq!(rec.segments[1].header_line, 12);
    assert_eq!(
        rec.lines().map(|(n, _)| n).collect::<Vec<_>>(),
        vec![10, 19, 20]
    );
}

/// The error of parsing `text`, and how many lines parsed before it.
fn error_of(text: &[u8]) -> (usize, ParseError) {
    let (rec, err) = Recording::parse(text);
    let lines = rec.segments.iter().map(|s| s.lines.len()).sum();
    (lines, err.expect("an error"))
}

fn valid() -> (Vec<u8>, Line) {
    let line = Line {
        at_ns: 120_000,
        input: Input::Received {
            id: ChannelId::from_parts(0, 0, 1).unwrap(),
            data: Bytes::from_static(&[0; 12]),
        },
        outcome: Outcome::Ok,
        checksum: Checksum {
            hash: 0xabc,
            outputs: 3,
        },
    };
    (text(&header(false, 0), &[line.clone(), line.clone()]), line)
}

#[test]
fn a_truncated_last_line_is_its_own_error_after_every_complete_line() {
    let (mut t, _) = valid();
    t.extend_from_slice(b"0.000130000 eof #0.1 => ok 00000000000");
    let (lines, err) = error_of(&t);
    assert_eq!(lines, 2);
    assert_eq!(err.line, 10);
    assert_eq!(err.kind, ParseErrorKind::Truncated);
    assert!(err.to_string().starts_with("line 10: truncated"));
}

#[test]
fn errors_name_the_line_and_what_was_expected() {
    let (t, _) = valid();
    let s = String::from_utf8(t).unwrap();
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "tether-record 1\n",
            "tether-record 7\n",
            1,
            "unknown format version \"7\"",
        ),
        (
            "bytes off\n",
            "bytes maybe\n",
            5,
            "expected on or off, found \"maybe\"",
        ),
        (
            "shard 0\n",
            "shard 300\n",
            2,
            "expected a shard number (0-255)",
        ),
        (
            "checksum 0123456789abcdef 17\n",
            "checksum 0123 17\n",
            6,
            "expected a checksum",
        ),
        ("snapshot {", "snapshot [", 7, "bad snapshot"),
        (
            "received #0.1 12 =>",
            "received #0.1 12 00 =>",
            8,
            "expected `=>`",
        ),
        (
            "received #0.1 12 =>",
            "received 0.1 12 =>",
            8,
            "expected a channel id",
        ),
        (
            "received #0.1 12 =>",
            "recv #0.1 12 =>",
            8,
            "expected an input name",
        ),
        (
            "received #0.1 12 =>",
            "received #0.1 999999999999 =>",
            8,
            "payload of 999999999999 bytes",
        ),
        ("=> ok", "=> fine", 8, "expected an outcome"),
        ("0.000120000 ", "0.00012 ", 8, "nine decimals"),
        (
            "0.000120000 ",
            "99999999999999999999.000000000 ",
            8,
            "expected a time",
        ),
        ("0.000120000 ", "18446744074.000000000 ", 8, "out of range"),
        (
            "0000000000000abc 3\n",
            "0000000000000abc 3 x\n",
            8,
            "expected the end of the line",
        ),
    ];
    for (from, to, line, message) in cases {
        let bad = s.replacen(from, to, 1);
        assert_ne!(bad, s, "{from:?} is in the text");
        let (_, err) = error_of(bad.as_bytes());
        assert_eq!(err.line, *line, "{to:?}: {err}");
        assert!(err.to_string().contains(message), "{to:?}: {err}");
        assert!(err.to_string().starts_with(&format!("line {line}: ")));
    }
}

#[test]
fn kinds_and_payload_hex_are_checked() {
    let h = header(true, 0);
    let mut t = text(&h, &[]);
    t.extend_from_slice(b"1.000000000 io-error #0.1 NoSuchKind => ok 0000000000000000 0\n");
    let (_, err) = error_of(&t);
    assert_eq!(
        err.kind,
        ParseErrorKind::UnknownErrorKind("NoSuchKind".into())
    );
    for bad in ["0a0", "0A", "zz", ""] {
        let mut t = text(&h, &[]);
        t.extend_from_slice(
            format!("1.000000000 send #0.1 1 {bad} => ok 0000000000000000 0\n").as_bytes(),
        );
        let (_, err) = error_of(&t);
        assert!(
            matches!(err.kind, ParseErrorKind::BadPayload { declared: 1, .. }),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn lines_before_a_header_and_unfinished_headers_are_errors() {
    let (_, err) = error_of(b"# hello\n1.000000000 timeout => ok 0000000000000000 0\n");
    assert_eq!(err.line, 2);
    assert!(err.to_string().contains("expected the header"));
    let (_, err) = error_of(b"tether-record 1\nshard 0\n");
    assert_eq!(err.line, 3);
    assert!(
        err.to_string()
            .contains("expected `segment <n>`, found \"the end of the file\"")
    );
    let (_, err) = error_of(b"tether-record 1\n\xff\n");
    assert_eq!((err.line, err.kind), (2, ParseErrorKind::NotUtf8));
}

#[test]
fn long_lines_are_errors_but_long_payloads_are_not() {
    let mut t = text(&header(false, 0), &[]);
    t.extend(std::iter::repeat_n(b'#', MAX_LINE + 1));
    t.push(b'\n');
    let (_, err) = error_of(&t);
    assert_eq!(err.kind, ParseErrorKind::TooLong { len: MAX_LINE + 1 });

    let big = Line {
        at_ns: 0,
        input: Input::Broadcast {
            data: Bytes::from(vec![7; MAX_LINE]),
        },
        outcome: Outcome::Broadcast {
            sent: 1,
            refused: 0,
        },
        checksum: Checksum::ZERO,
    };
    let (rec, err) = Recording::parse(text(&header(true, 0), std::slice::from_ref(&big)));
    assert_eq!(err, None);
    assert_eq!(rec.segments[0].lines, vec![big]);
}

#[test]
fn kick_with_reason_and_broadcast_to_have_lines() {
    let (a, b) = (
        ChannelId::from_parts(0, 1, 1).unwrap(),
        ChannelId::from_parts(1, 2, 3).unwrap(),
    );
    let cases = [
        (
            Input::KickWithReason {
                id: a,
                mode: KickMode::Abort,
                reason: DisconnectReason::SlowConsumer,
            },
            "kick-reason #1.1 abort slow-consumer",
        ),
        (
            Input::KickWithReason {
                id: b,
                mode: KickMode::Graceful,
                reason: DisconnectReason::IoError(std::io::ErrorKind::TimedOut),
            },
            "kick-reason #1:2.3 graceful io-error:TimedOut",
        ),
        (
            Input::KickWithReason {
                id: a,
                mode: KickMode::Graceful,
                reason: DisconnectReason::Kicked { code: 7 },
            },
            "kick-reason #1.1 graceful kicked:7",
        ),
        (
            Input::BroadcastTo {
                ids: vec![a, b, a],
                data: Bytes::from_static(b"hi"),
            },
            "broadcast-to 3 #1.1 #1:2.3 #1.1 2 6869",
        ),
        (
            Input::BroadcastTo {
                ids: Vec::new(),
                data: Bytes::new(),
            },
            "broadcast-to 0 0 ",
        ),
    ];
    for (input, expected) in cases {
        let mut out = Vec::new();
        encode_input(&input, true, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        let line = Line {
            at_ns: 5,
            input,
            outcome: Outcome::Ok,
            checksum: Checksum::ZERO,
        };
        let (rec, err) = Recording::parse(text(&header(true, 0), std::slice::from_ref(&line)));
        assert_eq!(err, None, "{expected}");
        assert_eq!(rec.segments[0].lines, vec![line]);
    }
    let h = header(false, 0);
    for (bad, message) in [
        (
            "kick-reason #0.1 abort kicked",
            "expected a disconnect reason",
        ),
        (
            "kick-reason #0.1 abort kicked:x",
            "expected a disconnect reason",
        ),
        (
            "kick-reason #0.1 abort tired",
            "expected a disconnect reason",
        ),
        ("kick-reason #0.1 abort io-error:Nope", "unknown"),
        ("broadcast-to 2 #0.1 3", "expected a channel id"),
        ("broadcast-to 1 #0.1", "expected a payload length"),
    ] {
        let mut t = text(&h, &[]);
        t.extend_from_slice(format!("1.000000000 {bad} => ok 0000000000000000 0\n").as_bytes());
        let (_, err) = error_of(&t);
        assert!(err.to_string().contains(message), "{bad}: {err}");
    }
}

#[test]
fn a_broadcast_to_many_ids_is_not_too_long() {
    let ids: Vec<ChannelId> = (0..MAX_LINE / 4)
        .map(|i| ChannelId::from_parts(0, i as u32 % 1000, 1).unwrap())
        .collect();
    let line = Line {
        at_ns: 0,
        input: Input::BroadcastTo {
            ids,
            // Without bytes a payload parses back as zeros.
            data: Bytes::from_static(&[0]),
        },
        outcome: Outcome::Broadcast {
            sent: 0,
            refused: MAX_LINE / 4,
        },
        checksum: Checksum::ZERO,
    };
    let t = text(&header(false, 0), std::slice::from_ref(&line));
    assert!(t.len() > MAX_LINE);
    let (rec, err) = Recording::parse(t);
    assert_eq!(err, None);
    assert_eq!(rec.segments[0].lines, vec![line]);
}

#[test]
fn the_parser_never_panics() {
    fn garbage(bytes: Vec<u8>) -> bool {
        let _ = Recording::parse(&bytes);
        true
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(garbage as fn(Vec<u8>) -> bool);

    // Every prefix and single-byte corruption of a valid recording.
    let (t, _) = valid();
    let body = t.len() - 200;
    for cut in body..t.len() {
        let _ = Recording::parse(&t[..cut]);
    }
    for at in body..t.len() {
        for b in [b' ', b'\n', b'#', b'0', b'9', b'.', b'=', 0xff, b'x'] {
            let mut bad = t.clone();
            bad[at] = b;
            let _ = Recording::parse(&bad);
        }
    }
}
