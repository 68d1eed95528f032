//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, PoisonError};

use xuring_sys::{KernelLevel, RawRing, SetupError, SetupOptions};

/// Whether this process may use the kernel's io_uring. Where a seccomp filter or
/// `kernel.io_uring_disabled` refuses it (or the kernel lacks it), says so on stderr and
/// returns false: the tests of the kernel's ring then have nothing to test, and return.
pub fn kernel_io_uring() -> bool {
    match RawRing::kernel(&SetupOptions::new(1, KernelLevel::Native)) {
        Ok(_) => true,
        Err(e @ (SetupError::PermissionDenied { .. } | SetupError::NotSupported)) => {
            eprintln!("skipped: the kernel's io_uring is unavailable here: {e}");
            false
        }
        Err(e) => panic!("io_uring setup failed for another reason: {e}"),
    }
}

/// Serialises the tests of one binary that count this process's fds or change its limits.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many fds this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}
