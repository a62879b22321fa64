//! The server's CPU time and memory, read from `/proc` as pc reads them.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// Clock ticks per second of `/proc/PID/stat`: 100 on every Linux this runs
/// on (reading `sysconf` would need unsafe code for a constant).
pub const HZ: f64 = 100.0;

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's ')': state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A `kB` line of `/proc/PID/status` (e.g. `VmRSS:`), or -1.
pub fn status_kb(pid: u32, key: &str) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(-1)
}

/// A socket to 127.0.0.1:`port`, from 127.0.0.`src` when given, with
/// TCP_NODELAY; non-blocking connect when `nonblocking` (then it may still
/// be connecting).
pub fn connect(port: u16, src: Option<u8>, nonblocking: bool) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_tcp_nodelay(true)?;
    if let Some(last) = src {
        s.bind(&SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0)).into())?;
    }
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into();
    if nonblocking {
        s.set_nonblocking(true)?;
        match s.connect(&to) {
            Err(e) if e.raw_os_error() != Some(115) => return Err(e), // EINPROGRESS
            _ => {}
        }
    } else {
        s.connect(&to)?;
    }
    Ok(s.into())
}

/// Percentile `q` of sorted `v` (0 when empty), as pc computes it.
pub fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

/// Sleeps `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
