//! `tether demo`: the chat server in-process plus simulated clients —
//! chatters, lurkers that miss the login deadline, dozers that idle out,
//! leavers and vanishers, a firehose and one client that never reads — a
//! moderator kicking chatters gracefully and abortively through the admin
//! console's code path, a live table, and a summary.

mod clients;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tether_chat::DemoOptions;
use tether_chat::admin::AdminCommand;
use tether_core::{Config, KickMode, OverflowPolicy, Stats};

use crate::chat;
use crate::runtime::Runtime;
use crate::server::{Handle, Server, StartError};
use clients::{Behaviour, Board, lock};

/// The demo server's policies: short enough to see them act in 15 s.
// `Config` is `#[non_exhaustive]`: assigned field by field.
#[allow(clippy::field_reassign_with_default)]
fn demo_config() -> Config {
    let mut config = Config::default().with_queue_limit(64 << 10);
    config.overflow = OverflowPolicy::KickSlowConsumer;
    config.login_timeout = Some(Duration::from_millis(1500));
    config.idle_timeout = Some(Duration::from_secs(3));
    config.flush_timeout = Duration::from_secs(1);
    config.with_max_channels(1_000)
}

/// Runs the demo and prints its summary.
pub fn run<R: Runtime>(runtime: R, options: &DemoOptions) -> Result<(), StartError> {
    let addr = "127.0.0.1:0".parse().expect("loopback address");
    let (handle, events) = Server::start(runtime.clone(), addr, demo_config())?;
    runtime.spawn(chat::run_room(handle.clone(), events, false));
    let board = Arc::new(Board::default());
    let started = Instant::now();
    let spawner = spawn_clients(handle.local_addr(), options, board.clone());
    let moderator = spawn_moderator(handle.clone(), options.duration, board.clone());

    let ui = Ui::new(options.duration);
    let mut depth_per_second: Vec<usize> = Vec::new();
    let mut last = Stats::default();
    while started.elapsed() < options.duration {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(stats) = handle.blocking().stats() else {
            break;
        };
        let second = started.elapsed().as_secs() as usize;
        if depth_per_second.len() <= second {
            depth_per_second.resize(second + 1, 0);
        }
        depth_per_second[second] = depth_per_second[second].max(stats.offline_depth);
        ui.update(started.elapsed(), &stats, &board);
        last = stats;
    }
    ui.finish();

    // The end: every client closes; every channel must be released.
    board.stop.store(true, Ordering::Relaxed);
    let _ = moderator.join();
    if let Ok(threads) = spawner.join() {
        for t in threads {
            let _ = t.join();
        }
    }
    let drained = Instant::now();
    while drained.elapsed() < Duration::from_secs(5) {
        match handle.blocking().stats() {
            Ok(stats) if stats.live == 0 => break,
            Ok(stats) => last = stats,
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let final_stats = handle.blocking().stats().unwrap_or(last);
    let _ = handle.blocking().shutdown(Duration::from_secs(1));
    handle.blocking().wait_stopped(Duration::from_secs(5));
    print_summary(
        options,
        started.elapsed(),
        &final_stats,
        &board,
        &depth_per_second,
    );
    Ok(())
}

fn spawn_clients(
    addr: std::net::SocketAddr,
    options: &DemoOptions,
    board: Arc<Board>,
) -> std::thread::JoinHandle<Vec<std::thread::JoinHandle<()>>> {
    let (clients, duration) = (options.clients, options.duration);
    std::thread::spawn(move || {
        // Arrivals spread over the first 60% of the run.
        let spread = duration.mul_f64(0.6);
        let start = Instant::now();
        let mut threads = Vec::with_capacity(clients);
        for i in 0..clients {
            let at = spread.mul_f64(i as f64 / clients as f64);
            if let Some(wait) = at.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            if board.stop.load(Ordering::Relaxed) {
                break;
            }
            let board = board.clone();
            let behaviour = Behaviour::for_index(i);
            threads.push(std::thread::spawn(move || {
                clients::run(addr, behaviour, i as u64, board)
            }));
        }
        threads
    })
}

/// Kicks a connected chatter every 700 ms, alternating graceful and abort,
/// through the admin console's command path.
fn spawn_moderator(
    handle: Handle,
    duration: Duration,
    board: Arc<Board>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut graceful = true;
        while start.elapsed() < duration.mul_f64(0.9) && !board.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(700));
            let target = {
                let mut chatters = lock(&board.chatters);
                // Leave a few chatters to the end so the room stays lively.
                if chatters.len() > 4 {
                    Some(chatters.remove(0))
                } else {
                    None
                }
            };
            let Some(id) = target else { continue };
            let mode = if graceful {
                KickMode::Graceful
            } else {
                KickMode::Abort
            };
            graceful = !graceful;
            lock(&board.kicked_at).insert(id, Instant::now());
            let command = AdminCommand::Kick {
                id,
                mode,
                reason: "demo moderator".into(),
            };
            let _answer = futures_lite::future::block_on(chat::execute(&handle, command));
        }
    })
}

struct Ui {
    progress: ProgressBar,
    rows: Vec<ProgressBar>,
    /// Without a terminal: one plain line per second instead of the table.
    plain: bool,
    printed: std::cell::Cell<u64>,
    duration: Duration,
}

impl Ui {
    fn new(duration: Duration) -> Ui {
        let plain = !std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if plain {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        let bar_style = ProgressStyle::with_template("{prefix} [{bar:40.cyan/blue}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let progress =
            multi.add(ProgressBar::new(duration.as_millis() as u64).with_style(bar_style));
        progress.set_prefix("tether demo");
        let row_style = ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let rows = (0..4)
            .map(|_| multi.add(ProgressBar::new(1).with_style(row_style.clone())))
            .collect();
        Ui {
            progress,
            rows,
            plain,
            printed: std::cell::Cell::new(0),
            duration,
        }
    }

    fn update(&self, elapsed: Duration, s: &Stats, board: &Board) {
        let d = &s.disconnected;
        let lines = [
            format!(
                "live {:>4}  usable {:>4}  offline queue {:>3}  opened {:>4}  released {:>4}  accept paused {}",
                s.live, s.usable, s.offline_depth, s.opened, s.released, s.accept_paused
            ),
            format!(
                "disconnects: peer-closed {}  peer-reset {}  kicked {}  idle {}  login {}  slow-consumer {}  io-error {}",
                d.peer_closed,
                d.peer_reset,
                d.kicked,
                d.idle_timeout,
                d.login_timeout,
                d.slow_consumer,
                d.io_error
            ),
            format!(
                "kicks seen by clients: graceful->EOF {}  abort->RST {}",
                lock(&board.graceful).len(),
                lock(&board.abortive).len()
            ),
            format!(
                "bytes queued {}  written {}  dropped {}  received {}",
                s.bytes_queued, s.bytes_written, s.bytes_dropped, s.bytes_received
            ),
        ];
        if self.plain {
            let second = elapsed.as_secs();
            if second > self.printed.get() {
                self.printed.set(second);
                eprintln!(
                    "[{second:>2}s/{}s] {} | {}",
                    self.duration.as_secs(),
                    lines[0],
                    lines[1]
                );
            }
            return;
        }
        self.progress.set_position(elapsed.as_millis() as u64);
        self.progress.set_message(format!(
            "{:.1}s / {:.0}s",
            elapsed.as_secs_f64(),
            self.duration.as_secs_f64()
        ));
        for (row, line) in self.rows.iter().zip(lines) {
            row.set_message(line);
        }
    }

    fn finish(&self) {
        self.progress.finish();
        // The last table stays on screen above the summary.
        for row in &self.rows {
            row.finish();
        }
    }
}

fn percentiles(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    let mut s = samples.to_vec();
    s.sort();
    let at = |q: f64| s[((s.len() as f64 * q) as usize).min(s.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    format!(
        "n={} p50={:.0}us p90={:.0}us p99={:.0}us max={:.0}us",
        s.len(),
        us(at(0.5)),
        us(at(0.9)),
        us(at(0.99)),
        us(at(1.0))
    )
}

fn print_summary(options: &DemoOptions, took: Duration, s: &Stats, board: &Board, depth: &[usize]) {
    println!(
        "tether demo: {} clients over {:.1}s",
        options.clients,
        took.as_secs_f64()
    );
    println!(
        "  channels opened {}, released {}, refused {}",
        s.opened, s.released, s.refused
    );
    println!("  channels leaked: {}", s.live);
    println!("  disconnects by reason (server side):");
    for (reason, count) in s.disconnected.iter().filter(|(_, n)| *n > 0) {
        println!("    {reason:<16} {count}");
    }
    println!("  how clients saw their connection end:");
    let mut endings: Vec<_> = lock(&board.endings).iter().map(|(k, v)| (*k, *v)).collect();
    endings.sort();
    for (name, count) in endings {
        println!("    {name:<20} {count}");
    }
    println!(
        "  kick -> EOF  (graceful, as clients saw it): {}",
        percentiles(&lock(&board.graceful))
    );
    println!(
        "  kick -> RST  (abort, as clients saw it):    {}",
        percentiles(&lock(&board.abortive))
    );
    let series: Vec<String> = depth.iter().map(usize::to_string).collect();
    println!(
        "  offline-queue depth, max sampled per second: [{}]; deepest ever: {}",
        series.join(" "),
        s.offline_peak
    );
    println!(
        "  bytes queued {} written {} dropped {}; stale calls {}",
        s.bytes_queued, s.bytes_written, s.bytes_dropped, s.stale_calls
    );
}
