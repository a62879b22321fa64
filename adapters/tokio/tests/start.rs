//! `tether_tokio::start` on real runtimes: the typed error without one,
//! and what a new connection sees first (its greeting, or the refusal line
//! of a full server), before tokio's reactor has seen its socket writable;
//! `start_on_threads` (a runtime per shard) with no runtime of the caller's,
//! and its threads' end.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use tether_core::{Config, Event, KickMode};
use tether_tokio::{Counter, Options, RuntimeError};

fn listener() -> std::net::TcpListener {
    tether_adapter::listen::bind("127.0.0.1:0".parse().unwrap(), 64).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn read_all(mut stream: TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = String::new();
    stream.read_to_string(&mut got).expect("EOF in time");
    got
}

#[test]
fn without_a_runtime_start_is_a_typed_error() {
    let error = tether_tokio::start(listener(), Config::default(), Options::default())
        .expect_err("no runtime is current");
    assert!(
        matches!(RuntimeError::of(&error), Some(RuntimeError::NoRuntime(_))),
        "{error}"
    );
    assert!(
        error.to_string().contains("inside a tokio runtime"),
        "{error}"
    );
}

#[test]
fn a_runtime_without_drivers_is_a_typed_error() {
    let no_io = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let error = no_io
        .block_on(async { tether_tokio::start(listener(), Config::default(), Options::default()) })
        .expect_err("no I/O driver");
    assert!(
        matches!(RuntimeError::of(&error), Some(RuntimeError::IoDisabled)),
        "{error}"
    );
    let no_time = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let _entered = no_time.enter();
    let error = tether_tokio::start(listener(), Config::default(), Options::default())
        .expect_err("no timer");
    assert!(
        matches!(RuntimeError::of(&error), Some(RuntimeError::TimeDisabled)),
        "{error}"
    );
}

/// Clients already waiting in the backlog when the server starts: the
/// listener hands several to the driver before the hub pauses accepting,
/// so most refusals are the driver's, written right after the accept —
/// before tokio's reactor has turned, on a current-thread runtime. Every
/// refused client reads the refusal line, and the one served reads its
/// greeting without the driver ever waiting for writability.
async fn first_lines() {
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let options = Options::default().with_refuse_line("error server full\n");
    let config = Config::default().with_max_channels(1);
    let (handle, events) = tether_tokio::start(listener, config, options).unwrap();
    let id = loop {
        match events.next().await {
            Some(Event::Opened { id, .. }) => break id,
            Some(_) => {}
            None => panic!("no channel opened"),
        }
    };
    handle.send(id, "hello\n").await.unwrap();
    handle.kick(id, KickMode::Graceful, 0).await.unwrap();
    let read = tokio::task::spawn_blocking(|| clients.into_iter().map(read_all).collect());
    let lines: Vec<String> = read.await.unwrap();
    let greeted = lines.iter().filter(|line| *line == "hello\n").count();
    let refused = lines
        .iter()
        .filter(|line| *line == "error server full\n")
        .count();
    assert_eq!((greeted, refused), (1, 7), "{lines:?}");
    let stats = handle.stats().await.unwrap();
    assert_eq!(stats.adapter.get(Counter::WriteWaits), 0, "{stats:?}");
    // Both paths count `refused_full`; the hub's own refusals (the driver's
    // path) are in `core.refused` too.
    assert_eq!(stats.adapter.get(Counter::RefusedFull), 7, "{stats:?}");
    let by_hub = stats.core.refused;
    eprintln!(
        "refused by the hub: {by_hub}, by the listener: {}",
        7 - by_hub
    );
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
    handle.stopped().await;
}

#[test]
fn new_sockets_get_their_first_line_at_once_multi_thread() {
    runtime().block_on(first_lines());
}

#[test]
fn new_sockets_get_their_first_line_at_once_current_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(first_lines());
}

/// The threads `start_on_threads` runs, by name (`tether-tokio-<shard>`).
fn shard_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
                .filter(|name| name.starts_with("tether-tokio-"))
                .count()
        })
        .unwrap_or(0)
}

/// No runtime of the caller's; 2 shards, the round-robin listener handing
/// every other connection to shard 1's runtime unregistered: clients
/// already in the backlog, and more after the start, are served by both
/// shards (greeting, echo, a graceful kick's EOF); a full server refuses
/// with its line; after shutdown the shard threads end.
#[test]
fn start_on_threads_serves_every_shard_and_its_threads_end() {
    use std::io::{BufRead, BufReader, Write};
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let early: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let options = Options::default()
        .with_shards(2)
        .with_refuse_line("error server full\n");
    let config = Config::default().with_max_channels(8);
    let (handle, events) = tether_tokio::start_on_threads(listener, config, options).unwrap();
    assert_eq!(handle.shards(), 2);
    let late: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut clients: Vec<BufReader<TcpStream>> =
        early.into_iter().chain(late).map(BufReader::new).collect();
    let mut shards = std::collections::BTreeSet::new();
    let mut ids = Vec::new();
    while ids.len() < clients.len() {
        match events.blocking().next_timeout(Duration::from_secs(5)) {
            Some(Event::Opened { id, .. }) => {
                shards.insert(id.shard());
                handle.blocking().send(id, format!("hello {id}\n")).unwrap();
                ids.push(id);
            }
            Some(_) => {}
            None => panic!("only {} of {} channels opened", ids.len(), clients.len()),
        }
    }
    assert_eq!(shards.into_iter().collect::<Vec<_>>(), [0, 1]);
    // Full now (8 channels): the next client reads the refusal line.
    let refused = read_all(TcpStream::connect(addr).unwrap());
    assert_eq!(refused, "error server full\n");
    for client in &mut clients {
        client
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut line = String::new();
        client.read_line(&mut line).unwrap();
        assert!(line.starts_with("hello #"), "{line:?}");
        client.get_mut().write_all(b"ping\n").unwrap();
    }
    let mut echoed = 0;
    while echoed < clients.len() {
        match events.blocking().next_timeout(Duration::from_secs(5)) {
            Some(Event::Received { id, data }) => {
                handle.blocking().send(id, data).unwrap();
                handle.blocking().kick(id, KickMode::Graceful, 0).unwrap();
                echoed += 1;
            }
            Some(_) => {}
            None => panic!("only {echoed} lines received"),
        }
    }
    for client in clients {
        assert_eq!(read_all(client.into_inner()), "ping\n");
    }
    assert!(shard_threads() >= 2, "{}", shard_threads());
    handle.blocking().shutdown(Duration::from_secs(1)).unwrap();
    assert!(handle.blocking().wait_stopped(Duration::from_secs(5)));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while shard_threads() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(shard_threads(), 0, "the shard threads outlive the server");
}

/// `post_kick` follows the verb rule: it only queues the kick (no verdict,
/// so a kick of an unknown channel is `Ok` and counted by the hub), in
/// order after the sends posted before it: the client reads the farewell,
/// then EOF, and the channel ends `Kicked`.
#[test]
fn post_kick_queues_in_order_without_a_verdict() {
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let (handle, events) =
        tether_tokio::start_on_threads(listener, Config::default(), Options::default()).unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let id = loop {
        match events.blocking().next_timeout(Duration::from_secs(5)) {
            Some(Event::Opened { id, .. }) => break id,
            Some(_) => {}
            None => panic!("no channel opened"),
        }
    };
    let server = handle.blocking();
    server.post_send(id, "bye\n").unwrap();
    server.post_kick(id, KickMode::Graceful, 4).unwrap();
    assert_eq!(read_all(client), "bye\n");
    let reason = loop {
        match events.blocking().next_timeout(Duration::from_secs(5)) {
            Some(Event::Disconnected { reason, .. }) => break reason,
            Some(_) => {}
            None => panic!("no Disconnected"),
        }
    };
    assert_eq!(reason, tether_core::DisconnectReason::Kicked { code: 4 });
    // No verdict: kicking it again (now unknown to the hub's live set) is
    // still Ok here, where `kick` reports the hub's refusal.
    server.post_kick(id, KickMode::Abort, 5).unwrap();
    assert!(server.kick(id, KickMode::Abort, 5).is_err());
    server.shutdown(Duration::from_secs(1)).unwrap();
    assert!(server.wait_stopped(Duration::from_secs(5)));
}
