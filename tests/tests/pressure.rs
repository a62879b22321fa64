//! The pressure suite: real `tether serve --runtime <runtime>` processes
//! under bursts, floods, signals and resource limits, one module per
//! runtime. See `tether_conformance::pressure`.
//!
//! `cargo test -p tether-conformance --test pressure` runs the reduced
//! sizes; `cargo test --release -p tether-conformance --test pressure --
//! --ignored` the full ones.

//! Every runtime runs with one shard and with two (`<runtime>:<shards>`).

mod async_std {
    tether_conformance::pressure_suite!("async-std:1");
}

mod async_std_2_shards {
    tether_conformance::pressure_suite!("async-std:2");
}

mod smol {
    tether_conformance::pressure_suite!("smol:1");
}

mod smol_2_shards {
    tether_conformance::pressure_suite!("smol:2");
}

mod threads {
    tether_conformance::pressure_suite!("threads:1");
}

mod threads_2_shards {
    tether_conformance::pressure_suite!("threads:2");
}

mod tokio {
    tether_conformance::pressure_suite!("tokio:1");
}

mod tokio_2_shards {
    tether_conformance::pressure_suite!("tokio:2");
}

/// The client process the 20,000-connection scenario runs (full size
/// only), checked in every ordinary run against a stand-in server.
#[test]
fn pressure_child_reports_what_it_read() {
    tether_conformance::pressure::child::child_reports_what_it_read(std::path::Path::new(env!(
        "CARGO_BIN_EXE_tether-pressure-child"
    )));
}
