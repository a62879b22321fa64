//! Flow control under pressure: a burst past the queue limit with prompt
//! readers and one that never reads, a flood of 2-byte lines, and SIGTERM
//! in the middle of a burst.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::net::{Client, LineReader, end_of};
use super::server::{Server, ServerSpec, drain};
use super::{BURST_LINE_LEN, Scale, WRITE_STALL, join_by, serial};
use crate::client::End;

/// How long connecting and greeting may take.
pub(super) const SOON: Duration = Duration::from_secs(10);

/// `lines` burst lines of [`BURST_LINE_LEN`] bytes, each numbered and with
/// a filler that differs from line to line, so a lost, repeated, reordered
/// or torn line never looks right.
pub fn burst_payload(lines: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines * BURST_LINE_LEN);
    for i in 0..lines {
        let start = out.len();
        out.extend_from_slice(format!("L{i:07} ").as_bytes());
        let fill = BURST_LINE_LEN - 1 - (out.len() - start);
        out.extend((0..fill).map(|j| b'a' + ((i + j) % 26) as u8));
        out.push(b'\n');
    }
    out
}

/// What one client read of a burst.
#[derive(Debug)]
pub struct Tally {
    /// Who (for messages).
    pub name: String,
    /// The sender's lines received, in order and intact.
    pub lines: usize,
    /// Server notices (`* …`) read, at most a few.
    pub notices: Vec<String>,
    /// The first line that was not the next expected one.
    pub problem: Option<String>,
    /// How the stream ended (`None`: stopped after every line).
    pub end: Option<End>,
    /// Bytes after the last `\n` when reading stopped.
    pub partial: usize,
    /// The socket, kept open until the tally is dropped (a reader that
    /// stopped must not look like one that left).
    pub reader: Option<LineReader>,
}

impl Tally {
    pub(super) fn describe(&self) -> String {
        format!(
            "{}: {} lines, end {:?}, {} bytes after the last newline, problem {:?}, notices {:?}",
            self.name, self.lines, self.end, self.partial, self.problem, self.notices
        )
    }
}

/// Reads the relayed burst (`<from>: <payload line i>` for i = 0, 1, …)
/// until `stop_after` lines (if given), the end of the stream or
/// `deadline`. Notices (`* …`) are allowed anywhere; anything else ends the
/// reading with a problem. On an end it shuts the socket down (a client
/// closes once the server has closed).
fn read_burst(
    name: String,
    mut reader: LineReader,
    from: &str,
    payload: &[u8],
    stop_after: Option<usize>,
    deadline: Instant,
    progress: &AtomicUsize,
) -> Tally {
    let prefix = format!("{from}: ").into_bytes();
    let total = payload.len() / BURST_LINE_LEN;
    let mut tally = Tally {
        name,
        lines: 0,
        notices: Vec::new(),
        problem: None,
        end: None,
        partial: 0,
        reader: None,
    };
    loop {
        if stop_after == Some(tally.lines) {
            break;
        }
        let line = match reader.next_line(deadline) {
            Ok(line) => line,
            Err(end) => {
                tally.end = Some(end);
                let _ = reader.stream().shutdown(Shutdown::Both);
                break;
            }
        };
        if line.starts_with(b"* ") {
            if tally.notices.len() < 4 {
                tally
                    .notices
                    .push(String::from_utf8_lossy(line).into_owned());
            }
            continue;
        }
        let i = tally.lines;
        let expected =
            (i < total).then(|| &payload[i * BURST_LINE_LEN..(i + 1) * BURST_LINE_LEN - 1]);
        let ok = expected.is_some_and(|expected| {
            line.len() == prefix.len() + expected.len()
                && line.starts_with(&prefix)
                && &line[prefix.len()..] == expected
        });
        if !ok {
            let shown: String = String::from_utf8_lossy(line).chars().take(60).collect();
            tally.problem = Some(format!(
                "line {i}: got {shown:?} ({} bytes), expected {:?}…",
                line.len(),
                expected.map(|e| {
                    let mut s = String::from_utf8_lossy(&prefix).into_owned();
                    s.extend(String::from_utf8_lossy(e).chars().take(20));
                    s
                })
            ));
            break;
        }
        tally.lines += 1;
        progress.store(tally.lines, Ordering::Relaxed);
    }
    tally.partial = reader.partial().len();
    tally.reader = Some(reader);
    tally
}

pub(super) fn spawn_reader(
    name: String,
    reader: LineReader,
    from: &str,
    payload: &Arc<Vec<u8>>,
    stop_after: Option<usize>,
    deadline: Instant,
) -> (JoinHandle<Tally>, Arc<AtomicUsize>) {
    let progress = Arc::new(AtomicUsize::new(0));
    let handle = {
        let from = from.to_owned();
        let payload = payload.clone();
        let progress = progress.clone();
        std::thread::spawn(move || {
            read_burst(
                name, reader, &from, &payload, stop_after, deadline, &progress,
            )
        })
    };
    (handle, progress)
}

/// Writes `payload` in one go (no pacing); an error ends it, and so does
/// a write that makes no progress for [`WRITE_STALL`].
pub(super) fn spawn_writer(
    stream: TcpStream,
    payload: Arc<Vec<u8>>,
) -> JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        stream.set_write_timeout(Some(WRITE_STALL))?;
        (&stream).write_all(&payload)
    })
}

pub(super) fn connect(server: &mut Server, name: &str, deadline: Instant) -> Client {
    Client::connect(server.chat, deadline)
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", server.context()))
}

/// **Burst.** One sender sends `burst_lines` × 1,000 B lines without
/// pacing (and reads its own echoes concurrently) while three prompt
/// readers read as fast as they can and one client with a 4 KiB receive
/// buffer never reads; `--queue-limit 65536 --stall-timeout 3s`. Every
/// prompt reader (and the sender) receives every line in order and intact
/// and none is evicted; the non-reader is evicted as a slow consumer.
pub fn burst(runtime: &'static str, scale: &Scale) {
    let _serial = serial();
    let lines = scale.burst_lines;
    let stall = Duration::from_secs(3);
    let mut server = ServerSpec::new(runtime, "burst")
        .flag("--queue-limit", "65536")
        .flag("--stall-timeout", "3s")
        .start();
    let greet_by = Instant::now() + SOON;
    let sender = connect(&mut server, "sender", greet_by);
    let readers: Vec<Client> = (0..3)
        .map(|k| connect(&mut server, &format!("reader {k}"), greet_by))
        .collect();
    let lazy = Client::connect_small_window(server.chat, greet_by)
        .unwrap_or_else(|e| panic!("non-reader: {e}\n{}", server.context()));
    let payload = Arc::new(burst_payload(lines));
    let deadline = Instant::now() + scale.deadline;
    let started = Instant::now();
    let mut tallies = Vec::new();
    for (k, reader) in readers.into_iter().enumerate() {
        tallies.push(
            spawn_reader(
                format!("reader {k} ({})", reader.id),
                reader.reader,
                &sender.id,
                &payload,
                Some(lines),
                deadline,
            )
            .0,
        );
    }
    let writer = spawn_writer(sender.writer(), payload.clone());
    let from = sender.id.clone();
    tallies.push(
        spawn_reader(
            format!("sender ({from}, its echoes)"),
            sender.reader,
            &from,
            &payload,
            Some(lines),
            deadline,
        )
        .0,
    );
    let tallies: Vec<Tally> = tallies
        .into_iter()
        .map(|t| join_by("a burst reader", t, deadline))
        .collect();
    let took = started.elapsed();
    let written = join_by("the burst's writer", writer, deadline);
    let mut failures = Vec::new();
    if let Err(e) = written {
        failures.push(format!("the sender could not send its burst: {e}"));
    }
    for tally in &tallies {
        if tally.lines != lines || tally.problem.is_some() {
            failures.push(format!(
                "prompt client did not get all {lines} lines: {}",
                tally.describe()
            ));
        }
    }
    // The non-reader: evicted as a slow consumer by the time the stall
    // timeout ran out (plus slack).
    let evict_by = Instant::now() + stall + Duration::from_secs(10);
    let mut stats = None;
    while Instant::now() < evict_by {
        if let Ok(s) = server.stats(Duration::from_secs(5)) {
            let evicted = s.get("disconnected.slow-consumer").unwrap_or(0) >= 1;
            stats = Some(s);
            if evicted {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (mut lazy_stream, _) = lazy.reader.into_parts();
    let (lazy_bytes, lazy_end) = drain(&mut lazy_stream, Duration::from_secs(10));
    match &stats {
        None => failures.push("admin `stats` never answered".into()),
        Some(s) => {
            if s.get("disconnected.slow-consumer").unwrap_or(0) < 1 {
                failures.push(format!(
                    "the non-reader {} was not evicted as a slow consumer within {:?} (stats: {s})",
                    lazy.id,
                    stall + Duration::from_secs(10)
                ));
            }
            if s.disconnected_total() > 1 {
                failures.push(format!(
                    "more clients than the non-reader were disconnected (stats: {s})"
                ));
            }
        }
    }
    if !matches!(lazy_end, End::Eof | End::Reset) {
        failures.push(format!(
            "the non-reader's socket did not end once it read: {lazy_bytes} bytes then {lazy_end:?}"
        ));
    }
    eprintln!(
        "pressure burst [{runtime}, {}]: {lines} x {BURST_LINE_LEN} B to 4 prompt readers in {took:?}; \
         non-reader read {lazy_bytes} B then {lazy_end:?}; stats: {}",
        scale.name,
        stats.map(|s| s.to_string()).unwrap_or_default()
    );
    server.fail_if_any("burst", &failures);
}

/// What a raw reader counted.
#[derive(Debug)]
struct Count {
    name: String,
    lines: usize,
    bytes: usize,
    end: Option<End>,
    /// The socket, kept open until the count is dropped.
    _socket: TcpStream,
}

/// Counts `\n`s and bytes until `lines` lines, the end or `deadline`.
fn count_lines(name: String, reader: LineReader, lines: usize, deadline: Instant) -> Count {
    let (mut stream, rest) = reader.into_parts();
    let mut count = Count {
        name,
        lines: rest.iter().filter(|&&b| b == b'\n').count(),
        bytes: rest.len(),
        end: None,
        _socket: stream.try_clone().expect("clone socket"),
    };
    let mut buf = vec![0u8; 256 * 1024];
    while count.lines < lines {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            count.end = Some(End::Timeout);
            break;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => {
                count.end = Some(End::Eof);
                break;
            }
            Ok(n) => {
                count.bytes += n;
                count.lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
            }
            Err(e) => {
                if let Some(end) = end_of(&e) {
                    count.end = Some(end);
                    break;
                }
            }
        }
    }
    count
}

/// **Tiny lines.** One client sends `tiny_bytes` of `a\n` as fast as it can
/// while it and one observer drain their sockets (`--queue-limit 65536`).
/// The server's RSS grows by at most 16 MiB (after minus before, and the
/// peak sampled during): each of the 1 M (full: 10 M) lines is relayed
/// 4× over (2 recipients, ~8 B each), so only pacing by the slowest reader
/// and the per-connection read-ahead keep it there. Both receive every
/// line (counted, and the byte count must match) and nobody is evicted.
pub fn tiny_lines(runtime: &'static str, scale: &Scale) {
    const MAX_GROWTH: u64 = 16 << 20;
    let _serial = serial();
    let lines = scale.tiny_bytes / 2;
    let mut server = ServerSpec::new(runtime, "tiny-lines")
        .flag("--queue-limit", "65536")
        .start();
    let greet_by = Instant::now() + SOON;
    let sender = connect(&mut server, "sender", greet_by);
    let observer = connect(&mut server, "observer", greet_by);
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss().expect("server RSS");
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let pid = server.pid;
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = rss_of(pid) {
                    peak = peak.max(rss);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let line_len = sender.id.len() + ": a\n".len();
    let deadline = Instant::now() + scale.deadline;
    let started = Instant::now();
    let writer = spawn_writer(sender.writer(), Arc::new(b"a\n".repeat(lines)));
    let counters: Vec<JoinHandle<Count>> = [
        (format!("sender {}", sender.id), sender.reader),
        (format!("observer {}", observer.id), observer.reader),
    ]
    .into_iter()
    .map(|(name, reader)| std::thread::spawn(move || count_lines(name, reader, lines, deadline)))
    .collect();
    let counts: Vec<Count> = counters
        .into_iter()
        .map(|c| join_by("a tiny-line counter", c, deadline))
        .collect();
    let took = started.elapsed();
    let written = join_by("the tiny lines' writer", writer, deadline);
    std::thread::sleep(Duration::from_millis(300));
    let after = server.rss().unwrap_or(0);
    stop.store(true, Ordering::Relaxed);
    let peak = join_by("the RSS sampler", sampler, Instant::now()).max(after);
    let mut failures = Vec::new();
    if let Err(e) = written {
        failures.push(format!("the sender could not send: {e}"));
    }
    for count in &counts {
        if count.lines != lines || count.bytes != lines * line_len {
            failures.push(format!(
                "{} received {} of {lines} lines ({} bytes, expected {}), end {:?}",
                count.name,
                count.lines,
                count.bytes,
                lines * line_len,
                count.end
            ));
        }
    }
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    for (what, value) in [("after", after), ("peak", peak)] {
        if value.saturating_sub(before) > MAX_GROWTH {
            failures.push(format!(
                "RSS grew by {:.1} MiB ({what}: {:.1} MiB, before: {:.1} MiB), more than {} MiB",
                mb(value.saturating_sub(before)),
                mb(value),
                mb(before),
                MAX_GROWTH >> 20
            ));
        }
    }
    let stats = server.stats(Duration::from_secs(5));
    match &stats {
        Ok(s) if s.disconnected_total() > 0 => {
            failures.push(format!("a client was disconnected (stats: {s})"));
        }
        Ok(_) => {}
        Err(e) => failures.push(format!("admin `stats`: {e}")),
    }
    eprintln!(
        "pressure tiny-lines [{runtime}, {}]: {lines} lines of 2 B relayed to 2 clients in {took:?}; \
         RSS before {:.1} MiB, peak {:.1} MiB, after {:.1} MiB",
        scale.name,
        mb(before),
        mb(peak),
        mb(after)
    );
    server.fail_if_any("tiny lines", &failures);
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// **SIGTERM mid-burst.** A sender offers 4 × `sigterm_lines` lines while
/// three observers (and the sender) read; once every observer has
/// `sigterm_lines / 2` lines the server gets SIGTERM (`--shutdown-grace
/// 5s`). Every client reads to EOF (not a reset), every line it read is
/// whole and is the next line of the burst, and the server exits with
/// status 0 within grace + 10 s.
pub fn sigterm_mid_burst(runtime: &'static str, scale: &Scale) {
    let _serial = serial();
    let grace = Duration::from_secs(5);
    let offered = scale.sigterm_lines * 4;
    let signal_at = scale.sigterm_lines / 2;
    let mut server = ServerSpec::new(runtime, "sigterm")
        .flag("--shutdown-grace", "5s")
        .start();
    let greet_by = Instant::now() + SOON;
    let sender = connect(&mut server, "sender", greet_by);
    let observers: Vec<Client> = (0..3)
        .map(|k| connect(&mut server, &format!("observer {k}"), greet_by))
        .collect();
    let payload = Arc::new(burst_payload(offered));
    let deadline = Instant::now() + scale.deadline;
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for (k, observer) in observers.into_iter().enumerate() {
        let (handle, seen) = spawn_reader(
            format!("observer {k} ({})", observer.id),
            observer.reader,
            &sender.id,
            &payload,
            None,
            deadline,
        );
        readers.push(handle);
        progress.push(seen);
    }
    let writer = spawn_writer(sender.writer(), payload.clone());
    let from = sender.id.clone();
    readers.push(
        spawn_reader(
            format!("sender ({from}, its echoes)"),
            sender.reader,
            &from,
            &payload,
            None,
            deadline,
        )
        .0,
    );
    let mut failures = Vec::new();
    let reached = loop {
        let least = progress
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        if least >= signal_at {
            break true;
        }
        if Instant::now() >= deadline || readers.iter().any(JoinHandle::is_finished) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !reached {
        failures.push(format!(
            "the observers did not reach {signal_at} lines before the signal (progress {:?})",
            progress
                .iter()
                .map(|p| p.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        ));
    }
    let signalled = Instant::now();
    server.signal(Signal::TERM).expect("SIGTERM");
    let status = server.wait_exit(grace + Duration::from_secs(10));
    let exited_after = signalled.elapsed();
    match status {
        None => {
            failures.push(format!(
                "still running {:?} after SIGTERM",
                grace + Duration::from_secs(10)
            ));
            server.kill();
        }
        Some(status) if !status.success() => {
            failures.push(format!("exit status after SIGTERM: {status}"));
        }
        Some(_) => {}
    }
    let tallies: Vec<Tally> = readers
        .into_iter()
        .map(|r| join_by("an observer", r, deadline))
        .collect();
    let _ = join_by("the sender's writer", writer, deadline);
    for tally in &tallies {
        if tally.end != Some(End::Eof) || tally.partial != 0 || tally.problem.is_some() {
            failures.push(format!(
                "not a clean drain (whole lines, then EOF): {}",
                tally.describe()
            ));
        }
    }
    eprintln!(
        "pressure sigterm [{runtime}, {}]: signal after {signal_at} lines, exit {status:?} after {exited_after:?}; read: {:?}",
        scale.name,
        tallies
            .iter()
            .map(|t| (t.lines, t.end, t.partial))
            .collect::<Vec<_>>()
    );
    server.fail_if_any("SIGTERM mid-burst", &failures);
}
