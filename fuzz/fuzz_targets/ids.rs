//! Bytes → id-table operations, checked against a `HashMap` model: stale ids
//! always rejected, generations strictly increasing, no aliasing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = tether_sim::fuzz_ids(data) {
        panic!("{violation}");
    }
});
