//! 10,000 connect/kick/close cycles on async-std: zero fds, zero channels
//! left. Alone in its binary because it counts the process's fds.

tether_conformance::fd_cycles_test!(
    async_std_cycles_leave_nothing,
    tether_conformance::adapters::AsyncStd
);
