//! The conformance suite on every runtime adapter: async-std, smol,
//! blocking threads and tokio (one process; the fd-counting cycles run
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
