//! The admin dashboard beside `/metrics`, over real sockets (no browser):
//! the token rule, and hostile requests answered 4xx at once, never a
//! hang. One runtime: the dashboard is the chat crate's own std-thread
//! HTTP server, the same on every runtime.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tether_conformance::pressure::net::Client;
use tether_conformance::pressure::{ServerSpec, serial};

const STARTUP: Duration = Duration::from_secs(20);

/// Sends `request` (written in one go, or as given), reads the whole
/// answer; panics if it takes more than `within`.
fn ask(addr: SocketAddr, request: &[u8], within: Duration) -> String {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect to --metrics");
    stream.set_read_timeout(Some(within)).unwrap();
    stream.write_all(request).expect("write the request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        started.elapsed() < within,
        "no answer within {within:?} to {:?}",
        String::from_utf8_lossy(&request[..request.len().min(80)])
    );
    String::from_utf8_lossy(&answer).into_owned()
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or(answer)
}

fn post(addr: SocketAddr, auth: &str, content_type: &str, body: &str) -> String {
    let request = format!(
        "POST /api/kick HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    ask(addr, request.as_bytes(), Duration::from_secs(5))
}

/// The token of these tests' server.
const AUTH: &str = "Authorization: Bearer open sesame\r\n";

/// How long any answer may take.
const QUICK: Duration = Duration::from_secs(5);

fn get(addr: SocketAddr, path: &str, auth: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n");
    ask(addr, request.as_bytes(), QUICK)
}

fn json_kick(addr: SocketAddr, body: &str) -> String {
    post(addr, AUTH, "application/json", body)
}

/// The page (no data in it) is served; the data needs the token;
/// `/metrics` stays open, as before.
fn token_rule(addr: SocketAddr) {
    let get = |path: &str, auth: &str| get(addr, path, auth);
    let page = get("/", "");
    assert_eq!(status(&page), "200", "{page}");
    assert!(page.contains("<title>tether admin</title>"));
    assert!(page.contains("X-Frame-Options: DENY"), "{page}");
    for path in ["/api/list", "/api/stats"] {
        let refused = get(path, "");
        assert_eq!(status(&refused), "401", "{refused}");
        assert!(refused.contains("WWW-Authenticate: Bearer"), "{refused}");
        assert_eq!(status(&get(path, "Authorization: Bearer open\r\n")), "401");
    }
    assert_eq!(
        status(&post(addr, "", "application/json", r##"{"id":"#0.1"}"##)),
        "401"
    );
    assert_eq!(status(&get("/metrics", "")), "200");
}

/// With the token: the channel table and the counters, as JSON.
fn json_views(addr: SocketAddr, client: &Client) {
    let get = |path: &str, auth: &str| get(addr, path, auth);
    let list = get("/api/list", AUTH);
    assert_eq!(status(&list), "200", "{list}");
    let body = list.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).expect("the list is JSON");
    let ids: Vec<&str> = json["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(
        ids.contains(&client.id.as_str()),
        "{ids:?} lacks {}",
        client.id
    );
    let stats = get("/api/stats", AUTH);
    let body = stats.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).expect("the stats are JSON");
    assert!(json["counters"]["usable"].as_u64() >= Some(1), "{json}");
    assert!(json["counters"]["queued_bytes"].is_u64(), "{json}");
}

/// Typed errors for what is not a kick, `error` for a stale id, 415 for
/// a form, 403 for another origin.
fn refused_kicks(addr: SocketAddr) {
    let json_kick = |body: &str| json_kick(addr, body);
    assert_eq!(status(&json_kick("{not json")), "400");
    assert_eq!(status(&json_kick(r##"{"id":"nope"}"##)), "400");
    assert_eq!(
        status(&json_kick(r##"{"id":"#0.1","mode":"gentle"}"##)),
        "400"
    );
    let stale = json_kick(r##"{"id":"#999.9"}"##);
    assert_eq!(status(&stale), "409", "{stale}");
    assert!(stale.contains("\r\n\r\nerror "), "{stale}");
    assert_eq!(
        status(&post(
            addr,
            AUTH,
            "application/x-www-form-urlencoded",
            "id=1"
        )),
        "415"
    );
    let foreign = format!(
        "POST /api/kick HTTP/1.1\r\nHost: {addr}\r\n{AUTH}Origin: http://evil.example\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    assert_eq!(status(&ask(addr, foreign.as_bytes(), QUICK)), "403");
}

/// Huge bodies refused from the header alone, a body that never comes
/// times out, no length is 411, a wrong method 405, garbage 400.
fn hostile_framing(addr: SocketAddr) {
    let huge = format!(
        "POST /api/kick HTTP/1.1\r\nHost: {addr}\r\n{AUTH}Content-Type: application/json\r\n\
         Content-Length: 1000000000\r\n\r\n"
    );
    assert_eq!(status(&ask(addr, huge.as_bytes(), QUICK)), "413");
    let short = format!(
        "POST /api/kick HTTP/1.1\r\nHost: {addr}\r\n{AUTH}Content-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"id\":"
    );
    assert_eq!(status(&ask(addr, short.as_bytes(), QUICK)), "408");
    let chunked = format!(
        "POST /api/kick HTTP/1.1\r\nHost: {addr}\r\n{AUTH}Content-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
    );
    assert_eq!(status(&ask(addr, chunked.as_bytes(), QUICK)), "411");
    assert_eq!(status(&get(addr, "/api/kick", AUTH)), "405");
    assert_eq!(
        status(&ask(addr, b"\x16\x03\x01garbage\r\n\r\n", QUICK)),
        "400"
    );
}

#[test]
fn with_a_token_the_dashboard_needs_it_and_hostile_requests_get_4xx() {
    let _serial = serial();
    let server = ServerSpec::new("threads:2", "dashboard")
        .flag("--metrics", "127.0.0.1:0")
        .flag("--admin-token", "open sesame")
        .start();
    let addr = server.metrics_addr(STARTUP).expect("the --metrics address");
    token_rule(addr);
    let client = Client::connect(server.chat, Instant::now() + STARTUP).expect("a chat client");
    json_views(addr, &client);
    refused_kicks(addr);
    hostile_framing(addr);

    // A kick that works: the client reads why (the reason on one line).
    let ok = json_kick(
        addr,
        &format!(
            r##"{{"id":"{}","reason":"from a test\nwith a newline"}}"##,
            client.id
        ),
    );
    assert_eq!(status(&ok), "200", "{ok}");
    assert!(ok.ends_with("\r\n\r\nok\n"), "{ok}");
    let mut reader = client.reader;
    let deadline = Instant::now() + QUICK;
    let line = reader
        .next_line(deadline)
        .map(|l| String::from_utf8_lossy(l).into_owned());
    assert_eq!(line.as_deref(), Ok("* kicked: from a test with a newline"));
}

#[test]
fn without_a_token_the_dashboard_is_for_this_machine_only() {
    let _serial = serial();
    let server = ServerSpec::new("threads", "dashboard-open")
        .flag("--metrics", "127.0.0.1:0")
        .start();
    let addr = server.metrics_addr(STARTUP).expect("the --metrics address");
    let get = |host: &str| {
        ask(
            addr,
            format!("GET /api/stats HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
    };
    assert_eq!(status(&get(&addr.to_string())), "200");
    assert_eq!(status(&get(&format!("localhost:{}", addr.port()))), "200");
    // DNS rebinding: another site's name resolving to 127.0.0.1.
    assert_eq!(
        status(&get(&format!("attacker.example:{}", addr.port()))),
        "403"
    );
}
