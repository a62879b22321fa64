//! The values flags take: addresses, durations, sizes and secrets.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A listening address as written: `HOST:PORT`, where HOST is an IP
/// address (`[::1]` for IPv6) or a name resolved when binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    text: String,
}

impl HostPort {
    /// `127.0.0.1:0`: loopback, any free port.
    pub fn loopback_any() -> HostPort {
        HostPort {
            text: "127.0.0.1:0".to_owned(),
        }
    }

    /// The address as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<std::net::SocketAddr> for HostPort {
    fn from(addr: std::net::SocketAddr) -> HostPort {
        HostPort {
            text: addr.to_string(),
        }
    }
}

/// An address that is not `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not HOST:PORT (like 127.0.0.1:7000, localhost:7000 or [::1]:7000)")]
pub struct BadAddress(String);

impl FromStr for HostPort {
    type Err = BadAddress;
    fn from_str(text: &str) -> Result<HostPort, BadAddress> {
        let bad = || BadAddress(clip(text));
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        port.parse::<u16>().map_err(|_| bad())?;
        let host_ok = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
            None => {
                !host.is_empty()
                    && host.len() <= 253
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
            }
        };
        if !host_ok {
            return Err(bad());
        }
        Ok(HostPort {
            text: text.to_owned(),
        })
    }
}

/// A duration greater than zero: `500ms`, `1.5s`, `1m30s`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// A duration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration humantime reads.
    #[error("{text:?} is not a duration like 500ms, 1.5s or 1m30s: {why}")]
    Malformed {
        /// The text.
        text: String,
        /// humantime's reason.
        why: String,
    },
    /// Zero, which would fire before anything could happen.
    #[error("must be greater than zero")]
    Zero,
    /// Zero where `off` is allowed.
    #[error("must be greater than zero (use `off` to disable)")]
    ZeroUseOff,
}

impl FromStr for Dur {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Dur, DurationError> {
        match parse_duration(text)? {
            d if d.is_zero() => Err(DurationError::Zero),
            d => Ok(Dur(d)),
        }
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A timeout that may be `off` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

impl FromStr for Timeout {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Timeout, DurationError> {
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(Timeout(None));
        }
        match parse_duration(text)? {
            d if d.is_zero() => Err(DurationError::ZeroUseOff),
            d => Ok(Timeout(Some(d))),
        }
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(d) => Dur(d).fmt(f),
        }
    }
}

/// Parses a duration with humantime (`250us`, `500ms`, `1.5s`, `1m30s`,
/// `2h`); zero is allowed here.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text.trim()).map_err(|e| DurationError::Malformed {
        text: clip(text),
        why: e.to_string(),
    })
}

/// A byte count: `65536`, `64k`, `64KiB`, `1m`, `1.5MB`, `1g`. Every
/// prefix is binary (`k` = 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

/// A size that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a size like 65536, 64k, 64KiB or 1m: {why}")]
pub struct SizeError {
    text: String,
    why: String,
}

impl FromStr for ByteSize {
    type Err = SizeError;
    fn from_str(text: &str) -> Result<ByteSize, SizeError> {
        let err = |why: String| SizeError {
            text: clip(text),
            why,
        };
        let n = parse_size::Config::new()
            .with_binary()
            .parse_size(text.trim())
            .map_err(|e| err(e.to_string()))?;
        let n = usize::try_from(n).map_err(|_| err("too large".into()))?;
        Ok(ByteSize(n))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A password that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from its text.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// Whether `guess` is the secret, comparing every byte whatever the
    /// first difference (no early exit to time).
    pub fn matches(&self, guess: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), guess.as_bytes());
        let mut diff = u8::from(a.len() != b.len());
        for (i, &x) in a.iter().enumerate() {
            diff |= x ^ b.get(i).copied().unwrap_or(!x);
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Bad input is echoed back in errors, but never more than a screenful.
fn clip(text: &str) -> String {
    text.chars().take(60).collect()
}
