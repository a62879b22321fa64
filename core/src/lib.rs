//! # tether-core
//!
//! A *sans-IO* connection-lifecycle engine. The [`Hub`] answers, for every
//! connection a server holds: who is online, what is this channel's id, may
//! I still send to it, has the peer been told it was dropped, and when is it
//! finally safe to close the socket and reuse the id? It owns no sockets,
//! threads or clocks: adapters feed it inputs with the current time and
//! execute the [`Action`]s it emits; the application reads [`Event`]s.
//!
//! What it guarantees (the numbered invariants of the project's
//! `docs/design.md` §4, cited in the code where enforced): exactly one
//! [`Event::Disconnected`] per channel,
//! however it ended; a kick acts on the wire at once (FIN after the queue is
//! flushed, or RST); ids are generational, so a stale id is rejected and
//! never reaches the next client on the same slot; a socket is closed only
//! when its last holder let go, and its slot reused only after that close
//! was confirmed.
//!
//! ## The run loop
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use tether_core::{Action, Config, DisconnectReason, Event, Hub, KickMode, ShutdownHow};
//!
//! let mut hub = Hub::new(Config::default()).unwrap();
//! let start = Instant::now();
//!
//! // A connection arrives; the adapter's reader task attaches to it.
//! let id = hub.accept(start, "127.0.0.1:50000".parse().unwrap()).unwrap();
//! hub.attach(start, id).unwrap();
//! hub.handle_received(start, id, Bytes::from_static(b"hello\n")).unwrap();
//! hub.send(start, id, Bytes::from_static(b"welcome\n")).unwrap();
//!
//! // The app kicks it: `Disconnected` now, FIN as soon as "welcome" is out.
//! hub.kick(start, id, KickMode::Graceful, 7).unwrap();
//!
//! // The adapter's loop: execute actions, deliver events, serve deadlines.
//! let mut now = start;
//! let mut released = false;
//! while !released {
//!     while let Some(action) = hub.poll_action() {
//!         match action {
//!             Action::Transmit { id, data } => {
//!                 // write `data` to the socket, then report it written
//!                 hub.handle_written(now, id, data.len()).unwrap();
//!             }
//!             Action::Shutdown { id, how: ShutdownHow::Write } => {
//!                 // shutdown(SHUT_WR): the peer reads "welcome", then EOF,
//!                 // and closes its side; our reader reads 0
//!                 hub.handle_peer_eof(now, id).unwrap();
//!             }
//!             Action::Shutdown { id, how: ShutdownHow::Both } => {
//!                 // the signal for holders to let go: the reader detaches
//!                 hub.detach(now, id).unwrap();
//!             }
//!             Action::CloseSocket { id } => {
//!                 // no holder left: close(2), then confirm
//!                 hub.handle_closed(now, id).unwrap();
//!             }
//!             Action::Abort { .. } => {} // set SO_LINGER 0, wake holders
//!             Action::PauseAccept | Action::ResumeAccept => {} // listener
//!         }
//!     }
//!     while let Some(event) = hub.poll_event() {
//!         match event {
//!             Event::Disconnected { reason, .. } => {
//!                 assert_eq!(reason, DisconnectReason::Kicked { code: 7 })
//!             }
//!             Event::Released { .. } => released = true,
//!             _ => {}
//!         }
//!     }
//!     if let Some(deadline) = hub.poll_timeout() {
//!         now = now.max(deadline); // a real adapter sleeps until then
//!         hub.handle_timeout(now);
//!     }
//! }
//! assert!(hub.state(id).is_err()); // the id is dead for good
//! ```
//!
//! Outputs wait in the hub until polled: **drain [`Hub::poll_action`] and
//! [`Hub::poll_event`] after every input**, or their queues grow without
//! bound. Calling [`Hub::handle_timeout`] early is harmless: it acts on what
//! is due and nothing else.
//!
//! Every transition of both machines — a channel's, and the hub's
//! (accepting, paused at the limit, draining, stopped) — is one row of the
//! [`transitions`] table, which a test checks against the code.
//!
//! ## Time
//!
//! The hub has no clock of its own; inputs bring the time.
//!
//! * **Every input takes `now`**: every method that can change state —
//!   `accept`, the `handle_*` methods, `attach`, `detach`, `send`,
//!   `broadcast`, the kicks, `authenticate`, `shutdown`. Each first moves
//!   the hub's clock by the rule below, then acts at that time, even when
//!   its transition records no time (`attach`, `detach`, `handle_closed`):
//!   so ages and deadlines computed afterwards are current, and every input
//!   is checked against the same clock. A rejected call moves the clock
//!   too. Queries (`channel`, `offline`, `stats`, …) take none: they report
//!   ages at the hub's clock, [`Hub::now`].
//! * **Time never runs backwards**: a `now` earlier than the hub's clock is
//!   clamped to it, counted in [`Stats::time_regressions`], never a panic.
//! * **One input cannot move the clock ahead by more than
//!   [`Config::max_clock_jump`]** (a day by default). A `now` further ahead
//!   is *held*: the input is carried out at the hub's current time, the
//!   clock stays, and [`Stats::clock_jumps_held`] counts it. The jump is
//!   believed when the next input confirms it with a `now` at or after the
//!   held one and within `max_clock_jump` of it — a clock that really
//!   jumped keeps reading the new time; a single wild `Instant` (say, now +
//!   100 years) changes nothing, and deadlines set afterwards fire on time.
//! * A hub with **no channel** holds no time: it takes any `now`, an
//!   earlier one too, and counts no regression. That includes a hub whose
//!   shutdown is complete (`ShutdownComplete` was emitted): a shutdown
//!   under way always has a channel left, and once the last is released
//!   its deadline is moot.
//!
//! Deadlines are due at `handle_timeout(now)` for the first `now` at or
//! after them (invariant 7); [`Hub::poll_timeout`] says when that is, and
//! is `None` when nothing is pending — in particular once shutdown is
//! complete.
//!
//! ## Testing policies without a network
//!
//! With the `testing` feature, [`testing::Driver`] runs a hub on a virtual
//! clock and plays a well-behaved adapter, so a policy test reads like its
//! specification. See the [`testing`] module. The `checker` feature alone
//! gives the invariant checker ([`testing::Checker`]) without the clock and
//! the driver: what a replay of a recording needs.
//!
//! ## Inputs as values
//!
//! Every hub input is also a value, [`Input`], made by one entry point,
//! [`Hub::handle_input`], which answers the typed result of the method it
//! names ([`Answer`]; without payload, an [`Outcome`]). The typed methods
//! above are the same calls; the values are what observers (the flight
//! recorder), the checker, the simulator and the fuzz targets use.
//!
//! ```
//! use std::time::Instant;
//! use tether_core::{Answer, Bytes, Config, Hub, Input, Outcome};
//!
//! let mut hub = Hub::new(Config::default()).unwrap();
//! let now = Instant::now();
//! let peer = "127.0.0.1:50000".parse().unwrap();
//! let Answer::Accept(Ok(id)) = hub.handle_input(now, Input::Accept { peer }) else {
//!     panic!("the hub is empty")
//! };
//! let input = Input::BroadcastTo { ids: vec![id], data: Bytes::from_static(b"hi\n") };
//! assert_eq!(hub.handle_input(now, input).outcome(), Outcome::Broadcast { sent: 1, refused: 0 });
//! ```
//!
//! ## Snapshots
//!
//! With the `snapshot` feature, [`Hub::snapshot`] gives the complete state
//! of a drained hub as a [`Snapshot`] (serde), and [`Hub::restore`] makes
//! the same hub of it — at the same or a shifted epoch — after checking
//! every field, so a hostile or corrupted snapshot is a typed
//! [`RestoreError`], never a panic. The flight recorder starts every
//! segment of a recording with one. See the [`snapshot`] module.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod channel;
mod config;
mod error;
mod hub;
mod id;
mod input;
mod offline;
mod output;
#[cfg(feature = "snapshot")]
pub mod snapshot;
mod stats;
mod timers;
pub mod transitions;

#[cfg(feature = "checker")]
pub mod testing;

pub use channel::{ChannelInfo, OfflineEntry};
pub use config::{Config, ConfigError, HalfClosePolicy, KickMode, OverflowPolicy};
pub use error::{AcceptError, InputError, KickError, SendError};
pub use hub::{BroadcastReport, Hub};
pub use id::{ChannelId, IdError, IdTable, MAX_SLOTS, ParseIdError, TableFull};
pub use input::{Answer, Arg, ArgKind, Args, Input, Outcome, Rejection};
pub use output::{Action, ChannelState, DisconnectReason, Event, ShutdownHow};
#[cfg(feature = "snapshot")]
pub use snapshot::{RestoreError, Snapshot, SnapshotError};
pub use stats::{DisconnectCounts, RejectedInputs, Stats};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Re-exported so users name the same `Bytes` the hub takes.
pub use bytes::Bytes;
