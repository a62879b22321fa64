//! `--metrics ADDR`: `GET /metrics` in the Prometheus text format (0.0.4),
//! from a small std-thread HTTP server.
//!
//! Every key of [`ServerStats::counters`] and of the chat server's own
//! [`ChatCounters`] is exposed under the `tether_` prefix, counters as
//! counters (`_total`) and gauges as gauges; `disconnected.<reason>` and
//! `rejected_input.<kind>` become one family each with a `reason` or `kind`
//! label. Added: `tether_queued_bytes` (bytes in outbound queues now) and
//! the `tether_kick_latency_seconds` histogram (kick → FIN/RST).
//!
//! The HTTP side answers `GET /metrics` with 200 and everything else with
//! 404 (400 for what is not an HTTP request, 431 for a request head over
//! [`MAX_REQUEST`] bytes, 408 for one not complete within
//! [`REQUEST_TIMEOUT`]). One request per connection; at most
//! [`MAX_CONNECTIONS`] at once, each on its own short-lived thread, so a
//! slow or hostile client holds one slot for [`REQUEST_TIMEOUT`] at most
//! and never the chat server.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tether_adapter::listen::AcceptErrors;
use tether_adapter::{Handle, ServerStats};

use super::stop::{StopReader, Wake};
use super::{ChatCounters, ServeError, spawn_thread};

/// The `Content-Type` of a scrape: the Prometheus text format, 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Longest request head (request line and headers) read, in bytes.
pub const MAX_REQUEST: usize = 8 * 1024;

/// How long a client has to send its whole request head, however it trickles
/// in; also the bound on writing the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 8;

/// How often the listener thread checks whether the server stopped, should
/// the stop pipe stay silent.
const STOP_CHECK: Duration = Duration::from_secs(1);

/// Keys that are gauges (a value now), not counters (a running total).
const GAUGES: &[&str] = &[
    "live",
    "usable",
    "backpressured",
    "offline_depth",
    "offline_peak",
    "offline_oldest_ms",
    "accept_paused",
    "timer_entries",
    "channel_budget",
    "chat.members",
    "admin.sessions",
];

/// Dotted keys whose suffix becomes a label: `(prefix, label name)`.
const LABELLED: &[(&str, &str)] = &[("disconnected", "reason"), ("rejected_input", "kind")];

/// Help texts of the keys that have one worth more than the key itself.
const HELP: &[(&str, &str)] = &[
    (
        "live",
        "Channels alive now (open, half-closed, closing, offline)",
    ),
    ("usable", "Channels open or half-closed now"),
    (
        "backpressured",
        "Usable channels above their queue's high watermark now",
    ),
    (
        "offline_depth",
        "Channels in the offline queue now (socket closed, not yet released)",
    ),
    (
        "offline_peak",
        "The deepest the offline queue has ever been",
    ),
    (
        "offline_oldest_ms",
        "Age of the oldest offline channel, in milliseconds",
    ),
    (
        "accept_paused",
        "1 while the hub asks the adapter to pause accepting",
    ),
    ("timer_entries", "Entries in the hub's deadline heap"),
    ("channel_budget", "Channels the adapter allows at once"),
    ("opened", "Channels opened"),
    (
        "refused",
        "Connections refused by the hub (limit reached or shutting down)",
    ),
    ("released", "Channels released"),
    (
        "bytes_queued",
        "Bytes accepted by send and broadcast, each recipient counted",
    ),
    ("bytes_written", "Bytes written to sockets"),
    (
        "bytes_dropped",
        "Queued bytes dropped by an abort or error, never written",
    ),
    ("bytes_received", "Bytes received from peers"),
    ("stale_calls", "Calls with a stale or unknown channel id"),
    ("disconnected", "Disconnects, by reason"),
    (
        "rejected_input",
        "Adapter inputs the hub rejected as contradictory, by kind",
    ),
    ("chat.members", "Channels in the chat room now"),
    ("admin.sessions", "Admin console sessions open now"),
];

/// One metric family: a name, a type and its samples (one per label value).
#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    gauge: bool,
    /// `(label (name, value), value)`.
    samples: Vec<(Option<(&'static str, String)>, u64)>,
}

/// One scrape's worth of numbers, encoded by prometheus-client.
#[derive(Debug)]
struct Snapshot {
    families: Vec<Family>,
    /// `(upper bound in seconds, count in this bucket alone)`, `+Inf` last.
    kick_buckets: Vec<(f64, u64)>,
    kick_sum: f64,
    kick_count: u64,
}

impl Snapshot {
    fn new(stats: &ServerStats, chat: &[(&'static str, u64)]) -> Snapshot {
        let mut families: Vec<Family> = Vec::new();
        let keys = stats
            .counters()
            .into_iter()
            .chain(chat.iter().map(|(k, v)| ((*k).to_owned(), *v)));
        for (key, value) in keys {
            let (base, label) = match key.split_once('.') {
                Some((prefix, rest)) => match LABELLED.iter().find(|(p, _)| *p == prefix) {
                    Some((_, label)) => (prefix.to_owned(), Some((*label, rest.to_owned()))),
                    None => (key.clone(), None),
                },
                None => (key.clone(), None),
            };
            let name = sanitize(&base);
            match families.iter_mut().find(|f| f.name == name) {
                Some(family) => family.samples.push((label, value)),
                None => families.push(Family {
                    help: HELP.iter().find(|(k, _)| *k == base).map_or_else(
                        || format!("The server's `{base}`"),
                        |(_, h)| (*h).to_owned(),
                    ),
                    gauge: GAUGES.contains(&key.as_str()),
                    name,
                    samples: vec![(label, value)],
                }),
            }
        }
        let core = &stats.core;
        families.push(Family {
            name: "queued_bytes".into(),
            help: "Bytes in outbound queues now: queued, not yet written or dropped".into(),
            gauge: true,
            samples: vec![(
                None,
                core.bytes_queued
                    .saturating_sub(core.bytes_written)
                    .saturating_sub(core.bytes_dropped),
            )],
        });
        // The layer's buckets are cumulative; the encoder adds them up
        // itself, so hand it each bucket's own count, then `+Inf`'s.
        let mut kick_buckets = Vec::with_capacity(stats.kick_latency.len() + 1);
        let mut below = 0;
        for &(bound, cumulative) in &stats.kick_latency {
            kick_buckets.push((bound, cumulative.saturating_sub(below)));
            below = below.max(cumulative);
        }
        kick_buckets.push((
            f64::INFINITY,
            stats.kick_latency_count.saturating_sub(below),
        ));
        Snapshot {
            families,
            kick_buckets,
            kick_sum: stats.kick_latency_sum_seconds,
            kick_count: stats.kick_latency_count,
        }
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for family in &self.families {
            let kind = if family.gauge {
                MetricType::Gauge
            } else {
                MetricType::Counter
            };
            let mut metric = encoder.encode_descriptor(&family.name, &family.help, None, kind)?;
            for (label, value) in &family.samples {
                let labels: Vec<(&str, &str)> =
                    label.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let mut sample = metric.encode_family(&labels)?;
                if family.gauge {
                    sample.encode_gauge(value)?;
                } else {
                    sample.encode_counter::<NoLabelSet, _, f64>(value, None)?;
                }
            }
        }
        let mut histogram = encoder.encode_descriptor(
            "kick_latency_seconds",
            "Kick to FIN/RST latency: from a kick to the socket's shutdown or abort, its queue flushed",
            None,
            MetricType::Histogram,
        )?;
        histogram.encode_histogram::<NoLabelSet>(
            self.kick_sum,
            self.kick_count,
            &self.kick_buckets,
            None,
        )
    }
}

/// A metric name from a stats key: `tether_` is the registry's prefix;
/// anything outside `[a-zA-Z0-9_]` becomes `_`.
fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The scrape body: every stat in the Prometheus text format.
pub(crate) fn render(stats: &ServerStats, chat: &[(&'static str, u64)]) -> String {
    let mut registry = Registry::with_prefix("tether");
    registry.register_collector(Box::new(Snapshot::new(stats, chat)));
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would be ours.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!("cannot encode the metrics: {e}");
    }
    out
}

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

/// Reads one request head within [`REQUEST_TIMEOUT`] and [`MAX_REQUEST`]
/// bytes: `Ok(head)`, or the error status to answer with (`None`: the
/// connection failed, answer nothing).
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Option<&'static str>> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
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

/// Serves one connection: one request, one answer, close.
fn serve_connection(mut stream: TcpStream, scrape: &dyn Fn() -> Option<String>) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_write_timeout(Some(REQUEST_TIMEOUT)).is_err()
    {
        return;
    }
    let (status, content_type, body) = match read_head(&mut stream) {
        Err(None) => return,
        Err(Some(status)) => (status, "text/plain; charset=utf-8", format!("{status}\n")),
        Ok(head) => match route(&head) {
            Route::Metrics => match scrape() {
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
    stopped: StopReader,
) -> Result<JoinHandle<()>, ServeError> {
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Thread {
            what: "metrics",
            source,
        })?;
    spawn_thread("metrics", move || {
        run(&listener, &handle, &counters, &stopped)
    })
}

/// Accepts scrapes until the server stops.
fn run(
    listener: &TcpListener,
    handle: &Handle,
    counters: &Arc<ChatCounters>,
    stopped: &StopReader,
) {
    let mut errors = AcceptErrors::new("metrics");
    let busy = Arc::new(AtomicUsize::new(0));
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
        if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            busy.fetch_sub(1, Ordering::AcqRel);
            drop(stream); // closed unanswered: a scraper retries
            continue;
        }
        let (handle, counters, slot) = (handle.clone(), counters.clone(), busy.clone());
        let spawned = std::thread::Builder::new()
            .name("tether-metrics-conn".into())
            .spawn(move || {
                let scrape = || {
                    let stats = super::call(&handle, handle.stats()).ok()?;
                    Some(render(&stats, &counters.snapshot()))
                };
                serve_connection(stream, &scrape);
                slot.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            busy.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("cannot start a metrics connection thread: {e}");
        }
    }
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
    fn every_counter_is_exposed_with_a_valid_name() {
        let mut stats = ServerStats::default();
        stats.core.live = 3;
        stats.core.opened = 7;
        stats.core.bytes_queued = 100;
        stats.core.bytes_written = 60;
        stats.core.bytes_dropped = 10;
        stats.core.rejected_input.over_written = 2;
        stats.channel_budget = 50;
        stats.adapter = vec![("adapter.accepted", 9)];
        stats.kick_latency = vec![(0.001, 1), (0.01, 3), (1.0, 3)];
        stats.kick_latency_sum_seconds = 0.5;
        stats.kick_latency_count = 4;
        let text = render(&stats, &[("chat.members", 2), ("chat.lines_relayed", 5)]);
        for line in [
            "# TYPE tether_live gauge",
            "tether_live 3",
            "tether_opened_total 7",
            "tether_channel_budget 50",
            "tether_queued_bytes 30",
            "tether_adapter_accepted_total 9",
            "tether_rejected_input_total{kind=\"over-written\"} 2",
            "tether_disconnected_total{reason=\"slow-consumer\"} 0",
            "tether_chat_members 2",
            "tether_chat_lines_relayed_total 5",
            "# TYPE tether_kick_latency_seconds histogram",
            "tether_kick_latency_seconds_bucket{le=\"0.001\"} 1",
            "tether_kick_latency_seconds_bucket{le=\"0.01\"} 3",
            "tether_kick_latency_seconds_bucket{le=\"1\"} 3",
            "tether_kick_latency_seconds_bucket{le=\"+Inf\"} 4",
            "tether_kick_latency_seconds_count 4",
            "tether_kick_latency_seconds_sum 0.5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from\n{text}"
            );
        }
        // Every key of `counters()` is there, under one family per name.
        for (key, _) in stats.counters() {
            let base = match key.split_once('.') {
                Some((prefix, _)) if LABELLED.iter().any(|(p, _)| *p == prefix) => prefix,
                _ => &key,
            };
            let name = format!("tether_{}", sanitize(base));
            assert!(text.lines().any(|l| l.starts_with(&name)), "{key}\n{text}");
        }
        let mut types = text.lines().filter(|l| l.starts_with("# TYPE "));
        assert!(types.all(|l| {
            let name = l.split(' ').nth(2).unwrap_or("");
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }));
    }
}
