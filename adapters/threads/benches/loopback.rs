//! Loopback figures for the threads adapter (`tether_threads::start`), each
//! beside its baseline in the same run: kick-to-peer-EOF vs a bare
//! `shutdown(Write)`, peer-EOF-to-event, churn vs a bare
//! thread-per-connection echo server, threads and memory per connection.
//!
//! ```text
//! cargo bench -p tether-threads --bench loopback            # full run
//! cargo bench -p tether-threads --bench loopback -- --quick # smoke run
//! cargo bench -p tether-threads --bench loopback -- churn   # one part
//! ```

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::task::Poll;
use std::time::{Duration, Instant};

use tether_adapter::runtime::{Sleep, ThreadSleep};
use tether_threads::tether_core::{ChannelId, Config, Event, KickMode};
use tether_threads::{Counter, Events, Handle, Options};

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 50), percentile(&samples, 99));
    println!(
        "{name:<34} n={:<5} p50={:>9.1?} p99={:>9.1?} max={:>9.1?}",
        samples.len(),
        p50,
        p99,
        samples[samples.len() - 1]
    );
    (p50, p99)
}

fn start(config: Config) -> (Handle, Events) {
    let listener = tether_adapter::listen::bind("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
    tether_threads::start(listener, config, Options::default()).unwrap()
}

/// Shuts the server down and waits until it has stopped (polling: no timer
/// thread is left behind to skew the thread counts).
fn stop(handle: &Handle, grace: Duration) {
    let _ = handle.blocking().shutdown(grace);
    let deadline = Instant::now() + grace + Duration::from_secs(10);
    while !handle.is_stopped() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The next event, waiting at most `timeout`. Woken by the event itself
/// (`BlockingEvents::next_timeout` polls in 1 ms naps, which would be most of the
/// peer-EOF-to-event figure).
fn next_within(events: &Events, timeout: Duration) -> Option<Event> {
    let mut next = pin!(events.next());
    let mut timer = ThreadSleep;
    let mut sleep = pin!(timer.sleep_until(Instant::now() + timeout));
    tether_adapter::runtime::block_on(std::future::poll_fn(|cx| {
        if let Poll::Ready(event) = next.as_mut().poll(cx) {
            return Poll::Ready(event);
        }
        sleep.as_mut().poll(cx).map(|()| None)
    }))
}

fn next_opened(events: &Events) -> ChannelId {
    loop {
        match next_within(events, Duration::from_secs(10)).expect("opened") {
            Event::Opened { id, .. } => return id,
            _ => continue,
        }
    }
}

fn wait_for(events: &Events, want: impl Fn(&Event) -> bool) {
    loop {
        let e = next_within(events, Duration::from_secs(10)).expect("event");
        if want(&e) {
            return;
        }
    }
}

/// A client blocked in `read` on another thread; returns when it read EOF.
/// `trigger` runs once the reader is (almost certainly) blocked.
fn time_to_eof(mut client: TcpStream, trigger: impl FnOnce()) -> Duration {
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let ready = Barrier::new(2);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut buf = [0u8; 64];
            ready.wait();
            loop {
                match client.read(&mut buf) {
                    Ok(0) => return Instant::now(),
                    Ok(_) => continue,
                    Err(e) => panic!("expected EOF, got {e}"),
                }
            }
        });
        ready.wait();
        // Let the reader enter `read` so the figure is wake-up latency, not
        // thread start-up.
        std::thread::sleep(Duration::from_micros(200));
        let t0 = Instant::now();
        trigger();
        reader.join().unwrap() - t0
    })
}

fn kick_to_eof(rounds: usize) {
    let (handle, events) = start(Config::default());
    let bare = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        // The floor: a bare std socket's shutdown(Write) -> peer read() == 0.
        let client = TcpStream::connect(bare.local_addr().unwrap()).unwrap();
        let (accepted, _) = bare.accept().unwrap();
        floor.push(time_to_eof(client, || {
            accepted.shutdown(Shutdown::Write).unwrap()
        }));
        // Ours: Handle::kick (graceful) -> driver -> hub -> shutdown(Write).
        // The blocking kick returns with the hub's verdict, before the
        // driver has shut the socket down; the figure runs to the peer's
        // EOF either way (no reply-less kick exists any more).
        let client = TcpStream::connect(handle.local_addr()).unwrap();
        let id = next_opened(&events);
        ours.push(time_to_eof(client, || {
            handle.blocking().kick(id, KickMode::Graceful, 0).unwrap()
        }));
        wait_for(
            &events,
            |e| matches!(e, Event::Released { id: i } if *i == id),
        );
    }
    let (_, floor99) = summary("floor: shutdown(Write) -> read()==0", floor);
    let (_, ours99) = summary("tether kick -> peer read()==0", ours);
    println!(
        "  kick p99 / floor p99 = {:.1}x",
        ours99.as_secs_f64() / floor99.as_secs_f64()
    );
    stop(&handle, Duration::from_secs(1));
}

fn eof_to_event(rounds: usize) {
    let (handle, events) = start(Config::default());
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let mut client = TcpStream::connect(handle.local_addr()).unwrap();
        let id = next_opened(&events);
        // Steady state first: one byte through, so the reader thread is
        // running and blocked in `read` (not still being scheduled for the
        // first time after its start), as it is for any live connection.
        client.write_all(b"x").unwrap();
        wait_for(&events, |e| matches!(e, Event::Received { .. }));
        std::thread::sleep(Duration::from_micros(200));
        let t0 = Instant::now();
        client.shutdown(Shutdown::Write).unwrap();
        wait_for(
            &events,
            |e| matches!(e, Event::Disconnected { id: i, .. } if *i == id),
        );
        samples.push(t0.elapsed());
        drop(client);
        wait_for(
            &events,
            |e| matches!(e, Event::Released { id: i } if *i == id),
        );
    }
    summary("peer shutdown(Write) -> Disconnected", samples);
    stop(&handle, Duration::from_secs(1));
}

/// A bare thread-per-connection echo server with no core.
fn bare_echo_server(stop: Arc<AtomicBool>) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::Acquire) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                })
                .unwrap();
        }
    });
    (addr, thread)
}

/// The echo app on tether: a thread reading events posts every received
/// chunk back (`post_send`: queued without waiting for the verdict). Ends
/// with the event stream, once the server has stopped.
fn tether_echo_app(handle: Handle, events: Events) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let blocking = handle.blocking();
        for event in events {
            if let Event::Received { id, data } = event {
                let _ = blocking.post_send(id, data);
            }
        }
    })
}

/// 4 clients: connect -> write 1 byte -> read the echo -> close, for `run`.
fn churn(addr: SocketAddr, run: Duration) -> f64 {
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut buf = [0u8; 1];
                while start.elapsed() < run {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.set_nodelay(true).unwrap();
                    c.write_all(b"x").unwrap();
                    c.read_exact(&mut buf).unwrap();
                    drop(c);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn churn_vs_bare(run: Duration, rounds: usize) {
    let bare_stop = Arc::new(AtomicBool::new(false));
    let (bare_addr, bare_thread) = bare_echo_server(bare_stop.clone());
    let (handle, events) = start(Config::default());
    let app = tether_echo_app(handle.clone(), events);
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    // Interleaved so drift on the shared machine hits both alike.
    for _ in 0..rounds {
        bare.push(churn(bare_addr, run));
        ours.push(churn(handle.local_addr(), run));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "churn bare thread-per-conn echo    {:>8.0} conns/s  (rounds: {:?})",
        mean(&bare),
        bare.iter().map(|x| *x as u64).collect::<Vec<_>>()
    );
    println!(
        "churn tether-threads echo          {:>8.0} conns/s  (rounds: {:?})",
        mean(&ours),
        ours.iter().map(|x| *x as u64).collect::<Vec<_>>()
    );
    let mut ratios: Vec<f64> = ours.iter().zip(&bare).map(|(o, b)| o / b).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "  tether / bare = {:.2}x (means); per interleaved pair: {:?}, median {:.2}x",
        mean(&ours) / mean(&bare),
        ratios
            .iter()
            .map(|r| (r * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        ratios[ratios.len() / 2]
    );
    let stats = handle.blocking().stats().unwrap();
    println!(
        "  tether: opened={} refused={} write_waits={}",
        stats.core.opened,
        stats.core.refused,
        stats.adapter.get(Counter::WriteWaits)
    );
    stop(&handle, Duration::from_secs(1));
    app.join().unwrap();
    bare_stop.store(true, Ordering::Release);
    let _ = TcpStream::connect(bare_addr);
    bare_thread.join().unwrap();
}

fn threads_now() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn per_connection(n: usize) {
    let threads_before = threads_now();
    let (handle, events) = start(Config::default());
    let (threads0, rss0) = (threads_now(), rss_kib());
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(TcpStream::connect(handle.local_addr()).unwrap());
        let _ = next_opened(&events);
    }
    // Each channel also gets one line, so its reader has used its buffer.
    for c in &mut clients {
        c.write_all(b"hi\n").unwrap();
    }
    let mut received = 0;
    while received < n {
        if let Some(Event::Received { .. }) = next_within(&events, Duration::from_secs(10)) {
            received += 1;
        }
    }
    let (threads1, rss1) = (threads_now(), rss_kib());
    let stats = handle.blocking().stats().unwrap();
    println!(
        "{n} idle channels: +{} threads ({:.2}/conn), +{} KiB RSS ({:.1} KiB/conn, incl. the \
         in-process clients' user-space share), write waits: {}",
        threads1 - threads0,
        (threads1 - threads0) as f64 / n as f64,
        rss1.saturating_sub(rss0),
        rss1.saturating_sub(rss0) as f64 / n as f64,
        stats.adapter.get(Counter::WriteWaits),
    );
    drop(clients);
    stop(&handle, Duration::from_secs(2));
    println!(
        "threads: {threads_before} before start, {threads0} idle server, {threads1} with {n} \
         channels, {} after shutdown",
        threads_now()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, run, churn_rounds, idle) = if quick {
        (100, Duration::from_millis(300), 1, 200)
    } else {
        (1000, Duration::from_secs(1), 6, 2000)
    };
    println!(
        "tether-threads loopback bench ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // Optional filters: `kick`, `eof`, `churn`, `idle` run only those parts.
    let parts = ["kick", "eof", "churn", "idle"];
    let chosen: Vec<String> = std::env::args()
        .filter(|a| parts.contains(&a.as_str()))
        .collect();
    let want = |part: &str| chosen.is_empty() || chosen.iter().any(|c| c == part);
    if want("kick") {
        kick_to_eof(rounds);
    }
    if want("eof") {
        eof_to_event(rounds);
    }
    if want("churn") {
        churn_vs_bare(run, churn_rounds);
    }
    if want("idle") {
        per_connection(idle);
    }
}
