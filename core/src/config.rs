//! Policies: every lifecycle decision the hub makes is configured here.

use std::time::Duration;

use crate::id::MAX_SLOTS;

/// How a kick ends a channel on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[cfg_attr(feature = "snapshot", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum KickMode {
    /// Flush what is queued, then send FIN and wait for the peer's EOF;
    /// bounded by [`Config::flush_timeout`], after which it escalates to an
    /// abort.
    Graceful,
    /// Drop what is queued and reset the connection (RST) now.
    Abort,
}

/// What a send does when the channel's outbound queue would exceed
/// [`Config::queue_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[cfg_attr(feature = "snapshot", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Reject the send with [`SendError::QueueFull`](crate::SendError::QueueFull);
    /// the channel stays open.
    Reject,
    /// Reject the send and abort the channel with
    /// [`DisconnectReason::SlowConsumer`](crate::DisconnectReason::SlowConsumer):
    /// a peer that does not read must not hold memory for others.
    KickSlowConsumer,
}

/// What a peer's EOF (it shut down its sending side) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[cfg_attr(feature = "snapshot", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum HalfClosePolicy {
    /// The peer's EOF ends the channel: `Disconnected(PeerClosed)` at once,
    /// then always a graceful close, whatever [`Config::default_kick`] says:
    /// what the app already queued is flushed (the peer only shut down its
    /// sending side and may still read it), bounded by
    /// [`Config::flush_timeout`], then the socket is shut down.
    Disallow,
    /// The peer's EOF gives [`Event::ReadClosed`](crate::Event::ReadClosed);
    /// the app may keep sending and ends the channel with a kick.
    Allow,
}

/// The hub's configuration. [`Config::default`] is a sensible server
/// default; every field is public and checked by [`Config::validate`].
///
/// `Config` is `#[non_exhaustive]`, so new policies can be added without
/// breaking anyone: outside this crate, start from [`Config::default`] and
/// assign fields, directly or with [`Config::with`].
///
/// ```
/// use std::time::Duration;
/// use tether_core::Config;
/// let config = Config::default().with(|c| {
///     c.max_channels = 1_000;
///     c.idle_timeout = Some(Duration::from_secs(30));
/// });
/// config.validate().unwrap();
///
/// let mut config = Config::default();
/// config.login_timeout = Some(Duration::from_secs(10));
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "snapshot", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Config {
    /// Shard number carried by every id of this hub (run one hub per thread).
    pub shard: u8,
    /// Most channels alive at once, open, closing and offline together
    /// (invariant 12). At the limit accepts are refused and the hub asks the
    /// adapter to pause accepting.
    pub max_channels: usize,
    /// Accepting resumes once live channels fall to this many or fewer.
    /// `None`: 90% of `max_channels` (see [`Config::resume_mark`]).
    pub accept_resume_at: Option<usize>,
    /// A channel that receives nothing for this long is kicked with
    /// `IdleTimeout`. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A channel not [authenticated](crate::Hub::authenticate) this long after
    /// it opened is kicked with `LoginTimeout`. `None`: no login needed.
    pub login_timeout: Option<Duration>,
    /// Most a channel's outbound queue may be *charged*: the payload bytes
    /// queued (sent by the app, not yet reported written) plus
    /// [`message_overhead`](Config::message_overhead) for every message
    /// queued since the queue was last empty (invariant 8). A single send
    /// with `len + message_overhead` above this is always rejected
    /// ([`SendError::TooLarge`](crate::SendError::TooLarge)). At most
    /// [`Config::MAX_QUEUE_LIMIT`].
    pub queue_limit: usize,
    /// Bytes charged per queued message on top of its payload (Netty charges
    /// 96 per outbound entry): a million 2-byte messages are not 2 MB of
    /// memory. The core does not know where the adapter's writes split
    /// messages, so the overhead is released only when the queue drains
    /// empty — conservative, never an undercount. Must be below
    /// `queue_limit`; 0 counts payload bytes only.
    pub message_overhead: usize,
    /// A charge at or above this makes the channel backpressured
    /// ([`Hub::is_backpressured`](crate::Hub::is_backpressured)).
    pub high_watermark: usize,
    /// A backpressured channel whose charge falls to this gets
    /// [`Event::Writable`](crate::Event::Writable).
    pub low_watermark: usize,
    /// What a send past `queue_limit` does.
    pub overflow: OverflowPolicy,
    /// A usable (open or half-closed) channel whose queue stays non-empty
    /// with no write progress ([`Hub::handle_written`](crate::Hub::handle_written)
    /// with `n > 0`) for this long is aborted with
    /// [`DisconnectReason::SlowConsumer`](crate::DisconnectReason::SlowConsumer):
    /// slow means the kernel refused the peer's bytes for too long, not
    /// that the server lags. The clock starts when the queue goes from empty
    /// to non-empty and restarts on every progress; a drained queue has no
    /// stall deadline. A closing channel is bounded by `flush_timeout`
    /// instead. `None`: never.
    pub stall_timeout: Option<Duration>,
    /// What a peer's EOF means.
    pub half_close: HalfClosePolicy,
    /// Mode of the kicks that do not name one:
    /// [`Hub::kick_default`](crate::Hub::kick_default) and the idle and login
    /// timeouts. It does not govern the other ways a channel ends: a peer's
    /// EOF with half-close disallowed always closes gracefully (the peer
    /// may still read what the app queued, see [`HalfClosePolicy::Disallow`]),
    /// a stalled or overflowing queue always aborts (`SlowConsumer`), an I/O
    /// error needs no kick, and [`Hub::shutdown`](crate::Hub::shutdown) kicks
    /// gracefully, bounded by its grace period.
    pub default_kick: KickMode,
    /// How long a graceful close may take: flush the queue, FIN, wait for the
    /// peer's EOF. When it runs out the close escalates to an abort (RST).
    pub flush_timeout: Duration,
    /// A holder still attached this long after its channel went offline is
    /// reported once ([`Event::HolderOverdue`](crate::Event::HolderOverdue)).
    /// The socket is never closed under it.
    pub holder_overdue_after: Duration,
    /// The most one input may move the hub's clock forward. A `now` further
    /// ahead of the latest time the hub accepted is not believed at once: the
    /// input is carried out at the hub's current time, the clock stays, and
    /// [`Stats::clock_jumps_held`](crate::Stats::clock_jumps_held) counts it.
    /// The jump is believed when the next input confirms it (a `now` at or
    /// after the held one and within this bound of it): a clock that really
    /// jumped keeps reading the new time, a single wild `Instant` does not.
    /// A hub with no channel (none yet, or none left, after a completed
    /// shutdown too) takes any `now`.
    /// See the crate documentation, *Time*.
    pub max_clock_jump: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shard: 0,
            max_channels: 10_000,
            accept_resume_at: None,
            idle_timeout: None,
            login_timeout: None,
            queue_limit: 1 << 20,
            message_overhead: 96,
            high_watermark: 256 << 10,
            low_watermark: 64 << 10,
            overflow: OverflowPolicy::Reject,
            stall_timeout: Some(Duration::from_secs(10)),
            half_close: HalfClosePolicy::Disallow,
            default_kick: KickMode::Graceful,
            flush_timeout: Duration::from_secs(5),
            holder_overdue_after: Duration::from_secs(10),
            max_clock_jump: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// A configuration that cannot work; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_channels` is 0 or above the id table's capacity.
    #[error("max_channels must be between 1 and {MAX_SLOTS}, got {0}")]
    MaxChannels(usize),
    /// `accept_resume_at` is not below `max_channels`.
    #[error("accept_resume_at ({resume_at}) must be below max_channels ({max})")]
    ResumeMark {
        /// The configured resume mark.
        resume_at: usize,
        /// The configured limit.
        max: usize,
    },
    /// The watermarks are not ordered `low <= high <= queue_limit`, or the
    /// limit is 0.
    #[error(
        "queue limits must satisfy 0 < queue_limit and low_watermark ({low}) <= high_watermark ({high}) <= queue_limit ({limit})"
    )]
    Watermarks {
        /// `low_watermark`.
        low: usize,
        /// `high_watermark`.
        high: usize,
        /// `queue_limit`.
        limit: usize,
    },
    /// `message_overhead` leaves no room for a 1-byte message: it must be
    /// below `queue_limit`.
    #[error("message_overhead ({overhead}) must be below queue_limit ({limit})")]
    MessageOverhead {
        /// `message_overhead`.
        overhead: usize,
        /// `queue_limit`.
        limit: usize,
    },
    /// A timeout of zero, which would fire before anything could happen.
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
    /// `queue_limit` is above [`Config::MAX_QUEUE_LIMIT`] (`usize::MAX / 2`),
    /// so the sums the hub forms from it could not be represented. The
    /// largest is the charge check of a send: a queue's charge (at most
    /// `queue_limit`) plus the message's cost (`len + message_overhead`,
    /// at most `queue_limit` or the send is `TooLarge`), up to
    /// `2 × queue_limit`; every other sum of the queue fields is smaller.
    /// With the limit at most `usize::MAX / 2` they all fit in a `usize`
    /// (the hub still adds with checks, invariant 10). No allocation can be larger than `isize::MAX` (the same
    /// number) anyway, so no real queue is refused.
    #[error("queue_limit ({limit}) must be at most {max} (usize::MAX / 2)")]
    QueueLimitTooLarge {
        /// The configured `queue_limit`.
        limit: usize,
        /// [`Config::MAX_QUEUE_LIMIT`].
        max: usize,
    },
}

impl Config {
    /// The largest [`queue_limit`](Config::queue_limit) that
    /// [`validate`](Config::validate) accepts: `usize::MAX / 2`, so that a
    /// queue's charge plus the cost of one more message, each at most the
    /// limit, fits in a `usize` ([`ConfigError::QueueLimitTooLarge`]).
    pub const MAX_QUEUE_LIMIT: usize = usize::MAX / 2;

    /// Checks that the fields fit together, and that every sum the hub
    /// forms from them can be represented
    /// ([`ConfigError::QueueLimitTooLarge`]). Durations have no upper
    /// bound: a deadline past what `Instant` can hold is never due (idle,
    /// login, stall, overdue holder) or the furthest instant it can hold
    /// (flush, shutdown grace).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_channels == 0 || self.max_channels > MAX_SLOTS {
            return Err(ConfigError::MaxChannels(self.max_channels));
        }
        if let Some(resume_at) = self.accept_resume_at
            && resume_at >= self.max_channels
        {
            return Err(ConfigError::ResumeMark {
                resume_at,
                max: self.max_channels,
            });
        }
        if self.queue_limit == 0
            || self.low_watermark > self.high_watermark
            || self.high_watermark > self.queue_limit
        {
            return Err(ConfigError::Watermarks {
                low: self.low_watermark,
                high: self.high_watermark,
                limit: self.queue_limit,
            });
        }
        if self.queue_limit > Self::MAX_QUEUE_LIMIT {
            return Err(ConfigError::QueueLimitTooLarge {
                limit: self.queue_limit,
                max: Self::MAX_QUEUE_LIMIT,
            });
        }
        if self.message_overhead >= self.queue_limit {
            return Err(ConfigError::MessageOverhead {
                overhead: self.message_overhead,
                limit: self.queue_limit,
            });
        }
        let zero = Duration::ZERO;
        for (name, value) in [
            ("idle_timeout", self.idle_timeout),
            ("login_timeout", self.login_timeout),
            ("stall_timeout", self.stall_timeout),
            ("flush_timeout", Some(self.flush_timeout)),
            ("holder_overdue_after", Some(self.holder_overdue_after)),
            ("max_clock_jump", Some(self.max_clock_jump)),
        ] {
            if value == Some(zero) {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        Ok(())
    }

    /// Live channels at or below which accepting resumes after a pause:
    /// `accept_resume_at`, or 90% of `max_channels`.
    pub fn resume_mark(&self) -> usize {
        self.accept_resume_at.unwrap_or_else(|| {
            (self.max_channels / 10 * 9 + self.max_channels % 10 * 9 / 10)
                .min(self.max_channels.saturating_sub(1))
        })
    }

    /// This configuration changed by `change`: how to build one outside this
    /// crate (`Config` is `#[non_exhaustive]`) in one expression.
    ///
    /// ```
    /// use tether_core::{Config, OverflowPolicy};
    /// let config = Config::default()
    ///     .with_max_channels(100)
    ///     .with(|c| c.overflow = OverflowPolicy::KickSlowConsumer);
    /// assert_eq!(config.max_channels, 100);
    /// ```
    #[must_use]
    pub fn with(mut self, change: impl FnOnce(&mut Config)) -> Config {
        change(&mut self);
        self
    }

    /// `max_channels` set to `n`, the resume mark back to its default.
    pub fn with_max_channels(mut self, n: usize) -> Self {
        self.max_channels = n;
        self.accept_resume_at = None;
        self
    }

    /// `queue_limit` set to `limit`, with the high watermark at a quarter and
    /// the low watermark at a sixteenth of it. `message_overhead` is left as
    /// it is: below a limit of 97 the default overhead does not fit, and
    /// [`validate`](Config::validate) says so.
    pub fn with_queue_limit(mut self, limit: usize) -> Self {
        self.queue_limit = limit;
        self.high_watermark = (limit / 4).max(1).min(limit);
        self.low_watermark = limit / 16;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
        Config::default().with_max_channels(1).validate().unwrap();
        let tiny = Config {
            message_overhead: 0,
            ..Config::default().with_queue_limit(1)
        };
        tiny.validate().unwrap();
        assert_eq!(Config::default().resume_mark(), 9_000);
        assert_eq!(Config::default().with_max_channels(1).resume_mark(), 0);
        assert_eq!(Config::default().with_max_channels(15).resume_mark(), 13);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let c = Config {
            max_channels: 0,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::MaxChannels(0)));
        let c = Config {
            accept_resume_at: Some(10_000),
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::ResumeMark { .. })));
        let c = Config {
            low_watermark: 10,
            high_watermark: 5,
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Watermarks { .. })));
        let c = Config {
            idle_timeout: Some(Duration::ZERO),
            ..Config::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(err, ConfigError::ZeroTimeout("idle_timeout"));
        assert!(err.to_string().contains("idle_timeout"));
        let c = Config {
            stall_timeout: Some(Duration::ZERO),
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::ZeroTimeout("stall_timeout")));
    }

    #[test]
    fn a_queue_limit_whose_sums_overflow_is_rejected() {
        // Issue 16's configuration: the charge check of a second 1-byte send
        // would add `usize::MAX` to `usize::MAX`.
        let c = Config {
            queue_limit: usize::MAX,
            high_watermark: usize::MAX,
            low_watermark: 0,
            message_overhead: usize::MAX - 1,
            ..Config::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(
            err,
            ConfigError::QueueLimitTooLarge {
                limit: usize::MAX,
                max: usize::MAX / 2
            }
        );
        assert!(err.to_string().contains("queue_limit"));
        let at = |limit: usize| Config {
            queue_limit: limit,
            high_watermark: limit,
            low_watermark: 0,
            message_overhead: limit - 1,
            ..Config::default()
        };
        at(Config::MAX_QUEUE_LIMIT).validate().unwrap();
        assert!(matches!(
            at(Config::MAX_QUEUE_LIMIT + 1).validate(),
            Err(ConfigError::QueueLimitTooLarge { .. })
        ));
        assert_eq!(Config::MAX_QUEUE_LIMIT, isize::MAX as usize);
    }

    #[test]
    fn an_overhead_that_leaves_no_room_is_rejected() {
        let c = Config::default().with_queue_limit(96);
        let err = c.validate().unwrap_err();
        assert_eq!(
            err,
            ConfigError::MessageOverhead {
                overhead: 96,
                limit: 96
            }
        );
        assert!(err.to_string().contains("message_overhead"));
        let c = Config {
            message_overhead: 96,
            ..Config::default().with_queue_limit(97)
        };
        c.validate().unwrap(); // room for exactly one 1-byte message
        let c = Config {
            message_overhead: usize::MAX,
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::MessageOverhead { .. })
        ));
    }
}
