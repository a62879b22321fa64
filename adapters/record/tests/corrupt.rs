//! Corrupted and truncated recordings: every byte flipped, the text cut at
//! every line boundary and in the middle of every line, a wrong version, a
//! bad id, a bad hex length. The parser names the line; replay runs every
//! complete line before it; nothing panics.

use tether_record::replay::{ReplayError, replay_text};
use tether_record::rerecord::Rerecorder;
use tether_record::{ParseErrorKind, Recording, synthetic};

/// Lines in `text` (a last line without `\n` counts).
fn line_count(text: &[u8]) -> usize {
    text.split(|&b| b == b'\n').count() - usize::from(text.ends_with(b"\n"))
}

/// A small recording with payloads in it (bytes on).
fn with_bytes() -> Vec<u8> {
    let mut header = Rerecorder::fresh(synthetic::config())
        .unwrap()
        .header(0)
        .unwrap();
    header.bytes = true;
    let mut rec = Rerecorder::from_header(&header).unwrap();
    let (recording, _) = Recording::parse(synthetic::recording(8, 60));
    for line in &recording.segments[0].lines {
        rec.feed(line.at_ns, line.input.clone());
    }
    rec.finish()
}

#[test]
fn cut_at_every_line_boundary_and_mid_line() {
    let text = synthetic::recording(6, 80);
    let total = line_count(&text);
    let mut boundaries = 0;
    for cut in 0..=text.len() {
        let part = &text[..cut];
        let report = replay_text(part);
        let complete = part.iter().filter(|&&b| b == b'\n').count();
        let at_boundary = cut == 0 || part.ends_with(b"\n");
        match &report.result {
            Ok(()) => {
                assert!(at_boundary, "cut {cut}: a partial line replayed clean");
                assert_eq!(report.lines as usize, complete - 7, "cut {cut}");
                boundaries += 1;
            }
            Err(ReplayError::Parse(e)) if !at_boundary => {
                // The partial last line is named; every line before replayed.
                assert_eq!(e.line, complete + 1, "cut {cut}: {e}");
                assert_eq!(e.kind, ParseErrorKind::Truncated, "cut {cut}: {e}");
                assert_eq!(
                    report.lines as usize,
                    complete.saturating_sub(7),
                    "cut {cut}"
                );
            }
            // A header cut short: named at the first line it lacks, or empty.
            Err(ReplayError::Parse(e)) => assert!(complete < 7 && e.line <= complete + 1, "{e}"),
            Err(ReplayError::Empty) => assert_eq!(cut, 0),
            Err(e) => panic!("cut {cut}: {e}"),
        }
    }
    assert_eq!(
        boundaries,
        total - 7 + 1,
        "every cut after the header replays"
    );
}

#[test]
fn every_byte_flipped_is_named_or_replays_never_panics() {
    let text = with_bytes();
    let lines = line_count(&text);
    let (mut parse_errors, mut divergences) = (0, 0);
    for i in 0..text.len() {
        for mask in [0x01u8, 0x80]
            .into_iter()
            .filter(|&m| m == 0x01 || i % 5 == 0)
        {
            let mut bad = text.clone();
            bad[i] ^= mask;
            let report = replay_text(&bad);
            match &report.result {
                Ok(()) => {}
                Err(ReplayError::Parse(e)) => {
                    parse_errors += 1;
                    assert!((1..=lines + 1).contains(&e.line), "byte {i}: {e}");
                    assert!(
                        e.to_string().starts_with(&format!("line {}: ", e.line)),
                        "{e}"
                    );
                }
                Err(e) => {
                    divergences += 1;
                    let line = e.line_number().expect("every replay error names a line");
                    assert!((1..=lines).contains(&line), "byte {i}: {e}");
                }
            }
        }
    }
    assert!(parse_errors > text.len() / 2, "{parse_errors} parse errors");
    assert!(divergences > 0);
}

fn parse_error(text: &str) -> tether_record::ParseError {
    Recording::parse(text).1.expect("an error")
}

#[test]
fn wrong_version_bad_id_bad_hex_are_named() {
    let text = String::from_utf8(with_bytes()).unwrap();

    let e = parse_error(&text.replacen("tether-record 1", "tether-record 2", 1));
    assert_eq!(
        (e.line, e.kind.clone()),
        (1, ParseErrorKind::UnknownVersion("2".into()))
    );
    assert!(
        e.to_string().contains("unknown format version \"2\""),
        "{e}"
    );

    let n = text
        .lines()
        .position(|l| l.contains(" received #"))
        .unwrap()
        + 1;
    let line = text.lines().nth(n - 1).unwrap();
    let bad_id = text.replacen(line, &line.replacen(" #", " #x", 1), 1);
    let e = parse_error(&bad_id);
    assert_eq!(e.line, n, "{e}");
    assert!(
        e.to_string().starts_with(&format!("line {n}: expected")),
        "{e}"
    );
    // Every complete line before it replays.
    let report = replay_text(bad_id.as_bytes());
    assert_eq!(report.lines as usize, n - 8);
    assert!(matches!(report.result, Err(ReplayError::Parse(_))));

    // One hex digit short: the declared length wants more.
    let fields: Vec<&str> = line.split(' ').collect();
    let hex = fields[4];
    let short = line.replacen(hex, &hex[..hex.len() - 1], 1);
    let e = parse_error(&text.replacen(line, &short, 1));
    assert_eq!(e.line, n, "{e}");
    assert!(matches!(e.kind, ParseErrorKind::BadPayload { .. }), "{e}");
    assert!(e.to_string().contains("lowercase hex digits"), "{e}");

    // Uppercase hex, a time without nine decimals, an unknown input.
    let upper = line.replacen(hex, &hex.to_uppercase(), 1);
    if upper != line {
        assert_eq!(parse_error(&text.replacen(line, &upper, 1)).line, n);
    }
    let e = parse_error(&text.replacen(line, &line.replacen('.', ".0", 1), 1));
    assert_eq!(e.line, n, "{e}");
    let e = parse_error(&text.replacen(line, &line.replacen("received", "teleport", 1), 1));
    assert_eq!(e.line, n, "{e}");
}

#[test]
fn arbitrary_garbage_never_panics() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let base = synthetic::recording(2, 30);
    for round in 0..2_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bad = base.clone();
        // Splice random bytes into random places.
        for k in 0..(1 + seed % 4) {
            let at = ((seed >> (8 * k)) as usize) % bad.len();
            let byte = (seed >> (8 * k + 3)) as u8;
            if round % 2 == 0 {
                bad[at] = byte;
            } else {
                bad.insert(at, byte);
            }
        }
        let _ = tether_record::fuzz::parse_and_replay(&bad).expect("no broken property");
    }
}
