//! `tether replay FILE... [--channel ID] [--from T] [--to T]
//! [--timeline|--quiet] [--shrink OUT]`: replays a flight recording
//! (docs/recording.md) through a fresh hub on a virtual clock, under the
//! invariant checker, and says whether every input returned what was
//! recorded and emitted the recorded outputs.
//!
//! Files are segments of one recording, oldest first (`FILE.2 FILE.1
//! FILE`). Exit status: 0 when everything matches; 1 on a divergence or a
//! broken invariant (the report names the line); 2 when a file cannot be
//! read or does not parse, or its snapshot does not restore (naming the
//! line; every complete line before a parse error is replayed first).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tether_core::ChannelId;
use tether_record::Recording;
use tether_record::replay::{ReplayError, ReplayOptions, ReplayReport, Replayer};
use tether_record::shrink::{ShrinkLimits, shrink_violation};
use tether_record::timeline::{Filter, Timeline};

/// The flags of `tether replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The recording's files, oldest segment first (FILE.2 FILE.1 FILE).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Follow one channel: only the inputs naming it and the outputs
    /// mentioning it (in the timeline). E.g. `#0.5`, `0.5` or `#1:0.5`.
    #[arg(long, value_name = "ID", value_parser = parse_channel)]
    pub channel: Option<ChannelId>,
    /// Timeline from this time since the recording's epoch (`12.5`, `1m30s`).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub from: Option<Duration>,
    /// Timeline up to this time since the recording's epoch.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub to: Option<Duration>,
    /// Print the timeline: one line per input with its outputs.
    #[arg(long, conflicts_with = "quiet")]
    pub timeline: bool,
    /// Print nothing but a divergence or an error (the exit status tells).
    #[arg(long)]
    pub quiet: bool,
    /// When an invariant is broken, shrink the recording to a minimal one
    /// that breaks it and write it to OUT.
    #[arg(long, value_name = "OUT")]
    pub shrink: Option<PathBuf>,
}

/// `#0.5`, `0.5` or `#1:0.5`.
pub fn parse_channel(s: &str) -> Result<ChannelId, String> {
    let with_hash = if s.starts_with('#') {
        s.to_string()
    } else {
        format!("#{s}")
    };
    with_hash
        .parse()
        .map_err(|e| format!("{s:?} is not a channel id (#slot.gen or #shard:slot.gen): {e}"))
}

/// Plain seconds (`12`, `12.000345`) or a humantime duration (`1m30s`).
pub fn parse_time(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|e| format!("{s:?} is not a time in seconds: {e}"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is neither seconds nor a duration like 1m30s: {e}"))
}

/// What one run of `tether replay` printed and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// 0 match, 1 divergence or violation, 2 unreadable or unparsable.
    pub status: u8,
}

/// One file, parsed.
struct File {
    name: String,
    recording: Recording,
    error: Option<tether_record::ParseError>,
}

/// Runs `tether replay` and returns what it prints (for tests), without
/// printing it. Files of different shards (`FILE.shard0 FILE.shard1`) are
/// separate recordings: each shard's files replay as one, in the order
/// given, with a summary each.
pub fn replay(args: &ReplayArgs) -> ReplayOutput {
    let mut out = ReplayOutput {
        stdout: String::new(),
        stderr: String::new(),
        status: 0,
    };
    // Read and parse every file; group them by shard, keeping the order.
    let mut chains: Vec<(u8, Vec<File>)> = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        let (recording, error) = match Recording::read(path) {
            Ok(parsed) => parsed,
            Err(e) => {
                let _ = writeln!(out.stderr, "tether replay: {name}: cannot read: {e}");
                out.status = 2;
                continue;
            }
        };
        let Some(shard) = recording.segments.first().map(|s| s.header.shard) else {
            let why = match &error {
                Some(e) => e.to_string(),
                None => "not a recording (no `tether-record` header)".into(),
            };
            let _ = writeln!(out.stderr, "tether replay: {name}: {why}");
            out.status = 2;
            continue;
        };
        let file = File {
            name,
            recording,
            error,
        };
        match chains.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, files)) => files.push(file),
            None => chains.push((shard, vec![file])),
        }
    }
    let several = chains.len() > 1;
    let mut shrunk = false;
    for (shard, files) in &chains {
        if several && args.timeline {
            let _ = writeln!(out.stdout, "shard {shard}:");
        }
        let (report, status) = replay_chain(args, files, &mut out);
        out.status = out.status.max(status);
        if !args.quiet {
            let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            summary(&mut out.stdout, &names.join(" "), &report);
        }
        if let (Some(target), Err(ReplayError::Violation { .. }), false) =
            (&args.shrink, &report.result, shrunk)
        {
            let header = &files[0].recording.segments[0].header;
            let lines: Vec<tether_record::Line> = files
                .iter()
                .flat_map(|f| f.recording.lines().map(|(_, l)| l.clone()))
                .collect();
            shrink_to(&mut out, target, header, &lines);
            shrunk = true;
        }
    }
    out
}

/// Replays one shard's files as one recording; returns the report and the
/// exit status (0, 1, 2), printing the timeline and any error into `out`.
fn replay_chain(args: &ReplayArgs, files: &[File], out: &mut ReplayOutput) -> (ReplayReport, u8) {
    let filter = Filter {
        channel: args.channel,
        from: args.from,
        to: args.to,
    };
    let mut timeline = Timeline::new(filter);
    let mut replayer = Replayer::new(ReplayOptions::default());
    let mut status = 0;
    for file in files {
        for segment in &file.recording.segments {
            let _ = replayer.segment(segment, |step| {
                if args.timeline {
                    timeline.step(step);
                }
            });
        }
        if let Some(e) = &file.error {
            replayer.parse_error(e);
        }
        if let Err(e) = &replayer.report().result {
            status = if e.is_unreadable() { 2 } else { 1 };
            let _ = writeln!(out.stderr, "tether replay: {}: {e}", file.name);
            break;
        }
    }
    if args.timeline {
        out.stdout.push_str(timeline.text());
    }
    (replayer.report(), status)
}

fn summary(out: &mut String, files: &str, report: &ReplayReport) {
    let kinds: Vec<String> = report
        .inputs
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    let violations = u8::from(matches!(report.result, Err(ReplayError::Violation { .. })));
    let verdict = match &report.result {
        Ok(()) => "outcomes and checksums match".to_string(),
        Err(ReplayError::Divergence(d)) => format!("diverged at line {}", d.line_number),
        Err(ReplayError::Violation { line_number, .. }) => {
            format!("invariant broken at line {line_number}")
        }
        Err(e) => match e.line_number() {
            Some(line) => format!("stopped at line {line}"),
            None => "stopped".into(),
        },
    };
    let unchecked = if report.checked || report.lines == 0 {
        ""
    } else {
        " (unchecked: the first segment starts mid-run)"
    };
    let _ = writeln!(
        out,
        "replayed {} from {files}: {verdict}, {}{unchecked}",
        plural(report.lines, "line"),
        plural(violations.into(), "invariant violation"),
    );
    let _ = writeln!(
        out,
        "  {}, {}, {:.6} s of recording, {}; inputs: {}",
        plural(report.segments as u64, "segment"),
        plural(report.channels as u64, "channel"),
        report.span().as_secs_f64(),
        plural(report.checksum.outputs, "output"),
        kinds.join(", ")
    );
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn shrink_to(
    out: &mut ReplayOutput,
    target: &PathBuf,
    header: &tether_record::Header,
    lines: &[tether_record::Line],
) {
    match shrink_violation(header, lines, ShrinkLimits::default()) {
        Ok(Some(shrunk)) => {
            let invariant = shrunk.violation.as_ref().map_or(0, |v| v.invariant);
            match std::fs::write(target, &shrunk.text) {
                Ok(()) => {
                    let _ = writeln!(
                        out.stdout,
                        "shrunk {} lines to {} breaking invariant {invariant}: {}",
                        shrunk.original,
                        shrunk.lines.len(),
                        target.display()
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        out.stderr,
                        "tether replay: {}: cannot write: {e}",
                        target.display()
                    );
                    out.status = 2;
                }
            }
        }
        Ok(None) => {
            let _ = writeln!(
                out.stdout,
                "the loose replay (ids remapped) breaks no invariant: nothing to shrink"
            );
        }
        Err(e) => {
            let _ = writeln!(out.stderr, "tether replay: cannot shrink: {e}");
        }
    }
}

/// Runs `tether replay`, printing its output, and returns its exit status.
pub fn run(args: &ReplayArgs) -> ExitCode {
    let out = replay(args);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    ExitCode::from(out.status)
}
