//! `fanout PORT NCLIENTS NLINES SIZE [SRVPID]`: pc's fan-out over WebSocket.
//! NCLIENTS clients upgrade one at a time; client 0 sends NLINES text
//! messages of SIZE - 1 bytes (pc's SIZE-byte line without its newline)
//! from a thread of its own, as pc's sender does, and every client, the
//! sender too, must receive every line as `<id>: <line>`. Prints pc's keys.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::frame::{self, CLOSE, Counter, TEXT};
use crate::procfs::{HZ, connect, cpu_ticks, pct, sleep_ms};

/// pc's sender line `i`: `s%06d ` then the letter, SIZE - 1 bytes in all.
fn line(i: usize, size: usize) -> Vec<u8> {
    let len = size.saturating_sub(1);
    let mut l = vec![b'a' + (i % 26) as u8; len];
    let head = format!("s{i:06}.");
    let n = head.len().min(len);
    l[..n].copy_from_slice(&head.as_bytes()[..n]);
    l
}

/// Writes every line on its own non-blocking clone of client 0's socket,
/// waiting for writability with a poll of its own. Returns when done.
fn send_all(stream: TcpStream, nlines: usize, size: usize) -> io::Result<Instant> {
    let mut s = mio::net::TcpStream::from_std(stream);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut s, Token(0), Interest::WRITABLE)?;
    let mut events = Events::with_capacity(4);
    for i in 0..nlines {
        let key = (i as u32).wrapping_mul(0x9e37_79b1).to_be_bytes();
        let f = frame::masked(TEXT, &line(i, size), key);
        let mut off = 0;
        while off < f.len() {
            match s.write(&f[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll.poll(&mut events, Some(Duration::from_secs(1)))?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Instant::now())
}

struct Client {
    stream: mio::net::TcpStream,
    frames: Counter,
    lines: u64,
    wrong: u64,
    done: Option<f64>,
    ended: bool,
}

/// Connects and upgrades every client; returns them and client 0's id.
fn connect_all(port: u16, n: usize) -> io::Result<(Vec<Client>, String, TcpStream)> {
    let mut clients = Vec::with_capacity(n);
    let mut tok = String::new();
    let mut sender = None;
    for i in 0..n {
        let mut s = connect(port, None, false)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let (greeting, extra) = frame::upgrade(&mut s, port)
            .map_err(|e| io::Error::other(format!("greeting {i}: {e}")))?;
        if !extra.is_empty() {
            return Err(io::Error::other(format!("extra bytes after greeting {i}")));
        }
        if i == 0 {
            tok = greeting
                .split_once(' ')
                .map_or(&*greeting, |(_, id)| id)
                .to_owned();
            sender = Some(s.try_clone()?);
        }
        s.set_nonblocking(true)?;
        let stream = mio::net::TcpStream::from_std(s);
        clients.push(Client {
            stream,
            frames: Counter::default(),
            lines: 0,
            wrong: 0,
            done: None,
            ended: false,
        });
    }
    let sender = sender.ok_or_else(|| io::Error::other("no clients"))?;
    Ok((clients, tok, sender))
}

/// Reads what `c` has; counts lines of the expected size.
fn drain(c: &mut Client, buf: &mut [u8], want: (u64, u64), t0: Instant) -> (bool, bool) {
    let (nlines, size) = want;
    let (mut finished, mut ended) = (false, false);
    loop {
        match c.stream.read(buf) {
            Ok(0) => ended = true,
            Ok(m) => {
                let (lines, wrong, closed) = (&mut c.lines, &mut c.wrong, &mut ended);
                c.frames.feed(&buf[..m], |op, len| match op {
                    TEXT => {
                        *lines += 1;
                        *wrong += u64::from(len != size);
                    }
                    CLOSE => *closed = true,
                    _ => {}
                });
                if c.lines >= nlines && c.done.is_none() {
                    c.done = Some(t0.elapsed().as_secs_f64());
                    finished = true;
                }
                if !ended {
                    continue;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => ended = true,
        }
        return (finished, ended);
    }
}

/// Runs the fan-out and prints its line.
pub fn run(port: u16, n: usize, nlines: usize, size: usize, pid: Option<u32>) -> io::Result<()> {
    let tc = Instant::now();
    let (mut clients, tok, sender) = connect_all(port, n)?;
    let t_conn = tc.elapsed().as_secs_f64();
    let mut poll = Poll::new()?;
    for (i, c) in clients.iter_mut().enumerate() {
        poll.registry()
            .register(&mut c.stream, Token(i), Interest::READABLE)?;
    }
    sleep_ms(300);
    // Each client gets "<id>: <line>" as one text message.
    let want = (
        nlines as u64,
        (tok.len() + 2 + size.saturating_sub(1)) as u64,
    );
    let ticks = || pid.and_then(cpu_ticks).unwrap_or(0);
    let c0 = ticks();
    let t0 = Instant::now();
    let sending = std::thread::spawn(move || send_all(sender, nlines, size));
    let (mut done, mut evicted) = (0usize, 0usize);
    let mut buf = vec![0u8; 1 << 16];
    let mut events = Events::with_capacity(256);
    let deadline = t0 + Duration::from_secs(120);
    while done + evicted < n && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in &events {
            let c = &mut clients[ev.token().0];
            let (finished, ended) = drain(c, &mut buf, want, t0);
            done += usize::from(finished);
            if ended && !c.ended {
                c.ended = true;
                evicted += usize::from(c.done.is_none());
                poll.registry().deregister(&mut c.stream)?;
            }
        }
    }
    let t_all = t0.elapsed().as_secs_f64();
    let c1 = ticks();
    let sender_done = match sending.join() {
        Ok(Ok(t)) => t.duration_since(t0).as_secs_f64(),
        _ => -1.0,
    };
    sleep_ms(500);
    let c2 = ticks();
    let missing: u64 = clients.iter().map(|c| want.0.saturating_sub(c.lines)).sum();
    let wrong = clients
        .iter()
        .filter(|c| c.wrong > 0 || c.lines != want.0)
        .count();
    let mut td: Vec<f64> = clients.iter().filter_map(|c| c.done).collect();
    td.sort_by(f64::total_cmp);
    let deliv = (n * nlines) as f64 - missing as f64;
    let cpu = c1.saturating_sub(c0) as f64 / HZ;
    println!(
        "clients={n} lines={nlines} len={size} connect_s={t_conn:.3} all_received_s={t_all:.4} sender_done_s={sender_done:.4} \
         client_done_p50_s={:.4} delivered={deliv:.0} msgs_per_s={:.0} server_cpu_s={cpu:.2} cpu_us_per_msg={:.3} \
         server_cpu_s_plus500ms={:.2} complete={done} evicted_or_eof={evicted} missing_lines={missing} clients_wrong_bytes={wrong}",
        pct(&td, 0.5),
        deliv / t_all,
        cpu / deliv.max(1.0) * 1e6,
        c2.saturating_sub(c0) as f64 / HZ,
    );
    Ok(())
}
