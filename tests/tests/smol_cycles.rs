//! 10,000 connect/kick/close cycles on smol: zero fds, zero channels left.
//! Alone in its binary because it counts the process's fds.

tether_conformance::fd_cycles_test!(
    smol_cycles_leave_nothing,
    tether_conformance::adapters::Smol
);
