//! Replays the committed seeds of the fuzz target `queue` (`fuzz/seeds/queue/`) through the
//! target's own logic (`fuzz/src/queue.rs`), so `cargo test` covers them on stable. Under Miri
//! (no file system access) a few built-in inputs run instead.

#[path = "../../../fuzz/src/queue.rs"]
mod queue;

#[test]
#[cfg(not(miri))]
fn queue_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/queue");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no seeds in {}", dir.display());
    for path in paths {
        let bytes = std::fs::read(&path).expect("seed");
        eprintln!("replaying {} ({} bytes)", path.display(), bytes.len());
        queue::run(&bytes);
    }
}

#[test]
fn builtin_inputs() {
    let inputs: [&[u8]; 4] = [
        b"",
        &[0, 1, 0x10, 2, 0x20, 3, 0x30, 4, 2, 0, 0x23, 0, 4, 4, 8, 0],
        &[
            0, 0, 0, 1, 0x10, 2, 5, 0, 0x20, 3, 0x20, 4, 0x25, 0, 0x27, 0x0b, 9, 3,
        ],
        &[
            1, 7, 0x21, 6, 0x34, 6, 0x35, 0, 0x16, 2, 0x37, 0xff, 0x18, 0,
        ],
    ];
    for input in inputs {
        queue::run(input);
    }
}
