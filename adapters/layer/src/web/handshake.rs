//! The HTTP side of a WebSocket connection: the request head, parsed with
//! `httparse` within a bound, and the server's answers (the `101` upgrade,
//! the page, errors). Sans-IO: bytes in, a verdict and bytes out.

use bytes::{Bytes, BytesMut};

use tether_core::ChannelId;

use super::Route;

/// Most bytes a request head may take; beyond, `431` and close. Browsers
/// send well under 2 KiB; cookies of a large site stay under this.
pub(crate) const MAX_HEAD: usize = 8 << 10;

/// Most header lines a request may have (browsers send about 15).
const MAX_HEADERS: usize = 48;

/// What a complete request head asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// A valid upgrade on `/ws`: answer with [`upgrade_response`].
    Upgrade {
        /// `Sec-WebSocket-Accept` for the request's key.
        accept: String,
    },
    /// Anything else: answer with this response, then close.
    Respond(Bytes),
}

/// Parses a request head from the start of `buf`: `None` until it is
/// complete (and then the bytes it took, so that frames sent right after
/// it are not lost). A head that cannot be valid is answered too:
/// `Respond` with `400`, `431`… never an error to propagate.
pub(crate) fn parse(
    buf: &[u8],
    page: &Bytes,
    routes: &[Route],
    id: ChannelId,
) -> Option<(Request, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let took = match request.parse(buf) {
        Ok(httparse::Status::Complete(took)) => took,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return None,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Some((
                Request::Respond(error(431, "request head too large")),
                buf.len(),
            ));
        }
        Err(_) => return Some((Request::Respond(error(400, "malformed request")), buf.len())),
    };
    if took > MAX_HEAD {
        return Some((Request::Respond(error(431, "request head too large")), took));
    }
    Some((answer(&request, page, routes, id), took))
}

/// The answer to a complete request.
fn answer(
    request: &httparse::Request<'_, '_>,
    page: &Bytes,
    routes: &[Route],
    id: ChannelId,
) -> Request {
    let path = request.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    if request.method != Some("GET") {
        return Request::Respond(error(405, "only GET is served"));
    }
    match path {
        "/" | "/index.html" => Request::Respond(ok_page(page)),
        "/ws" => upgrade(request),
        _ => match routes.iter().find(|route| route.path == path) {
            Some(route) => Request::Respond(ok(route.content_type, &(route.render)(id))),
            None => Request::Respond(error(404, "not found; the chat is at /ws")),
        },
    }
}

/// Checks an upgrade request (RFC 6455 §4.2.1). Extensions asked for
/// (`permessage-deflate`) are declined by not naming them in the answer.
fn upgrade(request: &httparse::Request<'_, '_>) -> Request {
    let header = |name: &'static str| header(request, name);
    let has_token = |name: &'static str, token: &str| {
        header(name).any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Request::Respond(error(426, "this path speaks WebSocket only"));
    }
    if !header("sec-websocket-version").any(|v| v.trim() == "13") {
        return Request::Respond(version_required());
    }
    let keys: Vec<&str> = header("sec-websocket-key").collect();
    match keys.as_slice() {
        // A key is 16 bytes in base64: 24 characters.
        [key] if key.trim().len() == 24 => Request::Upgrade {
            accept: tungstenite::handshake::derive_accept_key(key.trim().as_bytes()),
        },
        _ => Request::Respond(error(400, "bad Sec-WebSocket-Key")),
    }
}

/// Every value of the header `name` (case-insensitive), as text.
fn header<'a>(
    request: &'a httparse::Request<'_, '_>,
    name: &'static str,
) -> impl Iterator<Item = &'a str> {
    request
        .headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| std::str::from_utf8(h.value).unwrap_or(""))
}

/// `101 Switching Protocols` with the accept key.
pub(crate) fn upgrade_response(accept: &str) -> Bytes {
    Bytes::from(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ))
}

fn ok_page(page: &Bytes) -> Bytes {
    ok("text/html; charset=utf-8", page)
}

/// A `200` answer with `body`, never cached (a page or a live list).
fn ok(content_type: &str, page: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(page.len() + 160);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
            page.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(page);
    out.freeze()
}

fn version_required() -> Bytes {
    Bytes::from_static(
        b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
          Content-Length: 0\r\nConnection: close\r\n\r\n",
    )
}

/// A plain-text error response that closes the connection.
pub(crate) fn error(status: u16, text: &str) -> Bytes {
    let name = match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let retry = if status == 503 {
        "Retry-After: 5\r\n"
    } else {
        ""
    };
    Bytes::from(format!(
        "HTTP/1.1 {status} {name}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         {retry}Connection: close\r\n\r\n{text}\n",
        text.len() + 1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ChannelId {
        "#7.1".parse().unwrap()
    }

    fn page() -> Bytes {
        Bytes::from_static(b"<p>hi</p>")
    }

    const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

    #[test]
    fn the_rfc_example_key_is_accepted_and_deflate_declined() {
        let input = [UPGRADE.as_bytes(), b"\x81"].concat();
        let (request, took) = parse(&input, &page(), &[], id()).unwrap();
        assert_eq!(took, UPGRADE.len(), "the frame byte after the head is left");
        let Request::Upgrade { accept } = request else {
            panic!("{request:?}")
        };
        // RFC 6455 §1.3's example.
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let response = upgrade_response(&accept);
        assert!(!String::from_utf8_lossy(&response).contains("Extensions"));
    }

    #[test]
    fn partial_heads_wait_and_oversized_ones_are_refused() {
        assert_eq!(parse(&UPGRADE.as_bytes()[..40], &page(), &[], id()), None);
        let huge = format!("GET /ws HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        let (request, _) = parse(huge.as_bytes(), &page(), &[], id()).unwrap();
        assert!(matches!(request, Request::Respond(r) if r.starts_with(b"HTTP/1.1 431")));
        let many: String = (0..60).map(|i| format!("X{i}: y\r\n")).collect();
        let many = format!("GET /ws HTTP/1.1\r\n{many}\r\n");
        let (request, _) = parse(many.as_bytes(), &page(), &[], id()).unwrap();
        assert!(matches!(request, Request::Respond(r) if r.starts_with(b"HTTP/1.1 431")));
    }

    #[test]
    fn other_requests_get_pages_or_errors() {
        let status = |head: &str| match parse(head.as_bytes(), &page(), &[], id()).unwrap().0 {
            Request::Respond(r) => String::from_utf8_lossy(&r[..12]).into_owned(),
            Request::Upgrade { .. } => "upgrade".into(),
        };
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 200");
        assert_eq!(status("GET /nope HTTP/1.1\r\n\r\n"), "HTTP/1.1 404");
        assert_eq!(status("POST /ws HTTP/1.1\r\n\r\n"), "HTTP/1.1 405");
        assert_eq!(status("GET /ws HTTP/1.1\r\n\r\n"), "HTTP/1.1 426");
        assert_eq!(status(&UPGRADE.replace("13", "8")), "HTTP/1.1 426");
        assert_eq!(
            status(&UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short")),
            "HTTP/1.1 400"
        );
        assert_eq!(status("\x00\x01garbage\r\n\r\n"), "HTTP/1.1 400");
    }

    #[test]
    fn routes_answer_what_they_render_at_the_time() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let route = Route {
            path: "/presence",
            content_type: "application/json",
            render: std::sync::Arc::new(move |asking: ChannelId| {
                assert_eq!(asking, id());
                let n = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Bytes::from(format!("{{\"n\":{n}}}"))
            }),
        };
        let routes = [route];
        let get = |head: &str| match parse(head.as_bytes(), &page(), &routes, id()).unwrap().0 {
            Request::Respond(r) => String::from_utf8_lossy(&r).into_owned(),
            Request::Upgrade { .. } => "upgrade".into(),
        };
        let first = get("GET /presence?x=1 HTTP/1.1\r\n\r\n");
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(
            first.contains("Content-Type: application/json\r\n"),
            "{first}"
        );
        assert!(first.ends_with("\r\n\r\n{\"n\":0}"), "{first}");
        assert!(get("GET /presence HTTP/1.1\r\n\r\n").ends_with("{\"n\":1}"));
        assert!(get("POST /presence HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get("GET /presencex HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
