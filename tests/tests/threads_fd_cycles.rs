//! 10,000 connect/kick/close cycles against the threads adapter leave zero
//! file descriptors and zero channels. Alone in its test binary: it counts
//! `/proc/self/fd` for the whole process.

tether_conformance::fd_cycles_test!(
    threads_connect_kick_close_cycles,
    tether_conformance::adapters::Threads
);
