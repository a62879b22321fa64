//! The sans-IO core under a hand-written `mio` poll loop: no async runtime
//! and no tether adapter, one thread that owns the `Hub` and every socket.
//! A client says hello, gets an echo, is kicked from another thread (over a
//! channel and a `mio::Waker`), and the example exits 0.
//!
//! With one thread doing all the I/O there is no holder to attach: the hub
//! emits `CloseSocket` as soon as a channel is offline, and the loop closes
//! the socket right then.
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use tether_core::{Action, ChannelId, Config, Event, Hub, KickMode};

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);

/// A connection: its socket and the bytes the kernel has not taken yet.
struct Conn {
    stream: TcpStream,
    unsent: Vec<u8>,
}

/// Runs the demo (`pub`: tests/examples.rs runs it).
pub fn main() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut server = TcpListener::bind("127.0.0.1:0".parse().expect("address"))?;
    poll.registry()
        .register(&mut server, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (kick_tx, kicks) = mpsc::channel::<ChannelId>();

    // A plain blocking client: says hello, reads until the server's EOF.
    let mut client = std::net::TcpStream::connect(server.local_addr()?)?;
    client.write_all(b"hello\n")?;
    let client = std::thread::spawn(move || io::read_to_string(client));

    let mut hub = Hub::new(Config::default()).expect("default config");
    let mut conns: HashMap<ChannelId, Conn> = HashMap::new();
    let mut events = Events::with_capacity(64);
    let token = |id: ChannelId| Token(id.to_raw() as usize);
    'serve: loop {
        let timeout = hub
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        poll.poll(&mut events, timeout)?;
        let now = Instant::now();
        for event in &events {
            match event.token() {
                LISTENER => loop {
                    let (mut stream, peer) = match server.accept() {
                        Ok(accepted) => accepted,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    };
                    // At the channel limit the hub refuses: dropping closes.
                    let Ok(id) = hub.accept(now, peer) else {
                        continue;
                    };
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    poll.registry().register(&mut stream, token(id), interest)?;
                    let unsent = Vec::new();
                    conns.insert(id, Conn { stream, unsent });
                },
                WAKER => {
                    for id in kicks.try_iter() {
                        let _ = hub.kick(now, id, KickMode::Graceful, 1);
                    }
                }
                Token(raw) => {
                    let id = ChannelId::from_raw(raw as u64);
                    let Some(conn) = conns.get_mut(&id) else {
                        continue;
                    };
                    if event.is_writable() {
                        flush(&mut hub, now, id, conn);
                    }
                    if event.is_readable() {
                        read(&mut hub, now, id, conn);
                    }
                }
            }
        }
        hub.handle_timeout(now);
        // Execute every action, deliver every event, until the hub is quiet.
        loop {
            if let Some(action) = hub.poll_action() {
                match action {
                    Action::Transmit { id, data } => {
                        if let Some(conn) = conns.get_mut(&id) {
                            conn.unsent.extend_from_slice(&data);
                            flush(&mut hub, now, id, conn);
                        }
                    }
                    Action::Shutdown { id, how } => {
                        // Only once every transmit was reported written.
                        let how = match how {
                            tether_core::ShutdownHow::Write => Shutdown::Write,
                            tether_core::ShutdownHow::Both => Shutdown::Both,
                        };
                        if let Some(conn) = conns.get(&id) {
                            let _ = conn.stream.shutdown(how);
                        }
                    }
                    Action::Abort { id } => {
                        if let Some(conn) = conns.get_mut(&id) {
                            conn.unsent.clear();
                            let sock = socket2::SockRef::from(&conn.stream);
                            let _ = sock.set_linger(Some(Duration::ZERO)); // RST at close
                        }
                    }
                    Action::CloseSocket { id } => {
                        if let Some(mut conn) = conns.remove(&id) {
                            poll.registry().deregister(&mut conn.stream)?;
                        } // dropped: closed
                        let _ = hub.handle_closed(now, id);
                    }
                    // This demo never fills up. `Action` is exhaustive: no
                    // wildcard, so a new action would not compile here.
                    Action::PauseAccept | Action::ResumeAccept => {}
                }
            } else if let Some(event) = hub.poll_event() {
                match event {
                    Event::Received { id, data } => {
                        let echo = [&b"echo: "[..], &data].concat();
                        let _ = hub.send(now, id, echo.into());
                        // Another thread decides to kick: it sends the id
                        // to the loop and wakes it.
                        let (kick_tx, waker) = (kick_tx.clone(), waker.clone());
                        std::thread::spawn(move || {
                            kick_tx.send(id).expect("the loop runs");
                            waker.wake().expect("wake the loop");
                        });
                    }
                    Event::Released { id } => {
                        println!("{id} released");
                        break 'serve;
                    }
                    _ => {}
                }
            } else {
                break;
            }
        }
    }
    let got = client.join().expect("client thread")?;
    println!("the client got {got:?}, then EOF");
    assert_eq!(got, "echo: hello\n");
    Ok(())
}

/// Writes what the kernel takes and reports it; the rest waits for the
/// next writable event.
fn flush(hub: &mut Hub, now: Instant, id: ChannelId, conn: &mut Conn) {
    while !conn.unsent.is_empty() {
        match conn.stream.write(&conn.unsent) {
            Ok(n) => {
                conn.unsent.drain(..n);
                let _ = hub.handle_written(now, id, n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                conn.unsent.clear();
                let _ = hub.handle_io_error(now, id, e.kind());
                return;
            }
        }
    }
}

/// Reads until the kernel has nothing more (mio is edge-triggered).
fn read(hub: &mut Hub, now: Instant, id: ChannelId, conn: &mut Conn) {
    let mut buf = [0; 4096];
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => {
                let _ = hub.handle_peer_eof(now, id);
                return;
            }
            Ok(n) => {
                let _ = hub.handle_received(now, id, buf[..n].to_vec().into());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = hub.handle_io_error(now, id, e.kind());
                return;
            }
        }
    }
}
