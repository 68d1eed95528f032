//! `cat`: prints files to standard output, one after the other.
//!
//! `cargo run --example cat -- FILE...` reads each file whole with
//! [`stda::fs::read_file`](xuring::stda::fs::read_file) (open, statx, read until EOF, close)
//! and writes it to stdout with [`stda::fs::write_all`](xuring::stda::fs::write_all), which
//! finishes short writes (a pipe or terminal takes what it can). A file that cannot be read
//! is reported on stderr and skipped; the exit status says whether any failed. Without
//! arguments it prints this crate's `Cargo.toml`.
//!
//! The job's state (the list of files, which one is next) lives in a thread-local: the
//! callbacks reach it without `unsafe`, and a ring never leaves its thread.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::fd::RawFd;

use xuring::io_uring::{Offset, Ring, RingError, RunCondition};
use xuring::stda::{Done, Error, Then, Transfer, fs};

/// What `cat` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Bytes written to the output.
    pub bytes: u64,
    /// One line per file that could not be printed: `path: error`.
    pub errors: Vec<String>,
}

struct Cat {
    paths: Vec<CString>,
    next: usize,
    out: RawFd,
    report: Report,
}

thread_local! {
    static CAT: RefCell<Option<Cat>> = const { RefCell::new(None) };
}

/// Starts reading the next file, if there is one.
fn next_file(ring: &mut Ring) {
    let path = CAT.with(|cat| {
        let mut cat = cat.borrow_mut();
        let cat = cat.as_mut()?;
        let path = cat.paths.get(cat.next)?.clone();
        cat.next += 1;
        Some(path)
    });
    if let Some(path) = path {
        fs::read_file(ring, path, Then::new(on_read));
    }
}

fn failed(what: String) {
    CAT.with(|cat| {
        if let Some(cat) = cat.borrow_mut().as_mut() {
            let path = cat.paths[cat.next - 1].to_string_lossy().into_owned();
            cat.report.errors.push(format!("{path}: {what}"));
        }
    });
}

fn on_read(ring: &mut Ring, done: Done<Result<Vec<u8>, Error>>) -> Result<(), RingError> {
    match done.result {
        Ok(data) => {
            let out = CAT.with(|cat| cat.borrow().as_ref().map(|c| c.out));
            if let Some(out) = out {
                fs::write_all(ring, out, data, Offset::File, Then::new(on_written));
                return Ok(());
            }
        }
        Err(e) => failed(e.to_string()),
    }
    next_file(ring);
    Ok(())
}

fn on_written(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
    let t = done.result;
    CAT.with(|cat| {
        if let Some(cat) = cat.borrow_mut().as_mut() {
            cat.report.bytes += t.len as u64;
        }
    });
    if let Err(e) = t.status {
        // The output is gone (a closed pipe): nothing more can be printed.
        return Err(RingError::callback(std::io::Error::from(e)));
    }
    next_file(ring);
    Ok(())
}

/// Writes the files at `paths` to `out`, in order.
pub fn cat(paths: Vec<CString>, out: RawFd) -> Result<Report, RingError> {
    let mut ring = Ring::init(16)?;
    CAT.with(|cat| {
        *cat.borrow_mut() = Some(Cat {
            paths,
            next: 0,
            out,
            report: Report::default(),
        })
    });
    next_file(&mut ring);
    let run = ring.run(RunCondition::UntilDone);
    let report = CAT.with(|cat| cat.borrow_mut().take().map(|c| c.report));
    run?;
    Ok(report.unwrap_or_default())
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    let mut paths: Vec<CString> = std::env::args_os()
        .skip(1)
        .filter_map(|arg| CString::new(arg.into_encoded_bytes()).ok())
        .collect();
    if paths.is_empty() {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        paths.push(CString::new(manifest).expect("no NUL"));
    }
    match cat(paths, libc::STDOUT_FILENO) {
        Ok(report) if report.errors.is_empty() => std::process::ExitCode::SUCCESS,
        Ok(report) => {
            for e in report.errors {
                eprintln!("cat: {e}");
            }
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cat: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
