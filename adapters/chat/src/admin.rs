//! The admin console: one command per line, one answer per command.
//!
//! | command | answer |
//! |---|---|
//! | `list` | one line per channel: `<id> <peer> <state> idle=<ms>ms queued=<bytes>`, then `.`; on a cluster node ids read `NAME/<id>`, and every other live node's channels follow (`NAME/<id>` alone) |
//! | `kick <id> [graceful\|abort] [reason words]` | `ok` or `error <why>` |
//! | `kick NAME/<id> [graceful\|abort] [reason words]` | on a cluster node, a channel of any node: `ok` once its node did it, `error stale` (not live there: released, or already closing), `error unknown node NAME`, `error cluster unavailable` |
//! | `nodes` | on a cluster node: `NAME channels=<n> age_ms=<ms>` per live node (this one first), then `.` |
//! | `stats` | `key=value` lines, then `.` |
//! | `shutdown [deadline]` | `ok`, then the server drains and exits; the deadline is milliseconds (`250`) or a duration (`2s`), by default `--shutdown-grace` |
//! | `auth <token>` | `ok`; with `--admin-token`, required first (see [`crate::server`]) |
//! | anything else | `error <why>`; the console keeps serving |
//!
//! Parsing and formatting live here; executing a command is
//! [`Console::execute`](crate::server::Console::execute).

use std::fmt::{self, Write as _};
use std::time::Duration;

use bytes::Bytes;
use tether_cluster::{NodeId, NodeIdError, NodeName};
use tether_core::{ChannelId, ChannelInfo, KickMode, ParseIdError};

/// The reason code of kicks made from the console
/// ([`DisconnectReason::Kicked`](tether_core::DisconnectReason::Kicked)).
pub const ADMIN_KICK_CODE: u32 = 1;

/// The answer to any command before `auth` on a console with a token.
pub const AUTH_REQUIRED: &str = "error auth required\n";
/// The answer to `auth` with the wrong token; the session is closed.
pub const BAD_TOKEN: &str = "error bad token\n";
/// What a console connection beyond `--admin-max` reads before it is closed.
pub const TOO_MANY: &str = "error too many admin connections\n";

/// One parsed console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// List every channel.
    List,
    /// Kick one channel.
    Kick {
        /// The channel.
        id: ChannelId,
        /// Graceful (the default) or abort.
        mode: KickMode,
        /// Free-form words, told to the client before a graceful kick.
        reason: String,
    },
    /// Kick a channel of a cluster node (`kick NAME/<id> …`).
    KickRemote {
        /// The channel and its node.
        target: NodeId,
        /// Graceful (the default) or abort.
        mode: KickMode,
        /// Free-form words, told to the client before a graceful kick.
        reason: String,
    },
    /// List the cluster's live nodes.
    Nodes,
    /// Print the hub's counters.
    Stats,
    /// Drain every channel, then exit.
    Shutdown {
        /// How long to drain before aborting what is left; `None`: the
        /// server's `--shutdown-grace`.
        deadline: Option<Duration>,
    },
    /// Log in to a console that has a token.
    Auth {
        /// The token offered.
        token: String,
    },
}

/// Why a console line is not a command. Displayed after `error `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// A blank line.
    #[error(
        "empty command; try list, kick <id> [graceful|abort] [reason], stats, shutdown [deadline]"
    )]
    Empty,
    /// Not a command we know.
    #[error("unknown command {0:?}; try list, kick, stats, nodes, shutdown, auth")]
    Unknown(String),
    /// `kick` without an id.
    #[error("usage: kick <id> [graceful|abort] [reason words]")]
    MissingId,
    /// The id does not parse.
    #[error(transparent)]
    BadId(#[from] ParseIdError),
    /// The node-qualified id (`NAME/<id>`) does not parse.
    #[error(transparent)]
    BadNodeId(#[from] NodeIdError),
    /// `shutdown` with a deadline that is neither milliseconds nor a duration.
    #[error("usage: shutdown [deadline]; {0:?} is not milliseconds (250) or a duration (2s)")]
    BadDeadline(String),
    /// `auth` without a token.
    #[error("usage: auth <token>")]
    MissingToken,
    /// Arguments after a command that takes none.
    #[error("{0} takes no arguments")]
    UnexpectedArguments(&'static str),
    /// The line is not UTF-8.
    #[error("command is not valid UTF-8")]
    NotUtf8,
}

impl AdminCommand {
    /// Parses one console line (without its newline).
    ///
    /// ```
    /// use tether_chat::AdminCommand;
    /// use tether_core::KickMode;
    /// let cmd = AdminCommand::parse("kick #3.1 abort too loud").unwrap();
    /// assert_eq!(cmd, AdminCommand::Kick {
    ///     id: "#3.1".parse().unwrap(),
    ///     mode: KickMode::Abort,
    ///     reason: "too loud".into(),
    /// });
    /// assert!(AdminCommand::parse("kick 3").is_err());
    /// ```
    pub fn parse(line: &str) -> Result<AdminCommand, AdminError> {
        let mut words = line.split_whitespace();
        let Some(command) = words.next() else {
            return Err(AdminError::Empty);
        };
        let no_more = |mut words: std::str::SplitWhitespace<'_>, name| match words.next() {
            Some(_) => Err(AdminError::UnexpectedArguments(name)),
            None => Ok(()),
        };
        match command {
            "list" => no_more(words, "list").map(|()| AdminCommand::List),
            "stats" => no_more(words, "stats").map(|()| AdminCommand::Stats),
            "nodes" => no_more(words, "nodes").map(|()| AdminCommand::Nodes),
            "kick" => {
                let word = words.next().ok_or(AdminError::MissingId)?;
                let target: Target = if word.contains('/') {
                    Target::Node(word.parse()?)
                } else {
                    Target::Local(word.parse()?)
                };
                let mut rest: Vec<&str> = words.collect();
                let mode = match rest.first() {
                    Some(&"graceful") => Some(KickMode::Graceful),
                    Some(&"abort") => Some(KickMode::Abort),
                    _ => None,
                };
                if mode.is_some() {
                    rest.remove(0);
                }
                let (mode, reason) = (mode.unwrap_or(KickMode::Graceful), rest.join(" "));
                Ok(match target {
                    Target::Local(id) => AdminCommand::Kick { id, mode, reason },
                    Target::Node(target) => AdminCommand::KickRemote {
                        target,
                        mode,
                        reason,
                    },
                })
            }
            "shutdown" => {
                let deadline = match words.next() {
                    None => None,
                    Some(text) => Some(
                        text.parse::<u64>()
                            .map(Duration::from_millis)
                            .or_else(|_| crate::cli::parse_duration(text))
                            .map_err(|_| {
                                AdminError::BadDeadline(text.chars().take(40).collect())
                            })?,
                    ),
                };
                no_more(words, "shutdown")?;
                Ok(AdminCommand::Shutdown { deadline })
            }
            "auth" => {
                // The token is the rest of the line, so it may hold spaces.
                let token = line.trim().strip_prefix("auth").unwrap_or("").trim();
                if token.is_empty() {
                    return Err(AdminError::MissingToken);
                }
                Ok(AdminCommand::Auth {
                    token: token.to_owned(),
                })
            }
            other => Err(AdminError::Unknown(other.chars().take(40).collect())),
        }
    }

    /// Parses a raw line as read from the socket (checks UTF-8 first).
    pub fn parse_bytes(line: &[u8]) -> Result<AdminCommand, AdminError> {
        let line = std::str::from_utf8(line).map_err(|_| AdminError::NotUtf8)?;
        AdminCommand::parse(line)
    }
}

/// What `kick` names: a channel of this server, or of a cluster node.
enum Target {
    Local(ChannelId),
    Node(NodeId),
}

/// What a kicked client reads before a graceful kick's EOF:
/// `* kicked: <reason>\n` (or `* kicked\n`).
pub fn kick_notice(reason: &str) -> Bytes {
    if reason.is_empty() {
        Bytes::from_static(b"* kicked\n")
    } else {
        Bytes::from(format!("* kicked: {reason}\n"))
    }
}

/// The answer to a command that worked.
pub const OK: &str = "ok\n";

/// The answer to a bad line or a failed command: `error <why>\n`, always
/// one line.
pub fn format_error(why: &dyn fmt::Display) -> String {
    let text = why.to_string().replace(['\n', '\r'], " ");
    format!("error {text}\n")
}

/// The answer to `list`: one line per channel, then `.`.
pub fn format_list<'a>(channels: impl IntoIterator<Item = &'a ChannelInfo>) -> String {
    format_cluster_list(None, channels, std::iter::empty())
}

/// The answer to `list` on a cluster node `node`: this node's channels
/// with node-qualified ids (`n1/#0:3.1 <peer> <state> …`), then every
/// other live node's (`n2/#1:4.1`), then `.`. With `node` = `None`, the
/// single server's list.
pub fn format_cluster_list<'a>(
    node: Option<&NodeName>,
    channels: impl IntoIterator<Item = &'a ChannelInfo>,
    remote: impl IntoIterator<Item = NodeId>,
) -> String {
    let mut out = String::new();
    for ch in channels {
        if let Some(node) = node {
            let _ = write!(out, "{node}/");
        }
        let _ = writeln!(
            out,
            "{} {} {} idle={}ms queued={}",
            ch.id,
            ch.peer,
            ch.state,
            ch.idle.as_millis(),
            ch.queued
        );
    }
    for id in remote {
        let _ = writeln!(out, "{id}");
    }
    out.push_str(".\n");
    out
}

/// The answer to `stats`: one `key=value` line per counter (in the
/// order given: [`ServerStats::counters`](tether_adapter::ServerStats::counters)
/// and then the chat server's own), then `.`.
pub fn format_stats<K: fmt::Display>(counters: impl IntoIterator<Item = (K, u64)>) -> String {
    let mut out = String::new();
    for (key, value) in counters {
        let _ = writeln!(out, "{key}={value}");
    }
    out.push_str(".\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses() {
        assert_eq!(AdminCommand::parse(" list "), Ok(AdminCommand::List));
        assert_eq!(AdminCommand::parse("stats"), Ok(AdminCommand::Stats));
        assert_eq!(
            AdminCommand::parse("shutdown"),
            Ok(AdminCommand::Shutdown { deadline: None })
        );
        assert_eq!(
            AdminCommand::parse("shutdown 250"),
            Ok(AdminCommand::Shutdown {
                deadline: Some(Duration::from_millis(250))
            })
        );
        assert_eq!(
            AdminCommand::parse("shutdown 1.5s"),
            Ok(AdminCommand::Shutdown {
                deadline: Some(Duration::from_millis(1500))
            })
        );
        assert_eq!(
            AdminCommand::parse("auth  open sesame "),
            Ok(AdminCommand::Auth {
                token: "open sesame".into()
            })
        );
        let id: ChannelId = "#4.2".parse().unwrap();
        assert_eq!(
            AdminCommand::parse("kick #4.2"),
            Ok(AdminCommand::Kick {
                id,
                mode: KickMode::Graceful,
                reason: String::new()
            })
        );
        assert_eq!(
            AdminCommand::parse("kick 4.2 graceful bye now"),
            Ok(AdminCommand::Kick {
                id,
                mode: KickMode::Graceful,
                reason: "bye now".into()
            })
        );
        assert_eq!(AdminCommand::parse("nodes"), Ok(AdminCommand::Nodes));
        assert_eq!(
            AdminCommand::parse("kick n2/#1:4.2 abort spam"),
            Ok(AdminCommand::KickRemote {
                target: "n2/#1:4.2".parse().unwrap(),
                mode: KickMode::Abort,
                reason: "spam".into()
            })
        );
        assert_eq!(
            AdminCommand::parse("kick #4.2 spamming"),
            Ok(AdminCommand::Kick {
                id,
                mode: KickMode::Graceful,
                reason: "spamming".into()
            })
        );
    }

    #[test]
    fn every_bad_line_is_an_error_of_one_line() {
        let bad = [
            "",
            "   ",
            "lst",
            "kick",
            "kick 4",
            "kick #x.1",
            "kick #99999999999.1",
            "kick n1/",
            "kick /#1.1",
            "kick bad!name/#1.1",
            "kick n1/#x",
            "nodes all",
            "list all",
            "stats now",
            "shutdown soon",
            "shutdown 5 6",
            "auth",
            "auth   ",
        ];
        for line in bad {
            let err = AdminCommand::parse(line).unwrap_err();
            let answer = format_error(&err);
            assert!(answer.starts_with("error "), "{line:?}: {answer}");
            assert_eq!(answer.matches('\n').count(), 1, "{line:?}: {answer}");
        }
        assert_eq!(AdminCommand::parse_bytes(b"\xff"), Err(AdminError::NotUtf8));
    }

    #[test]
    fn stats_and_list_end_with_a_dot() {
        let stats = tether_adapter::ServerStats::default();
        let text = format_stats(stats.counters());
        assert!(text.starts_with("live=0\n"), "{text}");
        assert!(text.contains("disconnected.kicked=0\n"));
        assert!(text.ends_with("\n.\n"));
        assert_eq!(format_stats([("a", 1), ("b.c", 2)]), "a=1\nb.c=2\n.\n");
        assert_eq!(format_list([]), ".\n");
        assert_eq!(kick_notice("spam"), Bytes::from_static(b"* kicked: spam\n"));
    }
}
