//! The `io::ErrorKind` names a recording may hold: every stable variant,
//! by its `Debug` name (`ConnectionReset`, `TimedOut`, …).
//!
//! A kind outside this table (an unstable variant the standard library
//! produced, or one added after this table) is still written, by its
//! `Debug` name, but does not parse back: the parser reports it as an
//! unknown kind, naming it. Its checksum tag is [`UNKNOWN_KIND`].

use std::io::ErrorKind;

/// The checksum tag of a kind outside [`ERROR_KINDS`].
pub const UNKNOWN_KIND: u8 = 0xff;

/// Every stable `io::ErrorKind`, with its `Debug` name. A kind's position
/// in this table is its tag in the output checksum, so entries are only
/// ever appended (reordering them changes the format version).
pub const ERROR_KINDS: &[(ErrorKind, &str)] = &[
    (ErrorKind::NotFound, "NotFound"),
    (ErrorKind::PermissionDenied, "PermissionDenied"),
    (ErrorKind::ConnectionRefused, "ConnectionRefused"),
    (ErrorKind::ConnectionReset, "ConnectionReset"),
    (ErrorKind::HostUnreachable, "HostUnreachable"),
    (ErrorKind::NetworkUnreachable, "NetworkUnreachable"),
    (ErrorKind::ConnectionAborted, "ConnectionAborted"),
    (ErrorKind::NotConnected, "NotConnected"),
    (ErrorKind::AddrInUse, "AddrInUse"),
    (ErrorKind::AddrNotAvailable, "AddrNotAvailable"),
    (ErrorKind::NetworkDown, "NetworkDown"),
    (ErrorKind::BrokenPipe, "BrokenPipe"),
    (ErrorKind::AlreadyExists, "AlreadyExists"),
    (ErrorKind::WouldBlock, "WouldBlock"),
    (ErrorKind::NotADirectory, "NotADirectory"),
    (ErrorKind::IsADirectory, "IsADirectory"),
    (ErrorKind::DirectoryNotEmpty, "DirectoryNotEmpty"),
    (ErrorKind::ReadOnlyFilesystem, "ReadOnlyFilesystem"),
    (ErrorKind::StaleNetworkFileHandle, "StaleNetworkFileHandle"),
    (ErrorKind::InvalidInput, "InvalidInput"),
    (ErrorKind::InvalidData, "InvalidData"),
    (ErrorKind::TimedOut, "TimedOut"),
    (ErrorKind::WriteZero, "WriteZero"),
    (ErrorKind::StorageFull, "StorageFull"),
    (ErrorKind::NotSeekable, "NotSeekable"),
    (ErrorKind::QuotaExceeded, "QuotaExceeded"),
    (ErrorKind::FileTooLarge, "FileTooLarge"),
    (ErrorKind::ResourceBusy, "ResourceBusy"),
    (ErrorKind::ExecutableFileBusy, "ExecutableFileBusy"),
    (ErrorKind::Deadlock, "Deadlock"),
    (ErrorKind::CrossesDevices, "CrossesDevices"),
    (ErrorKind::TooManyLinks, "TooManyLinks"),
    (ErrorKind::ArgumentListTooLong, "ArgumentListTooLong"),
    (ErrorKind::Interrupted, "Interrupted"),
    (ErrorKind::Unsupported, "Unsupported"),
    (ErrorKind::UnexpectedEof, "UnexpectedEof"),
    (ErrorKind::OutOfMemory, "OutOfMemory"),
    (ErrorKind::Other, "Other"),
];

/// The kind's name, if it is in [`ERROR_KINDS`].
pub fn kind_name(kind: ErrorKind) -> Option<&'static str> {
    ERROR_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, name)| *name)
}

/// The kind of this name, if it is in [`ERROR_KINDS`].
pub fn kind_from_name(name: &str) -> Option<ErrorKind> {
    ERROR_KINDS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(kind, _)| *kind)
}

/// The kind's checksum tag: its position in [`ERROR_KINDS`], or
/// [`UNKNOWN_KIND`].
pub fn kind_tag(kind: ErrorKind) -> u8 {
    ERROR_KINDS
        .iter()
        .position(|(k, _)| *k == kind)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(UNKNOWN_KIND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_debug_names_and_unique() {
        for (i, (kind, name)) in ERROR_KINDS.iter().enumerate() {
            assert_eq!(format!("{kind:?}"), *name);
            assert_eq!(kind_from_name(name), Some(*kind));
            assert_eq!(kind_name(*kind), Some(*name));
            assert_eq!(usize::from(kind_tag(*kind)), i);
        }
        assert_eq!(kind_from_name("NoSuchKind"), None);
    }
}
