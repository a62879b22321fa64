//! One listener for every shard: accepted connections are handed out
//! round-robin to the shards whose hub accepts (invariant 12 holds per
//! shard: each pauses at its own limit). While every shard is paused, the
//! listener refuses connections itself with the refusal line, so a full
//! server says so instead of leaving clients in the backlog.
//!
//! Why one acceptor and not one `SO_REUSEPORT` listener per shard: the
//! kernel hashes connections to reuseport listeners by address and port,
//! so it cannot skip a shard that is full, and a shard's paused listener
//! would strand the connections hashed to it. One acceptor places each
//! connection on a shard that can take it; `accept(2)` is cheap next to
//! the rest of a connection's life.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Options;
use crate::input::Inputs;
use crate::stats::AdapterCounters;

/// Which shards accept new connections now; written by each shard's driver
/// (`PauseAccept`/`ResumeAccept`), read by the listener.
#[derive(Debug)]
pub(crate) struct Gates(Box<[AtomicBool]>);

impl Gates {
    pub fn new(shards: usize) -> Arc<Gates> {
        Arc::new(Gates((0..shards).map(|_| AtomicBool::new(true)).collect()))
    }

    pub fn set(&self, shard: usize, accepting: bool) {
        if let Some(gate) = self.0.get(shard) {
            gate.store(accepting, Ordering::Release);
        }
    }

    fn open(&self, shard: usize) -> bool {
        self.0[shard].load(Ordering::Acquire)
    }
}

/// Hands accepted connections to shards, round-robin over those accepting.
#[derive(Debug)]
pub struct AcceptRouter<S, A> {
    shards: Vec<Inputs<S, A>>,
    gates: Arc<Gates>,
    next: usize,
}

impl<S, A> AcceptRouter<S, A> {
    pub(crate) fn new(shards: Vec<Inputs<S, A>>, gates: Arc<Gates>) -> Self {
        AcceptRouter {
            shards,
            gates,
            next: 0,
        }
    }

    /// The next shard that accepts, or `None` if every shard is paused (at
    /// its channel limit, or shutting down): refuse the connection.
    pub fn pick(&mut self) -> Option<&Inputs<S, A>> {
        let n = self.shards.len();
        for i in 0..n {
            let shard = (self.next + i) % n;
            if self.gates.open(shard) {
                self.next = (shard + 1) % n;
                return Some(&self.shards[shard]);
            }
        }
        None
    }

    /// How many shards there are.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }
}

/// What the runtime's listener task or thread is built from.
#[derive(Debug)]
pub struct ListenContext<S, A> {
    /// Where to hand accepted connections.
    pub router: AcceptRouter<S, A>,
    /// The adapter's counters (`accepted`, `refused_full`, `accept_errors`).
    pub counters: Arc<AdapterCounters>,
    /// Hold until the listening socket is closed: [`crate::Handle::stopped`]
    /// resolves only once every clone is dropped.
    pub stopped: async_channel::Sender<()>,
    /// Closes (every sender dropped) once every shard's driver has ended:
    /// then stop accepting and close the listener.
    pub stop: async_channel::Receiver<()>,
    /// The adapter settings (`refuse_line`, `read_buffer`).
    pub options: Options,
}
