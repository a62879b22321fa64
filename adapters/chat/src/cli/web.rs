//! The WebSocket flags of `tether serve` (`--web`, `--ws-ping`), in a
//! block of their own.

use std::str::FromStr;
use std::time::Duration;

use clap::Args;

use super::{HostPort, Timeout};

/// Where browsers connect by default.
pub const DEFAULT_WEB: &str = "127.0.0.1:7080";

/// `--web HOST:PORT` or `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAddr(pub Option<HostPort>);

impl FromStr for WebAddr {
    type Err = <HostPort as FromStr>::Err;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(WebAddr(None));
        }
        HostPort::from_str(s).map(|addr| WebAddr(Some(addr)))
    }
}

/// The WebSocket flags, as written.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "WebSocket")]
pub struct WebArgs {
    /// Where browsers connect (HOST:PORT), or `off`: `GET /` serves a page,
    /// `GET /ws` upgrades to the chat over WebSocket (one text message per
    /// line), with the same hub, limits and shards as TCP clients.
    #[arg(long, env = "TETHER_WEB", default_value = DEFAULT_WEB, value_name = "HOST:PORT|off")]
    pub web: WebAddr,
    /// Ping a WebSocket client after this long without a frame from it, or
    /// `off`; its pong counts as activity for --idle-timeout.
    #[arg(
        long,
        env = "TETHER_WS_PING",
        default_value = "25s",
        value_name = "DUR|off"
    )]
    pub ws_ping: Timeout,
}

impl WebArgs {
    /// Every flag at its default (ignoring the environment).
    pub fn defaults() -> WebArgs {
        WebArgs {
            web: WebAddr::from_str(DEFAULT_WEB).unwrap_or(WebAddr(None)),
            ws_ping: Timeout(Some(Duration::from_secs(25))),
        }
    }

    /// The validated settings: `None` with `--web off`.
    pub fn into_options(self) -> Option<WebServe> {
        let addr = self.web.0?;
        Some(WebServe {
            addr,
            ping: self.ws_ping.0,
        })
    }
}

/// WebSocket settings of `tether serve`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebServe {
    /// Where browsers connect (resolved when binding).
    pub addr: HostPort,
    /// Idle time before a ping (`None`: never).
    pub ping: Option<Duration>,
}
