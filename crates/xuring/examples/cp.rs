//! `cp`: copies a file with `splice`, without passing the bytes through user memory.
//!
//! `cargo run --example cp -- SRC DST` runs
//! [`stda::fs::copy_file`](xuring::stda::fs::copy_file): open both files, make a pipe, splice
//! source -> pipe -> destination 64 KiB at a time, close both. On a kernel without `SPLICE`
//! (try `XURING_KERNEL_LEVEL=5.6`) it falls back to read and write. Without arguments it
//! copies a generated 1 MiB file in the temp directory, checks the copy, and removes both.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use xuring::io_uring::{Errno, Ring, RingError, RunCondition};
use xuring::stda::{Done, Error, Then, fs};

fn on_copied(_ring: &mut Ring, done: Done<Result<u64, Error>>) -> Result<(), RingError> {
    COPIED.set(Some(done.result));
    Ok(())
}

thread_local! {
    static COPIED: std::cell::Cell<Option<Result<u64, Error>>> = const { std::cell::Cell::new(None) };
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).expect("a path has no NUL")
}

/// Copies `from` to `to`; the number of bytes copied.
pub fn cp(from: &Path, to: &Path) -> Result<Result<u64, Error>, RingError> {
    let mut ring = Ring::init(16)?;
    COPIED.set(None);
    fs::copy_file(&mut ring, c_path(from), c_path(to), Then::new(on_copied));
    ring.run(RunCondition::UntilDone)?;
    // `UntilDone` returns only once the copy has reported.
    Ok(COPIED.take().unwrap_or(Err(Error::Os(Errno::EIO))))
}

/// The no-argument demo: copy a generated file and check the copy. Returns the bytes copied.
pub fn demo() -> Result<u64, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir();
    let src: PathBuf = dir.join(format!("xuring-cp-demo-{}-src", std::process::id()));
    let dst: PathBuf = dir.join(format!("xuring-cp-demo-{}-dst", std::process::id()));
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data)?;
    let copied = cp(&src, &dst)?;
    let same = std::fs::read(&dst)? == data;
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    let copied = copied?;
    if !same {
        return Err("the copy differs from the source".into());
    }
    Ok(copied)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    match args.as_slice() {
        [] => {
            let n = demo()?;
            println!("copied {n} bytes and checked the copy");
        }
        [from, to] => {
            let n = cp(from, to)??;
            println!("copied {n} bytes");
        }
        _ => return Err("usage: cp [SRC DST]".into()),
    }
    Ok(())
}
