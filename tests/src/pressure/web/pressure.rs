//! WebSocket clients under pressure: a slow consumer, a flood of tiny
//! messages, SIGTERM mid-burst, many idle clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use socket2::{Domain, Socket, Type};

use super::client::{TEXT, WsClient, frame};
use super::{SOON, join, web_addr};
use crate::pressure::net::Client;
use crate::pressure::server::ServerSpec;
use crate::pressure::{Scale, join_by, serial};

/// A WebSocket client with a 4 KiB receive buffer that never reads.
fn non_reader(addr: SocketAddr) -> Result<WsClient, String> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(4096)
        .map_err(|e| e.to_string())?;
    socket
        .connect_timeout(&addr.into(), SOON)
        .map_err(|e| format!("connect: {e}"))?;
    WsClient::upgrade(socket.into(), SOON)
}

/// Reads `<from>: L<i> …` for i = 0, 1, … as text messages until `lines`
/// (then returns at once) or the close frame; returns the lines read in order, the close code
/// and whether the FIN followed it, and the first unexpected message.
fn read_numbered(
    ws: &mut WsClient,
    from: &str,
    lines: usize,
    deadline: Instant,
    progress: &AtomicUsize,
) -> (usize, Option<u16>, bool, Option<String>) {
    let mut read = 0;
    loop {
        match ws.next(deadline) {
            super::Frame::Text(text) => {
                let expected = format!("{from}: L{read:07} ");
                if text.starts_with(&expected) {
                    read += 1;
                    progress.fetch_add(1, Ordering::Relaxed);
                    if read == lines {
                        return (read, None, false, None);
                    }
                } else if !text.starts_with("* ") && read < lines {
                    return (read, None, false, Some(text));
                }
            }
            super::Frame::Ping(_) | super::Frame::Pong | super::Frame::Binary(_) => {}
            super::Frame::Close(code, _) => {
                let fin = matches!(ws.next(deadline), super::Frame::End);
                return (read, code, fin, None);
            }
            super::Frame::End | super::Frame::Timeout => return (read, None, false, None),
        }
    }
}

/// **Slow WebSocket consumer.** A TCP sender bursts `burst_lines` ×
/// 1,000 B lines; one browser reads everything, one with a 4 KiB receive
/// buffer never reads (`--queue-limit 65536 --stall-timeout 3s`). The
/// reader gets every line in order; the non-reader is evicted as a slow
/// consumer by the kernel rule (exactly one `disconnected.slow-consumer`).
pub fn slow_consumer_ws(runtime: &'static str, scale: &Scale) {
    let _serial = serial();
    let lines = scale.burst_lines;
    let mut server = ServerSpec::new(runtime, "web-slow")
        .flag("--queue-limit", "65536")
        .flag("--stall-timeout", "3s")
        .start();
    let addr = web_addr(&mut server);
    let sender = Client::connect(server.chat, Instant::now() + SOON)
        .unwrap_or_else(|e| panic!("sender: {e}\n{}", server.context()));
    let (mut reader, _) = join(&mut server, addr);
    let lazy = non_reader(addr).unwrap_or_else(|e| panic!("non-reader: {e}\n{}", server.context()));
    let payload = Arc::new(crate::pressure::flow::burst_payload(lines));
    let deadline = Instant::now() + scale.deadline;
    let from = sender.id.clone();
    let reading = std::thread::spawn(move || {
        let progress = AtomicUsize::new(0);
        let read = read_numbered(&mut reader, &from, lines, deadline, &progress);
        (reader, read)
    });
    let writer = crate::pressure::flow::spawn_writer(sender.writer(), payload);
    // The sender reads its own echoes, as a chat client does.
    let (mut echoes, _) = sender.reader.into_parts();
    let limit = scale.deadline;
    let echoing = std::thread::spawn(move || crate::pressure::server::drain(&mut echoes, limit));
    let _ = join_by("the burst's writer", writer, deadline);
    let mut failures = Vec::new();
    let (mut reader, (read, _, _, problem)) = join_by("the browser reader", reading, deadline);
    if read != lines || problem.is_some() {
        failures.push(format!(
            "the browser read {read} of {lines} lines (problem {problem:?})"
        ));
    }
    let by = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = server.stats(SOON).expect("stats");
        if stats.get("disconnected.slow-consumer").unwrap_or(0) >= 1 || Instant::now() > by {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = server.stats(SOON).expect("stats");
    let slow = stats.get("disconnected.slow-consumer");
    if slow != Some(1) {
        failures.push(format!("disconnected.slow-consumer = {slow:?}, not 1"));
    }
    let mut admin = server.admin(SOON).expect("admin");
    let _ = admin.command("shutdown", SOON);
    match reader.close(Instant::now() + SOON) {
        (Some((Some(1001), _)), true) => {}
        other => failures.push(format!(
            "the browser at shutdown: {other:?}, not 1001 then FIN"
        )),
    }
    drop(lazy);
    let _ = join_by("the sender's echoes", echoing, deadline);
    server.fail_if_any("slow WebSocket consumer", &failures);
}

/// **A flood of tiny messages.** A browser sends `tiny_bytes / 8` one-byte
/// text messages (7 bytes each on the wire) without reading, relayed to a
/// browser and a TCP client that read; `--queue-limit 65536`. The server
/// grows by at most 16 MiB, and every message reaches both readers.
pub fn tiny_flood_ws(runtime: &'static str, scale: &Scale) {
    const MAX_GROWTH: u64 = 16 << 20;
    let _serial = serial();
    let messages = scale.tiny_bytes / 8;
    let mut server = ServerSpec::new(runtime, "web-tiny")
        .flag("--queue-limit", "65536")
        .start();
    let addr = web_addr(&mut server);
    let (flooder, flooder_id) = join(&mut server, addr);
    let (observer, _) = join(&mut server, addr);
    let tcp = Client::connect(server.chat, Instant::now() + SOON)
        .unwrap_or_else(|e| panic!("TCP observer: {e}\n{}", server.context()));
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss().expect("RSS");
    let deadline = Instant::now() + scale.deadline;
    let one = frame(0x80 | TEXT, b"a", true);
    let writer = {
        let mut stream = flooder.stream().try_clone().expect("clone");
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stream.set_write_timeout(Some(crate::pressure::WRITE_STALL));
            let batch: Vec<u8> = one.repeat(4096);
            let mut sent = 0;
            while sent < messages {
                let n = (messages - sent).min(4096);
                if stream.write_all(&batch[..n * one.len()]).is_err() {
                    break;
                }
                sent += n;
            }
            sent
        })
    };
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let peak = peak.clone();
        let pid = server.pid;
        std::thread::spawn(move || {
            while Instant::now() < deadline {
                if let Some(rss) = rss_of(pid) {
                    peak.fetch_max(rss as usize, Ordering::Relaxed);
                }
                if peak.load(Ordering::Relaxed) == usize::MAX {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let expected = format!("{flooder_id}: a");
    let readers = spawn_counters([observer, flooder], tcp, expected, messages, deadline);
    let mut failures: Vec<String> = readers
        .into_iter()
        .filter_map(|t| join_by("a reader", t, deadline))
        .collect();
    let sent = join_by("the flooder", writer, deadline);
    let top = peak.swap(usize::MAX, Ordering::Relaxed) as u64;
    let _ = sampler.join();
    if sent != messages {
        failures.push(format!("the flooder sent {sent} of {messages}"));
    }
    if top > before + MAX_GROWTH {
        failures.push(format!(
            "RSS grew from {before} to {top} B, over {MAX_GROWTH}"
        ));
    }
    server.fail_if_any("tiny WebSocket flood", &failures);
}

/// Every reader reads at once (the flooder its own echoes too, so the
/// relay goes as fast as the slowest of them), each until `messages`
/// copies of `expected`; each thread returns what went wrong, if anything.
fn spawn_counters(
    browsers: [WsClient; 2],
    mut tcp: Client,
    expected: String,
    messages: usize,
    deadline: Instant,
) -> Vec<std::thread::JoinHandle<Option<String>>> {
    let mut threads: Vec<_> = browsers
        .into_iter()
        .enumerate()
        .map(|(k, mut ws)| {
            let expected = expected.clone();
            std::thread::spawn(move || {
                let mut got = 0;
                while got < messages {
                    match ws.next_text(deadline) {
                        Ok(text) if text == expected => got += 1,
                        other => return Some(format!("browser {k} read {other:?} after {got}")),
                    }
                }
                None
            })
        })
        .collect();
    threads.push(std::thread::spawn(move || {
        let mut got = 0;
        while got < messages {
            match tcp.reader.next_line(deadline) {
                Ok(line) if line == expected.as_bytes() => got += 1,
                other => return Some(format!("the TCP observer read {other:?} after {got}")),
            }
        }
        None
    }));
    threads
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// **SIGTERM mid-burst.** A TCP sender offers 4 × `sigterm_lines` lines to
/// three browsers; once each has `sigterm_lines / 2` the server gets
/// SIGTERM. Every browser reads the same whole lines in order, then a 1001
/// close frame, then the FIN; the server exits 0.
pub fn sigterm_mid_burst_ws(runtime: &'static str, scale: &Scale) {
    let _serial = serial();
    let lines = scale.sigterm_lines;
    let mut server = ServerSpec::new(runtime, "web-sigterm")
        .flag("--shutdown-grace", "5s")
        .start();
    let addr = web_addr(&mut server);
    let sender = Client::connect(server.chat, Instant::now() + SOON)
        .unwrap_or_else(|e| panic!("sender: {e}\n{}", server.context()));
    let deadline = Instant::now() + scale.deadline;
    let progress = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (mut ws, _) = join(&mut server, addr);
            let from = sender.id.clone();
            let progress = progress.clone();
            std::thread::spawn(move || {
                read_numbered(&mut ws, &from, usize::MAX, deadline, &progress)
            })
        })
        .collect();
    let payload = Arc::new(crate::pressure::flow::burst_payload(4 * lines));
    let writer = crate::pressure::flow::spawn_writer(sender.writer(), payload);
    while progress.load(Ordering::Relaxed) < 3 * (lines / 2) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.signal(Signal::TERM).expect("SIGTERM");
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for (k, reader) in readers.into_iter().enumerate() {
        let (read, code, fin, problem) = join_by("a browser", reader, deadline);
        counts.push(read);
        if read < lines / 2 || problem.is_some() || code != Some(1001) || !fin {
            failures.push(format!(
                "browser {k}: {read} lines, problem {problem:?}, close {code:?}, FIN {fin}"
            ));
        }
    }
    // A line the server read before the drain reaches every browser.
    if counts.windows(2).any(|w| w[0] != w[1]) {
        failures.push(format!(
            "the browsers read different numbers of lines: {counts:?}"
        ));
    }
    let status = server.wait_exit(Duration::from_secs(15));
    if !status.is_some_and(|s| s.success()) {
        failures.push(format!("exit status {status:?}, not 0"));
    }
    drop(join_by("the burst's writer", writer, deadline));
    server.fail_if_any("SIGTERM mid-burst over WebSocket", &failures);
}

/// **Many idle browsers.** `count` WebSocket clients upgrade and stay
/// silent (`--ws-ping 1s`: each is pinged, its pongs are not needed);
/// a broadcast then reaches every one of them, and the server holds them
/// in a bounded RSS (reported per connection in the failure message).
pub fn many_idle(runtime: &'static str, count: usize) {
    let _serial = serial();
    crate::client::raise_fd_limit(count as u64 * 2 + 1024);
    let mut server = ServerSpec::new(runtime, "web-idle")
        .flag("--ws-ping", "1s")
        .flag("--max-channels", &(count + 100).to_string())
        .start();
    let addr = web_addr(&mut server);
    let before = server.rss().expect("RSS");
    let mut clients = Vec::with_capacity(count);
    for k in 0..count {
        match WsClient::connect(addr, SOON) {
            Ok(ws) => clients.push(ws),
            Err(e) => panic!("client {k}: {e}\n{}", server.context()),
        }
    }
    let by = Instant::now() + Duration::from_secs(120);
    for ws in &mut clients {
        let _greeting = ws.next_text(by);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let after = server.rss().expect("RSS");
    let frames = |server: &crate::pressure::server::Server| {
        let stats = server.stats(SOON).expect("stats");
        stats.get("adapter.web_frames").unwrap_or(0)
    };
    let framed_before = frames(&server);
    let tcp = Client::connect(server.chat, Instant::now() + SOON).expect("talker");
    std::io::Write::write_all(&mut tcp.writer(), b"wake up\n").expect("send");
    let expected = format!("{}: wake up", tcp.id);
    let mut failures = Vec::new();
    for (k, ws) in clients.iter_mut().enumerate() {
        match ws.next_text(by) {
            Ok(text) if text == expected => {}
            other => {
                failures.push(format!("client {k} read {other:?}"));
                break;
            }
        }
    }
    // Zero-copy broadcast: one frame per shard, shared by every browser.
    let framed = frames(&server) - framed_before;
    let shards = crate::pressure::shards_of(runtime) as u64;
    if framed == 0 || framed > shards {
        failures.push(format!(
            "one line to {count} browsers was framed {framed} times (at most once per shard, {shards})"
        ));
    }
    let per = after.saturating_sub(before) / count as u64;
    let pings = server
        .stats(SOON)
        .expect("stats")
        .get("adapter.web_pings")
        .unwrap_or(0);
    if pings == 0 {
        failures.push("no pings sent to idle clients".to_owned());
    }
    // Generous: a debug build, and the kernel's socket memory is not ours.
    if per > 64 << 10 {
        failures.push(format!("{per} B of RSS per idle WebSocket connection"));
    }
    server.fail_if_any("many idle browsers", &failures);
}
