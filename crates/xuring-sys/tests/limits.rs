//! io_uring refused by the system: `RLIMIT_MEMLOCK` (in a child process that drops root) and
//! `kernel.io_uring_disabled` (set for one setup call, restored by a guard even on failure).
//! Each case must give a typed error that names the cause, or a working ring where the kernel
//! does not charge the limit (rings are accounted to the memory cgroup since 5.12): never a
//! panic, never a leaked fd. What happens per limit is printed (`--nocapture`).
//!
//! The cases run one at a time (a lock), because the sysctl is process-wide and the fd counts
//! would see other tests' descriptors. `seccomp.rs` covers `ENOSYS`/`EPERM` from a filter.

use std::process::Command;

use xuring_sys::abi::register::{IORING_REGISTER_BUFFERS, IORING_UNREGISTER_BUFFERS};
use xuring_sys::{KernelLevel, RawRing, SetupError, SetupOptions, syscall};

const CHILD_ENV: &str = "XURING_LIMITS_CHILD_MEMLOCK";
const DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";
const NOBODY: u32 = 65534;

mod common;
use common::{open_fds, serial};

fn is_root() -> bool {
    // SAFETY: `geteuid` has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

// ----- RLIMIT_MEMLOCK -----

/// Sets the memlock limit (soft and hard, so it cannot be raised again), then becomes
/// nobody:nogroup without supplementary groups (no `CAP_IPC_LOCK`, which ignores the limit).
fn drop_root_with_memlock(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    syscall::setrlimit(libc::RLIMIT_MEMLOCK, &limit).expect("setrlimit");
    // SAFETY: an empty group list: no pointer is read.
    let ret = unsafe { libc::setgroups(0, std::ptr::null()) };
    assert_eq!(ret, 0, "setgroups");
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::setgid(NOBODY) };
    assert_eq!(ret, 0, "setgid");
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::setuid(NOBODY) };
    assert_eq!(ret, 0, "setuid");
    // Changing credentials makes the process non-dumpable, which hides /proc/self/fd.
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    assert_eq!(ret, 0, "PR_SET_DUMPABLE");
}

/// Registers one buffer of `len` bytes (charged to `RLIMIT_MEMLOCK` for unprivileged users
/// on every kernel), then unregisters it.
fn register_buffer(ring: &RawRing, len: usize) -> Result<(), xuring_sys::Errno> {
    let mut memory = vec![0u8; len];
    let iov = libc::iovec {
        iov_base: memory.as_mut_ptr().cast(),
        iov_len: len,
    };
    let iov_ptr: *const libc::iovec = &iov;
    // SAFETY: `iov` describes `memory`, which outlives the registration: it is unregistered
    // below, before `memory` is dropped, and no request uses it.
    let registered =
        unsafe { syscall::register(ring.fd(), IORING_REGISTER_BUFFERS, iov_ptr.cast(), 1) };
    registered?;
    // SAFETY: UNREGISTER_BUFFERS takes no argument.
    let unregistered =
        unsafe { syscall::register(ring.fd(), IORING_UNREGISTER_BUFFERS, std::ptr::null(), 0) };
    unregistered.map(|_| ())
}

fn memlock_child(limit: u64) {
    let before = open_fds();
    drop_root_with_memlock(limit);
    for entries in [1u32, 8, 256, 4096] {
        let outcome = match RawRing::kernel(&SetupOptions::new(entries, KernelLevel::Native)) {
            Ok(ring) => {
                let buffer = match register_buffer(&ring, 64 << 10) {
                    Ok(()) => "a 64 KiB fixed buffer registers".to_owned(),
                    Err(e) => format!("registering a 64 KiB fixed buffer fails with {e}"),
                };
                format!(
                    "ring ok ({} SQ entries); {buffer}",
                    ring.params().sq_entries
                )
            }
            Err(e @ SetupError::MemlockLimit { .. }) => {
                let message = e.to_string();
                assert!(message.contains("RLIMIT_MEMLOCK"), "{message}");
                format!("typed error: {e:?}")
            }
            Err(e) => panic!("memlock {limit}, {entries} entries: untyped failure {e:?}"),
        };
        println!("reliability: memlock {limit} B, {entries} entries: {outcome}");
    }
    assert_eq!(open_fds(), before, "no fd leaked");
}

fn run_memlock_child(test: &str, limit: u64) {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            test,
            "--quiet",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ENV, limit.to_string())
        .output()
        .expect("spawn the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().filter(|l| l.starts_with("reliability:")) {
        eprintln!("{line}");
    }
    assert!(
        out.status.success(),
        "child with memlock {limit} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn memlock_case(test: &str, limit: u64) {
    if let Some(limit) = std::env::var(CHILD_ENV).ok().and_then(|v| v.parse().ok()) {
        memlock_child(limit);
        return;
    }
    let _serial = serial();
    // Under the lock: its probe ring must not show up in another test's fd count.
    if !common::kernel_io_uring() {
        return;
    }
    if !is_root() {
        eprintln!("reliability: memlock {limit} B skipped: dropping to nobody needs root");
        return;
    }
    run_memlock_child(test, limit);
}

#[test]
fn memlock_limit_0() {
    memlock_case("memlock_limit_0", 0);
}

#[test]
fn memlock_limit_64_kib() {
    memlock_case("memlock_limit_64_kib", 64 << 10);
}

#[test]
fn memlock_limit_8_mib() {
    memlock_case("memlock_limit_8_mib", 8 << 20);
}

// ----- kernel.io_uring_disabled -----

/// Restores `kernel.io_uring_disabled` when dropped, however the test ends.
struct Sysctl {
    old: String,
}

impl Sysctl {
    /// Sets the sysctl to `value`; `None` if it does not exist or cannot be written.
    fn set(value: &str) -> Option<Sysctl> {
        let old = std::fs::read_to_string(DISABLED).ok()?;
        std::fs::write(DISABLED, value).ok()?;
        Some(Sysctl {
            old: old.trim().to_owned(),
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(DISABLED, &self.old) {
            eprintln!(
                "reliability: restoring {DISABLED} to {} failed: {e}",
                self.old
            );
        }
    }
}

/// One setup with the sysctl at `value`, restored right after (the sysctl is system-wide: the
/// window is one `io_uring_setup` call).
/// The kernel ring's setup under `io_uring_disabled=value`; checks on the way that the default
/// executor choice gets a ring anyway (the readiness executor where io_uring is refused).
fn setup_with_disabled(value: &str) -> Option<Result<RawRing, SetupError>> {
    let guard = Sysctl::set(value)?;
    let options = SetupOptions::new(8, KernelLevel::Native);
    let outcome = RawRing::kernel(&options);
    let auto = RawRing::new(&options).expect("the default choice always gets a ring");
    let expected = if outcome.is_ok() {
        xuring_sys::Executor::IoUring
    } else {
        xuring_sys::Executor::Epoll
    };
    assert_eq!(auto.executor(), expected);
    drop(auto);
    drop(guard);
    Some(outcome)
}

#[test]
fn io_uring_disabled_2_is_a_typed_permission_error() {
    let _serial = serial();
    if !common::kernel_io_uring() {
        return;
    }
    let before = open_fds();
    let Some(outcome) = setup_with_disabled("2") else {
        eprintln!("reliability: io_uring_disabled skipped: {DISABLED} missing or read-only");
        return;
    };
    let restored = std::fs::read_to_string(DISABLED).expect("sysctl");
    assert_ne!(restored.trim(), "2", "the sysctl was restored");
    let err = outcome.expect_err("io_uring_disabled=2 refuses every process, root included");
    assert_eq!(
        err,
        SetupError::PermissionDenied {
            io_uring_disabled: Some(2)
        }
    );
    let message = err.to_string();
    assert!(message.contains("io_uring_disabled is 2"), "{message}");
    assert_eq!(open_fds(), before, "no fd leaked");
    eprintln!("reliability: io_uring_disabled=2: {err:?}");
    // With the old value back, rings work again.
    let ring = RawRing::kernel(&SetupOptions::new(8, KernelLevel::Native)).expect("ring");
    drop(ring);
    assert_eq!(open_fds(), before);
}

#[test]
fn io_uring_disabled_1_still_lets_root_in() {
    let _serial = serial();
    if !common::kernel_io_uring() {
        return;
    }
    if !is_root() {
        eprintln!("reliability: io_uring_disabled=1 skipped: needs CAP_SYS_ADMIN");
        return;
    }
    let before = open_fds();
    let Some(outcome) = setup_with_disabled("1") else {
        eprintln!("reliability: io_uring_disabled skipped: {DISABLED} missing or read-only");
        return;
    };
    let ring = outcome.expect("CAP_SYS_ADMIN may create rings at io_uring_disabled=1");
    drop(ring);
    assert_eq!(open_fds(), before, "no fd leaked");
    eprintln!("reliability: io_uring_disabled=1: root creates rings");
}
