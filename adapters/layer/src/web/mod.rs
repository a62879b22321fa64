//! WebSocket as a transport of the layer, beside TCP lines: the same hub,
//! flow control, limits, shards and recorder serve both.
//!
//! A connection accepted on the [`Web`] listener is a WebSocket
//! connection. Its framing lives in the driver, around the hub, which
//! still sees lines:
//!
//! * **read side**: each chunk read goes through the connection's
//!   [`WebConn`] (the HTTP head, bounded and deadline-bound, then frames);
//!   each text message reaches the hub as one line (`\n` appended; an
//!   embedded newline becomes a space, so one message stays one line);
//!   control frames are answered by the transport; a pong is activity.
//! * **write side**: each `Bytes` the hub transmits is framed as one text
//!   message per line (without the newline, invalid UTF-8 replaced by
//!   U+FFFD). Server frames are unmasked, so one broadcast is framed once
//!   and the same frame `Bytes` are queued for every WebSocket client of
//!   the shard (the driver's frame cache). The hub's queue and its limits
//!   count the hub's bytes; a partly written frame reports its share.
//! * **closing**: a channel's end becomes a close frame, written before
//!   the FIN, with the code and text of [`close_code`].
//!
//! The codec is tungstenite's frame-header codec (`FrameHeader::parse`
//! and `format`) and its `derive_accept_key`, driven over byte buffers:
//! no stream, no per-connection writer, so the zero-copy broadcast
//! survives (see the layer's Cargo.toml for why this crate).

pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod handshake;

use std::borrow::Cow;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tether_core::{ChannelId, DisconnectReason};

use self::decode::{Decoded, Decoder, Violation};
use self::handshake::Request;

/// Which protocol a listener's connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Transport {
    /// Raw bytes (the chat's TCP lines).
    #[default]
    Lines,
    /// HTTP, upgraded to WebSocket on `/ws` ([`Web`]).
    WebSocket,
}

/// One extra `GET` path of the web listener ([`Web::with_route`]).
#[derive(Clone)]
pub struct Route {
    /// The path, e.g. `/presence` (a query string is ignored).
    pub path: &'static str,
    /// The answer's `Content-Type`.
    pub content_type: &'static str,
    /// Renders the answer's body when it is asked for; its argument is
    /// the asking connection's own channel id (an HTTP request on this
    /// listener is a channel until it is answered), e.g. to leave it out
    /// of a list of who is online.
    pub render: Arc<dyn Fn(ChannelId) -> Bytes + Send + Sync>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("path", &self.path)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// A second listener whose connections speak WebSocket
/// ([`Options::web`](crate::Options::web)), and its settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Web {
    /// Taken once, by the runtime that starts the server.
    listener: Arc<Mutex<Option<TcpListener>>>,
    /// Ping a connection after this long without a frame from it (`None`:
    /// never). A pong counts as activity for the idle timeout.
    pub ping: Option<Duration>,
    /// A connection that has not completed its upgrade this long after it
    /// was accepted is closed (and counted).
    pub handshake_timeout: Duration,
    /// Longest text message, in bytes: a longer one is closed with 1009.
    pub max_message: usize,
    /// `/ws` is a plain echo (for Autobahn): no greeting, every message
    /// (text or binary) sent back as it came.
    pub echo: bool,
    /// Served for `GET /`.
    pub page: Bytes,
    /// More `GET` paths, each answered with what its [`Route`] renders
    /// (e.g. a read-only presence list beside the page).
    pub routes: Vec<Route>,
    /// The start of the notice an application sends before it kicks
    /// (e.g. `* kicked`): the last such line sent becomes the close
    /// frame's text, so a browser learns why it was dropped.
    pub kick_notice: Option<Bytes>,
}

impl Web {
    /// WebSocket on `listener`: pings every 25 s, a 5 s handshake
    /// deadline, messages up to 4 KiB, a placeholder page.
    pub fn new(listener: TcpListener) -> Self {
        Web {
            listener: Arc::new(Mutex::new(Some(listener))),
            ping: Some(Duration::from_secs(25)),
            handshake_timeout: Duration::from_secs(5),
            max_message: 4096,
            echo: false,
            page: Bytes::from_static(PLACEHOLDER),
            routes: Vec::new(),
            kick_notice: None,
        }
    }

    /// Sets [`Web::ping`].
    #[must_use]
    pub fn with_ping(mut self, ping: Option<Duration>) -> Self {
        self.ping = ping;
        self
    }

    /// Sets [`Web::handshake_timeout`].
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`Web::max_message`].
    #[must_use]
    pub fn with_max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Sets [`Web::echo`].
    #[must_use]
    pub fn with_echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Sets [`Web::page`].
    #[must_use]
    pub fn with_page(mut self, page: impl Into<Bytes>) -> Self {
        self.page = page.into();
        self
    }

    /// Adds a [`Route`]: `GET path` is answered `200` with
    /// `content_type` and what `render` returns at that moment (given the
    /// asking connection's channel id). `render`
    /// runs on the shard's driver thread, so it must be quick and
    /// bounded (it must not wait on the server).
    #[must_use]
    pub fn with_route(
        mut self,
        path: &'static str,
        content_type: &'static str,
        render: impl Fn(ChannelId) -> Bytes + Send + Sync + 'static,
    ) -> Self {
        self.routes.push(Route {
            path,
            content_type,
            render: Arc::new(render),
        });
        self
    }

    /// Sets [`Web::kick_notice`].
    #[must_use]
    pub fn with_kick_notice(mut self, prefix: impl Into<Bytes>) -> Self {
        self.kick_notice = Some(prefix.into());
        self
    }

    /// The listener, once: `None` after the first call.
    pub(crate) fn take_listener(&self) -> Option<TcpListener> {
        self.listener.lock().ok()?.take()
    }

    /// The answer to a WebSocket connection refused at accept (the server
    /// is full or draining): `503` with `Retry-After`, before any upgrade.
    pub fn refusal() -> Bytes {
        handshake::error(503, "server full or shutting down; retry later")
    }
}

const PLACEHOLDER: &[u8] = b"<!doctype html><meta charset=utf-8><title>tether</title>\
<p>tether: connect a WebSocket to <code>/ws</code>.</p>\n";

/// The close code and text for a channel's end, and whether the client may
/// reconnect (the README's table).
///
/// | reason | code | text | reconnect |
/// |---|---|---|---|
/// | kicked (code `c`) | 4000 + `c` (`c` < 100, else 4000) | `kicked` or the kick's notice | no |
/// | idle timeout | 4100 | `idle timeout` | yes |
/// | login timeout, handshake deadline | 4101 | `login timeout` | yes |
/// | slow consumer | 4102 | `slow consumer` | yes |
/// | server shutdown | 1001 | `server shutting down` | yes, with backoff |
/// | peer closed | the peer's code (1000 if none) | | — |
/// | I/O error, reset | 1011 | `connection error` | yes |
pub fn close_code(reason: &DisconnectReason) -> (u16, &'static str, bool) {
    match reason {
        DisconnectReason::Kicked { code } => {
            let code = u16::try_from(*code).ok().filter(|c| *c < 100).unwrap_or(0);
            (4000 + code, "kicked", false)
        }
        DisconnectReason::IdleTimeout => (4100, "idle timeout", true),
        DisconnectReason::LoginTimeout => (4101, "login timeout", true),
        DisconnectReason::SlowConsumer => (4102, "slow consumer", true),
        DisconnectReason::ServerShutdown => (1001, "server shutting down", true),
        DisconnectReason::PeerClosed => (1000, "", true),
        _ => (1011, "connection error", true),
    }
}

/// Where a WebSocket connection is.
#[derive(Debug)]
enum Phase {
    /// Reading the request head (its bytes so far).
    Handshake(BytesMut),
    /// Upgraded: frames both ways.
    Open,
    /// The close frame or the HTTP answer is queued: nothing more is sent
    /// and what arrives is ignored.
    Done,
}

/// One WebSocket connection's transport state, owned by the driver.
#[derive(Debug)]
pub(crate) struct WebConn {
    phase: Phase,
    decoder: Decoder,
    /// The close frame to send at the end, when the transport decided it
    /// (a violation, the peer's close); else the hub's reason decides.
    close: Option<(u16, Cow<'static, str>)>,
    /// The last kick notice queued (see [`Web::kick_notice`]).
    notice: Option<Bytes>,
    /// The last frame received or ping sent (for `Web::ping`).
    pub last_seen: std::time::Instant,
    /// The FIN waits for the close frame to be written.
    pub fin_pending: bool,
    /// Its channel (for a [`Route`]'s render).
    id: ChannelId,
}

/// What one read asks of the driver.
#[derive(Debug, Default)]
pub(crate) struct ReadOut {
    /// The upgrade response to write first; the connection is open now.
    pub upgraded: Option<Bytes>,
    /// An HTTP answer: discard what is held, write this, then close.
    pub respond: Option<Bytes>,
    /// Lines for the hub (text messages, each with `\n`).
    pub lines: BytesMut,
    /// Frames to send back through the hub (echo).
    pub echo: Vec<Bytes>,
    /// Control frames to write (pongs).
    pub control: Vec<Bytes>,
    /// A frame arrived: activity, even without a line.
    pub activity: bool,
    /// The transport closes: a violation (close code set), or the peer's
    /// close (`peer` true).
    pub end: Option<End>,
}

/// Why the transport ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The peer sent a close frame: echo it, then close as after an EOF.
    PeerClose,
    /// A protocol violation: close with its code.
    Violation,
    /// An HTTP request that was not an upgrade was answered.
    Answered,
}

impl WebConn {
    pub(crate) fn new(web: &Web, id: ChannelId, now: std::time::Instant) -> Self {
        WebConn {
            phase: Phase::Handshake(BytesMut::new()),
            decoder: Decoder::new(if web.echo { 16 << 20 } else { web.max_message }, web.echo),
            close: None,
            notice: None,
            last_seen: now,
            fin_pending: false,
            id,
        }
    }

    /// Whether the upgrade is still to come (nothing may be written yet).
    pub(crate) fn handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshake(_))
    }

    /// Whether frames may still be queued.
    pub(crate) fn open(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// Takes one chunk read from the socket.
    pub(crate) fn read(&mut self, web: &Web, data: &[u8], now: std::time::Instant) -> ReadOut {
        let mut out = ReadOut::default();
        let rest = match &mut self.phase {
            Phase::Done => return out,
            Phase::Open => data,
            Phase::Handshake(head) => {
                head.extend_from_slice(data);
                let Some((request, took)) = handshake::parse(head, &web.page, &web.routes, self.id)
                else {
                    return out;
                };
                let head = std::mem::take(head);
                match request {
                    Request::Upgrade { accept } => {
                        self.phase = Phase::Open;
                        out.upgraded = Some(handshake::upgrade_response(&accept));
                        self.last_seen = now;
                        return self.frames(web, &head[took.min(head.len())..], now, out);
                    }
                    Request::Respond(answer) => {
                        self.phase = Phase::Done;
                        out.respond = Some(answer);
                        out.end = Some(End::Answered);
                        return out;
                    }
                }
            }
        };
        self.frames(web, rest, now, out)
    }

    fn frames(
        &mut self,
        web: &Web,
        data: &[u8],
        now: std::time::Instant,
        mut out: ReadOut,
    ) -> ReadOut {
        if data.is_empty() {
            return out;
        }
        let mut items = Vec::new();
        let result = self.decoder.feed(data, &mut items);
        out.activity = true;
        self.last_seen = now;
        for item in items {
            match item {
                Decoded::Text(text) if web.echo => out.echo.push(encode::message(false, &text)),
                Decoded::Binary(data) => out.echo.push(encode::message(true, &data)),
                Decoded::Text(text) => {
                    out.lines
                        .extend(text.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
                    out.lines.extend_from_slice(b"\n");
                }
                Decoded::Ping(payload) => out.control.push(encode::control(true, &payload)),
                Decoded::Pong => {}
                Decoded::Close(code) => {
                    self.close = Some((code.unwrap_or(1000), Cow::Borrowed("")));
                    out.end = Some(End::PeerClose);
                    self.phase = Phase::Done;
                    return out;
                }
            }
        }
        if let Err(Violation { code, text }) = result {
            self.close = Some((code, Cow::Borrowed(text)));
            out.end = Some(End::Violation);
            self.phase = Phase::Done;
        }
        out
    }

    /// Frames `data` for this connection (`cached` when the same buffer
    /// was framed for another), remembering a kick notice; `None` once
    /// nothing more may be sent.
    pub(crate) fn frame(
        &mut self,
        web: &Web,
        data: &Bytes,
        cached: Option<&Bytes>,
    ) -> Option<Bytes> {
        if matches!(self.phase, Phase::Done) {
            return None;
        }
        if let Some(prefix) = &web.kick_notice
            && data.starts_with(prefix)
        {
            self.notice = Some(data.clone());
        }
        if web.echo && encode::is_frame(data) {
            // Echo frames come framed already (`ReadOut::echo`); anything
            // else the application sends is framed as lines.
            return Some(data.clone());
        }
        Some(cached.cloned().unwrap_or_else(|| encode::lines(data)))
    }

    /// The close frame for the end of the channel, once: the transport's
    /// own (violation, peer's close) or the hub's reason's.
    pub(crate) fn close_frame(&mut self, reason: Option<&DisconnectReason>) -> Option<Bytes> {
        if !matches!(self.phase, Phase::Open) && self.close.is_none() {
            return None;
        }
        self.phase = Phase::Done;
        if let Some((code, text)) = self.close.take() {
            return Some(encode::close(code, &text));
        }
        let (code, text, _) = close_code(reason.unwrap_or(&DisconnectReason::ServerShutdown));
        let notice = self.notice.take().filter(|_| (4000..4100).contains(&code));
        let text = match &notice {
            Some(line) => {
                let line = String::from_utf8_lossy(line);
                Cow::Owned(line.trim_start_matches("* ").trim_end().to_owned())
            }
            None => Cow::Borrowed(text),
        };
        Some(encode::close(code, &text))
    }
}
