//! The policy-testing kit (feature `testing`): test lifecycle policies and
//! adapters without a network.
//!
//! * [`VirtualClock`] — an `Instant` you move by hand.
//! * [`Driver`] — a hub on a virtual clock that plays a well-behaved adapter
//!   (writes every transmit, confirms every close) and records every output.
//! * [`Checker`] — checks the invariants of docs/design.md §4 over a stream of
//!   inputs and outputs; the simulator and the fuzzer use it too.
pub mod checker;
mod clock;
mod driver;
mod model;

pub use checker::{Checker, Input, Outcome, Rejection, Violation};
pub use clock::VirtualClock;
pub use driver::Driver;
