//! The simulated network: one socket per accepted connection, with the
//! adapter's side (unwritten transmits, holders, fd state) and the peer's
//! side (bytes received, FIN/RST seen).

use std::collections::VecDeque;

use bytes::Bytes;
use tether_core::ChannelId;

/// One accepted connection as the simulated adapter and its peer see it.
#[derive(Debug, Clone)]
pub(crate) struct Socket {
    pub id: ChannelId,
    /// Transmits not yet written, in order (the first maybe partly).
    pub unwritten: VecDeque<Bytes>,
    pub unwritten_len: usize,
    /// Tasks holding the socket in the simulated adapter: the reader (until
    /// woken by a shutdown or abort) plus writer tasks.
    pub holders: u32,
    pub reader_attached: bool,
    /// Bytes the app queued (every `Transmit`), and bytes the peer got.
    pub transmitted: u64,
    pub peer_received: u64,
    /// Our FIN went out (the peer will answer with its own).
    pub fin_sent: bool,
    pub rst_sent: bool,
    /// The peer's FIN reached us and was reported.
    pub peer_eof_reported: bool,
    /// `close(2)` done; waiting to confirm with `handle_closed`.
    pub fd_closed: bool,
    pub confirm_pending: bool,
}

impl Socket {
    pub fn new(id: ChannelId) -> Socket {
        Socket {
            id,
            unwritten: VecDeque::new(),
            unwritten_len: 0,
            holders: 0,
            reader_attached: false,
            transmitted: 0,
            peer_received: 0,
            fin_sent: false,
            rst_sent: false,
            peer_eof_reported: false,
            fd_closed: false,
            confirm_pending: false,
        }
    }

    /// Writes up to `n` bytes from the front of the queue; returns how many.
    pub fn write(&mut self, n: usize) -> usize {
        let mut left = n.min(self.unwritten_len);
        let written = left;
        while left > 0 {
            let Some(front) = self.unwritten.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                self.unwritten.pop_front();
            } else {
                let _ = front.split_to(left);
                left = 0;
            }
        }
        self.unwritten_len -= written;
        self.peer_received += written as u64;
        written
    }

    /// Drops every unwritten byte (an abort or a broken socket).
    pub fn discard(&mut self) {
        self.unwritten.clear();
        self.unwritten_len = 0;
    }
}

/// Sockets indexed by slot (ids of a hub are small slot numbers).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sockets {
    by_slot: Vec<Option<Socket>>,
    /// Live connections in accept order: what `cN` refers to.
    pub order: Vec<ChannelId>,
    /// Recently released ids, for stale calls (a ring of 64).
    pub dead: VecDeque<ChannelId>,
}

impl Sockets {
    pub fn insert(&mut self, socket: Socket) {
        let slot = socket.id.slot() as usize;
        if self.by_slot.len() <= slot {
            self.by_slot.resize(slot + 1, None);
        }
        self.order.push(socket.id);
        self.by_slot[slot] = Some(socket);
    }

    pub fn get(&mut self, id: ChannelId) -> Option<&mut Socket> {
        self.by_slot
            .get_mut(id.slot() as usize)?
            .as_mut()
            .filter(|s| s.id == id)
    }

    pub fn remove(&mut self, id: ChannelId) {
        if let Some(slot) = self.by_slot.get_mut(id.slot() as usize)
            && slot.as_ref().is_some_and(|s| s.id == id)
        {
            *slot = None;
            if let Some(pos) = self.order.iter().position(|&x| x == id) {
                self.order.remove(pos);
            }
            if self.dead.len() == 64 {
                self.dead.pop_front();
            }
            self.dead.push_back(id);
        }
    }

    /// The live connection `cN` names: index `n % live`.
    pub fn pick(&self, n: u16) -> Option<ChannelId> {
        if self.order.is_empty() {
            None
        } else {
            Some(self.order[usize::from(n) % self.order.len()])
        }
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Socket> {
        self.by_slot.iter_mut().flatten()
    }
}
