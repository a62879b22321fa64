//! How accepted connections reach the shards ([`Accept`], chosen with
//! [`Options::accept`](crate::Options::accept)), and the per-shard gates
//! (invariant 12 holds per shard: each pauses at its own limit).
//!
//! * [`Accept::RoundRobin`]: **one** listener; each accepted connection
//!   goes to the next shard whose hub accepts. While every shard is paused
//!   the listener refuses connections itself with the refusal line, so a
//!   full server says so instead of leaving clients in the backlog. A
//!   connection is refused only when the whole server is full.
//! * [`Accept::ReusePort`]: **one listener per shard**, all bound to the
//!   same address with `SO_REUSEPORT`, each with its own accept task or
//!   thread feeding only its own driver: no hand-off between shards. The
//!   kernel picks the listener by a hash of the connection's addresses and
//!   ports, so it **cannot skip a full shard**: a connection hashed to a
//!   shard at its limit is refused with the refusal line even while another
//!   shard has room (each shard holds its share of `max_channels`, so the
//!   server may refuse before it holds `max_channels` in all). A shard's
//!   listener keeps accepting while its shard is paused, precisely so that
//!   those connections are answered instead of stranded in its backlog.
//!   Spreading is statistical, not exact: with few, long-lived connections
//!   one shard may hold more than the other. And any process of the same
//!   user may bind the port with `SO_REUSEPORT` too and silently take a
//!   share of the connections (a second server on the port starts instead
//!   of failing with "address in use").
//!
//! Both keep the same rules per listener: accept errors back off
//! ([`crate::listen::AcceptErrors`]), each shard's fd budget is its share,
//! and every listener closes once every shard's driver has ended.

use std::io;
use std::net::TcpListener;
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

/// How connections reach the shards ([`Options::accept`]).
///
/// [`Accept::RoundRobin`] refuses a client only when every shard is full.
/// [`Accept::ReusePort`] lets the kernel hash each connection to a shard's
/// own listener, so a shard at its limit refuses what is hashed to it even
/// while another has room; the spread is statistical; and any process of
/// the same user may bind the port with `SO_REUSEPORT` too and silently take
/// a share of the connections. Both keep their rules per listener: accept
/// errors back off, each shard's fd budget is its share, and every listener
/// closes once every shard's driver has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Accept {
    /// One listener hands each connection to the next shard that accepts;
    /// refuses only when every shard is full.
    #[default]
    RoundRobin,
    /// One `SO_REUSEPORT` listener per shard, feeding only its own shard;
    /// the kernel hashes each connection to a listener, and a full shard
    /// refuses what is hashed to it. The server's listener must be bound
    /// with [`crate::listen::bind_reuse_port`].
    ReusePort,
}

/// Hands accepted connections to shards, round-robin over those accepting
/// (with [`Accept::ReusePort`], a router has one shard: its own).
#[derive(Debug)]
pub struct AcceptRouter<S, A> {
    /// Each shard's number (its gate) and its inputs.
    shards: Vec<(usize, Inputs<S, A>)>,
    gates: Arc<Gates>,
    next: usize,
}

impl<S, A> AcceptRouter<S, A> {
    pub(crate) fn new(shards: Vec<(usize, Inputs<S, A>)>, gates: Arc<Gates>) -> Self {
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
            let at = (self.next + i) % n;
            if self.gates.open(self.shards[at].0) {
                self.next = (at + 1) % n;
                return Some(&self.shards[at].1);
            }
        }
        None
    }

    /// How many shards this router hands connections to.
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
    /// What its connections speak: put it in every
    /// [`Input::Accepted`](crate::runtime::Input::Accepted).
    pub transport: crate::Transport,
}

impl<S, A> ListenContext<S, A> {
    /// What to write to a connection refused here before closing it: the
    /// refusal line, or for WebSocket an HTTP `503`.
    pub fn refusal(&self) -> Option<bytes::Bytes> {
        match self.transport {
            crate::Transport::WebSocket => Some(crate::Web::refusal()),
            _ => self.options.refuse_line.clone(),
        }
    }
}

/// Every listener a server runs, each with its context: one for
/// [`Accept::RoundRobin`], one per shard for [`Accept::ReusePort`]. A
/// runtime pairs them with sockets ([`Listeners::bind`]) and runs one
/// listener task or thread per pair.
#[derive(Debug)]
pub struct Listeners<S, A> {
    contexts: Vec<ListenContext<S, A>>,
    /// The WebSocket listener's context ([`crate::Options::web`]).
    web: Option<ListenContext<S, A>>,
    accept: Accept,
    backlog: u32,
}

impl<S, A> Listeners<S, A> {
    /// One context per listener of `accept`, over every shard's inputs.
    pub(crate) fn new(
        shards: Vec<Inputs<S, A>>,
        gates: Arc<Gates>,
        counters: Arc<crate::runtime::AdapterCounters>,
        stopped: async_channel::Sender<()>,
        stop: async_channel::Receiver<()>,
        options: Options,
    ) -> Self {
        let accept = options.accept;
        let backlog = options.backlog;
        let context = |router, transport| ListenContext {
            router,
            counters: counters.clone(),
            stopped: stopped.clone(),
            stop: stop.clone(),
            options: options.clone(),
            transport,
        };
        // The WebSocket listener hands its connections round-robin to
        // every shard, whatever the TCP accept mode.
        let web = options.web.is_some().then(|| {
            let shards = shards.iter().cloned().enumerate().collect();
            context(
                AcceptRouter::new(shards, gates.clone()),
                crate::Transport::WebSocket,
            )
        });
        let lines = crate::Transport::Lines;
        let contexts = match accept {
            Accept::RoundRobin => vec![context(
                AcceptRouter::new(shards.into_iter().enumerate().collect(), gates),
                lines,
            )],
            Accept::ReusePort => shards
                .into_iter()
                .enumerate()
                .map(|shard| context(AcceptRouter::new(vec![shard], gates.clone()), lines))
                .collect(),
        };
        let web_context = web;
        Listeners {
            contexts,
            web: web_context,
            accept,
            backlog,
        }
    }

    /// The accept mode.
    pub fn accept(&self) -> Accept {
        self.accept
    }

    /// How many TCP-line listeners: 1, or one per shard with
    /// [`Accept::ReusePort`] (the WebSocket listener is not counted).
    pub fn len(&self) -> usize {
        self.contexts.len()
    }

    /// Whether [`Listeners::bind`] adds a WebSocket listener (last).
    pub fn has_web(&self) -> bool {
        self.web.is_some()
    }

    /// Always false: a server has at least one listener.
    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }

    /// Pairs every context with its listening socket: the server's
    /// `listener` for the first; with [`Accept::ReusePort`], one more
    /// `SO_REUSEPORT` listener per other shard, bound on the address
    /// `listener` got (port 0 included: the others take its port). Fails,
    /// binding nothing more, if `listener` lacks `SO_REUSEPORT` then.
    /// With [`crate::Options::web`], its listener comes last, with a
    /// round-robin context over every shard
    /// ([`ListenContext::transport`] says which is which).
    pub fn bind(
        self,
        listener: TcpListener,
    ) -> io::Result<Vec<(TcpListener, ListenContext<S, A>)>> {
        let web = match self.web {
            Some(context) => {
                let web = context
                    .options
                    .web
                    .as_ref()
                    .and_then(crate::Web::take_listener);
                let web = web.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the WebSocket listener (Options::web) was already used by another server",
                    )
                })?;
                Some((web, context))
            }
            None => None,
        };
        let siblings =
            crate::listen::reuse_port_siblings(&listener, self.contexts.len() - 1, self.backlog)?;
        Ok(std::iter::once(listener)
            .chain(siblings)
            .zip(self.contexts)
            .chain(web)
            .collect())
    }
}
