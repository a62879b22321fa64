//! `--metrics`: real HTTP GETs over loopback against a running server.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Client;
use tether_chat::cli::{HostPort, Runtime, ServeOptions};
use tether_chat::server::METRICS_CONTENT_TYPE;

/// Sends `request` as is and reads the whole answer (the server closes).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8(answer).unwrap()
}

/// `(status code, headers, body)` of an answer.
fn parse(answer: &str) -> (u16, String, String) {
    let (head, body) = answer.split_once("\r\n\r\n").expect(answer);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect(head);
    (status, head.to_owned(), body.to_owned())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nUser-Agent: t\r\n\r\n");
    parse(&exchange(addr, request.as_bytes()))
}

/// A sample's value: `name value` or `name{labels} value`.
fn sample(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{body}"))
}

fn scrape(addr: SocketAddr) -> String {
    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .expect(&head);
    assert_eq!(content_type, METRICS_CONTENT_TYPE);
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    body
}

fn metrics_over_http(runtime: Runtime) {
    let mut options = ServeOptions::ephemeral();
    options.runtime = runtime;
    options.metrics = Some(HostPort::loopback_any());
    let server = tether::start(&options).expect("the server starts");
    let addr = server.metrics_addr.expect("--metrics binds");

    // A slowloris holds one connection open for the whole test.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    let slow_since = Instant::now();

    let before = scrape(addr);
    assert!(before.contains("# TYPE tether_live gauge"), "{before}");
    assert!(
        before.contains("# TYPE tether_kick_latency_seconds histogram"),
        "{before}"
    );
    assert!(before.contains("tether_disconnected_total{reason=\"slow-consumer\"} 0"));
    assert!(before.contains("tether_rejected_input_total{kind=\"over-written\"} 0"));
    let accepted = sample(&before, "tether_adapter_accepted_total");
    let opened = sample(&before, "tether_opened_total");

    let (mut alice, alice_id) = Client::join(server.chat_addr);
    let after = scrape(addr);
    assert_eq!(
        sample(&after, "tether_adapter_accepted_total"),
        accepted + 1
    );
    assert_eq!(sample(&after, "tether_opened_total"), opened + 1);
    assert_eq!(sample(&after, "tether_live"), 1);
    assert!(after.contains("# TYPE tether_chat_members gauge"));

    // Kick alice: the kick → FIN histogram counts it once her FIN is out.
    let mut admin = Client::connect(server.admin_addr);
    admin.send(&format!("kick {alice_id} graceful\n"));
    assert_eq!(admin.line(), "ok\n");
    while !alice.line().is_empty() {}
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = scrape(addr);
        if sample(&body, "tether_kick_latency_seconds_count") == 1 {
            assert_eq!(
                sample(&body, "tether_kick_latency_seconds_bucket{le=\"+Inf\"}"),
                1
            );
            assert_eq!(
                sample(&body, "tether_disconnected_total{reason=\"kicked\"}"),
                1
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no kick latency counted:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // `/` is the admin dashboard (loopback, no token: served); anything
    // else but GET /metrics is a 404; garbage is a 4xx; the server keeps
    // serving.
    let dashboard = exchange(
        addr,
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    );
    assert_eq!(parse(&dashboard).0, 200, "{dashboard}");
    // Asked for by a name (`Host: test`), as after DNS rebinding: refused.
    assert_eq!(get(addr, "/").0, 403);
    for path in ["/metrics/x", "/metricsx", "/../metrics", "/api"] {
        assert_eq!(get(addr, path).0, 404, "{path}");
    }
    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(parse(&post).0, 404, "{post}");
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
        b"hello\n\n",
        b"GET /metrics\r\n\r\n",
        b"\0\0\0\0\n\n",
    ] {
        let answer = exchange(addr, garbage);
        let status = parse(&answer).0;
        assert!((400..500).contains(&status), "{garbage:?}: {answer}");
    }
    // A request head that never ends is cut off at its bound.
    let huge = vec![b'A'; 64 * 1024];
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(&huge); // the server may stop reading first
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    // A client that connects and says nothing, then leaves.
    drop(TcpStream::connect(addr).unwrap());

    // The chat server did not notice any of it.
    let (mut bob, bob_id) = Client::join(server.chat_addr);
    bob.send("still here\n");
    assert_eq!(bob.line(), format!("{bob_id}: still here\n"));
    scrape(addr);

    // The slowloris gets its 408 once the request timeout has passed.
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(slow_since.elapsed() >= Duration::from_millis(1500));

    server.shutdown(Duration::from_millis(200)).unwrap();
    assert!(
        server
            .handle
            .blocking()
            .wait_stopped(Duration::from_secs(10))
    );
    common::wait_ended(server);
}

/// 20 sockets that never send a request, connected before the scrape:
/// the scrape evicts the oldest of them and is answered; the evicted read a
/// 503 and EOF; every eviction is counted.
fn silent_sockets_never_starve_a_scrape(runtime: Runtime) {
    let mut options = ServeOptions::ephemeral();
    options.runtime = runtime;
    options.metrics = Some(HostPort::loopback_any());
    let server = tether::start(&options).expect("the server starts");
    let addr = server.metrics_addr.expect("--metrics binds");
    let silent: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let started = Instant::now();
    let body = scrape(addr);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "scraped after {took:?}");
    // 21 connections through 8 slots: 13 made room, by eviction or by
    // timing out (a slow machine).
    let evicted = sample(&body, "tether_metrics_evicted_total");
    let timeouts = sample(&body, "tether_metrics_timeouts_total");
    assert!(evicted + timeouts >= 13, "{evicted} + {timeouts}\n{body}");
    let mut first = &silent[0];
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = first.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 503 ") || answer.starts_with("HTTP/1.1 408 "),
        "{answer}"
    );
    server.shutdown(Duration::from_millis(200)).unwrap();
    common::wait_ended(server);
}

#[test]
fn silent_sockets_never_starve_a_scrape_threads() {
    silent_sockets_never_starve_a_scrape(Runtime::Threads);
}

#[test]
fn silent_sockets_never_starve_a_scrape_tokio() {
    silent_sockets_never_starve_a_scrape(Runtime::Tokio);
}

#[test]
fn metrics_over_http_threads() {
    metrics_over_http(Runtime::Threads);
}

#[test]
fn metrics_over_http_tokio() {
    metrics_over_http(Runtime::Tokio);
}

#[test]
fn metrics_over_http_async_std() {
    metrics_over_http(Runtime::AsyncStd);
}
