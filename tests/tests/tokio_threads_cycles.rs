//! 10,000 connect/kick/close cycles on tokio with a runtime per shard and
//! 2 shards (every other connection handed to shard 1's runtime
//! unregistered): zero fds, zero channels left. Alone in its binary
//! because it counts the process's fds.

tether_conformance::fd_cycles_test!(
    tokio_threads_cycles_leave_nothing,
    tether_conformance::adapters::TokioThreads<2>
);
