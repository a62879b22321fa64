//! Loopback benchmarks of the async adapter, each beside its baseline
//! measured in the same run (see docs/bench/async.md):
//!
//! * `kick`: kick-to-peer-EOF latency over 1,000 kicks, beside a bare std
//!   socket's `shutdown(Write)` → peer `read() == 0`;
//! * `eof`: peer-EOF-to-`Disconnected` latency over 1,000 closes;
//! * `churn`: connect → one echo → close, 4 concurrent clients, tether vs a
//!   bare async-std echo server;
//! * `idle`: 10,000 concurrent idle connections, resident memory per
//!   connection.
//!
//! ```text
//! cargo bench -p tether-async-std --bench loopback [-- kick|eof|churn|idle]
//! cargo bench -p tether-async-std --bench loopback -- --quick   # smoke run
//! ```
//!
//! `--quick` takes 100 samples, 3 × 300 ms churn rounds and 1,000 idle
//! connections: a check that everything runs, not figures.

use std::io::{Read, Write};

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use tether_async_std::{AsyncStd, Events, Handle, Options, Runtime};
use tether_core::{ChannelId, Config, Event, KickMode};

/// How much of each part to run: the full figures, or a smoke run.
#[derive(Clone, Copy)]
struct Size {
    samples: usize,
    churn_run: Duration,
    idle: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("idle-client") {
        return idle_client(&args[1..]);
    }
    let size = if quick {
        Size {
            samples: 100,
            churn_run: Duration::from_millis(300),
            idle: 1_000,
        }
    } else {
        Size {
            samples: 1_000,
            churn_run: Duration::from_secs(3),
            idle: 10_000,
        }
    };
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    println!(
        "tether-async-std loopback benchmarks (runtime: {}){}",
        AsyncStd::NAME,
        if quick { " --quick" } else { "" }
    );
    if want("kick") {
        kick_latency(size.samples);
    }
    if want("eof") {
        eof_latency(size.samples);
    }
    if want("churn") {
        churn(size.churn_run);
    }
    if want("idle") {
        idle_connections(size.idle);
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let (p50, p99, max) = (at(0.50), at(0.99), at(1.0));
    println!(
        "  {name:<34} n={:<5} p50={:>8.1}us p99={:>8.1}us max={:>8.1}us",
        samples.len(),
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6
    );
    (p50, p99)
}

/// The next event, waiting at most `timeout`. Woken by the event itself
/// (`BlockingEvents::next_timeout` polls in 1 ms naps, which would be most of the
/// peer-EOF-to-event figure).
fn next_within(events: &Events, timeout: Duration) -> Option<Event> {
    AsyncStd
        .block_on(async_std::future::timeout(timeout, events.next()))
        .ok()
        .flatten()
}

fn start(config: Config) -> (Handle, Events) {
    let listener =
        tether_adapter::listen::bind("127.0.0.1:0".parse().unwrap(), 1024).expect("bind");
    tether_async_std::start(AsyncStd, listener, config, Options::default()).expect("server starts")
}

/// Waits for the `Opened` of the channel whose peer is `peer`.
fn opened(events: &Events, peer: SocketAddr) -> ChannelId {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(Event::Opened { id, peer: p }) = next_within(events, Duration::from_secs(1)) {
            if p == peer {
                return id;
            }
        }
    }
    panic!("no Opened for {peer}");
}

/// One long-lived client thread: for each stream it is handed, it reads
/// until EOF (or an error) and reports the instant it saw it. No thread is
/// spawned per sample, so thread start-up is not measured.
struct EofWatcher {
    streams: mpsc::Sender<TcpStream>,
    seen: mpsc::Receiver<Instant>,
}

impl EofWatcher {
    fn new() -> EofWatcher {
        let (streams, rx) = mpsc::channel::<TcpStream>();
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for mut stream in rx {
                let mut buf = [0u8; 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                if tx.send(Instant::now()).is_err() {
                    return;
                }
            }
        });
        EofWatcher { streams, seen }
    }

    /// Hands `stream` over, gives the thread time to block in `read`, then
    /// runs `trigger` and returns how long until the watcher saw EOF.
    fn measure(&self, stream: TcpStream, trigger: impl FnOnce()) -> Duration {
        self.streams.send(stream).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        let t0 = Instant::now();
        trigger();
        self.seen.recv().unwrap() - t0
    }
}

fn kick_latency(samples: usize) {
    println!("\nkick-to-peer-EOF latency ({samples} kicks each, interleaved in one run)");
    // Floor: a bare std socket, shutdown(Write) -> peer read() == 0.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (handle, events) = start(Config::default());
    let watcher = EofWatcher::new();
    let mut floor = Vec::with_capacity(samples);
    let mut kicks = Vec::with_capacity(samples);
    for _ in 0..samples {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        server_side.set_nodelay(true).unwrap();
        floor.push(watcher.measure(client, || server_side.shutdown(Shutdown::Write).unwrap()));

        let client = TcpStream::connect(handle.local_addr()).unwrap();
        let id = opened(&events, client.local_addr().unwrap());
        // The blocking kick returns with the hub's verdict, before the
        // driver has shut the socket down; the figure runs to the peer's
        // EOF either way (no reply-less kick exists any more).
        kicks.push(watcher.measure(client, || {
            handle.blocking().kick(id, KickMode::Graceful, 0).unwrap()
        }));
    }
    let (_, floor_p99) = percentiles("bare shutdown(Write) -> read()==0", floor);
    let (_, kick_p99) = percentiles("tether graceful kick -> read()==0", kicks);
    println!(
        "  p99 ratio tether/floor = {:.1}x",
        kick_p99.as_secs_f64() / floor_p99.as_secs_f64()
    );
    stop(&handle);
}

fn eof_latency(count: usize) {
    println!("\npeer-EOF-to-Disconnected latency ({count} closes)");
    let (handle, events) = start(Config::default());
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let client = TcpStream::connect(handle.local_addr()).unwrap();
        let id = opened(&events, client.local_addr().unwrap());
        let t0 = Instant::now();
        client.shutdown(Shutdown::Write).unwrap();
        loop {
            match next_within(&events, Duration::from_secs(5)) {
                Some(Event::Disconnected { id: d, .. }) if d == id => break,
                Some(_) => {}
                None => panic!("no Disconnected for {id}"),
            }
        }
        samples.push(t0.elapsed());
    }
    percentiles("client shutdown(Write) -> Disconnected", samples);
    stop(&handle);
}

/// Connect, write 16 bytes, read them back, close; `clients` threads for
/// `run`. Returns connections per second.
fn churn_clients(addr: SocketAddr, clients: usize, run: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (done, stop) = (done.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16];
                while !stop.load(Ordering::Relaxed) {
                    let mut s = TcpStream::connect(addr).expect("connect");
                    s.set_nodelay(true).unwrap();
                    s.write_all(b"0123456789abcdef").unwrap();
                    s.read_exact(&mut buf).expect("echo");
                    drop(s);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// A bare async-std echo server: no core, one task per connection.
fn bare_echo_server() -> SocketAddr {
    let listener = AsyncStd
        .block_on(async_std::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    AsyncStd.spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            AsyncStd.spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// The same echo on tether: an async task reading events echoes each
/// `Received` with `send` (awaiting the hub's verdict). It ends with the
/// event stream, once the server has stopped.
fn tether_echo_server() -> Handle {
    let (handle, events) = start(Config::default());
    let app = handle.clone();
    AsyncStd.spawn(async move {
        while let Some(event) = events.next().await {
            if let Event::Received { id, data } = event {
                let _ = app.send(id, data).await;
            }
        }
    });
    handle
}

fn churn(run: Duration) {
    const CLIENTS: usize = 4;
    println!(
        "\nchurn: connect -> one 16-byte echo -> close, {CLIENTS} concurrent clients, {run:?} per round"
    );
    let bare = bare_echo_server();
    let tether = tether_echo_server();
    let (mut bare_rates, mut tether_rates) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let b = churn_clients(bare, CLIENTS, run);
        let t = churn_clients(tether.local_addr(), CLIENTS, run);
        println!(
            "  round {round}: bare async-std {b:>8.0} conn/s   tether {t:>8.0} conn/s   ratio {:.2}",
            t / b
        );
        bare_rates.push(b);
        tether_rates.push(t);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, t) = (median(&mut bare_rates), median(&mut tether_rates));
    println!(
        "  median: bare {b:.0} conn/s, tether {t:.0} conn/s, ratio {:.2}",
        t / b
    );
    let drained = Instant::now();
    let mut stats = tether.blocking().stats().unwrap();
    while stats.core.live > 0 && drained.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
        stats = tether.blocking().stats().unwrap();
    }
    println!(
        "  tether: opened={} released={} live={} refused={}",
        stats.core.opened,
        stats.core.released,
        stats.core.live,
        stats.core.refused + stats.adapter.get(tether_async_std::Counter::RefusedFull)
    );
    stop(&tether);
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn raise_fd_limit(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    if let Some(soft) = current.current
        && soft >= want
    {
        return soft;
    }
    let hard = current.maximum.unwrap_or(u64::MAX);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want.min(hard)),
            maximum: current.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(0)
}

/// The clients of the idle bench, in a child process so the server's
/// process holds only its own fds and its RSS is its own: connect N, say
/// `connected`, read one broadcast line on each, say `read K`, exit when
/// stdin closes.
fn idle_client(args: &[String]) {
    let addr: SocketAddr = args[0].parse().expect("address");
    let n: usize = args[1].parse().expect("count");
    raise_fd_limit(n as u64 + 100);
    let mut clients: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    println!("connected");
    let mut read = 0;
    for c in &mut clients {
        let mut buf = [0u8; 5];
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        if c.read_exact(&mut buf).is_ok() && &buf == b"ping\n" {
            read += 1;
        }
    }
    println!("read {read}");
    let mut rest = String::new();
    let _ = std::io::stdin().read_to_string(&mut rest);
}

fn idle_connections(n: usize) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    println!("\nidle connections: {n} held at once (clients in a child process)");
    let limit = raise_fd_limit(n as u64 + 1_000);
    println!("  server fd soft limit {limit}");
    let (handle, events) = start(Config::default().with_max_channels(2 * n));
    // Reads every event until the server has stopped.
    let drain = std::thread::spawn(move || events.for_each(drop));
    std::thread::sleep(Duration::from_millis(100));
    let before = rss_kib();
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().expect("bench binary"))
        .args([
            "idle-client",
            &handle.local_addr().to_string(),
            &n.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client process");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let connected = lines.next().and_then(Result::ok);
    assert_eq!(
        connected.as_deref(),
        Some("connected"),
        "client process failed"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while handle.blocking().stats().unwrap().core.live < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib();
    let stats = handle.blocking().stats().unwrap();
    let live = stats.core.live;
    // Proof they are all served: one broadcast, every client reads it.
    let report = handle
        .blocking()
        .broadcast(Bytes::from_static(b"ping\n"))
        .unwrap();
    let read = lines.next().and_then(Result::ok).unwrap_or_default();
    println!(
        "  live channels {live} (all connected in {took:.2?}, channel budget {}); broadcast sent to {}, clients: {read}",
        stats.channel_budget, report.sent
    );
    println!(
        "  server RSS {before} KiB -> {after} KiB: {:.2} KiB per connection (user space; kernel socket memory not included)",
        after.saturating_sub(before) as f64 / n as f64
    );
    drop(child.stdin.take());
    let _ = child.wait();
    stop(&handle);
    let _ = drain.join();
}

/// Shuts the server down and waits until it has stopped (polling:
/// `Blocking::wait_stopped` would leave a timer thread behind for its
/// whole timeout).
fn stop(handle: &Handle) {
    let _ = handle.blocking().shutdown(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handle.is_stopped() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
}
