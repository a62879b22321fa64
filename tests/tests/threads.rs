//! The whole conformance suite against the blocking threads adapter
//! (`tether-threads`). The fd-counting cycles run alone, in
//! `threads_fd_cycles.rs`.

mod threads_adapter;

tether_conformance::conformance_suite!(threads_adapter::Threads);
