//! What can happen to a simulated server: every input of the core, hostile
//! ones included, as one `Op` each — made by a fuzzer (`Arbitrary`), a seeded
//! generator, or read back from a trace line.
//!
//! Channels are named by position: `c3` is the live connection at index
//! `3 % live` (in accept order), so a trace stays meaningful while a
//! shrinker deletes lines. `#slot.gen` names one exact id instead (a forged
//! call when no such channel is live).
//!
//! An op is not a second list of hub calls: each becomes core
//! [`Input`](tether_core::Input)s in one place (`Sim::exec`,
//! `sim/exec.rs`), and every hub call the simulator makes is one
//! `Sim::call(Input)`, a checked [`Hub::handle_input`](tether_core::Hub::handle_input).
//! What an op adds is what an input cannot say: a connection by position
//! and a payload by size (so traces survive shrinking), the simulated
//! network's side (partial writes, FINs answered, closes confirmed late),
//! and time (waits, clocks running backwards).

use std::io;

use arbitrary::{Arbitrary, Unstructured};
use tether_core::DisconnectReason;

mod text;

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
    /// The app kicks a channel with an explicit reason
    /// (`Hub::kick_with_reason`; twice: hostile).
    KickReason {
        /// Connection.
        conn: u16,
        /// Abortive instead of graceful.
        abort: bool,
        /// Which reason, mod 8 (see [`Op::reason`]).
        reason: u8,
    },
    /// The app sends to a list of channels (`Hub::broadcast_to`): each
    /// connection `i` whose bit is set in `mask` (`c<i>`, repeats when
    /// fewer are live), then, with `stale`, a released connection's id.
    BroadcastTo {
        /// Which connections: bit `i` is `c<i>`.
        mask: u8,
        /// A stale id last (hostile).
        stale: bool,
        /// How much.
        size: SendSize,
    },
}

/// The reasons [`Op::KickReason`] picks from, by trace name.
const REASONS: [(&str, DisconnectReason); 8] = [
    ("peer-closed", DisconnectReason::PeerClosed),
    ("peer-reset", DisconnectReason::PeerReset),
    (
        "io-error",
        DisconnectReason::IoError(io::ErrorKind::TimedOut),
    ),
    ("kicked", DisconnectReason::Kicked { code: 42 }),
    ("idle-timeout", DisconnectReason::IdleTimeout),
    ("login-timeout", DisconnectReason::LoginTimeout),
    ("slow-consumer", DisconnectReason::SlowConsumer),
    ("server-shutdown", DisconnectReason::ServerShutdown),
];

/// How often each op is picked (out of the sum): a server's life is mostly
/// traffic and time passing; shutdowns are rare so runs stay interesting.
/// Entries are only appended: the first [`WEIGHTS_V2`] are how fuzz inputs
/// without the tag `T3` decode (so the committed corpus replays the runs
/// it was minimised for).
const WEIGHTS: [(u8, u16); 23] = [
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
    (21, 2), // KickReason
    (22, 3), // BroadcastTo
];

/// The ops fuzz inputs without the tag `T3` draw from.
const WEIGHTS_V2: usize = 21;

impl<'a> Arbitrary<'a> for Op {
    /// Any op, each as often as its weight says (the ops added since the
    /// corpus was minimised included).
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Op> {
        let variant = pick_variant(u, &WEIGHTS)?;
        Op::arbitrary_variant(u, variant)
    }
}

/// A variant by weight (the first, when `u` runs out).
fn pick_variant(u: &mut Unstructured<'_>, weights: &[(u8, u16)]) -> arbitrary::Result<u8> {
    let total: u16 = weights.iter().map(|(_, w)| w).sum();
    let mut r = u16::arbitrary(u)? % total;
    for (v, w) in weights {
        if r < *w {
            return Ok(*v);
        }
        r -= w;
    }
    Ok(0)
}

impl Op {
    /// An op as fuzz inputs without the tag `T3` decode: none of the ops
    /// added since ([`Op::KickReason`], [`Op::BroadcastTo`]), the same
    /// bytes consumed as when the corpus was minimised.
    pub fn arbitrary_v2(u: &mut Unstructured<'_>) -> arbitrary::Result<Op> {
        let variant = pick_variant(u, &WEIGHTS[..WEIGHTS_V2])?;
        Op::arbitrary_variant(u, variant)
    }

    /// The op of `variant` (an index of [`WEIGHTS`]), its fields from `u`.
    fn arbitrary_variant<'a>(u: &mut Unstructured<'a>, variant: u8) -> arbitrary::Result<Op> {
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
            _ => Op::arbitrary_command(u, variant)?,
        })
    }

    /// [`arbitrary_variant`](Op::arbitrary_variant) for the app's commands
    /// and the hostile calls (variants 11 on).
    fn arbitrary_command<'a>(u: &mut Unstructured<'a>, variant: u8) -> arbitrary::Result<Op> {
        let conn = |u: &mut Unstructured<'a>| -> arbitrary::Result<u16> {
            Ok(u16::from(u8::arbitrary(u)?))
        };
        Ok(match variant {
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
            20 => Op::Forged {
                shard: u8::arbitrary(u)?,
                slot: u8::arbitrary(u)? % 32,
                generation: u8::arbitrary(u)? % 8,
                call: Call::arbitrary(u)?,
            },
            21 => Op::KickReason {
                conn: conn(u)?,
                abort: bool::arbitrary(u)?,
                reason: u8::arbitrary(u)? % 8,
            },
            _ => Op::BroadcastTo {
                mask: u8::arbitrary(u)?,
                stale: bool::arbitrary(u)?,
                size: SendSize::arbitrary(u)?,
            },
        })
    }

    /// The reason of an [`Op::KickReason`] with this `reason` field.
    pub fn reason(reason: u8) -> DisconnectReason {
        REASONS[usize::from(reason) % REASONS.len()].1
    }

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
            | Op::KickReason { conn, .. }
            | Op::KickDefault { conn }
            | Op::Authenticate { conn }
            | Op::Attach { conn }
            | Op::Detach { conn }
            | Op::ConfirmClose { conn } => Some(conn),
            _ => None,
        }
    }
}
