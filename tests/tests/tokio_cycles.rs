//! 10,000 connect/kick/close cycles on tokio: zero fds, zero channels left.
//! Alone in its binary because it counts the process's fds.

tether_conformance::fd_cycles_test!(
    tokio_cycles_leave_nothing,
    tether_conformance::adapters::Tokio
);
