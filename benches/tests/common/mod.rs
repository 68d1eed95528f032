//! What the bench test binaries share.

use std::process::Command;

use xuring_core::{Ring, RingError};

/// Whether io_uring can be used here; says why not when it cannot.
pub fn kernel() -> bool {
    match Ring::init(2) {
        Ok(_) => true,
        Err(e @ RingError::Setup(_)) => {
            eprintln!("skipped: no io_uring here: {e}");
            false
        }
        Err(e) => panic!("unexpected ring error: {e}"),
    }
}

/// The `xuring-bench` binary, ready for arguments.
#[allow(dead_code)] // not every test binary runs it
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xuring-bench"))
}

/// Runs the binary with `args`; returns its standard output, after checking it succeeded.
#[allow(dead_code)] // not every test binary runs it
pub fn run_binary(args: &[&str]) -> String {
    let out = bin().args(args).output().expect("start xuring-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "xuring-bench {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
