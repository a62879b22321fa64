//! Regressions on stable: every saved recording (tests/regressions/*.rec)
//! replays exactly under the invariant checker, and every file of the
//! `record_parse` fuzz corpus (fuzz/corpus/record_parse/) parses, round-trips
//! and replays without a panic or a broken invariant.

use std::path::{Path, PathBuf};

use tether_record::replay::replay_text;
use tether_record::{Recording, fuzz};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_saved_recording_replays_exactly_under_the_checker() {
    let all: Vec<PathBuf> = files(&here().join("tests/regressions"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rec"))
        .collect();
    assert!(!all.is_empty(), "no regressions");
    for path in all {
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(
            text.starts_with("# caught:"),
            "{}: needs a `# caught: ...` first line",
            path.display()
        );
        let report = replay_text(&text);
        assert!(report.checked, "{}: replayed unchecked", path.display());
        if let Err(e) = report.result {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn every_record_parse_corpus_file_passes() {
    let dir = here().join("../../fuzz/corpus/record_parse");
    let all = files(&dir);
    assert!(all.len() >= 5, "no corpus in {}", dir.display());
    for path in all {
        let data = std::fs::read(&path).expect("readable corpus file");
        if let Err(e) = fuzz::parse_and_replay(&data) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// Writes the seeds of fuzz/corpus/record_parse/: small real recordings and
/// corrupted variants. `cargo test -p tether-record --test regressions --
/// --ignored write_record_parse_seeds` (the fuzzer adds its own files).
#[test]
#[ignore = "writes the fuzz seeds"]
fn write_record_parse_seeds() {
    use tether_core::Config;
    use tether_core::testing::{Input, Outcome};
    use tether_record::rerecord::Rerecorder;
    use tether_record::{encode_header, synthetic};

    let dir = here().join("../../fuzz/corpus/record_parse");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, data: &[u8]| std::fs::write(dir.join(name), data).unwrap();
    let example = tether_record::replay::example_recording();
    write("seed-example.rec", &example);
    let small = synthetic::recording(1, 40);
    write("seed-synthetic-40.rec", &small);
    write("seed-synthetic-120.rec", &synthetic::recording(2, 120));

    // Bytes on, with comments and blank lines.
    let mut header = Rerecorder::fresh(Config::default())
        .unwrap()
        .header(0)
        .unwrap();
    header.bytes = true;
    let mut rec = Rerecorder::from_header(&header).unwrap();
    let peer = "[::1]:4000".parse().unwrap();
    let Outcome::Opened(id) = rec.feed(1_000, Input::Accept { peer }) else {
        panic!()
    };
    rec.feed(2_000, Input::Attach { id });
    let data = bytes::Bytes::from_static(b"hi\n");
    rec.feed(
        3_000,
        Input::Received {
            id,
            data: data.clone(),
        },
    );
    rec.feed(3_000, Input::Send { id, data });
    rec.feed(4_000, Input::Written { id, n: 3 });
    rec.feed(
        5_000,
        Input::IoError {
            id,
            kind: std::io::ErrorKind::ConnectionReset,
        },
    );
    rec.feed(6_000, Input::Detach { id });
    rec.feed(7_000, Input::Closed { id });
    rec.feed(
        8_000,
        Input::Shutdown {
            grace: std::time::Duration::from_millis(1500),
        },
    );
    let mut text = b"# a comment\n\n".to_vec();
    text.extend_from_slice(rec.text());
    write("seed-bytes-on.rec", &text);

    // Two segments, the second from a mid-run snapshot.
    let (recording, _) = Recording::parse(&small);
    let mut rec = Rerecorder::from_header(&recording.segments[0].header).unwrap();
    let mut cut = 0;
    let mut second = Vec::new();
    for (i, line) in recording.segments[0].lines.iter().enumerate() {
        if i == 25 {
            cut = rec.text().len();
            encode_header(&rec.header(1).unwrap(), &mut second).unwrap();
        }
        rec.feed(line.at_ns, line.input.clone());
    }
    let all = rec.finish();
    let mut two = all[..cut].to_vec();
    two.extend_from_slice(&second);
    two.extend_from_slice(&all[cut..]);
    write("seed-two-segments.rec", &two);
    write("seed-mid-run.rec", &[&second[..], &all[cut..]].concat());

    // Corrupted variants.
    let text = String::from_utf8(small.clone()).unwrap();
    write("bad-truncated.rec", &small[..small.len() - 7]);
    write(
        "bad-version.rec",
        text.replacen("tether-record 1", "tether-record 9", 1)
            .as_bytes(),
    );
    write(
        "bad-id.rec",
        text.replacen(" #0.1 ", " #x.1 ", 1).as_bytes(),
    );
    write(
        "bad-outcome.rec",
        text.replacen("=> ok", "=> rejected stale", 1).as_bytes(),
    );
    write(
        "bad-checksum.rec",
        text.replacen(" => ok ", " => ok f", 1).as_bytes(),
    );
    write(
        "bad-snapshot.rec",
        text.replacen("\"max_channels\":16", "\"max_channels\":-1", 1)
            .as_bytes(),
    );
    let hex = String::from_utf8(example.clone()).unwrap();
    let bytes_on =
        String::from_utf8(std::fs::read(dir.join("seed-bytes-on.rec")).unwrap()).unwrap();
    write(
        "bad-hex-length.rec",
        bytes_on.replacen(" 3 68690a ", " 4 68690a ", 1).as_bytes(),
    );
    let mut flipped = small.clone();
    flipped[small.len() / 2] ^= 0x5a;
    write("bad-flipped-byte.rec", &flipped);
    write(
        "bad-no-header.rec",
        hex.lines()
            .skip(7)
            .collect::<Vec<_>>()
            .join("\n")
            .as_bytes(),
    );
}
