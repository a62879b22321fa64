//! The Redis address a node connects to: `redis://HOST:PORT[/DB]`.

use std::fmt;
use std::str::FromStr;

use redis::{ConnectionAddr, ConnectionInfo};

/// A Redis address, `redis://HOST:PORT[/DB]` (the port defaults to 6379, the
/// database to 0; `redis://:PASSWORD@HOST:PORT` and
/// `redis://USER:PASSWORD@…` log in). Displayed as written, with any
/// password replaced by `***`.
///
/// ```
/// use tether_redis::RedisUrl;
/// let url: RedisUrl = "redis://127.0.0.1:6380/2".parse().unwrap();
/// assert_eq!(url.to_string(), "redis://127.0.0.1:6380/2");
/// assert_eq!(url.host_port(), "127.0.0.1:6380");
/// assert!("http://127.0.0.1".parse::<RedisUrl>().is_err());
/// assert!("redis://:hunter2@localhost".parse::<RedisUrl>().unwrap().to_string().contains("***"));
/// ```
#[derive(Clone)]
pub struct RedisUrl {
    info: ConnectionInfo,
    shown: String,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.shown)
    }
}

/// Why a Redis address is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `redis://…`.
    #[error("expected redis://HOST:PORT[/DB]")]
    Scheme,
    /// The URL does not parse (host, port or database).
    #[error("expected redis://HOST:PORT[/DB]: {0}")]
    Invalid(String),
}

impl RedisUrl {
    /// What the client connects with.
    pub fn connection_info(&self) -> ConnectionInfo {
        self.info.clone()
    }

    /// `HOST:PORT`, for messages.
    pub fn host_port(&self) -> String {
        match &self.info.addr {
            ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            other => other.to_string(),
        }
    }
}

impl FromStr for RedisUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let text = text.trim();
        if !text.starts_with("redis://") {
            return Err(UrlError::Scheme);
        }
        if text.len() <= "redis://".len() {
            return Err(UrlError::Invalid("no host".into()));
        }
        let info = ConnectionInfo::from_str(text)
            .map_err(|e| UrlError::Invalid(redact(&e.to_string())))?;
        if !matches!(info.addr, ConnectionAddr::Tcp(..)) {
            return Err(UrlError::Scheme);
        }
        Ok(RedisUrl {
            shown: redact(text),
            info,
        })
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn redact(text: &str) -> String {
    let Some(rest) = text.strip_prefix("redis://") else {
        return text.to_owned();
    };
    match rest.split_once('@') {
        Some((login, host)) => match login.split_once(':') {
            Some((user, _)) => format!("redis://{user}:***@{host}"),
            None => format!("redis://***@{host}"),
        },
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_are_refused() {
        let url: RedisUrl = "redis://localhost".parse().unwrap();
        assert_eq!(url.host_port(), "localhost:6379");
        let url: RedisUrl = "redis://10.0.0.1:7000/3".parse().unwrap();
        assert_eq!(url.connection_info().redis.db, 3);
        for bad in [
            "",
            "redis://",
            "localhost:6379",
            "rediss://x",
            "unix:///tmp/r",
            "redis://h:notaport",
        ] {
            assert!(bad.parse::<RedisUrl>().is_err(), "{bad}");
        }
        let url: RedisUrl = "redis://u:pw@h:1".parse().unwrap();
        assert_eq!(url.to_string(), "redis://u:***@h:1");
        assert!(!format!("{url:?}").contains("pw"));
    }
}
