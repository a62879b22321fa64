//! Bytes → a simulator configuration and ops → the simulated server with
//! every invariant checked. A violation panics with the trace, so libFuzzer
//! saves the input; `tether-sim shrink` makes it short.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = tether_sim::fuzz_lifecycle(data) {
        panic!("{failure}");
    }
});
