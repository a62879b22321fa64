//! Regression replay on stable: every committed fuzz corpus file and every
//! saved trace runs through the checked simulator, plus a seeded random run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tether_sim::{Op, Trace, fuzz_ids, fuzz_lifecycle, run_seeded, seeded_config};

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
