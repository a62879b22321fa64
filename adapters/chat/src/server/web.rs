//! WebSocket clients of the chat server (`--web`): the listener and the
//! layer's [`Web`] settings. The chat itself is unchanged: each text
//! message is a line, each line a text message. `GET /` is the chat page
//! (assets/chat.html), `GET /presence` who is online ([`Presence`]).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use tether_adapter::Web;

use super::presence::{self, Presence};
use super::{ServeError, bind};
use crate::cli::ServeOptions;
use crate::protocol::MAX_LINE;

/// The chat page, `GET /`: plain HTML, CSS and JavaScript, nothing
/// fetched from elsewhere (assets/chat.html).
const CHAT_PAGE: &str = include_str!("assets/chat.html");

/// The handshake deadline without `--login-timeout`: a browser upgrades
/// within milliseconds; a socket silent this long is a slowloris.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// The longest message `--echo` takes (Autobahn's cases go to 16 MiB), and
/// the queue limit it then needs to echo one whole.
const ECHO_MESSAGE: usize = 16 << 20;

/// Binds `--web` (if on) and makes its settings; the address it got.
pub(super) fn bind_web(
    options: &ServeOptions,
    backlog: u32,
    presence: &Arc<Presence>,
) -> Result<Option<(Web, SocketAddr)>, ServeError> {
    let Some(settings) = &options.web else {
        return Ok(None);
    };
    let listener: TcpListener = bind("--web", &settings.addr, backlog)?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        flag: "--web",
        address: settings.addr.clone(),
        source,
    })?;
    let web = Web::new(listener)
        .with_ping(settings.ping)
        .with_handshake_timeout(options.config.login_timeout.unwrap_or(HANDSHAKE_DEADLINE))
        .with_max_message(MAX_LINE)
        .with_echo(options.echo)
        .with_kick_notice(&b"* kicked"[..])
        .with_page(CHAT_PAGE)
        .with_route("/presence", presence::CONTENT_TYPE, {
            let presence = presence.clone();
            move |asking| presence.render(Some(asking))
        });
    Ok(Some((web, addr)))
}

/// The hub's configuration with WebSocket on: an echo server must queue a
/// whole 16 MiB message (plus its frame) for its sender.
pub(super) fn config(options: &ServeOptions) -> tether_core::Config {
    let config = options.config.clone();
    if options.echo && options.web.is_some() && config.queue_limit < 3 * ECHO_MESSAGE {
        return config.with_queue_limit(3 * ECHO_MESSAGE);
    }
    config
}
