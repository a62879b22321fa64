//! What can happen to a simulated server: every input of the core, hostile
//! ones included, as one `Op` each — made by a fuzzer (`Arbitrary`), a seeded
//! generator, or read back from a trace line.
//!
//! Channels are named by position: `c3` is the live connection at index
//! `3 % live` (in accept order), so a trace stays meaningful while a
//! shrinker deletes lines. `#slot.gen` names one exact id instead (a forged
//! call when no such channel is live).

use std::fmt;
use std::io;

use arbitrary::{Arbitrary, Unstructured};
use tether_core::ChannelId;

use crate::TraceError;

/// How much the app sends, from nothing to more than the queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum SendSize {
    /// Zero bytes.
    Empty,
    /// 1–256 bytes.
    Tiny(u8),
    /// Up to 64 KiB (clamped to 4 KiB by the simulator's payload buffer).
    Small(u16),
    /// Exactly the queue limit.
    AtLimit,
    /// One byte over the queue limit (always rejected `TooLarge`).
    OverLimit,
}

/// An I/O error the simulated socket reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum IoKind {
    /// `ConnectionReset`.
    Reset,
    /// `ConnectionAborted`.
    Aborted,
    /// `BrokenPipe`.
    BrokenPipe,
    /// `TimedOut`.
    TimedOut,
    /// `UnexpectedEof`.
    UnexpectedEof,
    /// `Other`.
    Other,
}

impl IoKind {
    /// The `io::ErrorKind` it stands for.
    pub fn kind(self) -> io::ErrorKind {
        match self {
            IoKind::Reset => io::ErrorKind::ConnectionReset,
            IoKind::Aborted => io::ErrorKind::ConnectionAborted,
            IoKind::BrokenPipe => io::ErrorKind::BrokenPipe,
            IoKind::TimedOut => io::ErrorKind::TimedOut,
            IoKind::UnexpectedEof => io::ErrorKind::UnexpectedEof,
            IoKind::Other => io::ErrorKind::Other,
        }
    }

    const NAMES: [(&'static str, IoKind); 6] = [
        ("reset", IoKind::Reset),
        ("aborted", IoKind::Aborted),
        ("broken-pipe", IoKind::BrokenPipe),
        ("timed-out", IoKind::TimedOut),
        ("unexpected-eof", IoKind::UnexpectedEof),
        ("other", IoKind::Other),
    ];
}

/// A hub call made with a dead or made-up id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Call {
    /// `handle_received`.
    Received,
    /// `handle_peer_eof`.
    PeerEof,
    /// `handle_io_error`.
    IoError,
    /// `handle_written(1)`.
    Written,
    /// `send`.
    Send,
    /// graceful `kick`.
    Kick,
    /// abortive `kick`.
    Abort,
    /// `authenticate`.
    Authenticate,
    /// `attach`.
    Attach,
    /// `detach`.
    Detach,
    /// `handle_closed`.
    Closed,
}

impl Call {
    const NAMES: [(&'static str, Call); 11] = [
        ("received", Call::Received),
        ("peer-eof", Call::PeerEof),
        ("io-error", Call::IoError),
        ("written", Call::Written),
        ("send", Call::Send),
        ("kick", Call::Kick),
        ("abort", Call::Abort),
        ("auth", Call::Authenticate),
        ("attach", Call::Attach),
        ("detach", Call::Detach),
        ("closed", Call::Closed),
    ];
}

/// One thing that happens to the simulated server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Time passes by `ms`; the adapter serves every deadline on the way,
    /// peers answer our FIN, pending closes are confirmed. (Trace: `wait`.)
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// The next op reads a clock `ms` earlier than the last one (hostile;
    /// in a trace this is just an earlier time on that line).
    Rewind {
        /// Milliseconds.
        ms: u16,
    },
    /// A connection arrives (also over the limit, also while shutting down).
    Accept,
    /// `n % 32 + 1` connections arrive at once.
    AcceptFlood {
        /// Count, mod 32, minus one.
        n: u8,
    },
    /// The peer sends `len % 512` bytes; the reader reports them (also after
    /// the peer's EOF: hostile).
    PeerSend {
        /// Connection.
        conn: u16,
        /// Length.
        len: u16,
    },
    /// The peer shuts down its sending side; the reader reports EOF (a
    /// second time: hostile).
    PeerEof {
        /// Connection.
        conn: u16,
    },
    /// The socket reports an I/O error.
    IoError {
        /// Connection.
        conn: u16,
        /// Which error.
        kind: IoKind,
    },
    /// The app sends to one channel (also to closing ones).
    AppSend {
        /// Connection.
        conn: u16,
        /// How much.
        size: SendSize,
    },
    /// The app broadcasts.
    Broadcast {
        /// How much.
        size: SendSize,
    },
    /// The socket is writable: the adapter writes `percent % 101` percent
    /// of what is queued (rounded up) and reports it.
    Write {
        /// Connection.
        conn: u16,
        /// Share of the queue to write.
        percent: u8,
    },
    /// Every socket is writable: everything queued is written.
    Flush,
    /// The app kicks a channel (twice: hostile).
    Kick {
        /// Connection.
        conn: u16,
        /// Abortive instead of graceful.
        abort: bool,
        /// The app's reason code.
        code: u8,
    },
    /// The app kicks a channel the default way (`Hub::kick_default`).
    KickDefault {
        /// Connection.
        conn: u16,
    },
    /// The app marks a channel logged in.
    Authenticate {
        /// Connection.
        conn: u16,
    },
    /// A writer task takes hold of the socket.
    Attach {
        /// Connection.
        conn: u16,
    },
    /// A writer task lets go (with none attached: hostile).
    Detach {
        /// Connection.
        conn: u16,
    },
    /// The adapter confirms a pending close now (with none pending: a
    /// hostile confirmation of a close never requested).
    ConfirmClose {
        /// Connection.
        conn: u16,
    },
    /// `handle_timeout(now)`, due or not.
    Timeout,
    /// The server shuts down gracefully with `grace_ms`.
    Shutdown {
        /// Grace period in ms.
        grace_ms: u16,
    },
    /// A call with a released connection's id (stale), or one confirmed
    /// twice.
    Stale {
        /// Which dead id (index into the recently released).
        pick: u16,
        /// Which call.
        call: Call,
    },
    /// The end of a run: the server shuts down (grace 1 s), every writer
    /// lets go, and time runs on past every deadline (pending closes are
    /// confirmed on the way).
    /// Afterwards no channel may be left: every opened channel got its
    /// `Disconnected` and was released (invariants 1 and 11).
    Drain,
    /// A call with a made-up id.
    Forged {
        /// Shard (mod 2).
        shard: u8,
        /// Slot.
        slot: u8,
        /// Generation.
        generation: u8,
        /// Which call.
        call: Call,
    },
}

fn size_text(s: SendSize) -> String {
    match s {
        SendSize::Empty => "empty".into(),
        SendSize::Tiny(n) => format!("tiny:{n}"),
        SendSize::Small(n) => format!("small:{n}"),
        SendSize::AtLimit => "at-limit".into(),
        SendSize::OverLimit => "over-limit".into(),
    }
}

fn parse_size(s: &str) -> Option<SendSize> {
    Some(match s {
        "empty" => SendSize::Empty,
        "at-limit" => SendSize::AtLimit,
        "over-limit" => SendSize::OverLimit,
        _ => match s.split_once(':')? {
            ("tiny", n) => SendSize::Tiny(n.parse().ok()?),
            ("small", n) => SendSize::Small(n.parse().ok()?),
            _ => return None,
        },
    })
}

fn name_of<T: PartialEq + Copy>(names: &[(&'static str, T)], v: T) -> &'static str {
    names.iter().find(|(_, x)| *x == v).map_or("?", |(n, _)| n)
}

fn parse_name<T: Copy>(names: &[(&'static str, T)], s: &str) -> Option<T> {
    names.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
}

impl fmt::Display for Op {
    /// The trace form of an op (without its time).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Advance { .. } => write!(f, "wait"),
            Op::Rewind { ms } => write!(f, "rewind {ms}"),
            Op::Accept => write!(f, "accept"),
            Op::AcceptFlood { n } => write!(f, "accept-flood {n}"),
            Op::PeerSend { conn, len } => write!(f, "peer-send c{conn} {len}"),
            Op::PeerEof { conn } => write!(f, "peer-eof c{conn}"),
            Op::IoError { conn, kind } => {
                write!(f, "io-error c{conn} {}", name_of(&IoKind::NAMES, kind))
            }
            Op::AppSend { conn, size } => write!(f, "send c{conn} {}", size_text(size)),
            Op::Broadcast { size } => write!(f, "broadcast {}", size_text(size)),
            Op::Write { conn, percent } => write!(f, "write c{conn} {percent}"),
            Op::Flush => write!(f, "flush"),
            Op::Kick { conn, abort, code } => {
                let mode = if abort { "abort" } else { "graceful" };
                write!(f, "kick c{conn} {mode} {code}")
            }
            Op::KickDefault { conn } => write!(f, "kick-default c{conn}"),
            Op::Authenticate { conn } => write!(f, "auth c{conn}"),
            Op::Attach { conn } => write!(f, "attach c{conn}"),
            Op::Detach { conn } => write!(f, "detach c{conn}"),
            Op::ConfirmClose { conn } => write!(f, "confirm c{conn}"),
            Op::Timeout => write!(f, "timeout"),
            Op::Drain => write!(f, "drain"),
            Op::Shutdown { grace_ms } => write!(f, "shutdown {grace_ms}"),
            Op::Stale { pick, call } => {
                write!(f, "stale {pick} {}", name_of(&Call::NAMES, call))
            }
            Op::Forged {
                shard,
                slot,
                generation,
                call,
            } => {
                let id = ChannelId::from_parts(shard % 2, u32::from(slot), u32::from(generation))
                    .expect("a u8 slot fits");
                write!(f, "forged {id} {}", name_of(&Call::NAMES, call))
            }
        }
    }
}

impl std::str::FromStr for Op {
    type Err = TraceError;

    /// Parses the trace form written by `Display`.
    fn from_str(line: &str) -> Result<Op, TraceError> {
        let bad = || TraceError::Op(line.to_string());
        let mut words = line.split_whitespace();
        let verb = words.next().ok_or_else(bad)?;
        let args: Vec<&str> = words.collect();
        let num = |i: usize| -> Result<u16, TraceError> {
            args.get(i).and_then(|s| s.parse().ok()).ok_or_else(bad)
        };
        let conn = || -> Result<u16, TraceError> {
            args.first()
                .and_then(|s| s.strip_prefix('c'))
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)
        };
        let byte =
            |i: usize| -> Result<u8, TraceError> { u8::try_from(num(i)?).map_err(|_| bad()) };
        let call = |i: usize| -> Result<Call, TraceError> {
            args.get(i)
                .and_then(|s| parse_name(&Call::NAMES, s))
                .ok_or_else(bad)
        };
        let size = |i: usize| -> Result<SendSize, TraceError> {
            args.get(i).and_then(|s| parse_size(s)).ok_or_else(bad)
        };
        Ok(match verb {
            "wait" => Op::Advance { ms: 0 },
            "rewind" => Op::Rewind { ms: num(0)? },
            "accept" => Op::Accept,
            "accept-flood" => Op::AcceptFlood { n: byte(0)? },
            "peer-send" => Op::PeerSend {
                conn: conn()?,
                len: num(1)?,
            },
            "peer-eof" => Op::PeerEof { conn: conn()? },
            "io-error" => Op::IoError {
                conn: conn()?,
                kind: args
                    .get(1)
                    .and_then(|s| parse_name(&IoKind::NAMES, s))
                    .ok_or_else(bad)?,
            },
            "send" => Op::AppSend {
                conn: conn()?,
                size: size(1)?,
            },
            "broadcast" => Op::Broadcast { size: size(0)? },
            "write" => Op::Write {
                conn: conn()?,
                percent: byte(1)?,
            },
            "flush" => Op::Flush,
            "kick" => Op::Kick {
                conn: conn()?,
                abort: match args.get(1) {
                    Some(&"abort") => true,
                    Some(&"graceful") => false,
                    _ => return Err(bad()),
                },
                code: byte(2)?,
            },
            // `close`: its name in traces written before `Hub::close` became
            // `Hub::kick_default`.
            "kick-default" | "close" => Op::KickDefault { conn: conn()? },
            "auth" => Op::Authenticate { conn: conn()? },
            "attach" => Op::Attach { conn: conn()? },
            "detach" => Op::Detach { conn: conn()? },
            "confirm" => Op::ConfirmClose { conn: conn()? },
            "timeout" => Op::Timeout,
            "drain" => Op::Drain,
            "shutdown" => Op::Shutdown { grace_ms: num(0)? },
            "stale" => Op::Stale {
                pick: num(0)?,
                call: call(1)?,
            },
            "forged" => {
                let id: ChannelId = args.first().ok_or_else(bad)?.parse().map_err(|_| bad())?;
                let narrow = |v: u32| u8::try_from(v).map_err(|_| bad());
                Op::Forged {
                    shard: id.shard(),
                    slot: narrow(id.slot())?,
                    generation: narrow(id.generation())?,
                    call: call(1)?,
                }
            }
            _ => return Err(bad()),
        })
    }
}

/// How often each op is picked (out of the sum): a server's life is mostly
/// traffic and time passing; shutdowns are rare so runs stay interesting.
const WEIGHTS: [(u8, u16); 21] = [
    (0, 14), // Advance
    (1, 2),  // Rewind
    (2, 10), // Accept
    (3, 2),  // AcceptFlood
    (4, 10), // PeerSend
    (5, 4),  // PeerEof
    (6, 2),  // IoError
    (7, 12), // AppSend
    (8, 3),  // Broadcast
    (9, 12), // Write
    (10, 4), // Flush
    (11, 5), // Kick
    (12, 2), // KickDefault
    (13, 4), // Authenticate
    (14, 4), // Attach
    (15, 5), // Detach
    (16, 3), // ConfirmClose
    (17, 3), // Timeout
    (18, 1), // Shutdown
    (19, 3), // Stale
    (20, 2), // Forged
];

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Op> {
        let total: u16 = WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut r = u16::arbitrary(u)? % total;
        let mut variant = 0;
        for (v, w) in WEIGHTS {
            if r < w {
                variant = v;
                break;
            }
            r -= w;
        }
        let conn = |u: &mut Unstructured<'a>| -> arbitrary::Result<u16> {
            Ok(u16::from(u8::arbitrary(u)?))
        };
        Ok(match variant {
            0 => Op::Advance {
                ms: match u8::arbitrary(u)? % 20 {
                    0 => u16::arbitrary(u)?,
                    1..=5 => u.int_in_range(0..=5_000)?,
                    _ => u16::from(u8::arbitrary(u)?),
                },
            },
            1 => Op::Rewind {
                ms: u16::from(u8::arbitrary(u)?) * 8,
            },
            2 => Op::Accept,
            3 => Op::AcceptFlood {
                n: u8::arbitrary(u)?,
            },
            4 => Op::PeerSend {
                conn: conn(u)?,
                len: u16::arbitrary(u)?,
            },
            5 => Op::PeerEof { conn: conn(u)? },
            6 => Op::IoError {
                conn: conn(u)?,
                kind: IoKind::arbitrary(u)?,
            },
            7 => Op::AppSend {
                conn: conn(u)?,
                size: SendSize::arbitrary(u)?,
            },
            8 => Op::Broadcast {
                size: SendSize::arbitrary(u)?,
            },
            9 => Op::Write {
                conn: conn(u)?,
                percent: u8::arbitrary(u)?,
            },
            10 => Op::Flush,
            11 => Op::Kick {
                conn: conn(u)?,
                abort: bool::arbitrary(u)?,
                code: u8::arbitrary(u)?,
            },
            12 => Op::KickDefault { conn: conn(u)? },
            13 => Op::Authenticate { conn: conn(u)? },
            14 => Op::Attach { conn: conn(u)? },
            15 => Op::Detach { conn: conn(u)? },
            16 => Op::ConfirmClose { conn: conn(u)? },
            17 => Op::Timeout,
            18 => Op::Shutdown {
                grace_ms: u16::arbitrary(u)?,
            },
            19 => Op::Stale {
                pick: u16::arbitrary(u)?,
                call: Call::arbitrary(u)?,
            },
            _ => Op::Forged {
                shard: u8::arbitrary(u)?,
                slot: u8::arbitrary(u)? % 32,
                generation: u8::arbitrary(u)? % 8,
                call: Call::arbitrary(u)?,
            },
        })
    }
}

impl Op {
    /// The connection index this op names, if any.
    pub fn conn(&self) -> Option<u16> {
        let mut op = *self;
        op.conn_mut().map(|conn| *conn)
    }

    /// The same op naming connection `c` instead.
    pub fn with_conn(mut self, c: u16) -> Op {
        if let Some(conn) = self.conn_mut() {
            *conn = c;
        }
        self
    }

    /// The connection index field of the ops that name one.
    fn conn_mut(&mut self) -> Option<&mut u16> {
        match self {
            Op::PeerSend { conn, .. }
            | Op::PeerEof { conn }
            | Op::IoError { conn, .. }
            | Op::AppSend { conn, .. }
            | Op::Write { conn, .. }
            | Op::Kick { conn, .. }
            | Op::KickDefault { conn }
            | Op::Authenticate { conn }
            | Op::Attach { conn }
            | Op::Detach { conn }
            | Op::ConfirmClose { conn } => Some(conn),
            _ => None,
        }
    }
}
