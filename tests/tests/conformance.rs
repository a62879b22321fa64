//! The conformance suite on every runtime adapter: async-std, smol,
//! blocking threads and tokio (on the application's runtime, and on a
//! runtime per shard as `tether serve` runs it), with one shard, two
//! shards fed round-robin by one acceptor, and two shards with an
//! `SO_REUSEPORT` listener each (one process; the fd-counting cycles run
//! alone in `*_cycles.rs`).

mod async_std {
    tether_conformance::conformance_suite!(tether_conformance::adapters::AsyncStd);
}

mod smol {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Smol);
}

mod threads {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Threads);
}

mod tokio {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Tokio);
}

/// What `tether serve --runtime tokio` runs: a runtime per shard.
mod tokio_threads {
    tether_conformance::conformance_suite!(tether_conformance::adapters::TokioThreads);
}

mod async_std_2_shards {
    tether_conformance::conformance_suite!(tether_conformance::adapters::AsyncStd<2>);
}

mod smol_2_shards {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Smol<2>);
}

mod threads_2_shards {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Threads<2>);
}

mod tokio_2_shards {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Tokio<2>);
}

/// Connections handed from shard 0's runtime to shard 1's unregistered.
mod tokio_threads_2_shards {
    tether_conformance::conformance_suite!(tether_conformance::adapters::TokioThreads<2>);
}

mod async_std_2_shards_reuseport {
    tether_conformance::conformance_suite!(tether_conformance::adapters::AsyncStd<2, true>, reuse_port);
}

mod smol_2_shards_reuseport {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Smol<2, true>, reuse_port);
}

mod threads_2_shards_reuseport {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Threads<2, true>, reuse_port);
}

mod tokio_2_shards_reuseport {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Tokio<2, true>, reuse_port);
}

mod tokio_threads_2_shards_reuseport {
    tether_conformance::conformance_suite!(tether_conformance::adapters::TokioThreads<2, true>, reuse_port);
}
