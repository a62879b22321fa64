//! The simulated server's configuration: the hub's policies at small sizes
//! (so limits are hit), and how the simulated adapter confirms closes.
//! Written as one `config key=value …` line at the top of a trace.
//!
//! **Older traces.** A key missing from the line keeps its
//! [`SimConfig::default`] value. The keys added with the flow-control
//! policies — `overhead` (`Config::message_overhead`) and `stall`
//! (`Config::stall_timeout`) — default to what the hub did before they
//! existed: no per-message overhead (`overhead=0`) and no stall eviction
//! (`stall=off`). So a trace recorded before them replays exactly as it was
//! recorded. (The same holds for fuzz inputs: see
//! [`decode_fuzz_input`](crate::decode_fuzz_input).)

use std::fmt;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use tether_core::{Config, HalfClosePolicy, KickMode, OverflowPolicy};

use crate::TraceError;

/// A timeout in the simulated configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Never.
    Off,
    /// After this many milliseconds (at least 1).
    Ms(u32),
    /// `Duration::MAX`: a deadline no `Instant` can hold (must never panic).
    Max,
}

impl Timeout {
    fn duration(self) -> Option<Duration> {
        match self {
            Timeout::Off => None,
            Timeout::Ms(ms) => Some(Duration::from_millis(u64::from(ms.max(1)))),
            Timeout::Max => Some(Duration::MAX),
        }
    }

    fn arbitrary_ms(u: &mut Unstructured<'_>, allow_off: bool) -> arbitrary::Result<Timeout> {
        Ok(match u.int_in_range(0..=9u8)? {
            0 if allow_off => Timeout::Off,
            1 => Timeout::Max,
            _ => Timeout::Ms(u.int_in_range(1..=5_000u32)?),
        })
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeout::Off => f.write_str("off"),
            Timeout::Ms(ms) => write!(f, "{ms}"),
            Timeout::Max => f.write_str("max"),
        }
    }
}

impl std::str::FromStr for Timeout {
    type Err = ();
    fn from_str(s: &str) -> Result<Timeout, ()> {
        match s {
            "off" => Ok(Timeout::Off),
            "max" => Ok(Timeout::Max),
            _ => s.parse().map(Timeout::Ms).map_err(|_| ()),
        }
    }
}

/// The simulated server's configuration (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// `Config::max_channels` (1–16 from the fuzzer).
    pub max_channels: usize,
    /// `Config::accept_resume_at` (below `max_channels`).
    pub resume_at: usize,
    /// `Config::queue_limit`.
    pub queue_limit: usize,
    /// `Config::high_watermark`.
    pub high: usize,
    /// `Config::low_watermark`.
    pub low: usize,
    /// `Config::message_overhead` (clamped below `queue_limit`). Trace key
    /// `overhead`; 0 when absent.
    pub overhead: usize,
    /// `Config::overflow`.
    pub overflow: OverflowPolicy,
    /// `Config::half_close`.
    pub half_close: HalfClosePolicy,
    /// `Config::default_kick`.
    pub default_kick: KickMode,
    /// `Config::idle_timeout`.
    pub idle: Timeout,
    /// `Config::login_timeout`.
    pub login: Timeout,
    /// `Config::flush_timeout` (never off).
    pub flush: Timeout,
    /// `Config::holder_overdue_after` (never off).
    pub overdue: Timeout,
    /// `Config::stall_timeout`. Trace key `stall`; `off` when absent.
    pub stall: Timeout,
    /// The adapter confirms a close at once (`true`), or only on the next
    /// `wait` or `confirm` op.
    pub confirm_at_once: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            max_channels: 8,
            resume_at: 6,
            queue_limit: 4096,
            high: 1024,
            low: 256,
            overhead: 0,
            overflow: OverflowPolicy::Reject,
            half_close: HalfClosePolicy::Disallow,
            default_kick: KickMode::Graceful,
            idle: Timeout::Ms(3_000),
            login: Timeout::Off,
            flush: Timeout::Ms(500),
            overdue: Timeout::Ms(2_000),
            stall: Timeout::Off,
            confirm_at_once: true,
        }
    }
}

impl<'a> Arbitrary<'a> for SimConfig {
    /// Every policy, the per-message overhead and stall timeout included.
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut c = SimConfig::arbitrary_v1(u)?;
        c.overhead = match u.int_in_range(0..=3u8)? {
            0 => 0,
            1 => usize::from(u.int_in_range(1..=8u8)?),
            2 => 96,
            _ => usize::from(u.int_in_range(1..=512u16)?),
        };
        c.stall = Timeout::arbitrary_ms(u, true)?;
        Ok(c)
    }
}

impl SimConfig {
    /// A configuration decoded the way it was before `overhead` and `stall`
    /// existed (both off, the same bytes consumed), so fuzz inputs from
    /// then still mean what they meant.
    pub fn arbitrary_v1(u: &mut Unstructured<'_>) -> arbitrary::Result<SimConfig> {
        let max_channels = usize::from(u.int_in_range(1..=16u8)?);
        let resume_at = usize::from(u.int_in_range(0..=15u8)?) % max_channels;
        let queue_limit = match u.int_in_range(0..=3u8)? {
            0 => usize::from(u.int_in_range(1..=16u8)?),
            1 => usize::from(u.int_in_range(1..=1024u16)?),
            _ => 4096,
        };
        let high = u.int_in_range(0..=queue_limit)?;
        let low = u.int_in_range(0..=high)?;
        Ok(SimConfig {
            max_channels,
            resume_at,
            queue_limit,
            high,
            low,
            overhead: 0,
            overflow: OverflowPolicy::arbitrary(u)?,
            half_close: HalfClosePolicy::arbitrary(u)?,
            default_kick: KickMode::arbitrary(u)?,
            idle: Timeout::arbitrary_ms(u, true)?,
            login: Timeout::arbitrary_ms(u, true)?,
            flush: Timeout::arbitrary_ms(u, false)?,
            overdue: Timeout::arbitrary_ms(u, false)?,
            stall: Timeout::Off,
            confirm_at_once: bool::arbitrary(u)?,
        })
    }
}

impl SimConfig {
    /// The hub's configuration. Always valid: fields are clamped.
    pub fn hub_config(&self) -> Config {
        let max_channels = self.max_channels.clamp(1, 1 << 16);
        // Within what the hub can sum (`Config::MAX_QUEUE_LIMIT`), like every field.
        let queue_limit = self.queue_limit.clamp(1, Config::MAX_QUEUE_LIMIT);
        let high = self.high.min(queue_limit);
        Config::default().with(|c| {
            c.max_channels = max_channels;
            c.accept_resume_at = Some(self.resume_at.min(max_channels - 1));
            c.queue_limit = queue_limit;
            c.high_watermark = high;
            c.low_watermark = self.low.min(high);
            // Always valid: at most `queue_limit - 1`.
            c.message_overhead = self.overhead.min(queue_limit - 1);
            c.stall_timeout = self.stall.duration();
            c.overflow = self.overflow;
            c.half_close = self.half_close;
            c.default_kick = self.default_kick;
            c.idle_timeout = self.idle.duration();
            c.login_timeout = self.login.duration();
            c.flush_timeout = self.flush.duration().unwrap_or(Duration::from_secs(5));
            c.holder_overdue_after = self.overdue.duration().unwrap_or(Duration::from_secs(10));
        })
    }

    /// Parses the `config …` line (without the word `config`).
    pub fn parse(text: &str) -> Result<SimConfig, TraceError> {
        let mut c = SimConfig::default();
        for pair in text.split_whitespace() {
            let bad = || TraceError::Config(pair.to_string());
            let (key, value) = pair.split_once('=').ok_or_else(bad)?;
            let num = || value.parse::<usize>().map_err(|_| bad());
            let timeout = || value.parse::<Timeout>().map_err(|()| bad());
            match key {
                "max" => c.max_channels = num()?,
                "resume" => c.resume_at = num()?,
                "limit" => c.queue_limit = num()?,
                "high" => c.high = num()?,
                "low" => c.low = num()?,
                "overhead" => c.overhead = num()?,
                "overflow" => {
                    c.overflow = match value {
                        "reject" => OverflowPolicy::Reject,
                        "kick" => OverflowPolicy::KickSlowConsumer,
                        _ => return Err(bad()),
                    }
                }
                "half-close" => {
                    c.half_close = match value {
                        "allow" => HalfClosePolicy::Allow,
                        "disallow" => HalfClosePolicy::Disallow,
                        _ => return Err(bad()),
                    }
                }
                "kick" => {
                    c.default_kick = match value {
                        "graceful" => KickMode::Graceful,
                        "abort" => KickMode::Abort,
                        _ => return Err(bad()),
                    }
                }
                "idle" => c.idle = timeout()?,
                "login" => c.login = timeout()?,
                "flush" => c.flush = timeout()?,
                "overdue" => c.overdue = timeout()?,
                "stall" => c.stall = timeout()?,
                "confirm" => {
                    c.confirm_at_once = match value {
                        "at-once" => true,
                        "on-wait" => false,
                        _ => return Err(bad()),
                    }
                }
                _ => return Err(bad()),
            }
        }
        Ok(c)
    }
}

impl fmt::Display for SimConfig {
    /// The `config …` line's body, parsed back by [`SimConfig::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overflow = match self.overflow {
            OverflowPolicy::Reject => "reject",
            OverflowPolicy::KickSlowConsumer => "kick",
            other => unreachable!("no trace name for {other:?}"),
        };
        let half = match self.half_close {
            HalfClosePolicy::Allow => "allow",
            HalfClosePolicy::Disallow => "disallow",
            other => unreachable!("no trace name for {other:?}"),
        };
        let kick = match self.default_kick {
            KickMode::Graceful => "graceful",
            KickMode::Abort => "abort",
            other => unreachable!("no trace name for {other:?}"),
        };
        let confirm = if self.confirm_at_once {
            "at-once"
        } else {
            "on-wait"
        };
        write!(
            f,
            "max={} resume={} limit={} high={} low={} overhead={} overflow={overflow} \
             half-close={half} kick={kick} idle={} login={} flush={} overdue={} stall={} \
             confirm={confirm}",
            self.max_channels,
            self.resume_at,
            self.queue_limit,
            self.high,
            self.low,
            self.overhead,
            self.idle,
            self.login,
            self.flush,
            self.overdue,
            self.stall
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_without_the_new_keys_means_the_old_behaviour() {
        let old = "max=2 resume=1 limit=4096 high=1024 low=256 overflow=reject \
                   half-close=disallow kick=graceful idle=30000 login=off flush=500 \
                   overdue=2000 confirm=at-once";
        let c = SimConfig::parse(old).unwrap();
        assert_eq!((c.overhead, c.stall), (0, Timeout::Off));
        let hub = c.hub_config();
        assert_eq!((hub.message_overhead, hub.stall_timeout), (0, None));
    }

    #[test]
    fn the_new_keys_round_trip_and_are_clamped_to_a_valid_config() {
        let c = SimConfig {
            overhead: 96,
            stall: Timeout::Ms(250),
            queue_limit: 64,
            ..SimConfig::default()
        };
        let line = c.to_string();
        assert!(
            line.contains("overhead=96") && line.contains("stall=250"),
            "{line}"
        );
        assert_eq!(SimConfig::parse(&line).unwrap(), c);
        let hub = c.hub_config();
        assert_eq!(hub.message_overhead, 63);
        assert_eq!(hub.stall_timeout, Some(Duration::from_millis(250)));
        hub.validate().unwrap();
        assert!(SimConfig::parse("stall=soon").is_err());
        assert!(SimConfig::parse("overhead=-1").is_err());
    }
}
