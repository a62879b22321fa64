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

/// The words of one trace line after its verb; every accessor fails as
/// the whole line's [`TraceError::Op`].
struct Words<'a> {
    line: &'a str,
    args: Vec<&'a str>,
}

impl<'a> Words<'a> {
    fn bad(&self) -> TraceError {
        TraceError::Op(self.line.to_string())
    }

    fn get(&self, i: usize) -> Result<&'a str, TraceError> {
        self.args.get(i).copied().ok_or_else(|| self.bad())
    }

    fn num(&self, i: usize) -> Result<u16, TraceError> {
        self.get(i)?.parse().map_err(|_| self.bad())
    }

    fn byte(&self, i: usize) -> Result<u8, TraceError> {
        u8::try_from(self.num(i)?).map_err(|_| self.bad())
    }

    /// `c<n>`, the first word.
    fn conn(&self) -> Result<u16, TraceError> {
        (self.get(0)?.strip_prefix('c'))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.bad())
    }

    fn call(&self, i: usize) -> Result<Call, TraceError> {
        parse_name(&Call::NAMES, self.get(i)?).ok_or_else(|| self.bad())
    }

    fn size(&self, i: usize) -> Result<SendSize, TraceError> {
        parse_size(self.get(i)?).ok_or_else(|| self.bad())
    }

    /// `abort` (true) or `graceful`.
    fn abort(&self, i: usize) -> Result<bool, TraceError> {
        match self.get(i)? {
            "abort" => Ok(true),
            "graceful" => Ok(false),
            _ => Err(self.bad()),
        }
    }

    fn reason(&self, i: usize) -> Result<u8, TraceError> {
        let name = self.get(i)?;
        (REASONS.iter().position(|(n, _)| *n == name))
            .and_then(|i| u8::try_from(i).ok())
            .ok_or_else(|| self.bad())
    }

    /// An optional last word `stale`.
    fn stale(&self, i: usize) -> Result<bool, TraceError> {
        match self.args.get(i) {
            None => Ok(false),
            Some(&"stale") => Ok(true),
            Some(_) => Err(self.bad()),
        }
    }

    /// `#slot.gen` (or `#shard:slot.gen`), each part a byte.
    fn forged(&self, i: usize) -> Result<Op, TraceError> {
        let id: ChannelId = self.get(0)?.parse().map_err(|_| self.bad())?;
        let narrow = |v: u32| u8::try_from(v).map_err(|_| self.bad());
        Ok(Op::Forged {
            shard: id.shard(),
            slot: narrow(id.slot())?,
            generation: narrow(id.generation())?,
            call: self.call(i)?,
        })
    }
}

impl std::str::FromStr for Op {
    type Err = TraceError;

    /// Parses the trace form written by `Display`.
    fn from_str(line: &str) -> Result<Op, TraceError> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or_default();
        let w = Words {
            line,
            args: words.collect(),
        };
        Ok(match verb {
            "wait" => Op::Advance { ms: 0 },
            "rewind" => Op::Rewind { ms: w.num(0)? },
            "accept" => Op::Accept,
            "accept-flood" => Op::AcceptFlood { n: w.byte(0)? },
            "peer-send" => Op::PeerSend {
                conn: w.conn()?,
                len: w.num(1)?,
            },
            "peer-eof" => Op::PeerEof { conn: w.conn()? },
            "io-error" => Op::IoError {
                conn: w.conn()?,
                kind: parse_name(&IoKind::NAMES, w.get(1)?).ok_or_else(|| w.bad())?,
            },
            "send" => Op::AppSend {
                conn: w.conn()?,
                size: w.size(1)?,
            },
            "broadcast" => Op::Broadcast { size: w.size(0)? },
            "write" => Op::Write {
                conn: w.conn()?,
                percent: w.byte(1)?,
            },
            "flush" => Op::Flush,
            "kick" => Op::Kick {
                conn: w.conn()?,
                abort: w.abort(1)?,
                code: w.byte(2)?,
            },
            "kick-reason" => Op::KickReason {
                conn: w.conn()?,
                abort: w.abort(1)?,
                reason: w.reason(2)?,
            },
            "broadcast-to" => Op::BroadcastTo {
                mask: w.byte(0)?,
                size: w.size(1)?,
                stale: w.stale(2)?,
            },
            // `close`: its name in traces written before `Hub::close` became
            // `Hub::kick_default`.
            "kick-default" | "close" => Op::KickDefault { conn: w.conn()? },
            "auth" => Op::Authenticate { conn: w.conn()? },
            "attach" => Op::Attach { conn: w.conn()? },
            "detach" => Op::Detach { conn: w.conn()? },
            "confirm" => Op::ConfirmClose { conn: w.conn()? },
            "timeout" => Op::Timeout,
            "drain" => Op::Drain,
            "shutdown" => Op::Shutdown {
                grace_ms: w.num(0)?,
            },
            "stale" => Op::Stale {
                pick: w.num(0)?,
                call: w.call(1)?,
            },
            "forged" => w.forged(1)?,
            _ => return Err(w.bad()),
        })
    }
}
