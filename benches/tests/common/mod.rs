//! What the bench test binaries share.

use std::process::Command;

use xuring_core::Ring;

/// Whether io_uring can be used here by the raw `io-uring` crate, which most tests compare
/// xuring with; says why not when it cannot. xuring itself must make a ring either way (on
/// the readiness executor where io_uring is blocked).
pub fn kernel() -> bool {
    if let Err(e) = Ring::init(2) {
        panic!("xuring could not make a ring: {e}");
    }
    match &xuring_bench::backend::backends().raw {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipped: the raw io-uring crate cannot run here: {e}");
            false
        }
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

/// The value of `"key":` in a one-line JSON object, as written (a number or a string).
#[allow(dead_code)]
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":");
    let start = line.find(&pattern)? + pattern.len();
    let rest = &line[start..];
    if let Some(s) = rest.strip_prefix('"') {
        return s.split('"').next();
    }
    rest.split([',', '}']).next()
}
