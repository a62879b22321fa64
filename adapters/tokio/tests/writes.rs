//! How an in-driver application's commands reach the wire: while no
//! channel is backpressured, a run of up to 8 commands leaves in one
//! vectored write per socket; once a channel is backpressured, the driver
//! writes after each command, so the next one decides whether to wait on
//! what the kernel refused (docs/design.md §5, §5.2). Counted with the
//! adapter's `write_calls` and `messages_written`, over real sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_adapter::{App, AppFactory, AppOut};
use tether_core::{Config, Event};
use tether_tokio::{Counter, Handle, Options};

const CLIENTS: usize = 4;

/// On every line received, broadcasts `lines` one-line messages
/// ("0\n", "1\n", ...): one command each.
struct Burst {
    lines: usize,
}

impl App for Burst {
    fn on_event(&mut self, event: &Event, out: &mut AppOut<'_>) {
        if let Event::Received { .. } = event {
            for i in 0..self.lines {
                out.post_broadcast(Bytes::from(format!("{}\n", i % 10)));
            }
        }
    }
}

/// What a burst of `lines` broadcasts costs in writes and messages, summed
/// over `CLIENTS` clients, each of which reads every line. No broadcast is
/// ever held for backpressure: each decides on queues already written.
fn burst(config: Config, lines: usize) -> (u64, u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = tether_adapter::listen::bind("127.0.0.1:0".parse().unwrap(), 64).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = AppFactory(Arc::new(move |_| Box::new(Burst { lines })));
    let options = Options::default().with_shards(1).with_app(app);
    let (handle, _events) = {
        let _entered = runtime.enter();
        tether_tokio::start(listener, config, options).unwrap()
    };
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    wait_for(&handle, "every client open", |s| s.core.live == CLIENTS);
    let before = handle.blocking().stats().unwrap().adapter;
    clients[0].write_all(b"go\n").unwrap();
    let expect: String = (0..lines).map(|i| format!("{}\n", i % 10)).collect();
    for (n, client) in clients.iter_mut().enumerate() {
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = vec![0; expect.len()];
        client
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("client {n}: {e}"));
        assert_eq!(String::from_utf8_lossy(&got), expect, "client {n}");
    }
    let after = wait_for(&handle, "every message counted", |s| {
        s.adapter.get(Counter::MessagesWritten) - before.get(Counter::MessagesWritten)
            >= (CLIENTS * lines) as u64
    })
    .adapter;
    assert_eq!(
        after.get(Counter::SendsHeld),
        before.get(Counter::SendsHeld),
        "a broadcast held: it decided before the queues were written"
    );
    handle.blocking().shutdown(Duration::from_secs(1)).unwrap();
    handle.blocking().stopped();
    (
        after.get(Counter::WriteCalls) - before.get(Counter::WriteCalls),
        after.get(Counter::MessagesWritten) - before.get(Counter::MessagesWritten),
    )
}

/// Polls the server's stats until `done` holds (at most 10 s, then fails
/// naming `what`).
fn wait_for(
    handle: &Handle,
    what: &str,
    done: impl Fn(&tether_tokio::ServerStats) -> bool,
) -> tether_tokio::ServerStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = handle.blocking().stats().unwrap();
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 10 s: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn three_broadcasts_of_one_event_leave_in_one_write_per_client() {
    let (writes, messages) = burst(Config::default(), 3);
    assert_eq!(messages, (3 * CLIENTS) as u64);
    assert_eq!(writes, CLIENTS as u64, "one writev per client for the run");
}

/// A run is at most 8 commands: 20 broadcasts are 3 runs (8, 8, 4), so
/// at most 3 commands' transmits wait unwritten in the hub at once.
#[test]
fn a_run_of_commands_is_at_most_eight_long() {
    let (writes, messages) = burst(Config::default(), 20);
    assert_eq!(messages, (20 * CLIENTS) as u64);
    assert_eq!(writes, (3 * CLIENTS) as u64, "runs of 8, 8 and 4");
}

/// A high watermark of 1 byte: each 2-byte broadcast leaves every channel
/// backpressured until it is written, so the driver writes after each one
/// and the next is not held (written, the queues are empty again); were
/// the next one run first, it would be held for backpressure.
#[test]
fn once_a_channel_is_backpressured_each_command_is_written_before_the_next() {
    let mut config = Config::default();
    config.message_overhead = 0;
    config.high_watermark = 1;
    config.low_watermark = 0;
    let (writes, messages) = burst(config, 3);
    assert_eq!(messages, (3 * CLIENTS) as u64);
    assert_eq!(writes, (3 * CLIENTS) as u64, "one writev per broadcast");
}
