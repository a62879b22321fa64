//! WebSocket clients of real `tether serve` processes (issue 19): TCP and
//! WebSocket clients chatting together, every close code, the handshake
//! deadline against a slowloris, hostile frames, and pressure (a slow
//! WebSocket consumer, a flood of tiny messages, SIGTERM mid-burst, many
//! idle clients). [`web_suite!`](crate::web_suite) instantiates them per
//! runtime and shard count (`tests/tests/web.rs`).

pub mod client;
mod pressure;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub use self::client::{Frame, WsClient};
pub use self::pressure::{many_idle, sigterm_mid_burst_ws, slow_consumer_ws, tiny_flood_ws};
use super::net::Client;
use super::serial;
use super::server::{Server, ServerSpec};
use client::{BINARY, CLOSE, PING, TEXT, frame};

/// How long connecting, upgrading and greeting may take.
const SOON: Duration = Duration::from_secs(10);

/// The server's WebSocket address.
pub fn web_addr(server: &mut Server) -> SocketAddr {
    server
        .web_addr(SOON)
        .unwrap_or_else(|| panic!("no `web:` line in the banner\n{}", server.context()))
}

/// A WebSocket client, upgraded and greeted: the client and its id.
pub fn join(server: &mut Server, addr: SocketAddr) -> (WsClient, String) {
    let mut ws = WsClient::connect(addr, SOON)
        .unwrap_or_else(|e| panic!("WebSocket client: {e}\n{}", server.context()));
    let hello = ws.next_text(Instant::now() + SOON);
    let id = match hello.as_deref().map(|h| h.strip_prefix("hello ")) {
        Ok(Some(id)) => id.to_owned(),
        _ => panic!("no greeting: {hello:?}\n{}", server.context()),
    };
    (ws, id)
}

/// The close frame a fresh client gets after sending `bytes`.
fn close_after(addr: SocketAddr, bytes: &[u8]) -> (Option<(Option<u16>, String)>, bool) {
    let Ok(mut ws) = WsClient::connect(addr, SOON) else {
        return (None, false);
    };
    let _greeting = ws.next_text(Instant::now() + SOON);
    let _ = ws.send_raw(bytes);
    ws.close(Instant::now() + SOON)
}

/// **Chat and close codes.** Two browsers and a TCP client chat together
/// (`hello <id>`, `<id>: <line>` both ways, a TCP line that is not UTF-8
/// reaching browsers with U+FFFD); each hostile frame gets its close code
/// (binary 1003, too long 1009, invalid UTF-8 1007, unmasked, reserved
/// bits, a reserved opcode, a fragmented or oversized ping 1002); a ping is
/// answered; the peer's close is echoed; an admin kick closes with 4001
/// and its reason; `GET /` serves the page; the console's `shutdown`
/// closes every browser with 1001; every close frame comes before the
/// FIN. Counted in `stats`.
pub fn chat_and_close_codes(runtime: &'static str) {
    let _serial = serial();
    let mut server = ServerSpec::new(runtime, "web-chat").start();
    let addr = web_addr(&mut server);
    let by = || Instant::now() + SOON;
    let (mut a, a_id) = join(&mut server, addr);
    let (mut b, _b_id) = join(&mut server, addr);
    let mut tcp = Client::connect(server.chat, by())
        .unwrap_or_else(|e| panic!("TCP client: {e}\n{}", server.context()));
    let mut failures = Vec::new();
    a.send_text("héllo wörld").expect("send");
    let relayed = format!("{a_id}: héllo wörld");
    for (name, got) in [
        ("b", b.next_text(by())),
        ("a (its echo)", a.next_text(by())),
    ] {
        if got.as_ref() != Ok(&relayed) {
            failures.push(format!("{name} read {got:?}, not {relayed:?}"));
        }
    }
    let line = tcp
        .reader
        .next_line(by())
        .map(|l| String::from_utf8_lossy(l).into_owned());
    if line.as_ref() != Ok(&relayed) {
        failures.push(format!("the TCP client read {line:?}, not {relayed:?}"));
    }
    std::io::Write::write_all(&mut tcp.writer(), b"from tcp \xff\xfe ok\n").expect("tcp send");
    let expected = format!("{}: from tcp \u{fffd}\u{fffd} ok", tcp.id);
    for (name, ws) in [("a", &mut a), ("b", &mut b)] {
        let got = ws.next_text(by());
        if got.as_ref() != Ok(&expected) {
            failures.push(format!("{name} read {got:?}, not {expected:?}"));
        }
    }
    let _ = a.send_raw(&frame(0x80 | PING, b"are you there", true));
    match a.next(by()) {
        Frame::Pong => {}
        other => failures.push(format!("a ping got {other:?}, not a pong")),
    }
    hostile_frames(addr, &mut failures);
    let mut admin = server.admin(SOON).expect("admin console");
    let kicked = admin
        .command(&format!("kick {a_id} graceful too loud"), SOON)
        .expect("kick");
    if kicked != ["ok"] {
        failures.push(format!("kick answered {kicked:?}"));
    }
    match (a.next_text(by()), a.close(by())) {
        (Ok(notice), (Some((Some(4001), reason)), true))
            if notice == "* kicked: too loud" && reason == "kicked: too loud" => {}
        other => failures.push(format!("the kicked browser read {other:?}")),
    }
    let page = http_get(addr, "/");
    if !page.starts_with("HTTP/1.1 200") || !page.contains("/ws") {
        failures.push(format!("GET / answered {page:?}"));
    }
    let stats = server.stats(SOON).expect("stats");
    let errors = stats.get("adapter.web_protocol_errors");
    if errors != Some(8) {
        failures.push(format!("adapter.web_protocol_errors = {errors:?}, not 8"));
    }
    let _ = admin.command("shutdown", SOON);
    match b.close(by()) {
        (Some((Some(1001), _)), true) => {}
        other => failures.push(format!("b at shutdown: {other:?}, not 1001 then FIN")),
    }
    server.fail_if_any("chat and close codes", &failures);
}

/// Each hostile frame, from a fresh browser, gets its close code and then
/// the FIN; the peer's own close is echoed.
fn hostile_frames(addr: SocketAddr, failures: &mut Vec<String>) {
    let too_long = vec![b'x'; 4097];
    let hostile: [(&str, Vec<u8>, u16); 9] = [
        ("binary", frame(0x80 | BINARY, b"bin", true), 1003),
        ("too long", frame(0x80 | TEXT, &too_long, true), 1009),
        ("invalid UTF-8", frame(0x80 | TEXT, b"caf\xc3", true), 1007),
        ("unmasked", frame(0x80 | TEXT, b"plain", false), 1002),
        ("reserved bits", frame(0xc0 | TEXT, b"x", true), 1002),
        ("reserved opcode", frame(0x83, b"x", true), 1002),
        ("fragmented ping", frame(PING, b"x", true), 1002),
        ("oversized ping", frame(0x80 | PING, &[0; 126], true), 1002),
        (
            "peer's close, echoed",
            frame(0x80 | CLOSE, &3000u16.to_be_bytes(), true),
            3000,
        ),
    ];
    for (what, bytes, code) in &hostile {
        match close_after(addr, bytes) {
            (Some((Some(got), _)), true) if got == *code => {}
            other => failures.push(format!("{what}: {other:?}, not close {code} then FIN")),
        }
    }
}

/// **A pong is activity.** `--idle-timeout 2s --ws-ping 300ms`: a browser
/// that sends no message but answers every ping outlives a silent TCP
/// client (kicked at 2 s) by far; once it stops answering it is closed
/// with 4100 (`idle timeout`) within a generous bound.
pub fn pong_is_activity(runtime: &'static str) {
    let _serial = serial();
    let mut server = ServerSpec::new(runtime, "web-pong")
        .flag("--idle-timeout", "2s")
        .flag("--ws-ping", "300ms")
        .start();
    let addr = web_addr(&mut server);
    let (mut ws, _) = join(&mut server, addr);
    let tcp = Client::connect(server.chat, Instant::now() + SOON)
        .unwrap_or_else(|e| panic!("TCP client: {e}\n{}", server.context()));
    let mut failures = Vec::new();
    let answering = Instant::now() + Duration::from_secs(5);
    let mut pings = 0;
    while Instant::now() < answering {
        match ws.next(answering) {
            Frame::Ping(payload) => {
                pings += 1;
                let _ = ws.send_raw(&frame(0x80 | client::PONG, &payload, true));
            }
            Frame::Timeout | Frame::Text(_) => {}
            other => {
                failures.push(format!(
                    "the answering browser got {other:?} after {pings} pings"
                ));
                break;
            }
        }
    }
    if pings < 5 {
        failures.push(format!("only {pings} pings in 5 s at --ws-ping 300ms"));
    }
    let idle = server
        .stats(SOON)
        .expect("stats")
        .get("disconnected.idle-timeout");
    if idle != Some(1) {
        failures.push(format!(
            "disconnected.idle-timeout = {idle:?} after 5 s, not 1 (the TCP client)"
        ));
    }
    match ws.close(Instant::now() + Duration::from_secs(15)) {
        (Some((Some(4100), _)), true) => {}
        other => failures.push(format!(
            "the browser that stopped answering: {other:?}, not 4100"
        )),
    }
    drop(tcp);
    server.fail_if_any("pong is activity", &failures);
}

/// One HTTP/1.1 GET, the whole answer (the server closes after it).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, SOON) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(SOON));
    let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// **Slowloris.** With `--login-timeout 1s`, 40 sockets that send part of
/// an upgrade and never finish it, and 10 that send nothing, are all closed
/// within a generous bound and counted
/// (`adapter.web_handshake_timeouts`); meanwhile a browser that upgrades
/// and speaks at once chats as usual.
pub fn slowloris(runtime: &'static str) {
    let _serial = serial();
    let mut server = ServerSpec::new(runtime, "web-slowloris")
        .flag("--login-timeout", "1s")
        .start();
    let addr = web_addr(&mut server);
    let started = Instant::now();
    let mut silent: Vec<TcpStream> = (0..50)
        .map(|k| {
            let mut s = TcpStream::connect_timeout(&addr, SOON).expect("connect");
            if k < 40 {
                let _ = std::io::Write::write_all(&mut s, b"GET /ws HTTP/1.1\r\nHost: x\r\n");
            }
            s
        })
        .collect();
    let (mut ws, id) = join(&mut server, addr);
    ws.send_text("still here").expect("send");
    let mut failures = Vec::new();
    let echo = ws.next_text(Instant::now() + SOON);
    if echo.as_deref() != Ok(format!("{id}: still here").as_str()) {
        failures.push(format!("the browser read {echo:?}"));
    }
    let bound = Duration::from_secs(15);
    for (k, s) in silent.iter_mut().enumerate() {
        let _ = s.set_read_timeout(Some(
            bound
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1)),
        ));
        let mut byte = [0u8; 512];
        // EOF or reset: closed. A timeout: still open.
        if let Err(e) = std::io::Read::read(s, &mut byte)
            && matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        {
            failures.push(format!("slowloris socket {k} still open after {bound:?}"));
            break;
        }
    }
    let counted = server
        .stats(SOON)
        .expect("stats")
        .get("adapter.web_handshake_timeouts");
    if counted != Some(50) {
        failures.push(format!(
            "adapter.web_handshake_timeouts = {counted:?}, not 50"
        ));
    }
    server.fail_if_any("slowloris", &failures);
}

/// **Server full, login timeout.** `--max-channels 2 --login-timeout 2s`:
/// with two browsers connected a third is refused before its upgrade
/// with HTTP 503 and `Retry-After`; a browser that upgraded but sent no
/// line is closed with 4101 (`login timeout`) before the FIN, while one
/// that spoke stays.
pub fn full_and_login_timeout(runtime: &'static str) {
    let _serial = serial();
    let mut server = ServerSpec::new(runtime, "web-full")
        .flag("--max-channels", "2")
        .flag("--login-timeout", "2s")
        .start();
    let addr = web_addr(&mut server);
    let (mut quiet, _) = join(&mut server, addr);
    let (mut talker, talker_id) = join(&mut server, addr);
    talker.send_text("hi").expect("send");
    let mut failures = Vec::new();
    let echo = talker.next_text(Instant::now() + SOON);
    if echo.as_deref() != Ok(format!("{talker_id}: hi").as_str()) {
        failures.push(format!("the talker read {echo:?}"));
    }
    let refused = http_get(addr, "/ws");
    if !refused.starts_with("HTTP/1.1 503") || !refused.contains("Retry-After") {
        failures.push(format!("a third browser was answered {refused:?}, not 503"));
    }
    match quiet.close(Instant::now() + SOON) {
        (Some((Some(4101), reason)), true) if reason == "login timeout" => {}
        other => failures.push(format!("the quiet browser: {other:?}, not 4101 then FIN")),
    }
    let _ = talker.send_text("still here");
    let still = talker.next_text(Instant::now() + SOON);
    if still.as_deref() != Ok(format!("{talker_id}: still here").as_str()) {
        failures.push(format!(
            "the talker, after the quiet one left, read {still:?}"
        ));
    }
    server.fail_if_any("server full and login timeout", &failures);
}

/// Instantiates the WebSocket scenarios for one runtime spec (e.g.
/// `"tokio:2"`); the full sizes are `#[ignore]`d.
#[macro_export]
macro_rules! web_suite {
    ($runtime:literal) => {
        #[test]
        fn chat_and_close_codes() {
            $crate::pressure::web::chat_and_close_codes($runtime);
        }
        #[test]
        fn pong_is_activity() {
            $crate::pressure::web::pong_is_activity($runtime);
        }
        #[test]
        fn full_and_login_timeout() {
            $crate::pressure::web::full_and_login_timeout($runtime);
        }
        #[test]
        fn slowloris() {
            $crate::pressure::web::slowloris($runtime);
        }
        #[test]
        fn slow_consumer() {
            $crate::pressure::web::slow_consumer_ws($runtime, &$crate::pressure::Scale::DEFAULT);
        }
        #[test]
        fn tiny_flood() {
            $crate::pressure::web::tiny_flood_ws($runtime, &$crate::pressure::Scale::DEFAULT);
        }
        #[test]
        fn sigterm_mid_burst() {
            $crate::pressure::web::sigterm_mid_burst_ws(
                $runtime,
                &$crate::pressure::Scale::DEFAULT,
            );
        }
        #[test]
        fn idle_1000() {
            $crate::pressure::web::many_idle($runtime, 1_000);
        }
        #[test]
        #[ignore = "full size: cargo test --release -p tether-conformance --test web -- --ignored"]
        fn idle_10000() {
            $crate::pressure::web::many_idle($runtime, 10_000);
        }
    };
}
