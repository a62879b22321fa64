//! Bytes → the cluster state machine: the bytes decode as one bus payload
//! (which must not panic), then as a node count, a fault seed and simulator
//! ops (traffic, kicks, time, delivery faults, partitions, broker restarts,
//! crashes, hostile payloads), run over 2–4 `Cluster`s under the invariant
//! checker of docs/design.md §7, ending with a settle (faults stop, time
//! passes: every kick answered, presence converged).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = tether_cluster::testing::fuzz(data) {
        panic!("{violation}");
    }
});
