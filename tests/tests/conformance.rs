//! The conformance suite on every runtime adapter: async-std, smol and
//! blocking threads (one process; the fd-counting cycles run alone in
//! `*_cycles.rs`).

mod async_std {
    tether_conformance::conformance_suite!(tether_conformance::adapters::AsyncStd);
}

mod smol {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Smol);
}

mod threads {
    tether_conformance::conformance_suite!(tether_conformance::adapters::Threads);
}
