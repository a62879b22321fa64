//! `churn PORT SECS NTHREADS [SRCBASE]`: pc's churn over WebSocket. Each
//! thread loops: connect, upgrade (`GET /ws`), read the greeting, send one
//! line, read its own reply, close (close frame, then the server's close
//! and FIN). Prints `ok=… rate=…` with pc's keys.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::{Message, WebSocket};

use crate::procfs::{connect, pct};

#[derive(Default)]
struct Tally {
    ok: u64,
    e_conn: u64,
    e_upgrade: u64,
    e_greet: u64,
    e_reply: u64,
    foreign: u64,
    lat: Vec<f64>,
    /// Per phase (upgrade and greeting, own reply, close): where a slow
    /// cycle spends its time.
    phases: [Vec<f64>; 3],
    last_ok: f64,
}

/// pc's `is_own`: the line ends with the token, after a space or alone.
fn is_own(line: &str, tok: &str) -> bool {
    line.strip_suffix(tok)
        .is_some_and(|head| head.is_empty() || head.ends_with(' '))
}

fn text(ws: &mut WebSocket<TcpStream>) -> Option<String> {
    loop {
        match ws.read().ok()? {
            Message::Text(t) => return Some(t.as_str().to_owned()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// One cycle after the connect; `Err` names the tally to count.
/// One cycle after the connect: the phases' durations, or `Err` naming the
/// tally to count.
fn cycle(
    stream: TcpStream,
    port: u16,
    msg: &str,
    t: &mut Tally,
) -> Result<[f64; 3], fn(&mut Tally)> {
    let mut mark = Instant::now();
    let mut lap = move || {
        let d = mark.elapsed().as_secs_f64();
        mark = Instant::now();
        d
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let url = format!("ws://127.0.0.1:{port}/ws");
    let Ok((mut ws, _)) = tungstenite::client::client(url.as_str(), stream) else {
        return Err(|t| t.e_upgrade += 1);
    };
    if text(&mut ws).is_none() {
        return Err(|t| t.e_greet += 1);
    }
    let upgrade = lap();
    if ws.send(Message::text(msg)).is_err() {
        return Err(|t| t.e_reply += 1);
    }
    loop {
        let Some(line) = text(&mut ws) else {
            return Err(|t| t.e_reply += 1);
        };
        if is_own(&line, msg) {
            break;
        }
        t.foreign += 1;
    }
    let reply = lap();
    // The close handshake a browser does: our close, the server's, its FIN.
    let _ = ws.close(None);
    while ws.read().is_ok() {}
    Ok([upgrade, reply, lap()])
}

fn thread(port: u16, tid: usize, src: Option<u8>, start: Instant, deadline: Instant) -> Tally {
    let mut t = Tally::default();
    let mut seq = 0u64;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let stream = match connect(port, src, false) {
            Ok(s) => s,
            Err(_) => {
                t.e_conn += 1;
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let msg = format!("c{tid}-{seq}");
        seq += 1;
        match cycle(stream, port, &msg, &mut t) {
            Ok(phases) => {
                for (v, d) in t.phases.iter_mut().zip(phases) {
                    v.push(d);
                }
                t.ok += 1;
                t.last_ok = start.elapsed().as_secs_f64();
                t.lat.push(t0.elapsed().as_secs_f64());
            }
            Err(count) => count(&mut t),
        }
    }
    t
}

/// Runs the churn and prints its line.
pub fn run(port: u16, secs: f64, threads: usize, srcbase: Option<u8>) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads)
        .map(|tid| {
            let src = srcbase.map(|b| b.saturating_add(tid as u8));
            std::thread::spawn(move || thread(port, tid, src, start, deadline))
        })
        .collect();
    let mut all = Tally::default();
    for h in handles {
        let Ok(t) = h.join() else { continue };
        all.ok += t.ok;
        all.e_conn += t.e_conn;
        all.e_upgrade += t.e_upgrade;
        all.e_greet += t.e_greet;
        all.e_reply += t.e_reply;
        all.foreign += t.foreign;
        all.lat.extend(t.lat);
        for (a, v) in all.phases.iter_mut().zip(t.phases) {
            a.extend(v);
        }
        all.last_ok = all.last_ok.max(t.last_ok);
    }
    let el = start.elapsed().as_secs_f64();
    all.lat.sort_by(f64::total_cmp);
    let p50: Vec<f64> = all
        .phases
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            pct(v, 0.5) * 1e6
        })
        .collect();
    println!(
        "ok={} elapsed={el:.3} rate={:.1} e_conn={} e_upgrade={} e_greet={} e_reply={} foreign_lines={} \
         cycle_p50_us={:.1} cycle_p99_us={:.1} cycle_max_us={:.1} last_ok_s={:.3} \
         upgrade_p50_us={:.1} reply_p50_us={:.1} close_p50_us={:.1}",
        all.ok,
        all.ok as f64 / el,
        all.e_conn,
        all.e_upgrade,
        all.e_greet,
        all.e_reply,
        all.foreign,
        pct(&all.lat, 0.5) * 1e6,
        pct(&all.lat, 0.99) * 1e6,
        pct(&all.lat, 1.0) * 1e6,
        all.last_ok,
        p50[0],
        p50[1],
        p50[2],
    );
}
