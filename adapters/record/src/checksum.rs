//! The running output checksum: FNV-1a 64 over a canonical byte encoding
//! of every action and event a hub emitted.
//!
//! The encoding is part of the recording format (docs/recording.md): a
//! change to it is a new format version. Each output is encoded as a tag
//! byte followed by its fields, integers little-endian:
//!
//! | output | bytes |
//! |---|---|
//! | `Action::Transmit` | `0x01`, id (u64), payload length (u64) |
//! | `Action::Shutdown` | `0x02`, id, how (`0` write, `1` both, `0xff` other) |
//! | `Action::Abort` | `0x03`, id |
//! | `Action::CloseSocket` | `0x04`, id |
//! | `Action::PauseAccept` | `0x05` |
//! | `Action::ResumeAccept` | `0x06` |
//! | an action added later | `0x0f` |
//! | `Event::Opened` | `0x11`, id, peer: `4` + 4 octets or `6` + 16 octets, port (u16) |
//! | `Event::Received` | `0x12`, id, payload length (u64) |
//! | `Event::Writable` | `0x13`, id |
//! | `Event::ReadClosed` | `0x14`, id |
//! | `Event::Disconnected` | `0x15`, id, reason (below) |
//! | `Event::HolderOverdue` | `0x16`, id, holders (u32), waited: seconds (u64), nanoseconds (u32) |
//! | `Event::Released` | `0x17`, id |
//! | `Event::ShutdownComplete` | `0x18` |
//! | an event added later | `0x1f` |
//!
//! Ids are [`ChannelId::to_raw`] as a u64. Payloads enter by their length
//! only, so a recording without bytes checks the same way as one with
//! them. A disconnect reason is one byte — `1` peer closed, `2` peer
//! reset, `3` I/O error followed by the kind's tag
//! ([`crate::errorkind::kind_tag`]), `4` kicked followed by the code
//! (u32), `5` idle timeout, `6` login timeout, `7` slow consumer, `8`
//! server shutdown, `0xff` a reason added later.
//!
//! The checksum of no outputs is 0; the first output starts from FNV-1a's
//! offset basis, and every later one continues from the running value, so
//! a line's checksum is FNV-1a over every output of the run so far (or of
//! the segment's header value onwards).
//!
//! ```
//! use tether_core::{Action, ChannelId};
//! use tether_record::Checksum;
//!
//! let mut sum = Checksum::default();
//! let id = ChannelId::from_parts(0, 1, 1).unwrap();
//! sum.update_action(&Action::CloseSocket { id });
//! assert_eq!(sum.outputs, 1);
//! assert_ne!(sum.hash, 0);
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tether_core::{Action, ChannelId, DisconnectReason, Event, ShutdownHow};

use crate::errorkind::kind_tag;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The running output checksum of a recording: the FNV-1a 64 hash of the
/// canonical encoding of every output so far, and how many outputs that
/// is. `Checksum::default()` is the checksum of no outputs (`0`, `0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Checksum {
    /// FNV-1a 64 over every output's encoding (0 while `outputs` is 0).
    pub hash: u64,
    /// How many outputs (actions and events) went in.
    pub outputs: u64,
}

/// One output being fed into the hash.
struct Fnv(u64);

impl Fnv {
    #[inline]
    fn byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(PRIME);
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.byte(*b);
        }
    }

    #[inline]
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    #[inline]
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    #[inline]
    fn id(&mut self, id: ChannelId) {
        self.u64(id.to_raw());
    }

    #[inline]
    fn len(&mut self, len: usize) {
        self.u64(len as u64);
    }

    fn peer(&mut self, peer: &SocketAddr) {
        match peer {
            SocketAddr::V4(a) => {
                self.byte(4);
                self.bytes(&a.ip().octets());
            }
            SocketAddr::V6(a) => {
                self.byte(6);
                self.bytes(&a.ip().octets());
            }
        }
        self.bytes(&peer.port().to_le_bytes());
    }

    fn duration(&mut self, d: Duration) {
        self.u64(d.as_secs());
        self.u32(d.subsec_nanos());
    }

    fn reason(&mut self, reason: &DisconnectReason) {
        match reason {
            DisconnectReason::PeerClosed => self.byte(1),
            DisconnectReason::PeerReset => self.byte(2),
            DisconnectReason::IoError(kind) => {
                self.byte(3);
                self.byte(kind_tag(*kind));
            }
            DisconnectReason::Kicked { code } => {
                self.byte(4);
                self.u32(*code);
            }
            DisconnectReason::IdleTimeout => self.byte(5),
            DisconnectReason::LoginTimeout => self.byte(6),
            DisconnectReason::SlowConsumer => self.byte(7),
            DisconnectReason::ServerShutdown => self.byte(8),
            _ => self.byte(0xff),
        }
    }
}

impl Checksum {
    /// The checksum of no outputs.
    pub const ZERO: Checksum = Checksum {
        hash: 0,
        outputs: 0,
    };

    #[inline]
    fn start(&self) -> Fnv {
        Fnv(if self.outputs == 0 { OFFSET } else { self.hash })
    }

    #[inline]
    fn end(&mut self, fnv: Fnv) {
        self.hash = fnv.0;
        self.outputs = self.outputs.wrapping_add(1);
    }

    /// Adds one action (see the module docs for its encoding).
    pub fn update_action(&mut self, action: &Action) {
        let mut h = self.start();
        match action {
            Action::Transmit { id, data } => {
                h.byte(0x01);
                h.id(*id);
                h.len(data.len());
            }
            Action::Shutdown { id, how } => {
                h.byte(0x02);
                h.id(*id);
                h.byte(match how {
                    ShutdownHow::Write => 0,
                    ShutdownHow::Both => 1,
                });
            }
            Action::Abort { id } => {
                h.byte(0x03);
                h.id(*id);
            }
            Action::CloseSocket { id } => {
                h.byte(0x04);
                h.id(*id);
            }
            Action::PauseAccept => h.byte(0x05),
            Action::ResumeAccept => h.byte(0x06),
        }
        self.end(h);
    }

    /// Adds one event (see the module docs for its encoding).
    pub fn update_event(&mut self, event: &Event) {
        let mut h = self.start();
        match event {
            Event::Opened { id, peer } => {
                h.byte(0x11);
                h.id(*id);
                h.peer(peer);
            }
            Event::Received { id, data } => {
                h.byte(0x12);
                h.id(*id);
                h.len(data.len());
            }
            Event::Writable { id } => {
                h.byte(0x13);
                h.id(*id);
            }
            Event::ReadClosed { id } => {
                h.byte(0x14);
                h.id(*id);
            }
            Event::Disconnected { id, reason } => {
                h.byte(0x15);
                h.id(*id);
                h.reason(reason);
            }
            Event::HolderOverdue {
                id,
                holders,
                waited,
            } => {
                h.byte(0x16);
                h.id(*id);
                h.u32(*holders);
                h.duration(*waited);
            }
            Event::Released { id } => {
                h.byte(0x17);
                h.id(*id);
            }
            Event::ShutdownComplete => h.byte(0x18),
            _ => h.byte(0x1f),
        }
        self.end(h);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn id(slot: u32) -> ChannelId {
        ChannelId::from_parts(0, slot, 1).unwrap()
    }

    #[test]
    fn no_outputs_is_zero_and_every_output_counts() {
        let mut sum = Checksum::default();
        assert_eq!(sum, Checksum::ZERO);
        sum.update_action(&Action::PauseAccept);
        sum.update_event(&Event::ShutdownComplete);
        assert_eq!(sum.outputs, 2);
        assert_ne!(sum.hash, 0);
    }

    #[test]
    fn payloads_enter_by_length_only() {
        let (mut a, mut b) = (Checksum::ZERO, Checksum::ZERO);
        a.update_event(&Event::Received {
            id: id(1),
            data: Bytes::from_static(b"hello"),
        });
        b.update_event(&Event::Received {
            id: id(1),
            data: Bytes::from_static(&[0; 5]),
        });
        assert_eq!(a, b);
        let mut c = Checksum::ZERO;
        c.update_event(&Event::Received {
            id: id(1),
            data: Bytes::from_static(&[0; 6]),
        });
        assert_ne!(a, c);
    }

    #[test]
    fn order_ids_reasons_and_kinds_matter() {
        let one = |f: &dyn Fn(&mut Checksum)| {
            let mut s = Checksum::ZERO;
            f(&mut s);
            s.hash
        };
        let outputs = [
            one(&|s| s.update_action(&Action::Abort { id: id(1) })),
            one(&|s| s.update_action(&Action::Abort { id: id(2) })),
            one(&|s| s.update_action(&Action::CloseSocket { id: id(1) })),
            one(&|s| {
                s.update_event(&Event::Disconnected {
                    id: id(1),
                    reason: DisconnectReason::IoError(std::io::ErrorKind::TimedOut),
                })
            }),
            one(&|s| {
                s.update_event(&Event::Disconnected {
                    id: id(1),
                    reason: DisconnectReason::IoError(std::io::ErrorKind::Other),
                })
            }),
            one(&|s| {
                s.update_event(&Event::Disconnected {
                    id: id(1),
                    reason: DisconnectReason::Kicked { code: 7 },
                })
            }),
            one(&|s| {
                s.update_event(&Event::Disconnected {
                    id: id(1),
                    reason: DisconnectReason::Kicked { code: 8 },
                })
            }),
            one(&|s| {
                s.update_action(&Action::PauseAccept);
                s.update_action(&Action::ResumeAccept);
            }),
            one(&|s| {
                s.update_action(&Action::ResumeAccept);
                s.update_action(&Action::PauseAccept);
            }),
        ];
        for (i, a) in outputs.iter().enumerate() {
            for b in &outputs[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn the_encoding_is_stable() {
        // FNV-1a 64 of the single byte 0x05 (PauseAccept): a change here
        // is a change of the format version.
        let mut sum = Checksum::ZERO;
        sum.update_action(&Action::PauseAccept);
        assert_eq!(sum.hash, (OFFSET ^ 0x05).wrapping_mul(PRIME));
    }
}
