//! `tether-sim`: run, replay and shrink simulated traces; measure throughput.
//!
//! ```text
//! tether-sim run --seed N --steps M [--no-check] [--config default|seeded|'<config line>'] [--record FILE] [--out FILE]
//! tether-sim replay FILE [--verbose] [--no-check]
//! tether-sim shrink FILE [--out FILE]
//! tether-sim from-fuzz INPUT [--out FILE]
//! tether-sim bench [--steps M] [--seeds K] [--repeat R]
//! ```

use std::process::ExitCode;
use std::time::Instant;

use tether_sim::{
    Failure, Op, ShrinkLimits, Sim, SimConfig, Trace, seeded_config, seeded_ops, shrink,
};

const USAGE: &str = "usage:
  tether-sim run --seed N --steps M [--no-check] [--config default|seeded|'<config line>'] [--record FILE] [--out FILE]
  tether-sim replay FILE [--verbose] [--no-check]
  tether-sim shrink FILE [--out FILE]
  tether-sim from-fuzz INPUT [--out FILE]     (a `lifecycle` fuzz input as a trace)
  tether-sim bench [--steps M] [--seeds K] [--repeat R]";

struct Args {
    words: Vec<String>,
}

impl Args {
    fn flag(&mut self, name: &str) -> bool {
        let found = self.words.iter().position(|w| w == name);
        found.map(|i| self.words.remove(i)).is_some()
    }

    fn value(&mut self, name: &str) -> Result<Option<String>, String> {
        let Some(i) = self.words.iter().position(|w| w == name) else {
            return Ok(None);
        };
        self.words.remove(i);
        if i < self.words.len() {
            Ok(Some(self.words.remove(i)))
        } else {
            Err(format!("{name} needs a value"))
        }
    }

    fn number(&mut self, name: &str, default: u64) -> Result<u64, String> {
        match self.value(name)? {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{name}: not a number: {v}")),
        }
    }
}

fn main() -> ExitCode {
    let mut words: Vec<String> = std::env::args().skip(1).collect();
    if words.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let command = words.remove(0);
    let mut args = Args { words };
    let result = match command.as_str() {
        "run" => run(&mut args),
        "replay" => replay(&mut args),
        "shrink" => shrink_file(&mut args),
        "from-fuzz" => from_fuzz(&mut args),
        "bench" => bench(&mut args),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("tether-sim: {msg}");
            ExitCode::from(2)
        }
    }
}

fn read_trace(path: &str) -> Result<Trace, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Trace::parse(&text).map_err(|e| format!("{path}: {e}"))
}

fn write_trace(path: &str, trace: &Trace) -> Result<(), String> {
    std::fs::write(path, trace.to_string()).map_err(|e| format!("{path}: {e}"))
}

/// Shrinks, prints and saves a failure; the exit code says it failed.
fn report_failure(failure: &Failure, out: &str) -> Result<ExitCode, String> {
    println!("FAILED: {}", failure.violation);
    println!("shrinking {} lines...", failure.trace.lines.len());
    let mut small = shrink(failure, ShrinkLimits::default());
    small.trace.comments = vec![format!("caught: {}", small.violation)];
    println!("{small}");
    write_trace(out, &small.trace)?;
    println!("shrunk trace written to {out}");
    Ok(ExitCode::from(1))
}

fn run(args: &mut Args) -> Result<ExitCode, String> {
    let seed = args.number("--seed", 1)?;
    let steps = args.number("--steps", 100_000)? as usize;
    let checks = !args.flag("--no-check");
    let config = match args.value("--config")?.as_deref() {
        None | Some("seeded") => seeded_config(seed),
        Some("default") => SimConfig::default(),
        Some(line) => {
            SimConfig::parse(line.trim_start_matches("config")).map_err(|e| e.to_string())?
        }
    };
    let record = args.value("--record")?;
    let out = args
        .value("--out")?
        .unwrap_or_else(|| format!("failure-seed{seed}.trace"));
    let mut ops = seeded_ops(seed, steps);
    ops.push(Op::Drain);
    let mut sim = Sim::new(config.clone(), checks);
    sim.record();
    let started = Instant::now();
    for op in ops {
        if let Err(violation) = sim.run_op(op) {
            let trace = sim.trace().cloned().unwrap_or_else(|| Trace::new(config));
            return report_failure(&Failure { violation, trace }, &out);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ok: seed {seed}, {steps} ops, {} hub inputs in {secs:.3} s ({:.0} inputs/s, checks {})",
        sim.inputs(),
        sim.inputs() as f64 / secs,
        if checks { "on" } else { "off" }
    );
    println!("config {config}");
    if let (Some(path), Some(trace)) = (record, sim.trace()) {
        write_trace(&path, trace)?;
        println!("trace written to {path}");
    }
    Ok(ExitCode::SUCCESS)
}

fn replay(args: &mut Args) -> Result<ExitCode, String> {
    let verbose = args.flag("--verbose");
    let checks = !args.flag("--no-check");
    let path = args.words.first().cloned().ok_or("replay needs a FILE")?;
    let trace = read_trace(&path)?;
    if verbose {
        let mut sim = Sim::new(trace.config.clone(), checks);
        sim.log_calls();
        for line in &trace.lines {
            let result = sim.exec_line(line.at_ms, line.op);
            for l in sim.take_log() {
                println!("{l}");
            }
            if let Err(v) = result {
                println!("FAILED: {v}");
                return Ok(ExitCode::from(1));
            }
        }
        println!(
            "ok: {} lines, {} hub inputs",
            trace.lines.len(),
            sim.inputs()
        );
        return Ok(ExitCode::SUCCESS);
    }
    match trace.replay(checks) {
        Ok(inputs) => {
            println!("ok: {} lines, {inputs} hub inputs", trace.lines.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            println!("FAILED at line {}: {}", f.trace.lines.len(), f.violation);
            Ok(ExitCode::from(1))
        }
    }
}

fn shrink_file(args: &mut Args) -> Result<ExitCode, String> {
    let out = args.value("--out")?;
    let path = args.words.first().cloned().ok_or("shrink needs a FILE")?;
    let trace = read_trace(&path)?;
    match trace.replay(true) {
        Ok(_) => {
            println!("{path} passes: nothing to shrink");
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => report_failure(&f, &out.unwrap_or_else(|| format!("{path}.shrunk"))),
    }
}

fn from_fuzz(args: &mut Args) -> Result<ExitCode, String> {
    let path = args
        .words
        .first()
        .cloned()
        .ok_or("from-fuzz needs an INPUT file")?;
    let out = args
        .value("--out")?
        .unwrap_or_else(|| format!("{path}.trace"));
    let data = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let trace = tether_sim::fuzz_input_trace(&data);
    match trace.replay(true) {
        Ok(inputs) => {
            write_trace(&out, &trace)?;
            println!(
                "passes ({} lines, {inputs} hub inputs); trace written to {out}",
                trace.lines.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => report_failure(&f, &out),
    }
}

fn bench(args: &mut Args) -> Result<ExitCode, String> {
    let steps = args.number("--steps", 1_000_000)? as usize;
    let seeds = args.number("--seeds", 4)?;
    let repeat = args.number("--repeat", 3)?.max(1);
    println!("{seeds} seeds x {steps} ops, best of {repeat} runs per seed");
    for checks in [false, true] {
        let (mut inputs, mut secs) = (0u64, 0f64);
        for seed in 1..=seeds {
            let mut best = f64::MAX;
            let mut seed_inputs = 0;
            for _ in 0..repeat {
                let ops = seeded_ops(seed, steps);
                let mut sim = Sim::new(seeded_config(seed), checks);
                let started = Instant::now();
                for op in ops {
                    if let Err(v) = sim.run_op(op) {
                        return Err(format!(
                            "seed {seed}: {v} (run `tether-sim run --seed {seed}`)"
                        ));
                    }
                }
                best = best.min(started.elapsed().as_secs_f64());
                seed_inputs = sim.inputs();
            }
            secs += best;
            inputs += seed_inputs;
        }
        println!(
            "checks {:3}: {inputs} hub inputs from {} ops in {secs:.3} s = {:.0} inputs/s",
            if checks { "on" } else { "off" },
            steps as u64 * seeds,
            inputs as f64 / secs
        );
    }
    Ok(ExitCode::SUCCESS)
}
