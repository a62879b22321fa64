//! Bytes → the flight recorder's parser, and whatever parses → an encode
//! round trip and a replay with small limits (tether_record::fuzz). Must
//! never panic; a broken invariant in a checked replay is a hub bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(problem) = tether_record::fuzz::parse_and_replay(data) {
        panic!("{problem}");
    }
});
