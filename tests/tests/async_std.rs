//! The conformance suite on the async adapter, under async-std and smol.

mod async_std {
    tether_conformance::conformance_suite!(
        tether_conformance::adapters::AsyncAdapter<tether_async_std::AsyncStd>
    );
}

mod smol {
    tether_conformance::conformance_suite!(
        tether_conformance::adapters::AsyncAdapter<tether_async_std::Smol>
    );
}
