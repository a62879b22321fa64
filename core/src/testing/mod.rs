//! The policy-testing kit: test lifecycle policies and adapters without a
//! network.
//!
//! * [`Checker`] (feature `checker`) — checks the invariants of
//!   docs/design.md §4 over a stream of inputs and outputs, against a
//!   reference model; the simulator, the fuzzer and the flight recorder's
//!   replay use it too. [`shrink`] (feature `checker`) makes a failing
//!   sequence of inputs small.
//! * [`VirtualClock`] (feature `testing`, which implies `checker`) — an
//!   `Instant` you move by hand.
//! * [`Driver`] (feature `testing`) — a hub on a virtual clock that plays
//!   a well-behaved adapter (writes every transmit, confirms every close)
//!   and records every output.
//!
//! [`Input`], [`Outcome`] and [`Rejection`] are the crate root's (always
//! compiled), re-exported here.
pub mod checker;
#[cfg(feature = "testing")]
mod clock;
#[cfg(feature = "testing")]
mod driver;
mod model;
pub mod shrink;

pub use checker::{Checker, Input, Outcome, Rejection, Violation};
#[cfg(feature = "testing")]
pub use clock::VirtualClock;
#[cfg(feature = "testing")]
pub use driver::Driver;
