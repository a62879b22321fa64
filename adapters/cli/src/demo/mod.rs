//! `tether demo`: the chat server in-process plus simulated clients —
//! chatters, lurkers that miss the login deadline, dozers that idle out,
//! leavers and vanishers, a firehose and one client that never reads — a
//! moderator kicking chatters gracefully and abortively through the admin
//! console's own executor, a live table (counters and the busiest
//! channels), and a summary.

mod clients;
mod format;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tether_chat::admin::AdminCommand;
use tether_chat::cli::{DemoOptions, ServeOptions};
use tether_chat::server::{ChatServer, Console, ServeError};
use tether_core::{ChannelInfo, Config, KickMode, OverflowPolicy, Stats};

use clients::{Behaviour, Board, lock};
pub use format::{DepthSeries, grouped};

/// Rows of the live per-channel table.
const TABLE_ROWS: usize = 8;

/// The demo server's policies: short enough to see them act in 15 s.
// `Config` is `#[non_exhaustive]`: assigned field by field.
#[allow(clippy::field_reassign_with_default)]
fn demo_config() -> Config {
    let mut config = Config::default().with_queue_limit(64 << 10);
    config.overflow = OverflowPolicy::KickSlowConsumer;
    config.login_timeout = Some(Duration::from_millis(1500));
    config.idle_timeout = Some(Duration::from_secs(3));
    config.stall_timeout = Some(Duration::from_secs(2));
    config.flush_timeout = Duration::from_secs(1);
    config.with_max_channels(1_000)
}

/// Runs the demo on `options.runtime` and prints its summary.
pub fn run(options: &DemoOptions) -> Result<(), ServeError> {
    let mut serve = ServeOptions::ephemeral();
    serve.runtime = options.runtime;
    serve.config = demo_config();
    serve.shutdown_grace = Duration::from_secs(1);
    let server = crate::start(&serve)?;
    let board = Arc::new(Board::default());
    let started = Instant::now();
    let spawner = spawn_clients(server.chat_addr, options, board.clone());
    let moderator = spawn_moderator(server.console().clone(), options.duration, board.clone());

    let ui = Ui::new(options.duration, options.runtime.name());
    let mut depth = DepthSeries::default();
    let mut last = Stats::default();
    while started.elapsed() < options.duration {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(stats) = server.handle.blocking().stats() else {
            break;
        };
        let channels = server.handle.blocking().channels().unwrap_or_default();
        depth.sample(started.elapsed(), &stats.core);
        ui.update(started.elapsed(), &stats.core, &board, &channels);
        last = stats.core;
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
        match server.handle.blocking().stats() {
            Ok(stats) if stats.core.live == 0 => break,
            Ok(stats) => last = stats.core,
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let final_stats = server
        .handle
        .blocking()
        .stats()
        .map(|s| s.core)
        .unwrap_or(last);
    depth.sample(started.elapsed(), &final_stats);
    let took = started.elapsed();
    stop(server);
    print_summary(options, took, &final_stats, &board, &depth);
    Ok(())
}

fn stop(server: ChatServer) {
    let _ = server.shutdown(Duration::from_secs(1));
    server.wait();
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
            if let Ok(thread) = std::thread::Builder::new()
                .name("demo-client".into())
                .spawn(move || clients::run(addr, behaviour, i as u64, board))
            {
                threads.push(thread);
            }
        }
        threads
    })
}

/// Kicks a connected chatter every 700 ms, alternating graceful and abort,
/// through the admin console's executor.
fn spawn_moderator(
    console: Console,
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
            let _answer = console.execute(AdminCommand::Kick {
                id,
                mode,
                reason: "demo moderator".into(),
            });
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
    fn new(duration: Duration, runtime: &str) -> Ui {
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
        progress.set_prefix(format!("tether demo ({runtime})"));
        let row_style = ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        // Four counter rows, a blank, the table's title and header, its rows.
        let rows = (0..4 + 3 + TABLE_ROWS)
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

    fn update(&self, elapsed: Duration, s: &Stats, board: &Board, channels: &[ChannelInfo]) {
        let d = &s.disconnected;
        let g = |n: u64| grouped(n);
        let gu = |n: usize| grouped(n as u64);
        let mut lines = vec![
            format!(
                "live {:>5}  usable {:>5}  offline queue {:>4} (deepest {})  opened {:>6}  released {:>6}  accept paused {}",
                gu(s.live),
                gu(s.usable),
                gu(s.offline_depth),
                gu(s.offline_peak),
                g(s.opened),
                g(s.released),
                s.accept_paused
            ),
            format!(
                "disconnects: peer-closed {}  peer-reset {}  kicked {}  idle {}  login {}  slow-consumer {}  io-error {}",
                g(d.peer_closed),
                g(d.peer_reset),
                g(d.kicked),
                g(d.idle_timeout),
                g(d.login_timeout),
                g(d.slow_consumer),
                g(d.io_error)
            ),
            format!(
                "kicks seen by clients: graceful->EOF {}  abort->RST {}",
                gu(lock(&board.graceful).len()),
                gu(lock(&board.abortive).len())
            ),
            format!(
                "bytes queued {}  written {}  dropped {}  received {}",
                g(s.bytes_queued),
                g(s.bytes_written),
                g(s.bytes_dropped),
                g(s.bytes_received)
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
        lines.push(String::new());
        lines.extend(format::channel_table(channels, TABLE_ROWS));
        self.progress.set_position(elapsed.as_millis() as u64);
        self.progress.set_message(format!(
            "{:.1}s / {:.0}s",
            elapsed.as_secs_f64(),
            self.duration.as_secs_f64()
        ));
        for (i, row) in self.rows.iter().enumerate() {
            row.set_message(lines.get(i).cloned().unwrap_or_default());
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

fn print_summary(
    options: &DemoOptions,
    took: Duration,
    s: &Stats,
    board: &Board,
    depth: &DepthSeries,
) {
    let g = |n: u64| grouped(n);
    println!(
        "tether demo ({}): {} clients over {:.1}s",
        options.runtime,
        grouped(options.clients as u64),
        took.as_secs_f64()
    );
    println!(
        "  channels opened {}, released {}, refused {}",
        g(s.opened),
        g(s.released),
        g(s.refused)
    );
    println!("  channels leaked: {}", grouped(s.live as u64));
    println!("  disconnects by reason (server side):");
    for (reason, count) in s.disconnected.iter().filter(|(_, n)| *n > 0) {
        println!("    {reason:<16} {:>8}", g(count));
    }
    println!("  how clients saw their connection end:");
    let mut endings: Vec<_> = lock(&board.endings).iter().map(|(k, v)| (*k, *v)).collect();
    endings.sort();
    for (name, count) in endings {
        println!("    {name:<20} {:>8}", grouped(count as u64));
    }
    println!(
        "  kick -> EOF  (graceful, as clients saw it): {}",
        format::percentiles(&lock(&board.graceful))
    );
    println!(
        "  kick -> RST  (abort, as clients saw it):    {}",
        format::percentiles(&lock(&board.abortive))
    );
    println!(
        "  offline-queue depth, deepest per second: [{}]; deepest ever: {}",
        depth.render(),
        grouped(s.offline_peak as u64)
    );
    println!(
        "  bytes queued {} written {} dropped {}; stale calls {}",
        g(s.bytes_queued),
        g(s.bytes_written),
        g(s.bytes_dropped),
        g(s.stale_calls)
    );
}
