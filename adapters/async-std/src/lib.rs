//! # tether-async-std
//!
//! Drives a [`tether_core::Hub`] over real TCP from async tasks, on
//! async-std or smol (see [`Runtime`]).
//!
//! ## Tasks
//!
//! * **the driver** owns the hub — no lock anywhere: every other task talks
//!   to it through channels (a bounded one from the socket tasks, so a
//!   flood of received bytes pushes back through TCP; an unbounded one
//!   from handles). It executes the hub's
//!   actions (transmit, shutdown, abort with `SO_LINGER` 0, close,
//!   pause/resume accepting), sleeps until the next input or the hub's
//!   `poll_timeout`, and forwards events to the application.
//! * **the listener** accepts connections and hands them to the driver; it
//!   stops accepting while the hub asks it to pause.
//! * **a reader and a writer per connection**, both attached to the channel
//!   as holders. The writer has its own queue (bounded in bytes by the
//!   core's queue limit), so a peer that never reads blocks only its own
//!   writer. Each detaches after dropping its socket handle, so the driver's
//!   `Close` drops the last one and the fd is closed at once.
//!
//! ## Application API
//!
//! [`Server::start`] binds and spawns everything and returns a cloneable
//! [`Handle`] (send, broadcast, kick, authenticate, stats, channels,
//! offline queue, shutdown — usable from any task or, through
//! [`Handle::blocking`], any thread) and an [`Events`] stream.
//!
//! ```no_run
//! use tether_async_std::{AsyncStd, Runtime, Server};
//! use tether_core::{Config, Event};
//!
//! AsyncStd.block_on(async {
//!     let (handle, events) =
//!         Server::start(AsyncStd, "127.0.0.1:0".parse().unwrap(), Config::default()).unwrap();
//!     while let Some(event) = events.next().await {
//!         if let Event::Received { id, data } = event {
//!             let _ = handle.send(id, data).await; // echo
//!         }
//!     }
//! });
//! ```
//!
//! The `tether` binary's chat server ([`chat`]) and demo ([`demo`]) are
//! built on this API.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chat;
mod conn;
pub mod demo;
mod driver;
mod runtime;
mod server;

pub use runtime::{AsyncStd, Runtime, Smol};
pub use server::{Blocking, Error, Events, Handle, Server, StartError};
