//! The live admin dashboard, beside `/metrics` on the `--metrics` listener
//! (never on the client-facing `--listen` or `--web` ports).
//!
//! | request | answer |
//! |---|---|
//! | `GET /` or `GET /dashboard` | the page (assets/dashboard.html) |
//! | `GET /api/list` | `{"channels":[{"id","shard","peer","state","age_ms","idle_ms","queued"}…],"total":N,"truncated":bool}` |
//! | `GET /api/stats` | `{"counters":{"key":value…}}`: every `stats` key, plus `queued_bytes` |
//! | `POST /api/kick` with `{"id":"#1.1","reason":"…","mode":"graceful"\|"abort"}` | `ok` (200) or `error <why>` (409, e.g. a stale id) |
//!
//! Access follows the admin console's rules. With `--admin-token`, every
//! `/api/` request needs `Authorization: Bearer <token>` (else 401; the
//! page asks for the token and keeps it in the tab's `sessionStorage`,
//! never in a URL that a log would keep). Without a token the dashboard
//! is served only when `--metrics` is on a loopback address (else 403),
//! and only to a `Host` that is an IP address or `localhost`, so another
//! site cannot reach it through DNS rebinding. A kick must be JSON
//! (`Content-Type: application/json`, which a cross-site form cannot send
//! without a CORS preflight that is never granted) and, when the browser
//! names an `Origin`, come from this host. Bodies over [`MAX_BODY`] get
//! 413, bad JSON 400; `/metrics` itself stays open, as before.

use std::str::FromStr;

use serde::Deserialize;
use tether_adapter::Handle;
use tether_core::{ChannelId, KickMode};

use super::super::{ChatCounters, Console};
use crate::admin::AdminCommand;
use crate::cli::Secret;

/// The page: plain HTML, CSS and JavaScript, charts drawn on canvas.
const PAGE: &str = include_str!("../assets/dashboard.html");

/// Longest request body taken (a kick is well under 200 bytes).
pub const MAX_BODY: usize = 1024;

/// Most channels listed in one `/api/list` answer (`total` is exact).
pub const MAX_LISTED: usize = 2000;

/// Longest kick reason kept, in characters.
const MAX_REASON: usize = 200;

/// A dashboard path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Page {
    /// `GET /`, `GET /dashboard`.
    Html,
    /// `GET /api/list`.
    List,
    /// `GET /api/stats`.
    Stats,
    /// `POST /api/kick`.
    Kick,
}

/// The dashboard path asked for: `None` when `path` is not one of its
/// paths, `Some(Err(()))` for the wrong method on one.
pub(super) fn route(method: &str, path: &str) -> Option<Result<Page, ()>> {
    let (page, wants) = match path {
        "/" | "/dashboard" => (Page::Html, "GET"),
        "/api/list" => (Page::List, "GET"),
        "/api/stats" => (Page::Stats, "GET"),
        "/api/kick" => (Page::Kick, "POST"),
        _ => return None,
    };
    Some(if method == wants { Ok(page) } else { Err(()) })
}

/// Who may use the dashboard.
#[derive(Debug, Clone)]
pub(super) struct Access {
    /// `--admin-token`.
    pub token: Option<Secret>,
    /// Whether the `--metrics` listener is on a loopback address.
    pub loopback: bool,
}

/// One answer: status line, content type, extra header lines, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    pub status: &'static str,
    pub content_type: &'static str,
    /// Header lines, each ending in `\r\n`.
    pub headers: &'static str,
    pub body: String,
}

/// Headers of every dashboard answer: never cached, never framed by
/// another site (the kick buttons), never sniffed as another type.
const COMMON: &str = "Cache-Control: no-store\r\nX-Frame-Options: DENY\r\n\
X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n";

/// The page's own policy: its inline script and style, nothing fetched
/// from elsewhere.
const PAGE_HEADERS: &str = "Cache-Control: no-store\r\nX-Frame-Options: DENY\r\n\
X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'\r\n";

fn text(status: &'static str, body: impl Into<String>) -> Answer {
    Answer {
        status,
        content_type: "text/plain; charset=utf-8",
        headers: COMMON,
        body: body.into(),
    }
}

fn json(value: &serde_json::Value) -> Answer {
    Answer {
        status: "200 OK",
        content_type: "application/json",
        headers: COMMON,
        body: value.to_string(),
    }
}

/// A request head's header value (the first, trimmed), by name.
pub(super) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Whether the `Host` header names this machine by address or as
/// `localhost` (not a name someone else's DNS could point here).
fn local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The access check of one request: `None` when it may go on.
pub(super) fn check(access: &Access, page: Page, head: &str) -> Option<Answer> {
    match &access.token {
        None if !access.loopback => Some(text(
            "403 Forbidden",
            "forbidden: the dashboard is served on a non-loopback --metrics address only with --admin-token\n",
        )),
        None if !header(head, "host").is_some_and(local_host) => Some(text(
            "403 Forbidden",
            "forbidden: without --admin-token, open the dashboard by IP address or localhost\n",
        )),
        // The page holds no data: it asks for the token itself.
        Some(_) if page == Page::Html => None,
        Some(token) => {
            let offered = header(head, "authorization").and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
            });
            match offered {
                Some(guess) if token.matches(guess) => None,
                _ => Some(Answer {
                    headers: "Cache-Control: no-store\r\nWWW-Authenticate: Bearer realm=\"tether\"\r\n",
                    ..text("401 Unauthorized", "error auth required\n")
                }),
            }
        }
        None => None,
    }
}

/// A kick asked for by the page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KickRequest {
    id: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    mode: Option<String>,
}

/// Checks a kick's framing (JSON, same origin) before its body is read:
/// `None` when it may go on.
pub(super) fn check_kick(head: &str) -> Option<Answer> {
    let json = header(head, "content-type").is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return Some(text(
            "415 Unsupported Media Type",
            "error a kick is JSON (Content-Type: application/json)\n",
        ));
    }
    if let Some(origin) = header(head, "origin") {
        let host = header(head, "host").unwrap_or_default();
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Some(text(
                "403 Forbidden",
                "forbidden: a kick from another origin\n",
            ));
        }
    }
    None
}

/// Parses a kick body into the console's command.
fn kick_command(body: &[u8]) -> Result<AdminCommand, String> {
    let request: KickRequest =
        serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    let id = ChannelId::from_str(request.id.trim()).map_err(|e| e.to_string())?;
    let mode = match request.mode.as_deref() {
        None | Some("graceful") => KickMode::Graceful,
        Some("abort") => KickMode::Abort,
        Some(other) => return Err(format!("mode {other:?} is neither graceful nor abort")),
    };
    // The reason goes into a line to the client: no line breaks, no
    // control characters, as the console's single-line reasons.
    let reason: String = request
        .reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    Ok(AdminCommand::Kick {
        id,
        mode,
        reason: reason.trim().to_owned(),
    })
}

/// What the dashboard needs of the server.
pub(super) struct Server<'a> {
    pub handle: &'a Handle,
    pub console: &'a Console,
    pub counters: &'a ChatCounters,
}

/// Answers one dashboard request that passed [`check`] (and, for a kick,
/// [`check_kick`]); `body` is the request's body.
pub(super) fn answer(page: Page, body: &[u8], server: &Server<'_>) -> Answer {
    let stopped = || text("503 Service Unavailable", "the server has stopped\n");
    match page {
        Page::Html => Answer {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            headers: PAGE_HEADERS,
            body: PAGE.to_owned(),
        },
        Page::List => match super::super::call(server.handle, server.handle.channels()) {
            Ok(list) => json(&list_json(&list)),
            Err(_) => stopped(),
        },
        Page::Stats => match super::super::call(server.handle, server.handle.stats()) {
            Ok(stats) => {
                let mut counters = serde_json::Map::new();
                for (key, value) in stats.counters() {
                    counters.insert(key, value.into());
                }
                for (key, value) in server.counters.snapshot() {
                    counters.insert(key.to_owned(), value.into());
                }
                let core = &stats.core;
                let queued = core
                    .bytes_queued
                    .saturating_sub(core.bytes_written)
                    .saturating_sub(core.bytes_dropped);
                counters.insert("queued_bytes".into(), queued.into());
                json(&serde_json::json!({ "counters": counters }))
            }
            Err(_) => stopped(),
        },
        Page::Kick => match kick_command(body) {
            Ok(command) => {
                let said = server.console.execute(command);
                let status = if said == crate::admin::OK {
                    "200 OK"
                } else {
                    "409 Conflict"
                };
                text(status, said)
            }
            Err(why) => text("400 Bad Request", crate::admin::format_error(&why)),
        },
    }
}

/// `/api/list`'s body.
fn list_json(list: &[tether_core::ChannelInfo]) -> serde_json::Value {
    let channels: Vec<serde_json::Value> = list
        .iter()
        .take(MAX_LISTED)
        .map(|ch| {
            serde_json::json!({
                "id": ch.id.to_string(),
                "shard": ch.id.shard(),
                "peer": ch.peer.to_string(),
                "state": ch.state.to_string(),
                "age_ms": u64::try_from(ch.age.as_millis()).unwrap_or(u64::MAX),
                "idle_ms": u64::try_from(ch.idle.as_millis()).unwrap_or(u64::MAX),
                "queued": ch.queued,
            })
        })
        .collect();
    serde_json::json!({
        "channels": channels,
        "total": list.len(),
        "truncated": list.len() > MAX_LISTED,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(answer: Option<Answer>) -> &'static str {
        answer.map_or("pass", |a| a.status)
    }

    #[test]
    fn access_follows_the_console_rules() {
        let open = Access {
            token: None,
            loopback: true,
        };
        let exposed = Access {
            token: None,
            loopback: false,
        };
        let locked = Access {
            token: Some(Secret::new("s3cret")),
            loopback: false,
        };
        let local = "GET /api/list HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n\r\n";
        assert_eq!(status(check(&open, Page::List, local)), "pass");
        assert_eq!(
            status(check(
                &open,
                Page::List,
                "GET / HTTP/1.1\r\nHost: localhost:9\r\n\r\n"
            )),
            "pass"
        );
        assert_eq!(
            status(check(
                &open,
                Page::List,
                "GET / HTTP/1.1\r\nHost: [::1]:9\r\n\r\n"
            )),
            "pass"
        );
        // DNS rebinding: someone else's name pointing here.
        let rebound = "GET /api/list HTTP/1.1\r\nHost: evil.example:9100\r\n\r\n";
        assert_eq!(status(check(&open, Page::List, rebound)), "403 Forbidden");
        assert_eq!(
            status(check(&open, Page::List, "GET / HTTP/1.1\r\n\r\n")),
            "403 Forbidden"
        );
        assert_eq!(status(check(&exposed, Page::Html, local)), "403 Forbidden");
        // With a token: the page (no data) is served, the data needs it.
        assert_eq!(status(check(&locked, Page::Html, rebound)), "pass");
        assert_eq!(
            status(check(&locked, Page::List, local)),
            "401 Unauthorized"
        );
        let with = |auth: &str| {
            format!("GET /api/list HTTP/1.1\r\nHost: h\r\nAuthorization: {auth}\r\n\r\n")
        };
        assert_eq!(
            status(check(&locked, Page::List, &with("Bearer s3cret"))),
            "pass"
        );
        assert_eq!(
            status(check(&locked, Page::Kick, &with("bearer  s3cret"))),
            "pass"
        );
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer",
        ] {
            assert_eq!(
                status(check(&locked, Page::Stats, &with(bad))),
                "401 Unauthorized",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_kick_is_same_origin_json() {
        let head =
            |extra: &str| format!("POST /api/kick HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n{extra}\r\n");
        assert_eq!(
            status(check_kick(&head("Content-Type: application/json\r\n"))),
            "pass"
        );
        assert_eq!(
            status(check_kick(&head(
                "Content-Type: application/json; charset=utf-8\r\nOrigin: http://127.0.0.1:9100\r\n"
            ))),
            "pass"
        );
        assert_eq!(
            status(check_kick(&head(
                "Content-Type: application/x-www-form-urlencoded\r\n"
            ))),
            "415 Unsupported Media Type"
        );
        assert_eq!(status(check_kick(&head(""))), "415 Unsupported Media Type");
        assert_eq!(
            status(check_kick(&head(
                "Content-Type: application/json\r\nOrigin: http://evil.example\r\n"
            ))),
            "403 Forbidden"
        );
    }

    #[test]
    fn kick_bodies_are_typed_and_hostile_ones_refused() {
        let id: ChannelId = "#3.1".parse().unwrap();
        assert_eq!(
            kick_command(br##"{"id":"#3.1","reason":"spam\r\n#1.1: fake","mode":"graceful"}"##),
            Ok(AdminCommand::Kick {
                id,
                mode: KickMode::Graceful,
                reason: "spam  #1.1: fake".into(),
            })
        );
        assert_eq!(
            kick_command(br##"{"id":"#3.1","mode":"abort"}"##),
            Ok(AdminCommand::Kick {
                id,
                mode: KickMode::Abort,
                reason: String::new(),
            })
        );
        let long = format!(r##"{{"id":"#3.1","reason":"{}"}}"##, "x".repeat(5000));
        match kick_command(long.as_bytes()) {
            Ok(AdminCommand::Kick { reason, .. }) => assert_eq!(reason.len(), MAX_REASON),
            other => panic!("{other:?}"),
        }
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"id\":3}",
            b"{\"id\":\"nope\"}",
            b"{\"id\":\"#3.1\",\"mode\":\"gentle\"}",
            b"{\"id\":\"#3.1\",\"extra\":1}",
            b"\xff\xfe",
        ] {
            assert!(kick_command(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn routes_and_methods() {
        assert_eq!(route("GET", "/"), Some(Ok(Page::Html)));
        assert_eq!(route("GET", "/dashboard"), Some(Ok(Page::Html)));
        assert_eq!(route("GET", "/api/stats"), Some(Ok(Page::Stats)));
        assert_eq!(route("POST", "/api/list"), Some(Err(())));
        assert_eq!(route("GET", "/metrics"), None);
    }
}
