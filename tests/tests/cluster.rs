//! The cluster suite (issue 18): three real `tether serve --cluster … --node
//! nK` processes over one real `redis-server` (`.ci/run` installs it), per
//! runtime, every runtime with `--shards 2`. See
//! `tether_conformance::cluster`.
//!
//! `cargo test -p tether-conformance --test cluster` runs them all at
//! issue 18's sizes (3,000 clients per node, 1,000 cross-node kicks).

mod tokio_2_shards {
    tether_conformance::cluster_suite!("tokio:2");
}

mod threads_2_shards {
    tether_conformance::cluster_suite!("threads:2");
}

/// The other two runtimes: conformance only (the faults exercise the
/// driver, which is the same threads under every runtime).
mod smol_2_shards {
    #[test]
    fn presence_relay_and_kicks_across_three_nodes() {
        tether_conformance::cluster::conformance::presence_relay_and_kicks("smol:2");
    }
}

mod async_std_2_shards {
    #[test]
    fn presence_relay_and_kicks_across_three_nodes() {
        tether_conformance::cluster::conformance::presence_relay_and_kicks("async-std:2");
    }
}
