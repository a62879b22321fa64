//! Text forms for the snapshot: a [`ChannelId`] as its display form
//! (`#slot.gen`, `#shard:slot.gen`), a [`DisconnectReason`] as its name
//! with its payload (`kicked(7)`, `io-error(TimedOut)`), and
//! `io::ErrorKind` by its Debug name, both ways.

use std::fmt;
use std::io::ErrorKind;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{ChannelId, DisconnectReason};

/// Serialized as its display form, `#slot.gen` or `#shard:slot.gen`.
impl Serialize for ChannelId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parsed from its display form (see [`ChannelId`]'s `FromStr`).
impl<'de> Deserialize<'de> for ChannelId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor("a channel id such as #3.1", |s: &str| {
            s.parse::<ChannelId>().map_err(|e| e.to_string())
        }))
    }
}

/// Serialized as its name with its payload: `kicked(7)`,
/// `io-error(TimedOut)` (the `io::ErrorKind`'s Debug name), `idle-timeout`.
/// Fails for an I/O error kind this build cannot read back.
impl Serialize for DisconnectReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DisconnectReason::IoError(kind) => {
                let name = format!("{kind:?}");
                if error_kind(&name) != Some(*kind) {
                    return Err(serde::ser::Error::custom(format!(
                        "I/O error kind {name} has no name this build reads back"
                    )));
                }
                s.collect_str(&format_args!("io-error({name})"))
            }
            DisconnectReason::Kicked { code } => s.collect_str(&format_args!("kicked({code})")),
            other => s.serialize_str(other.name()),
        }
    }
}

/// Parsed from the form [`Serialize`] writes.
impl<'de> Deserialize<'de> for DisconnectReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor(
            "a disconnect reason such as kicked(7) or idle-timeout",
            |s: &str| parse_reason(s).ok_or_else(|| format!("unknown disconnect reason {s:?}")),
        ))
    }
}

fn parse_reason(s: &str) -> Option<DisconnectReason> {
    if let Some(code) = s.strip_prefix("kicked(").and_then(|r| r.strip_suffix(')')) {
        return code
            .parse()
            .ok()
            .map(|code| DisconnectReason::Kicked { code });
    }
    if let Some(kind) = s
        .strip_prefix("io-error(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return error_kind(kind).map(DisconnectReason::IoError);
    }
    Some(match s {
        "peer-closed" => DisconnectReason::PeerClosed,
        "peer-reset" => DisconnectReason::PeerReset,
        "idle-timeout" => DisconnectReason::IdleTimeout,
        "login-timeout" => DisconnectReason::LoginTimeout,
        "slow-consumer" => DisconnectReason::SlowConsumer,
        "server-shutdown" => DisconnectReason::ServerShutdown,
        _ => return None,
    })
}

/// Whether this reason can be written and read back (an I/O error kind
/// this build cannot name cannot).
pub(crate) fn reason_is_nameable(reason: DisconnectReason) -> bool {
    match reason {
        DisconnectReason::IoError(kind) => error_kind(&format!("{kind:?}")) == Some(kind),
        _ => true,
    }
}

/// The `io::ErrorKind` with this Debug name, among the kinds stable in
/// the crate's minimum Rust version.
pub(crate) fn error_kind(name: &str) -> Option<ErrorKind> {
    use ErrorKind::*;
    Some(match name {
        "NotFound" => NotFound,
        "PermissionDenied" => PermissionDenied,
        "ConnectionRefused" => ConnectionRefused,
        "ConnectionReset" => ConnectionReset,
        "HostUnreachable" => HostUnreachable,
        "NetworkUnreachable" => NetworkUnreachable,
        "ConnectionAborted" => ConnectionAborted,
        "NotConnected" => NotConnected,
        "AddrInUse" => AddrInUse,
        "AddrNotAvailable" => AddrNotAvailable,
        "NetworkDown" => NetworkDown,
        "BrokenPipe" => BrokenPipe,
        "AlreadyExists" => AlreadyExists,
        "WouldBlock" => WouldBlock,
        "NotADirectory" => NotADirectory,
        "IsADirectory" => IsADirectory,
        "DirectoryNotEmpty" => DirectoryNotEmpty,
        "ReadOnlyFilesystem" => ReadOnlyFilesystem,
        "StaleNetworkFileHandle" => StaleNetworkFileHandle,
        "InvalidInput" => InvalidInput,
        "InvalidData" => InvalidData,
        "TimedOut" => TimedOut,
        "WriteZero" => WriteZero,
        "StorageFull" => StorageFull,
        "NotSeekable" => NotSeekable,
        "QuotaExceeded" => QuotaExceeded,
        "FileTooLarge" => FileTooLarge,
        "ResourceBusy" => ResourceBusy,
        "ExecutableFileBusy" => ExecutableFileBusy,
        "Deadlock" => Deadlock,
        "CrossesDevices" => CrossesDevices,
        "TooManyLinks" => TooManyLinks,
        "ArgumentListTooLong" => ArgumentListTooLong,
        "Interrupted" => Interrupted,
        "Unsupported" => Unsupported,
        "UnexpectedEof" => UnexpectedEof,
        "OutOfMemory" => OutOfMemory,
        "Other" => Other,
        _ => return None,
    })
}

/// A visitor for types parsed from a string.
struct FromStrVisitor<F>(&'static str, F);

impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for FromStrVisitor<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        (self.1)(s).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_through_their_names() {
        let reasons = [
            DisconnectReason::PeerClosed,
            DisconnectReason::PeerReset,
            DisconnectReason::IoError(ErrorKind::TimedOut),
            DisconnectReason::IoError(ErrorKind::Other),
            DisconnectReason::Kicked { code: u32::MAX },
            DisconnectReason::IdleTimeout,
            DisconnectReason::LoginTimeout,
            DisconnectReason::SlowConsumer,
            DisconnectReason::ServerShutdown,
        ];
        for reason in reasons {
            let name = match reason {
                DisconnectReason::IoError(kind) => format!("io-error({kind:?})"),
                DisconnectReason::Kicked { code } => format!("kicked({code})"),
                other => other.name().to_string(),
            };
            assert_eq!(parse_reason(&name), Some(reason), "{name}");
            assert!(reason_is_nameable(reason));
        }
        for bad in ["", "kicked()", "kicked(-1)", "io-error(Nope)", "Kicked(1)"] {
            assert_eq!(parse_reason(bad), None, "{bad}");
        }
    }
}
