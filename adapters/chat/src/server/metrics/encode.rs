//! The scrape body: every counter of `stats` as a Prometheus metric family,
//! encoded by prometheus-client (see the parent module for the names).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tether_adapter::ServerStats;

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
    "cluster.live_nodes",
    "cluster.lines_buffered",
    "cluster.outbox_bytes",
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
    (
        "admin.refused",
        "Admin console connections refused: every session established",
    ),
    (
        "admin.evicted",
        "Admin console sessions evicted at --admin-max: the oldest one that never ran a command",
    ),
    (
        "admin.login_timeouts",
        "Admin console sessions closed at --admin-login: not established in time",
    ),
    (
        "metrics.evicted",
        "Metrics connections evicted at the cap: the oldest one without a request head",
    ),
    (
        "metrics.refused",
        "Metrics connections refused with a 503: every slot answering a request",
    ),
    (
        "metrics.timeouts",
        "Metrics connections answered 408: no complete request head in time",
    ),
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
pub(super) fn render(stats: &ServerStats, chat: &[(&'static str, u64)]) -> String {
    let mut registry = Registry::with_prefix("tether");
    registry.register_collector(Box::new(Snapshot::new(stats, chat)));
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would be ours.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!("cannot encode the metrics: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        stats.adapter = stats.adapter.with(tether_adapter::Counter::Accepted, 9);
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
