//! Synthetic recordings: a seeded, chat-like workload fed to a fresh hub
//! by a well-behaved simulated adapter (it attaches a reader to every
//! channel, reports every transmit written — sometimes in parts, sometimes
//! late —, lets go of a channel the hub shut down and confirms every
//! close), recorded on a virtual clock. For tests, examples, fuzz seeds and
//! trying `tether replay` without a server.
//!
//! ```
//! use tether_record::Recording;
//! use tether_record::replay::{ReplayOptions, replay};
//!
//! let text = tether_record::synthetic::recording(7, 500);
//! let (recording, error) = Recording::parse(&text);
//! assert!(error.is_none());
//! let report = replay(&recording, None, &ReplayOptions::default(), |_| {});
//! assert!(report.result.is_ok());
//! assert_eq!(report.lines, 500);
//! ```

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tether_core::testing::{Input, Outcome};
use tether_core::{Action, ChannelId, Config, KickMode, ShutdownHow};

use crate::rerecord::Rerecorder;

/// The configuration of synthetic recordings: 16 channels, a 4 KiB queue
/// kicking slow consumers, 5 s idle timeout, 1 s flush and stall limits.
pub fn config() -> Config {
    let mut config = Config::default()
        .with_max_channels(16)
        .with_queue_limit(4096);
    config.idle_timeout = Some(Duration::from_secs(5));
    config.stall_timeout = Some(Duration::from_secs(1));
    config.flush_timeout = Duration::from_secs(1);
    config.overflow = tether_core::OverflowPolicy::KickSlowConsumer;
    config
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the simulated adapter knows of one channel.
#[derive(Default)]
struct Socket {
    /// Bytes transmitted and not yet reported written.
    unwritten: usize,
    /// The reader is attached.
    attached: bool,
    /// The hub asked to close it.
    close: bool,
    /// The peer is done sending.
    eof: bool,
}

/// `inputs` input lines of the seeded workload `seed` (see the
/// [module docs](self)), as recording text.
pub fn recording(seed: u64, inputs: usize) -> Vec<u8> {
    let Ok(mut rec) = Rerecorder::fresh(config()) else {
        return Vec::new();
    };
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut sockets: BTreeMap<ChannelId, Socket> = BTreeMap::new();
    let mut now: u64 = 0;
    let mut port = 40_000u16;
    for _ in 0..inputs {
        now += rng.below(20_000_000);
        let input = next_input(&mut rng, &mut rec, &mut sockets, now, &mut port);
        let outcome = rec.feed(now, input.clone());
        if let Outcome::Opened(id) = outcome {
            sockets.insert(id, Socket::default());
        }
        for action in rec.actions() {
            let socket = action.channel().and_then(|id| sockets.get_mut(&id));
            match (action, socket) {
                (Action::Transmit { data, .. }, Some(s)) => s.unwritten += data.len(),
                (
                    Action::Shutdown {
                        how: ShutdownHow::Both,
                        ..
                    }
                    | Action::Abort { .. },
                    Some(s),
                ) => {
                    s.unwritten = 0;
                    s.eof = true;
                }
                (Action::CloseSocket { .. }, Some(s)) => s.close = true,
                _ => {}
            }
        }
        if let (Input::Closed { id }, Outcome::Ok) = (&input, outcome) {
            sockets.remove(id);
        }
        if let (Input::Attach { id }, Outcome::Ok) = (&input, outcome) {
            sockets.entry(*id).or_default().attached = true;
        }
    }
    rec.finish()
}

/// The adapter's next input: its own duties first (attach a new channel's
/// reader, let go of a shut-down one, confirm a close, a due timeout),
/// else traffic.
fn next_input(
    rng: &mut Rng,
    rec: &mut Rerecorder,
    sockets: &mut BTreeMap<ChannelId, Socket>,
    now: u64,
    port: &mut u16,
) -> Input {
    for (id, s) in sockets.iter_mut() {
        let id = *id;
        if s.close {
            return Input::Closed { id };
        }
        if s.eof && s.attached {
            s.attached = false;
            return Input::Detach { id };
        }
        if !s.attached && !s.eof {
            return Input::Attach { id };
        }
    }
    let due = rec.due(now);
    if due && rng.below(2) == 0 {
        return Input::Timeout;
    }
    let live: Vec<ChannelId> = sockets.keys().copied().collect();
    let pick = live.get(rng.below(live.len() as u64) as usize).copied();
    let data = |rng: &mut Rng| Bytes::from(vec![0u8; 1 + rng.below(160) as usize]);
    let Some(id) = pick.filter(|_| rng.below(8) != 0) else {
        *port = port.wrapping_add(1);
        let peer = SocketAddr::from(([10, 0, (rng.below(4)) as u8, 7], *port));
        return Input::Accept { peer };
    };
    let unwritten = sockets.get(&id).map_or(0, |s| s.unwritten);
    match rng.below(100) {
        0..=29 => Input::Received {
            id,
            data: data(rng),
        },
        30..=49 => Input::Send {
            id,
            data: data(rng),
        },
        50..=54 => Input::Broadcast { data: data(rng) },
        55..=79 if unwritten > 0 => {
            let n = 1 + rng.below(unwritten as u64) as usize;
            if let Some(s) = sockets.get_mut(&id) {
                s.unwritten -= n;
            }
            Input::Written { id, n }
        }
        80..=82 => Input::Authenticate { id },
        83..=87 => Input::Kick {
            id,
            mode: if rng.below(2) == 0 {
                KickMode::Graceful
            } else {
                KickMode::Abort
            },
            code: rng.below(10) as u32,
        },
        88..=92 => Input::PeerEof { id },
        93..=94 => Input::IoError {
            id,
            kind: ErrorKind::ConnectionReset,
        },
        _ => Input::Timeout,
    }
}
