//! Input lines: `<t> <input> [<args>…] => <outcome> <checksum> <outputs>`.

use tether_core::testing::{Input, Outcome};
use tether_core::{Arg, ArgKind, Args, ChannelId, DisconnectReason, KickMode};

use super::{
    Parser, Tokens, checksum, duration, expected, found, id, instant_ns, number, usize_of,
};
use crate::errorkind::kind_from_name;
use crate::format::{Line, ParseErrorKind, REJECTIONS, rejection_name};

impl Parser {
    /// One input line; returns it and how many of its bytes are exempt
    /// from [`MAX_LINE`](crate::format::MAX_LINE) (a payload's hex, a
    /// `broadcast-to`'s ids).
    pub(super) fn line(
        &mut self,
        text: &str,
        bytes: bool,
    ) -> Result<(Line, usize), ParseErrorKind> {
        let mut t = Tokens::new(text);
        let at_ns = instant_ns(t.next("a time in seconds with nine decimals")?)?;
        let (input, exempt) = self.input(&mut t, bytes)?;
        t.word("=>", "`=>` and the outcome")?;
        let outcome = outcome(&mut t)?;
        let checksum = checksum(&mut t)?;
        t.end()?;
        let line = Line {
            at_ns,
            input,
            outcome,
            checksum,
        };
        Ok((line, exempt))
    }

    /// An input's name and arguments ([`Input::signature`]); returns it
    /// and how many bytes of the line are exempt from the length limit.
    fn input(&mut self, t: &mut Tokens<'_>, bytes: bool) -> Result<(Input, usize), ParseErrorKind> {
        const WHAT: &str = "an input name (accept, received, …)";
        let name = t.next("an input name")?;
        let kinds = Input::signature(name).ok_or_else(|| expected(WHAT, name))?;
        let (mut args, mut exempt) = (Args::new(), 0);
        for kind in kinds {
            let (arg, n) = self.arg(*kind, t, bytes)?;
            args.push(arg);
            exempt += n;
        }
        let input = Input::from_args(name, args).ok_or_else(|| expected(WHAT, name))?;
        Ok((input, exempt))
    }

    /// One argument; returns it and how many bytes of the line are exempt
    /// from the length limit (a payload's hex, a list of ids).
    fn arg(
        &mut self,
        kind: ArgKind,
        t: &mut Tokens<'_>,
        bytes: bool,
    ) -> Result<(Arg, usize), ParseErrorKind> {
        let arg = match kind {
            ArgKind::Peer => {
                let peer = t.next("a peer address")?;
                Arg::Peer(peer.parse().map_err(|_| expected("a peer address", peer))?)
            }
            ArgKind::Id => Arg::Id(channel(t)?),
            ArgKind::Ids => {
                let n = number(t.next("a channel count")?, "a channel count")?;
                let (mut ids, mut exempt) = (Vec::new(), 0);
                for _ in 0..n {
                    let token = t.next("a channel id")?;
                    ids.push(id(token)?);
                    exempt += token.len() + 1;
                }
                return Ok((Arg::Ids(ids), exempt));
            }
            ArgKind::Payload => {
                let (data, hex) = self.payload(t, bytes)?;
                return Ok((Arg::Payload(data), hex));
            }
            ArgKind::Count => Arg::Count(usize_of(t.next("a byte count")?, "a byte count")?),
            ArgKind::ErrorKind => Arg::ErrorKind(error_kind(t.next("an io::ErrorKind name")?)?),
            ArgKind::Mode => Arg::Mode(kick_mode(t)?),
            ArgKind::Code => {
                let code = number(t.next("a kick code")?, "a kick code")?;
                Arg::Code(u32::try_from(code).map_err(|_| expected("a kick code (u32)", ""))?)
            }
            ArgKind::Reason => Arg::Reason(reason(t.next(REASON)?)?),
            ArgKind::Duration => {
                const WHAT: &str = "a duration in seconds with nine decimals";
                Arg::Duration(duration(t.next(WHAT)?, WHAT)?)
            }
        };
        Ok((arg, 0))
    }
}

const REASON: &str = "a disconnect reason (peer-closed, kicked:<code>, io-error:<kind>, …)";

/// The reasons without an argument, found by name.
const PLAIN_REASONS: [DisconnectReason; 6] = [
    DisconnectReason::PeerClosed,
    DisconnectReason::PeerReset,
    DisconnectReason::IdleTimeout,
    DisconnectReason::LoginTimeout,
    DisconnectReason::SlowConsumer,
    DisconnectReason::ServerShutdown,
];

/// A disconnect reason as the printer writes it: its name, with
/// `:<kind>` for an I/O error and `:<code>` for a kick.
fn reason(t: &str) -> Result<DisconnectReason, ParseErrorKind> {
    Ok(match t.split_once(':') {
        Some(("io-error", kind)) => DisconnectReason::IoError(error_kind(kind)?),
        Some(("kicked", code)) => DisconnectReason::Kicked {
            code: u32::try_from(number(code, REASON)?).map_err(|_| expected(REASON, t))?,
        },
        Some(_) => return Err(expected(REASON, t)),
        None => *PLAIN_REASONS
            .iter()
            .find(|r| r.name() == t)
            .ok_or_else(|| expected(REASON, t))?,
    })
}

fn error_kind(name: &str) -> Result<std::io::ErrorKind, ParseErrorKind> {
    kind_from_name(name).ok_or_else(|| ParseErrorKind::UnknownErrorKind(found(name)))
}

fn channel(t: &mut Tokens<'_>) -> Result<ChannelId, ParseErrorKind> {
    id(t.next("a channel id")?)
}

fn kick_mode(t: &mut Tokens<'_>) -> Result<KickMode, ParseErrorKind> {
    const WHAT: &str = "a kick mode (graceful or abort)";
    match t.next(WHAT)? {
        "graceful" => Ok(KickMode::Graceful),
        "abort" => Ok(KickMode::Abort),
        other => Err(expected(WHAT, other)),
    }
}

/// `ok`, `opened <id>`, `broadcast <sent> <refused>` or `rejected <reason>`.
fn outcome(t: &mut Tokens<'_>) -> Result<Outcome, ParseErrorKind> {
    const WHAT: &str = "an outcome (ok, opened, broadcast or rejected)";
    Ok(match t.next(WHAT)? {
        "ok" => Outcome::Ok,
        "opened" => Outcome::Opened(id(t.next("the opened channel's id")?)?),
        "broadcast" => {
            let sent = usize_of(t.next("a sent count")?, "a sent count")?;
            let refused = usize_of(t.next("a refused count")?, "a refused count")?;
            Outcome::Broadcast { sent, refused }
        }
        "rejected" => {
            let reason = t.next("a rejection reason")?;
            let r = REJECTIONS
                .iter()
                .find(|r| rejection_name(**r) == reason)
                .ok_or_else(|| expected("a rejection reason (stale, unknown, …)", reason))?;
            Outcome::Rejected(*r)
        }
        other => return Err(expected(WHAT, other)),
    })
}
