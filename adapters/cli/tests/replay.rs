//! `tether replay` as operators run it: the summary and exit status of a
//! recording that matches (0), one that diverges (1, naming the line with
//! the expected and actual outputs), one cut short or unreadable (2, naming
//! the line); the timeline following one channel in a window.

use std::path::PathBuf;
use std::process::{Command, Output};

use tether_record::synthetic;

const BIN: &str = env!("CARGO_BIN_EXE_tether");

fn tether(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("replay")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tether")
}

fn file(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-replay-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_matching_recording_exits_0_with_its_summary() {
    let path = file("ok.rec", &synthetic::recording(3, 800));
    let out = tether(&[path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!(
            "replayed 800 lines from {}: outcomes and checksums match, 0 invariant violations\n",
            path.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("inputs: accept "), "{stdout}");
    let quiet = tether(&[path.to_str().unwrap(), "--quiet"]);
    assert_eq!((quiet.status.code(), quiet.stdout.len()), (Some(0), 0));
}

#[test]
fn a_divergence_exits_1_naming_the_line_and_the_outputs() {
    let good = text(&synthetic::recording(3, 300));
    // The first `received` line (a Received event): claim a different checksum.
    let n = good.lines().position(|l| l.contains(" received ")).unwrap();
    let bad: String = good
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == n {
                let (head, count) = l.rsplit_once(' ').unwrap();
                let (head, _) = head.rsplit_once(' ').unwrap();
                format!("{head} 00000000000000aa {count}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let path = file("diverges.rec", bad.as_bytes());
    let out = tether(&[path.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let line = n + 1;
    assert!(
        stdout.contains(&format!("diverged at line {line}")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("line {line}: the replay diverges")),
        "{stderr}"
    );
    assert!(stderr.contains("expected: ok 00000000000000aa"), "{stderr}");
    assert!(stderr.contains("\n    Received #"), "{stderr}");
}

#[test]
fn a_cut_or_unreadable_recording_exits_2_naming_the_line() {
    let good = synthetic::recording(5, 100);
    let cut = &good[..good.len() - 3];
    let path = file("cut.rec", cut);
    let out = tether(&[path.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.starts_with("replayed 99 lines"), "{stdout}");
    assert!(stderr.contains(": line 107: truncated"), "{stderr}");

    let version = text(&good).replacen("tether-record 1", "tether-record 7", 1);
    let path = file("version.rec", version.as_bytes());
    let out = tether(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("line 1: "),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains('7'), "{}", text(&out.stderr));

    // A snapshot that parses but does not restore: named at its header.
    let invalid = text(&good).replacen("\"max_channels\":16", "\"max_channels\":0", 1);
    let path = file("invalid.rec", invalid.as_bytes());
    let out = tether(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(": line 1: the snapshot does not restore: "),
        "{}",
        text(&out.stderr)
    );

    let out = tether(&["/nonexistent/recording"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_timeline_follows_one_channel_in_a_window() {
    let path = file("timeline.rec", &synthetic::recording(9, 2_000));
    let out = tether(&[path.to_str().unwrap(), "--timeline", "--channel", "#0.2"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let timeline: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            first.contains('.') && first.parse::<f64>().is_ok()
        })
        .collect();
    assert!(timeline.len() > 3, "{stdout}");
    assert!(timeline.iter().all(|l| l.contains("#0.2")), "{stdout}");
    assert!(timeline[0].contains("=> opened #0.2"), "{stdout}");

    let out = tether(&[
        path.to_str().unwrap(),
        "--timeline",
        "--from",
        "2",
        "--to",
        "2500ms",
    ]);
    let stdout = text(&out.stdout);
    let times: Vec<f64> = stdout
        .lines()
        .filter_map(|l| {
            let first = l.split_whitespace().next()?;
            first.contains('.').then(|| first.parse().ok())?
        })
        .collect();
    assert!(!times.is_empty(), "{stdout}");
    assert!(times.iter().all(|t| (2.0..=2.5).contains(t)), "{stdout}");
}

#[test]
fn rotated_files_replay_together_oldest_first() {
    use tether_record::rerecord::Rerecorder;
    use tether_record::{Recording, encode_header};

    let original = synthetic::recording(12, 600);
    let (recording, _) = Recording::parse(&original);
    let segment = &recording.segments[0];
    let mut rec = Rerecorder::from_header(&segment.header).unwrap();
    let (mut cut, mut header) = (0, Vec::new());
    for (i, line) in segment.lines.iter().enumerate() {
        if i == 350 {
            cut = rec.text().len();
            encode_header(&rec.header(1).unwrap(), &mut header).unwrap();
        }
        rec.feed(line.at_ns, line.input.clone());
    }
    let all = rec.finish();
    let older = file("rotated.rec.1", &all[..cut]);
    let newer = file("rotated.rec", &[&header[..], &all[cut..]].concat());
    let (older, newer) = (older.to_str().unwrap(), newer.to_str().unwrap());

    let out = tether(&[older, newer]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("replayed 600 lines from "), "{stdout}");
    assert!(stdout.contains("\n  2 segments, "), "{stdout}");

    // The newest file alone replays from its own snapshot.
    let out = tether(&[newer]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("replayed 250 lines"));

    // Out of order: the second file's header does not follow the first.
    let out = tether(&[newer, older]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{older}: line 1: segment 2")),
        "{stderr}"
    );
}

#[test]
fn each_shards_files_replay_as_their_own_recording() {
    use tether_core::testing::{Input, Outcome};
    use tether_record::rerecord::Rerecorder;

    let mut config = synthetic::config();
    config.shard = 1;
    let mut rec = Rerecorder::fresh(config).unwrap();
    let peer = "127.0.0.1:4000".parse().unwrap();
    let Outcome::Opened(id) = rec.feed(1_000, Input::Accept { peer }) else {
        panic!("accept")
    };
    rec.feed(2_000, Input::PeerEof { id });
    let shard0 = file("sharded.rec.shard0", &synthetic::recording(4, 200));
    let shard1 = file("sharded.rec.shard1", &rec.finish());
    let out = tether(&[shard0.to_str().unwrap(), shard1.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("replayed 200 lines from "), "{stdout}");
    assert!(
        stdout.contains(&format!("\nreplayed 2 lines from {}: ", shard1.display())),
        "{stdout}"
    );
}
