//! `idle PORT N HOLD_SECS [SRVPID [NSRC SRCBASE]]`: pc's idle over
//! WebSocket. Opens N upgraded connections (at most 256 upgrading at once,
//! from NSRC source addresses 127.0.0.SRCBASE…), each counted once its
//! greeting arrived; reads the server's VmRSS before and after (with
//! SRVPID); holds them HOLD_SECS; then one broadcast from client 0 that
//! every client must receive. Prints pc's keys.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::frame::{self, Counter, TEXT};
use crate::procfs::{connect, sleep_ms, status_kb};

const INFLIGHT: usize = 256;

#[derive(PartialEq)]
enum State {
    Upgrading,
    Greeted,
    GotPing,
    Dead,
}

struct Conn {
    stream: mio::net::TcpStream,
    state: State,
    /// The response head until its end is seen; `None` once upgraded.
    head: Option<Vec<u8>>,
    sent: bool,
    frames: Counter,
}

/// Reads what `c` has; returns the text frames that completed, or `None`
/// at EOF or an error.
fn drain(c: &mut Conn, port: u16, buf: &mut [u8]) -> Option<usize> {
    if !c.sent {
        // The connect completed: the request fits any socket buffer.
        c.stream.write_all(frame::request(port).as_bytes()).ok()?;
        c.sent = true;
    }
    let mut texts = 0;
    loop {
        let m = match c.stream.read(buf) {
            Ok(0) => return None,
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(texts),
            Err(_) => return None,
        };
        let Some(head) = &mut c.head else {
            c.frames
                .feed(&buf[..m], |op, _| texts += usize::from(op == TEXT));
            continue;
        };
        head.extend_from_slice(&buf[..m]);
        let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        if !head.starts_with(b"HTTP/1.1 101") {
            return None;
        }
        let rest = head.split_off(end + 4);
        // Upgraded: the head's buffer is freed, only the counter stays.
        c.head = None;
        c.frames
            .feed(&rest, |op, _| texts += usize::from(op == TEXT));
    }
}

fn open(port: u16, src: Option<u8>, poll: &Poll, token: usize) -> io::Result<Conn> {
    let mut stream = mio::net::TcpStream::from_std(connect(port, src, true)?);
    poll.registry().register(
        &mut stream,
        Token(token),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    Ok(Conn {
        stream,
        state: State::Upgrading,
        head: Some(Vec::with_capacity(256)),
        sent: false,
        frames: Counter::default(),
    })
}

/// Runs the idle measurement and prints its lines.
pub fn run(port: u16, n: usize, hold: f64, pid: Option<u32>, srcs: (u8, u8)) -> io::Result<()> {
    let rss = || pid.map_or(-1, |p| status_kb(p, "VmRSS:"));
    let threads = || pid.map_or(-1, |p| status_kb(p, "Threads:"));
    let (rss0, th0) = (rss(), threads());
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(512);
    let mut buf = vec![0u8; 4096];
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    let (mut greeted, mut dead, mut inflight) = (0usize, 0usize, 0usize);
    let mut first_fail = String::new();
    let t0 = Instant::now();
    let mut progress = t0;
    while greeted < n && dead == 0 {
        while conns.len() < n && inflight < INFLIGHT {
            let src = (srcs.0 > 0).then(|| {
                srcs.1
                    .saturating_add((conns.len() % usize::from(srcs.0)) as u8)
            });
            match open(port, src, &poll, conns.len()) {
                Ok(c) => conns.push(c),
                Err(e) => {
                    first_fail = format!("connect: {e}");
                    dead += 1;
                    break;
                }
            }
            inflight += 1;
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in &events {
            let c = &mut conns[ev.token().0];
            match (drain(c, port, &mut buf), &c.state) {
                (Some(t), State::Upgrading) if t > 0 => {
                    c.state = State::Greeted;
                    greeted += 1;
                    inflight -= 1;
                    progress = Instant::now();
                    poll.registry()
                        .reregister(&mut c.stream, ev.token(), Interest::READABLE)?;
                }
                (None, s) if *s != State::Dead => {
                    if first_fail.is_empty() {
                        first_fail = "EOF or error before the greeting".into();
                    }
                    c.state = State::Dead;
                    dead += 1;
                    poll.registry().deregister(&mut c.stream)?;
                }
                _ => {}
            }
        }
        if progress.elapsed() > Duration::from_secs(20) {
            first_fail = "no greeting progress for 20 s".into();
            break;
        }
    }
    let t_acc = t0.elapsed().as_secs_f64();
    sleep_ms(500);
    let (rss1, th1) = (rss(), threads());
    println!(
        "target={n} greeted={greeted} dead={dead} first_failure=\"{first_fail}\" accept_all_s={t_acc:.3} \
         rss_before_kb={rss0} rss_after_kb={rss1} rss_per_conn_kb={:.2} threads_before={th0} threads_after={th1}",
        if greeted > 0 {
            (rss1 - rss0) as f64 / greeted as f64
        } else {
            0.0
        },
    );
    if greeted < n {
        std::process::exit(2);
    }
    if n == 0 {
        return Ok(());
    }
    std::thread::sleep(Duration::from_secs_f64(hold));
    broadcast(&mut conns, &mut poll, port)
}

/// Client 0 sends `ping`; every client must receive one more text message.
fn broadcast(conns: &mut [Conn], poll: &mut Poll, port: u16) -> io::Result<()> {
    let tb = Instant::now();
    conns[0]
        .stream
        .write_all(&frame::masked(TEXT, b"ping", [1, 2, 3, 4]))?;
    let (mut got, mut lost) = (0usize, 0usize);
    let mut events = Events::with_capacity(512);
    let mut buf = vec![0u8; 4096];
    while got + lost < conns.len() && tb.elapsed() < Duration::from_secs(60) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in &events {
            let c = &mut conns[ev.token().0];
            match drain(c, port, &mut buf) {
                Some(t) if t > 0 && c.state == State::Greeted => {
                    c.state = State::GotPing;
                    got += 1;
                }
                None if c.state != State::Dead => {
                    lost += 1;
                    c.state = State::Dead;
                    poll.registry().deregister(&mut c.stream)?;
                }
                _ => {}
            }
        }
    }
    println!(
        "broadcast_received={got} lost={lost} broadcast_all_s={:.3}",
        tb.elapsed().as_secs_f64()
    );
    Ok(())
}
