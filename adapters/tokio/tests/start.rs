//! `tether_tokio::start` on real runtimes: the typed error without one,
//! and what a new connection sees first (its greeting, or the refusal line
//! of a full server), before tokio's reactor has seen its socket writable.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use tether_core::{Config, Event, KickMode};
use tether_tokio::{Options, RuntimeError};

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
    let options = Options {
        refuse_line: Some("error server full\n".into()),
        ..Options::default()
    };
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
    assert_eq!(stats.adapter("adapter.write_waits"), 0, "{stats:?}");
    // Both paths count `refused_full`; the hub's own refusals (the driver's
    // path) are in `core.refused` too.
    assert_eq!(stats.adapter("adapter.refused_full"), 7, "{stats:?}");
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
