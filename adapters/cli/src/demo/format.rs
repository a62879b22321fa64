//! The demo's numbers as people read them: thousands separators, the
//! per-channel table, latency percentiles, and the offline-queue depth per
//! second.

use std::fmt::Write as _;
use std::time::Duration;

use tether_core::{ChannelInfo, Stats};

/// `1234567` as `1,234,567`.
///
/// ```
/// assert_eq!(tether::demo::grouped(1_234_567), "1,234,567");
/// assert_eq!(tether::demo::grouped(999), "999");
/// ```
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The offline queue's depth, deepest per second of the run, consistent
/// with the core's "deepest ever" ([`Stats::offline_peak`]).
///
/// Sampling the depth misses entries that live for microseconds, so the
/// sampled series alone can stay below the deepest-ever figure. When the
/// peak has grown since the last sample, the queue was that deep at some
/// instant in between: the second the growth is observed in gets the peak.
/// So the series' maximum is always the peak last sampled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepthSeries {
    per_second: Vec<usize>,
    peak_seen: usize,
}

impl DepthSeries {
    /// Takes one sample `at` this time into the run.
    pub fn sample(&mut self, at: Duration, stats: &Stats) {
        let second = usize::try_from(at.as_secs())
            .unwrap_or(usize::MAX)
            .min(86_400);
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, 0);
        }
        let mut depth = stats.offline_depth;
        if stats.offline_peak > self.peak_seen {
            self.peak_seen = stats.offline_peak;
            depth = depth.max(stats.offline_peak);
        }
        self.per_second[second] = self.per_second[second].max(depth);
    }

    /// The deepest per second, first second first.
    pub fn per_second(&self) -> &[usize] {
        &self.per_second
    }

    /// `0 2 5 …`, one number per second.
    pub fn render(&self) -> String {
        let numbers: Vec<String> = self.per_second.iter().map(|&n| grouped(n as u64)).collect();
        numbers.join(" ")
    }
}

/// The live per-channel table: a title, a header, and the `rows` channels
/// with the most bytes queued (then the oldest).
pub fn channel_table(channels: &[ChannelInfo], rows: usize) -> Vec<String> {
    let mut busiest: Vec<&ChannelInfo> = channels.iter().collect();
    busiest.sort_by(|a, b| b.queued.cmp(&a.queued).then(b.age.cmp(&a.age)));
    busiest.truncate(rows);
    let mut out = vec![
        format!(
            "channels: {} live; the {} with the most bytes queued",
            grouped(channels.len() as u64),
            busiest.len()
        ),
        format!(
            "{:<10} {:<21} {:<11} {:>7} {:>7} {:>9} {:>7}  flags",
            "id", "peer", "state", "age", "idle", "queued", "holders"
        ),
    ];
    for ch in busiest {
        let mut flags = String::new();
        if ch.authenticated {
            flags.push_str("login ");
        }
        if ch.backpressured {
            flags.push_str("backpressured ");
        }
        if let Some(reason) = ch.reason {
            let _ = write!(flags, "({reason})");
        }
        out.push(format!(
            "{:<10} {:<21} {:<11} {:>7} {:>7} {:>9} {:>7}  {}",
            ch.id.to_string(),
            ch.peer.to_string(),
            ch.state.to_string(),
            seconds(ch.age),
            seconds(ch.idle),
            grouped(ch.queued as u64),
            ch.holders,
            flags.trim_end()
        ));
    }
    out
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `n=… p50=…us p90=… p99=… max=…` of latency samples.
pub fn percentiles(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    let mut s = samples.to_vec();
    s.sort();
    let at = |q: f64| s[((s.len() as f64 * q) as usize).min(s.len() - 1)];
    let us = |d: Duration| grouped(d.as_micros().try_into().unwrap_or(u64::MAX));
    format!(
        "n={} p50={}us p90={}us p99={}us max={}us",
        grouped(s.len() as u64),
        us(at(0.5)),
        us(at(0.9)),
        us(at(0.99)),
        us(at(1.0))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1,000"),
            (65_536, "65,536"),
            (1_048_576, "1,048,576"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            assert_eq!(grouped(n), text);
        }
    }

    fn stats(depth: usize, peak: usize) -> Stats {
        let mut s = Stats::default();
        s.offline_depth = depth;
        s.offline_peak = peak;
        s
    }

    #[test]
    fn depth_per_second_agrees_with_the_deepest_ever() {
        let mut series = DepthSeries::default();
        let ms = Duration::from_millis;
        // Second 0: sampled depth 1, the peak 1.
        series.sample(ms(100), &stats(1, 1));
        // Second 1: a burst of 9 came and went between two samples.
        series.sample(ms(1_100), &stats(0, 9));
        series.sample(ms(1_200), &stats(2, 9));
        // Second 3 (nothing sampled in second 2): depth 4, peak unchanged.
        series.sample(ms(3_500), &stats(4, 9));
        assert_eq!(series.per_second(), [1, 9, 0, 4]);
        assert_eq!(series.per_second().iter().max(), Some(&9));
        assert_eq!(series.render(), "1 9 0 4");
        // Never a panic, whatever the clock says.
        series.sample(Duration::MAX, &stats(0, 9));
    }

    #[test]
    fn the_table_shows_the_busiest_channels_first() {
        assert_eq!(channel_table(&[], 8).len(), 2);
        assert_eq!(percentiles(&[]), "no samples");
        let p = percentiles(&[Duration::from_micros(1500), Duration::from_micros(20)]);
        assert!(p.starts_with("n=2 p50=1,500us"), "{p}");
    }
}
