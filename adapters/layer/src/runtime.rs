//! The runtime implementer's API: what an adapter for a new runtime (a
//! new executor, or blocking threads) builds on. Applications never need
//! it; they use the crate root ([`Handle`](crate::Handle),
//! [`Events`](crate::Events), [`Options`](crate::Options), …) and the
//! runtime crate's `start`.
//!
//! A runtime implements three traits: [`Socket`] (what the driver does to
//! a connected socket, never blocking), [`Glue`] (start a connection's
//! reader and writability waiter, refuse, release, finish) and [`Sleep`].
//! It builds a server with [`prepare`], spawns each shard's [`Driver`]
//! and runs its listener(s) from the [`Listeners`] it got back (a
//! [`ListenContext`] per listener, handing connections to shards through
//! an [`AcceptRouter`] as [`Input::Accepted`]).
//!
//! Async runtimes share more: [`TaskGlue`], [`listen_task`], [`read_task`]
//! and [`wait_task`] are the glue, listener, reader and waiter of every
//! async runtime; a runtime only says how its socket waits
//! ([`AsyncSocket`]), how its listener accepts ([`AsyncListener`]) and how
//! it spawns ([`Spawn`]). A blocking runtime runs the same driver with
//! [`block_on`] and [`ThreadSleep`].

pub use crate::accept::{AcceptRouter, ListenContext, Listeners};
pub use crate::driver::Driver;
pub use crate::exec::{ThreadSleep, block_on};
pub use crate::glue::{Glue, Release, Sleep, Socket};
pub use crate::input::{DriverGone, Input, Inputs, READ_AHEAD, ReadEnd, SMALL_READ, read_chunk};
pub use crate::observe::ObservedHub;
pub use crate::prepare::{GlueContext, Prepared, prepare, test_inputs};
pub use crate::stats::{AdapterCounters, Histogram};
pub use crate::tasks::{
    AsyncListener, AsyncSocket, Spawn, TaskConn, TaskGlue, listen_task, read_task, wait_task,
};
