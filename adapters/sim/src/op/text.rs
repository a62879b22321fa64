//! The trace form of an op: one line each, written by `Display` and read
//! back by `FromStr`.

use std::fmt;

use tether_core::ChannelId;

use super::{Call, IoKind, Op, REASONS, SendSize};
use crate::TraceError;

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
            Op::KickReason {
                conn,
                abort,
                reason,
            } => {
                let mode = if abort { "abort" } else { "graceful" };
                let (name, _) = REASONS[usize::from(reason) % REASONS.len()];
                write!(f, "kick-reason c{conn} {mode} {name}")
            }
            Op::BroadcastTo { mask, stale, size } => {
                let stale = if stale { " stale" } else { "" };
                write!(f, "broadcast-to {mask} {}{stale}", size_text(size))
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
        let abort = |i: usize| -> Result<bool, TraceError> {
            match args.get(i) {
                Some(&"abort") => Ok(true),
                Some(&"graceful") => Ok(false),
                _ => Err(bad()),
            }
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
                abort: abort(1)?,
                code: byte(2)?,
            },
            "kick-reason" => Op::KickReason {
                conn: conn()?,
                abort: abort(1)?,
                reason: (REASONS.iter())
                    .position(|(name, _)| args.get(2) == Some(name))
                    .and_then(|i| u8::try_from(i).ok())
                    .ok_or_else(bad)?,
            },
            "broadcast-to" => Op::BroadcastTo {
                mask: byte(0)?,
                size: size(1)?,
                stale: match args.get(2) {
                    None => false,
                    Some(&"stale") => true,
                    Some(_) => return Err(bad()),
                },
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
