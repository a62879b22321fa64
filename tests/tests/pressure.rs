//! The pressure suite: real `tether serve --runtime <runtime>` processes
//! under bursts, floods, signals and resource limits, one module per
//! runtime. See `tether_conformance::pressure`.
//!
//! `cargo test -p tether-conformance --test pressure` runs the reduced
//! sizes; `cargo test --release -p tether-conformance --test pressure --
//! --ignored` the full ones.

mod async_std {
    tether_conformance::pressure_suite!("async-std");
}

mod smol {
    tether_conformance::pressure_suite!("smol");
}

mod threads {
    tether_conformance::pressure_suite!("threads");
}

// Client processes of the 20,000-connection scenario re-enter here.
tether_conformance::pressure_child_hook!();
