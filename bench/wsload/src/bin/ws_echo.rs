//! `ws-echo ADDR [THREADS]`: the churn baseline of `bench/web.sh`, a bare
//! WebSocket server on tungstenite (the crate of tether's transport) with
//! no tether core: accept, upgrade (any path), greet `hello #<n>.0`, echo
//! each text message as `<id>: <text>` to its sender, answer the close
//! handshake and close. The same cycle as `tether serve --web` under
//! `wsload churn`, so the ratio is the floor any server on that crate pays.
//! One mio loop per thread, each with its own SO_REUSEPORT listener.
//!
//! `cargo run --release -p tether-wsload --bin ws-echo -- 127.0.0.1:7280 1`

#![forbid(unsafe_code)]

use std::io::{self, ErrorKind};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Socket, Type};
use tungstenite::handshake::server::{NoCallback, ServerHandshake};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::{Error, Message, WebSocket};

const LISTENER: Token = Token(usize::MAX);

enum Conn {
    Upgrading(MidHandshake<ServerHandshake<TcpStream, NoCallback>>, String),
    Open(WebSocket<TcpStream>, String),
}

fn listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(TcpListener::from_std(s.into()))
}

/// The upgrade's result: open (greeted), still upgrading, or gone.
fn upgraded(
    r: Result<WebSocket<TcpStream>, HandshakeError<ServerHandshake<TcpStream, NoCallback>>>,
    id: String,
) -> Option<Conn> {
    match r {
        Ok(mut ws) => {
            let greeting = Message::text(format!("hello {id}"));
            // A full socket buffer keeps the frame queued: flushed on writable.
            match ws.send(greeting) {
                Ok(()) => Some(Conn::Open(ws, id)),
                Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => Some(Conn::Open(ws, id)),
                Err(_) => None,
            }
        }
        Err(HandshakeError::Interrupted(mid)) => Some(Conn::Upgrading(mid, id)),
        Err(HandshakeError::Failure(_)) => None,
    }
}

/// Reads every message there is and echoes the text ones; `false` once the
/// connection is over (the close handshake done, EOF or an error).
fn serve(ws: &mut WebSocket<TcpStream>, id: &str) -> bool {
    loop {
        let sent = match ws.read() {
            Ok(Message::Text(t)) => ws.send(Message::text(format!("{id}: {}", t.as_str()))),
            // Pings are answered and a close is echoed by tungstenite itself.
            Ok(_) => Ok(()),
            Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => return live(ws.flush()),
            Err(_) => return false,
        };
        if !live(sent) {
            return false;
        }
    }
}

fn live(r: Result<(), Error>) -> bool {
    match r {
        Ok(()) => true,
        Err(Error::Io(e)) => e.kind() == ErrorKind::WouldBlock,
        Err(_) => false,
    }
}

fn run(mut listener: TcpListener, thread: usize) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut next = 0u64;
    loop {
        poll.poll(&mut events, None)?;
        for ev in &events {
            if ev.token() == LISTENER {
                loop {
                    let mut stream = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => continue,
                    };
                    let _ = stream.set_nodelay(true);
                    let entry = conns.vacant_entry();
                    let token = Token(entry.key());
                    poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    next += 1;
                    let id = format!("#{thread}:{next}.0");
                    // None: dropped, so closed, and epoll forgets it.
                    if let Some(c) = upgraded(tungstenite::accept(stream), id) {
                        entry.insert(c);
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(conn) = conns.try_remove(key) else {
                continue;
            };
            let kept = match conn {
                Conn::Upgrading(mid, id) => upgraded(mid.handshake(), id).and_then(|c| match c {
                    Conn::Open(mut ws, id) => serve(&mut ws, &id).then_some(Conn::Open(ws, id)),
                    up => Some(up),
                }),
                Conn::Open(mut ws, id) => serve(&mut ws, &id).then_some(Conn::Open(ws, id)),
            };
            if let Some(c) = kept {
                let again = conns.insert(c);
                debug_assert_eq!(again, key);
            }
        }
    }
}

fn main() -> io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7280".into())
        .parse()
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    let threads: usize = std::env::args()
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    // The first listener fixes the port (ADDR may say 0); the others share it.
    let first = listener(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads.max(1) {
        listeners.push(listener(bound)?);
    }
    println!(
        "bare tungstenite echo on {bound}, {} thread(s)",
        listeners.len()
    );
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(t, l)| std::thread::spawn(move || run(l, t)))
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| io::Error::other("a thread panicked"))??;
    }
    Ok(())
}
