//! Policies: every lifecycle decision the hub makes is configured here.

use std::time::Duration;

use crate::id::MAX_SLOTS;

/// How a kick ends a channel on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
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
pub enum HalfClosePolicy {
    /// The peer's EOF ends the channel: `Disconnected(PeerClosed)` at once;
    /// what is already queued is still flushed before our FIN.
    Disallow,
    /// The peer's EOF gives [`Event::ReadClosed`](crate::Event::ReadClosed);
    /// the app may keep sending and ends the channel with a kick.
    Allow,
}

/// The hub's configuration. [`Config::default`] is a sensible server
/// default; every field is public and checked by [`Config::validate`].
///
/// ```
/// use std::time::Duration;
/// use tether_core::Config;
/// let config = Config {
///     max_channels: 1_000,
///     idle_timeout: Some(Duration::from_secs(30)),
///     ..Config::default()
/// };
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Most bytes queued (sent by the app, not yet reported written) per
    /// channel. A single send larger than this is always rejected.
    pub queue_limit: usize,
    /// Queued bytes at or above this make the channel backpressured.
    pub high_watermark: usize,
    /// A backpressured channel whose queue drains to this gets
    /// [`Event::Writable`](crate::Event::Writable).
    pub low_watermark: usize,
    /// What a send past `queue_limit` does.
    pub overflow: OverflowPolicy,
    /// What a peer's EOF means.
    pub half_close: HalfClosePolicy,
    /// Mode of kicks that do not name one: [`Hub::close`](crate::Hub::close),
    /// idle and login timeouts, peer EOF with half-close disallowed.
    pub default_kick: KickMode,
    /// How long a graceful close may take: flush the queue, FIN, wait for the
    /// peer's EOF. When it runs out the close escalates to an abort (RST).
    pub flush_timeout: Duration,
    /// A holder still attached this long after its channel went offline is
    /// reported once ([`Event::HolderOverdue`](crate::Event::HolderOverdue)).
    /// The socket is never closed under it.
    pub holder_overdue_after: Duration,
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
            high_watermark: 256 << 10,
            low_watermark: 64 << 10,
            overflow: OverflowPolicy::Reject,
            half_close: HalfClosePolicy::Disallow,
            default_kick: KickMode::Graceful,
            flush_timeout: Duration::from_secs(5),
            holder_overdue_after: Duration::from_secs(10),
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
    /// A timeout of zero, which would fire before anything could happen.
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
}

impl Config {
    /// Checks that the fields fit together.
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
        let zero = Duration::ZERO;
        for (name, value) in [
            ("idle_timeout", self.idle_timeout),
            ("login_timeout", self.login_timeout),
            ("flush_timeout", Some(self.flush_timeout)),
            ("holder_overdue_after", Some(self.holder_overdue_after)),
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

    /// `max_channels` set to `n`, the resume mark back to its default.
    pub fn with_max_channels(mut self, n: usize) -> Self {
        self.max_channels = n;
        self.accept_resume_at = None;
        self
    }

    /// `queue_limit` set to `limit`, with the high watermark at a quarter and
    /// the low watermark at a sixteenth of it.
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
        Config::default().with_queue_limit(1).validate().unwrap();
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
    }
}
