//! Regression replay on stable: every committed fuzz corpus file and every
//! saved trace runs through the checked simulator, plus a seeded random run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tether_sim::{
    FUZZ_TAG_V2, FUZZ_TAG_V3, Op, Sim, SimConfig, Timeout, Trace, decode_fuzz_input, fuzz_ids,
    fuzz_lifecycle, run_seeded, seeded_config,
};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_lifecycle_corpus_file_passes() {
    let dir = repo().join("fuzz/corpus/lifecycle");
    let all = files(&dir);
    assert!(!all.is_empty(), "no corpus in {}", dir.display());
    for path in all {
        let data = std::fs::read(&path).expect("readable corpus file");
        if let Err(f) = fuzz_lifecycle(&data) {
            panic!("{}: {f}", path.display());
        }
    }
}

#[test]
fn every_ids_corpus_file_passes() {
    let dir = repo().join("fuzz/corpus/ids");
    let all = files(&dir);
    assert!(!all.is_empty(), "no corpus in {}", dir.display());
    for path in all {
        let data = std::fs::read(&path).expect("readable corpus file");
        if let Err(v) = fuzz_ids(&data) {
            panic!("{}: {v}", path.display());
        }
    }
}

#[test]
fn every_saved_trace_replays_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let all = files(&dir);
    assert!(!all.is_empty(), "no traces in {}", dir.display());
    for path in all {
        let text = std::fs::read_to_string(&path).expect("readable trace");
        let trace = Trace::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            trace.comments.iter().any(|c| c.starts_with("caught:")),
            "{}: needs a `# caught: ...` header",
            path.display()
        );
        if let Err(f) = trace.replay(true) {
            panic!("{}: {f}", path.display());
        }
    }
}

/// 200,000 random ops over 8 seeds (25,000 each, each seed with its own
/// configuration), all checks on, each ending with a drain.
#[test]
fn seeded_random_runs_pass() {
    let started = Instant::now();
    let mut inputs = 0;
    for seed in 1..=8 {
        let config = seeded_config(seed);
        match run_seeded(&config, seed, 25_000, true) {
            Ok(report) => inputs += report.inputs,
            Err(f) => {
                panic!("seed {seed} (replay: tether-sim run --seed {seed} --steps 25000): {f}")
            }
        }
    }
    assert!(inputs >= 200_000, "only {inputs} hub inputs");
    eprintln!(
        "seeded runs: {inputs} hub inputs in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_recorded_trace_replays_to_the_same_run() {
    let config = seeded_config(42);
    let mut ops = tether_sim::seeded_ops(42, 3_000);
    ops.push(Op::Drain);
    let mut sim = tether_sim::Sim::new(config, true);
    sim.record();
    for op in ops {
        sim.run_op(op).expect("seed 42 passes");
    }
    let text = sim.trace().expect("recording").to_string();
    let parsed = Trace::parse(&text).expect("a recorded trace parses");
    assert_eq!(parsed.to_string(), text, "format and parse round-trip");
    assert_eq!(parsed.replay(true).expect("replays clean"), sim.inputs());
}

#[test]
fn hand_written_traces_parse_every_op() {
    let text = "\
# tether-sim trace v1
# caught: nothing, a syntax tour
config max=2 resume=1 limit=8 high=4 low=1 overflow=kick half-close=allow kick=abort idle=off login=max flush=100 overdue=200 confirm=on-wait
@0 accept
@0 accept-flood 3
@1 peer-send c0 5 ; a comment
@1 send c1 tiny:3
@1 send c0 over-limit
@1 broadcast small:2
@2 write c0 50
@2 write c1 255
@2 flush
@0 peer-eof c0
@3 io-error c1 reset
@3 kick c0 graceful 7
@3 close c1
@3 auth c0
@3 attach c0
@3 detach c0
@3 confirm c0
@3 timeout
@3 stale 2 closed
@3 forged #1:3.2 send
@500 wait
@500 shutdown 100
@500 drain
";
    let trace = Trace::parse(text).expect("parses");
    assert_eq!(trace.lines.len(), 23);
    trace.replay(true).expect("replays clean");
    assert!(Trace::parse("@x accept").is_err());
    assert!(Trace::parse("@1 teleport c0").is_err());
    assert!(Trace::parse("config max=two").is_err());
}

#[test]
fn corpus_files_without_the_tag_decode_with_overhead_and_stall_off() {
    let dir = repo().join("fuzz/corpus/lifecycle");
    let (mut old, mut tagged) = (0, 0);
    for path in files(&dir) {
        let data = std::fs::read(&path).expect("readable corpus file");
        let (config, _) = decode_fuzz_input(&data);
        if data.starts_with(FUZZ_TAG_V2) || data.starts_with(FUZZ_TAG_V3) {
            tagged += 1;
        } else {
            old += 1;
            // What these inputs meant when they were minimised.
            assert_eq!(
                (config.overhead, config.stall),
                (0, Timeout::Off),
                "{}",
                path.display()
            );
        }
    }
    assert!(old >= 200 && tagged >= 1, "{old} untagged, {tagged} tagged");
    // The tag turns the new policies on (for some inputs).
    let mut data = FUZZ_TAG_V2.to_vec();
    data.extend_from_slice(&[0xff; 64]);
    let (config, _) = decode_fuzz_input(&data);
    assert!(
        config.overhead > 0 || config.stall != Timeout::Off,
        "{config}"
    );
}

/// Runs the lines of a hand-written trace on a checked simulator.
fn run_lines(sim: &mut Sim, lines: &[tether_sim::Line]) {
    for line in lines {
        sim.exec_line(line.at_ms, line.op)
            .unwrap_or_else(|v| panic!("@{} {}: {v}", line.at_ms, line.op));
    }
}

#[test]
fn a_reader_that_never_reads_is_evicted_at_its_stall_deadline() {
    let trace = Trace::parse(
        "config max=4 resume=2 limit=4096 high=1024 low=256 overhead=96 idle=off flush=500 stall=300\n\
         @0 accept\n\
         @0 accept\n\
         @0 send c0 tiny:9\n\
         @0 send c1 tiny:9\n\
         @200 write c1 50\n\
         @299 wait\n\
         @300 wait\n",
    )
    .expect("parses");
    assert_eq!(trace.config.overhead, 96);
    assert_eq!(trace.config.stall, Timeout::Ms(300));
    let mut sim = Sim::new(trace.config.clone(), true);
    let (before, at) = trace.lines.split_at(trace.lines.len() - 1);
    run_lines(&mut sim, before);
    assert_eq!(
        sim.hub().stats().disconnected.slow_consumer,
        0,
        "not before 300 ms"
    );
    run_lines(&mut sim, at);
    let stats = sim.hub().stats();
    // c0 wrote nothing for 300 ms: aborted; c1 progressed at 200 ms: alive.
    assert_eq!(stats.disconnected.slow_consumer, 1);
    assert_eq!(stats.bytes_dropped, 10);
    assert_eq!(stats.usable, 1);
    let c1 = sim
        .hub()
        .channels()
        .find(|c| c.state.is_usable())
        .expect("c1");
    assert_eq!((c1.queued, c1.charged), (5, 10 + 96 - 5));
}

#[test]
fn the_config_line_round_trips_the_new_keys() {
    let config = SimConfig {
        overhead: 12,
        stall: Timeout::Max,
        ..seeded_config(3)
    };
    let mut trace = Trace::new(config.clone());
    trace.lines.push(tether_sim::Line {
        at_ms: 0,
        op: Op::Accept,
    });
    let parsed = Trace::parse(&trace.to_string()).expect("parses");
    assert_eq!(parsed.config, config);
    parsed.replay(true).expect("replays clean");
}

#[test]
fn kick_reason_and_broadcast_to_are_ops_behind_the_v3_tag() {
    let text =
        "config max=4 resume=2 limit=4096 high=1024 low=256 overhead=0 idle=off flush=500 stall=off
@0 accept
@0 accept
@0 kick-reason c1 abort slow-consumer
@1 broadcast-to 7 tiny:3 stale
@2 kick-reason c0 graceful io-error
@2 kick-reason c0 abort kicked
@3 broadcast-to 255 empty
@500 drain
";
    let trace = Trace::parse(text).expect("parses");
    assert_eq!(trace.lines.len(), 8);
    assert_eq!(Trace::parse(&trace.to_string()).expect("round trip"), trace);
    trace.replay(true).expect("replays clean");
    assert!(Trace::parse("@0 kick-reason c0 abort tired").is_err());
    assert!(Trace::parse("@0 broadcast-to 3 tiny:1 fresh").is_err());

    // Only a `T3` input draws them; the same bytes untagged or `T2` never do.
    let new = |op: &Op| matches!(op, Op::KickReason { .. } | Op::BroadcastTo { .. });
    let body: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (tag, drawn) in [(&b""[..], false), (FUZZ_TAG_V2, false), (FUZZ_TAG_V3, true)] {
        let data: Vec<u8> = tag.iter().chain(&body).copied().collect();
        let (_, ops) = decode_fuzz_input(&data);
        assert_eq!(ops.iter().any(new), drawn, "{tag:?}");
        fuzz_lifecycle(&data).unwrap_or_else(|f| panic!("{tag:?}: {f}"));
    }
}
