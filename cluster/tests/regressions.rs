//! Regression replay on stable: every committed `fuzz/corpus/cluster` file
//! runs through the simulated broker under the invariant checker, as the
//! cargo-fuzz target `cluster` does.

use std::path::Path;

#[test]
fn every_cluster_corpus_file_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/cluster");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for path in files {
        let data = std::fs::read(&path).expect("readable corpus file");
        if let Err(violation) = tether_cluster::testing::fuzz(&data) {
            panic!("{}: {violation}", path.display());
        }
    }
}

#[test]
fn random_inputs_like_the_fuzzer_pass() {
    // A stable stand-in for a short fuzzing session: seeded random inputs.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..300 {
        let len = 16 + (round * 7) % 700;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        if let Err(violation) = tether_cluster::testing::fuzz(&data) {
            panic!("round {round} ({data:?}): {violation}");
        }
    }
}
