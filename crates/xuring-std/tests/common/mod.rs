//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::any::Any;
use std::cell::RefCell;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xuring_core::{Backend, Ring, RingError, RunCondition};
use xuring_std::Done;

thread_local! {
    static KEPT: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Records a value for the test body to look at after `run`.
pub fn keep<T: 'static>(value: T) {
    KEPT.with(|k| k.borrow_mut().push(Box::new(value)));
}

/// Takes the recorded values of type `T`, in the order they were kept.
pub fn kept<T: 'static>() -> Vec<T> {
    KEPT.with(|k| {
        let all = std::mem::take(&mut *k.borrow_mut());
        let mut mine = Vec::new();
        let mut others = Vec::new();
        for value in all {
            match value.downcast::<T>() {
                Ok(v) => mine.push(*v),
                Err(other) => others.push(other),
            }
        }
        *k.borrow_mut() = others;
        mine
    })
}

/// The one recorded value of type `T`.
pub fn one<T: 'static>() -> T {
    let mut all = kept::<T>();
    assert_eq!(all.len(), 1, "exactly one {}", std::any::type_name::<T>());
    all.pop().expect("one")
}

/// A helper callback that records the result.
pub fn keep_cb<T: 'static, B: Backend>(
    _ring: &mut Ring<B>,
    done: Done<T>,
) -> Result<(), RingError> {
    keep(done.result);
    Ok(())
}

/// Tests that count open fds run one at a time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

/// The open-fd count once it is back to `before` (or below: an fd another test of this binary
/// held when `before` was counted may be closed by now), waiting up to 2 s: a test of this
/// binary that does not count fds may hold one for a moment. A real leak stays and is
/// reported.
pub fn open_fds_settled(before: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let now = open_fds();
        if now <= before || std::time::Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xuring-std-{}-{name}", std::process::id()))
}

pub fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL")
}

/// Runs the ring until its work is done (at most 20 s, so a broken peer cannot hang the test)
/// and checks that every helper job of this thread finished.
pub fn run_bounded<B: Backend>(ring: &mut Ring<B>) {
    ring.run(RunCondition::For(Duration::from_secs(20)))
        .expect("run");
    assert_eq!(
        xuring_std::jobs_in_flight(),
        0,
        "every job reported in time"
    );
    assert_eq!(ring.queued(), 0, "nothing left queued");
}

/// The bytes `0, 1, ..., 250, 0, 1, ...`, `len` of them.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
