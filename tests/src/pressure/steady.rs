//! A reader that reads slowly but steadily is paced, never evicted.

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::flow::{SOON, burst_payload, connect, spawn_reader, spawn_writer};
use super::net::{Client, end_of};
use super::{BURST_LINE_LEN, Scale, join_by, serial};
use crate::client::End;

/// Lines of the burst: 6 MB, more than loopback's autotuned send buffer
/// (~3 MB, which the slow reader's socket absorbs without any pacing) plus
/// the 1 MiB queue limit, so the sender must be paced for seconds. At 3 MB
/// every server passes; at 6 MB tokio evicted the reader after ~1 MB.
pub const STEADY_LINES: usize = 6_000;
/// The slow reader takes at most its window (4 KiB) this often: ~400 KB/s,
/// so the kernel frees the server's send buffer by 4 KiB at a time and
/// reports it writable (a third free) only after seconds.
pub const STEADY_READ_EVERY: Duration = Duration::from_millis(10);

/// What the slow reader read.
#[derive(Debug)]
struct Steady {
    /// Burst lines read, in order and intact.
    lines: usize,
    /// The first line that was not the next one of the burst.
    problem: Option<String>,
    /// How the stream ended before the last line, if it did.
    end: Option<End>,
    took: Duration,
    /// The socket, kept open until the stats are read (a reader that
    /// finished must not count as one that left).
    _socket: Option<TcpStream>,
}

/// **A slow, steady reader.** One sender sends [`STEADY_LINES`] × 1,000 B
/// lines without pacing; two prompt readers read as fast as they can; one
/// client with a 4 KiB receive buffer reads 4 KiB every
/// [`STEADY_READ_EVERY`] (server defaults: 1 MiB queue limit, 10 s stall
/// timeout). The slow client still takes bytes all along, so the relay is
/// paced to it (docs/design.md §5.2: the driver asks the kernel before it
/// believes a peer stopped reading): everyone, the slow reader included,
/// reads every line in order and intact, and nobody is disconnected.
pub fn steady_reader(runtime: &'static str, scale: &Scale) {
    let _serial = serial();
    let mut server = super::ServerSpec::new(runtime, "steady-reader").start();
    let greet_by = Instant::now() + SOON;
    let sender = connect(&mut server, "sender", greet_by);
    let prompt: Vec<Client> = (0..2)
        .map(|k| connect(&mut server, &format!("reader {k}"), greet_by))
        .collect();
    let slow = Client::connect_small_window(server.chat, greet_by)
        .unwrap_or_else(|e| panic!("slow reader: {e}\n{}", server.context()));
    let payload = Arc::new(burst_payload(STEADY_LINES));
    let deadline = Instant::now() + scale.deadline;
    let started = Instant::now();
    let mut tallies = Vec::new();
    for (k, reader) in prompt.into_iter().enumerate() {
        let name = format!("reader {k} ({})", reader.id);
        let (tally, _) = spawn_reader(
            name,
            reader.reader,
            &sender.id,
            &payload,
            Some(STEADY_LINES),
            deadline,
        );
        tallies.push(tally);
    }
    let slow_id = slow.id.clone();
    let steady = {
        let (stream, rest) = slow.reader.into_parts();
        let prefix = format!("{}: ", sender.id);
        let payload = payload.clone();
        std::thread::spawn(move || read_steadily(stream, rest, &prefix, &payload, deadline))
    };
    let writer = spawn_writer(sender.writer(), payload.clone());
    let from = sender.id.clone();
    let (echoes, _) = spawn_reader(
        format!("sender ({from}, its echoes)"),
        sender.reader,
        &from,
        &payload,
        Some(STEADY_LINES),
        deadline,
    );
    tallies.push(echoes);
    let mut failures = Vec::new();
    let tallies: Vec<_> = (tallies.into_iter())
        .map(|tally| join_by("a prompt reader", tally, deadline))
        .collect();
    for tally in &tallies {
        if tally.lines != STEADY_LINES || tally.problem.is_some() {
            failures.push(format!(
                "a prompt client did not get all {STEADY_LINES} lines: {}",
                tally.describe()
            ));
        }
    }
    let steady = join_by("the slow reader", steady, deadline);
    if let Err(e) = join_by("the burst's writer", writer, deadline) {
        failures.push(format!("the sender could not send its burst: {e}"));
    }
    if steady.lines != STEADY_LINES || steady.problem.is_some() {
        failures.push(format!(
            "the slow but steady reader {slow_id} read {} of {STEADY_LINES} lines in {:?} \
             (end {:?}, problem {:?})",
            steady.lines, steady.took, steady.end, steady.problem
        ));
    }
    let stats = server.stats(Duration::from_secs(5));
    match &stats {
        Ok(s) if s.disconnected_total() > 0 => {
            failures.push(format!("a reading client was disconnected (stats: {s})"));
        }
        Ok(_) => {}
        Err(e) => failures.push(format!("admin `stats`: {e}")),
    }
    eprintln!(
        "pressure steady-reader [{runtime}]: {STEADY_LINES} x {BURST_LINE_LEN} B; the slow reader \
         read {} lines in {:?}, the burst took {:?}; stats: {}",
        steady.lines,
        steady.took,
        started.elapsed(),
        stats.map(|s| s.to_string()).unwrap_or_default()
    );
    drop((tallies, steady));
    server.fail_if_any("steady reader", &failures);
}

/// Reads at most 4 KiB every [`STEADY_READ_EVERY`] and checks each line:
/// a notice (`* …`) or the next burst line, `prefix` + payload line.
fn read_steadily(
    mut stream: TcpStream,
    mut pending: Vec<u8>,
    prefix: &str,
    payload: &[u8],
    deadline: Instant,
) -> Steady {
    let started = Instant::now();
    let mut steady = Steady {
        lines: 0,
        problem: None,
        end: None,
        took: Duration::ZERO,
        _socket: None,
    };
    let mut buf = [0u8; 4096];
    while steady.lines < STEADY_LINES && steady.problem.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            steady.end = Some(End::Timeout);
            break;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => {
                steady.end = Some(End::Eof);
                break;
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) => match end_of(&e) {
                Some(end) => {
                    steady.end = Some(end);
                    break;
                }
                None => continue,
            },
        }
        let mut used = 0;
        while let Some(at) = pending[used..].iter().position(|&b| b == b'\n') {
            let line = &pending[used..used + at];
            used += at + 1;
            if line.starts_with(b"* ") {
                continue;
            }
            let i = steady.lines;
            let expected = (i < STEADY_LINES)
                .then(|| &payload[i * BURST_LINE_LEN..(i + 1) * BURST_LINE_LEN - 1]);
            let ok = expected.is_some_and(|expected| {
                line.len() == prefix.len() + expected.len()
                    && line.starts_with(prefix.as_bytes())
                    && &line[prefix.len()..] == expected
            });
            if !ok {
                let shown: String = String::from_utf8_lossy(line).chars().take(40).collect();
                steady.problem = Some(format!("line {i}: got {shown:?}"));
                break;
            }
            steady.lines += 1;
        }
        pending.drain(..used);
        std::thread::sleep(STEADY_READ_EVERY);
    }
    steady.took = started.elapsed();
    steady._socket = Some(stream);
    steady
}
