//! The slots of a small std-thread server (the admin console, `--metrics`):
//! at most `max` connections at once, oldest first, each *established* once
//! it has proven itself (a console session that authenticated or ran a
//! command, a scrape whose request head arrived). At the cap a newcomer
//! evicts the oldest connection that is not established, as sshd's
//! `MaxStartups` drops unauthenticated connections: silent sockets can
//! never lock the operator out. Established connections are never evicted;
//! when every slot holds one, the newcomer is refused.

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::sync::{Mutex, MutexGuard};

use rustix::net::{SendFlags, send};

/// A slot's number: admission order, so the smallest is the oldest.
pub(super) type SlotId = u64;

/// How [`Slots::admit`] took a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Admitted into a free slot.
    Admitted(SlotId),
    /// Admitted in place of the oldest connection that was not established,
    /// which was sent its eviction line (if its socket took it) and shut
    /// down.
    Evicted(SlotId),
    /// Every slot holds an established connection: refuse the newcomer.
    Full,
    /// The socket could not be cloned (out of descriptors): refuse it.
    Unavailable,
}

/// One held connection.
#[derive(Debug)]
struct Slot {
    /// A clone of its socket: shut down to evict it or to stop the server.
    stream: TcpStream,
    established: bool,
}

#[derive(Debug, Default)]
struct Inner {
    next: SlotId,
    open: BTreeMap<SlotId, Slot>,
}

/// At most `max` connections, oldest first. See the module docs.
#[derive(Debug)]
pub(super) struct Slots {
    max: usize,
    inner: Mutex<Inner>,
}

impl Slots {
    /// Room for `max` connections (at least one).
    pub(super) fn new(max: usize) -> Slots {
        Slots {
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The most connections held at once.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections held now.
    pub(super) fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// Takes `stream` into a slot. At the cap, the oldest connection that
    /// is not established is evicted first: `evicted_line` is written to it
    /// without waiting (dropped if its send buffer is full), then its socket
    /// is shut down both ways, which ends its thread's read at once.
    pub(super) fn admit(&self, stream: &TcpStream, evicted_line: &[u8]) -> Admission {
        let Ok(clone) = stream.try_clone() else {
            return Admission::Unavailable;
        };
        let mut inner = self.lock();
        let mut evicted = false;
        if inner.open.len() >= self.max {
            let Some(oldest) = inner
                .open
                .iter()
                .find(|(_, slot)| !slot.established)
                .map(|(id, _)| *id)
            else {
                return Admission::Full;
            };
            if let Some(slot) = inner.open.remove(&oldest) {
                let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
                let _ = send(&slot.stream, evicted_line, flags);
                let _ = slot.stream.shutdown(Shutdown::Both);
            }
            evicted = true;
        }
        inner.next += 1;
        let id = inner.next;
        inner.open.insert(
            id,
            Slot {
                stream: clone,
                established: false,
            },
        );
        if evicted {
            Admission::Evicted(id)
        } else {
            Admission::Admitted(id)
        }
    }

    /// Marks `id` established: a newcomer never evicts it from now on.
    /// `false` if it was evicted already (its socket is shut down: the
    /// caller stops serving it).
    pub(super) fn establish(&self, id: SlotId) -> bool {
        match self.lock().open.get_mut(&id) {
            Some(slot) => {
                slot.established = true;
                true
            }
            None => false,
        }
    }

    /// Frees `id`'s slot (its connection ended); returns how many remain.
    pub(super) fn close(&self, id: SlotId) -> usize {
        let mut inner = self.lock();
        inner.open.remove(&id);
        inner.open.len()
    }

    /// Shuts down the read side of every held socket, so each thread
    /// blocked in `read` wakes and ends (a thread still writing its answer
    /// gets it out first).
    pub(super) fn shutdown_reads(&self) {
        for slot in self.lock().open.values() {
            let _ = slot.stream.shutdown(Shutdown::Read);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Duration;

    use super::*;

    /// A connected pair: (client, server side).
    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn the_oldest_unestablished_is_evicted_and_established_ones_never() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let slots = Slots::new(3);
        let mut held = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (client, server) = pair(&listener);
            match slots.admit(&server, b"evicted\n") {
                Admission::Admitted(id) => ids.push(id),
                other => panic!("{other:?}"),
            }
            held.push((client, server));
        }
        // The second is established; the first is the oldest silent one.
        assert!(slots.establish(ids[1]));
        let (client, server) = pair(&listener);
        let Admission::Evicted(fourth) = slots.admit(&server, b"evicted\n") else {
            panic!("the cap is full of silent sockets: evict one")
        };
        held.push((client, server));
        assert_eq!(slots.len(), 3);
        assert!(!slots.establish(ids[0]), "the first was evicted");
        let mut first = &held[0].0;
        first
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let _ = first.read_to_end(&mut got);
        assert_eq!(
            got, b"evicted\n",
            "the evicted client reads its line, then EOF"
        );
        // Next: the third, then the fourth; the second never.
        assert!(matches!(
            slots.admit(&pair(&listener).1, b""),
            Admission::Evicted(_)
        ));
        assert!(!slots.establish(ids[2]));
        assert!(slots.establish(fourth));
        let (_client, last) = pair(&listener);
        let Admission::Evicted(last_id) = slots.admit(&last, b"") else {
            panic!("one unestablished slot is left")
        };
        assert!(slots.establish(last_id));
        assert_eq!(slots.admit(&pair(&listener).1, b""), Admission::Full);
        assert!(slots.establish(ids[1]), "established slots stay");
        assert_eq!(slots.close(ids[1]), 2);
        assert!(matches!(slots.admit(&last, b""), Admission::Admitted(_)));
    }
}
