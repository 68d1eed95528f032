//! Replays the committed seeds of the fuzz targets `ops` and `cqe` (`fuzz/seeds/<target>/`)
//! through the targets' own logic (`fuzz/src/`), so `cargo test` covers them on stable. Under
//! Miri (no file system access) a few built-in inputs run instead.
//!
//! To add a case: drop the input file (e.g. a minimised crash from `fuzz/artifacts/`) into
//! `fuzz/seeds/<target>/`.

#[path = "../../../fuzz/src/cqe.rs"]
mod cqe;
#[path = "../../../fuzz/src/ops.rs"]
mod ops;

/// Every seed file of `target`, sorted by name.
#[cfg(not(miri))]
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let bytes = std::fs::read(&path).expect("seed");
            (path.display().to_string(), bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

#[cfg(not(miri))]
fn replay(target: &str, run: fn(&[u8])) {
    for (name, bytes) in seeds(target) {
        eprintln!("replaying {name} ({} bytes)", bytes.len());
        run(&bytes);
    }
}

const INLINE: [&[u8]; 4] = [
    b"",
    &[0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 2, 3, 0, 0, 0, 9, 0, 11, 0],
    &[
        5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 2, 1, 4, 3, 1, 6, 0, 14, 2, 10, 0, 13, 1, 11, 0,
    ],
    &[
        6, 3, 0, 2, 10, 7, 1, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 11, 2, 8, 1, 2, 3, 4, 5, 6,
    ],
];

#[test]
#[cfg(not(miri))]
fn ops_seeds() {
    replay("ops", ops::run);
}

#[test]
#[cfg(not(miri))]
fn cqe_seeds() {
    replay("cqe", cqe::run);
}

#[test]
fn builtin_inputs() {
    for input in INLINE {
        ops::run(input);
        cqe::run(input);
    }
}
