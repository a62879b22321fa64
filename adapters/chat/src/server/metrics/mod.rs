//! `--metrics ADDR`: `GET /metrics` in the Prometheus text format (0.0.4),
//! from a small std-thread HTTP server.
//!
//! Every key of [`ServerStats::counters`](tether_adapter::ServerStats::counters) and of the chat server's own
//! [`ChatCounters`] is exposed under the `tether_` prefix, counters as
//! counters (`_total`) and gauges as gauges; `disconnected.<reason>` and
//! `rejected_input.<kind>` become one family each with a `reason` or `kind`
//! label. Added: `tether_queued_bytes` (bytes in outbound queues now) and
//! the `tether_kick_latency_seconds` histogram (kick → FIN/RST).
//!
//! The HTTP side answers `GET /metrics` with 200 and everything else with
//! 404 (400 for what is not an HTTP request, 431 for a request head over
//! [`MAX_REQUEST`] bytes, 408 for one not complete within
//! [`HEAD_TIMEOUT`]). One request per connection; at most
//! [`MAX_CONNECTIONS`] at once, each on its own short-lived thread, so a
//! slow or hostile client holds one slot for [`HEAD_TIMEOUT`] at most
//! and never the chat server. At the cap a new connection evicts the
//! oldest one whose request head has not arrived (it reads a 503 if its
//! socket takes it, then the connection is shut down): silent sockets never
//! starve a scrape. When every slot is busy answering a request, the
//! newcomer gets a 503. Evictions, refusals and 408s are counted
//! (`metrics.evicted`, `metrics.refused`, `metrics.timeouts`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tether_adapter::Handle;
use tether_adapter::listen::{self, AcceptErrors};

mod encode;

use self::encode::render;
use super::slots::{Admission, SlotId, Slots};
use super::stop::{StopReader, Wake};
use super::{ChatCounters, ServeError, spawn_thread};

/// The `Content-Type` of a scrape: the Prometheus text format, 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Longest request head (request line and headers) read, in bytes.
pub const MAX_REQUEST: usize = 8 * 1024;

/// How long a client has to send its whole request head, however it trickles
/// in (a scraper sends it at once).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// The bound on writing an answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections held at once; at the cap a newcomer evicts the oldest one
/// without a complete request head (or is refused with a 503 when every
/// one has sent its request).
pub const MAX_CONNECTIONS: usize = 8;

/// What an evicted connection reads (if its socket takes it) before it is
/// shut down.
const EVICTED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 56\r\nConnection: close\r\n\r\nevicted: too many connections without a request (max 8)\n";

/// What a connection refused at the cap reads before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 45\r\nConnection: close\r\nRetry-After: 1\r\n\r\nbusy: every connection slot is answering one\n";

/// How often the listener thread checks whether the server stopped, should
/// the stop pipe stay silent.
const STOP_CHECK: Duration = Duration::from_secs(1);

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `GET /metrics`.
    Metrics,
    /// A well-formed request for anything else: 404.
    NotFound,
    /// Not an HTTP/1 request line: 400.
    BadRequest,
}

/// Routes a complete request head.
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
        || !version.starts_with("HTTP/1.")
    {
        return Route::BadRequest;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if method == "GET" && path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

/// Where a request head ends (after its blank line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads one request head within [`HEAD_TIMEOUT`] and [`MAX_REQUEST`]
/// bytes: `Ok(head)`, or the error status to answer with (`None`: the
/// connection failed or was evicted, answer nothing).
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Option<&'static str>> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() >= MAX_REQUEST {
            return Err(Some("431 Request Header Fields Too Large"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Some("408 Request Timeout"));
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return Err(None);
        }
        let room = (MAX_REQUEST - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            // The client stopped sending before the blank line.
            Ok(0) if buf.is_empty() => return Err(None),
            Ok(0) => return Err(Some("400 Bad Request")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Some("408 Request Timeout"));
            }
            Err(_) => return Err(None),
        }
    }
}

/// What a connection's thread needs besides its socket.
struct Conn<'a> {
    /// Its slot.
    id: SlotId,
    slots: &'a Slots,
    counters: &'a ChatCounters,
    /// The scrape body, `None` once the server has stopped.
    scrape: &'a dyn Fn() -> Option<String>,
}

/// Serves one connection: one request, one answer, close.
fn serve_connection(mut stream: TcpStream, conn: &Conn<'_>) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let head = read_head(&mut stream);
    if let Err(Some(status)) = head
        && status.starts_with("408")
    {
        conn.counters
            .metrics_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }
    // Its request is in: a newcomer no longer evicts it. Evicted already:
    // its socket is shut down, nothing to answer.
    if head.is_ok() && !conn.slots.establish(conn.id) {
        return;
    }
    let (status, content_type, body) = match head {
        Err(None) => return,
        Err(Some(status)) => (status, "text/plain; charset=utf-8", format!("{status}\n")),
        Ok(head) => match route(&head) {
            Route::Metrics => match (conn.scrape)() {
                Some(body) => ("200 OK", CONTENT_TYPE, body),
                None => (
                    "503 Service Unavailable",
                    "text/plain; charset=utf-8",
                    "the server has stopped\n".to_owned(),
                ),
            },
            Route::NotFound => (
                "404 Not Found",
                "text/plain; charset=utf-8",
                "not found: only GET /metrics is served here\n".to_owned(),
            ),
            Route::BadRequest => (
                "400 Bad Request",
                "text/plain; charset=utf-8",
                "400 Bad Request\n".to_owned(),
            ),
        },
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(answer.as_bytes()).is_ok() {
        let _ = stream.flush();
        let _ = stream.shutdown(Shutdown::Write);
        // Give the client its answer before the close: drain what it still
        // sends (briefly), so unread bytes do not turn the close into a RST.
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let mut sink = [0u8; 1024];
        for _ in 0..8 {
            if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

/// Starts the metrics listener thread on a bound `listener`.
pub(super) fn spawn(
    listener: TcpListener,
    handle: Handle,
    counters: Arc<ChatCounters>,
    console: super::Console,
    stopped: StopReader,
) -> Result<JoinHandle<()>, ServeError> {
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Thread {
            what: "metrics",
            source,
        })?;
    spawn_thread("metrics", move || {
        run(&listener, &handle, &counters, &console, &stopped)
    })
}

/// Accepts scrapes until the server stops.
fn run(
    listener: &TcpListener,
    handle: &Handle,
    counters: &Arc<ChatCounters>,
    console: &super::Console,
    stopped: &StopReader,
) {
    let mut errors = AcceptErrors::new("metrics");
    let slots = Arc::new(Slots::new(MAX_CONNECTIONS));
    loop {
        match stopped.wait(Some(listener), STOP_CHECK) {
            Wake::Stopped => break,
            Wake::Timeout if handle.is_stopped() => break,
            Wake::Timeout => continue,
            Wake::Ready => {}
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => {
                errors.success();
                stream
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                std::thread::sleep(errors.failed(&e));
                continue;
            }
        };
        let id = match slots.admit(&stream, EVICTED) {
            Admission::Admitted(id) => id,
            Admission::Evicted(id) => {
                counters.metrics_evicted.fetch_add(1, Ordering::Relaxed);
                id
            }
            Admission::Full => {
                counters.metrics_refused.fetch_add(1, Ordering::Relaxed);
                listen::refuse_std(stream, REFUSED);
                continue;
            }
            Admission::Unavailable => continue, // out of descriptors: closed
        };
        let (handle, counters, slots_) = (handle.clone(), counters.clone(), slots.clone());
        let console = console.clone();
        let spawned = std::thread::Builder::new()
            .name("tether-metrics-conn".into())
            .spawn(move || {
                let scrape = || {
                    let stats = super::call(&handle, handle.stats()).ok()?;
                    // The chat server's counters, then (on a cluster
                    // node) every `cluster.*` one.
                    let mut chat = counters.snapshot().to_vec();
                    chat.extend(console.cluster_stats());
                    Some(render(&stats, &chat))
                };
                let conn = Conn {
                    id,
                    slots: &slots_,
                    counters: &counters,
                    scrape: &scrape,
                };
                serve_connection(stream, &conn);
                slots_.close(id);
            });
        if let Err(e) = spawned {
            slots.close(id);
            tracing::warn!("cannot start a metrics connection thread: {e}");
        }
    }
    // Wake the connections still waiting for a request head.
    slots.shutdown_reads();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\n\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        for bad in [
            &b"\r\n\r\n"[..],
            b"hello\n\n",
            b"GET /metrics\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(route(bad), Route::BadRequest, "{bad:?}");
        }
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn canned_answers_say_their_length() {
        for answer in [EVICTED, REFUSED] {
            let text = std::str::from_utf8(answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap();
            assert_eq!(length.parse::<usize>().unwrap(), body.len(), "{text}");
        }
    }
}
