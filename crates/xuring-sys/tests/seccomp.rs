//! `ENOSYS` and `EPERM` from `io_uring_setup` map to the errors that explain them, and the
//! default executor choice gets a working ring on the readiness executor there.
//!
//! Each case runs in a child process (this test binary re-executed) that installs a seccomp
//! filter making `io_uring_setup` fail with that errno. A child process, not a `fork` of the
//! multi-threaded test harness, so the child can allocate freely.

use std::process::{Command, Stdio};

use xuring_sys::abi::io_uring_sqe;
use xuring_sys::{EnterFlags, Executor, KernelLevel, Opcode, RawRing, SetupError, SetupOptions};

const CHILD_ENV: &str = "XURING_SECCOMP_CHILD_ERRNO";

/// Installs a filter that fails `io_uring_setup` with `errno` and allows everything else.
fn deny_io_uring_setup(errno: u32) {
    let filter = [
        // Load the syscall number.
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        // If it is io_uring_setup, fall through to the errno return; else skip it.
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA),
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(ret, 0, "PR_SET_NO_NEW_PRIVS");
    let program_ptr: *const libc::sock_fprog = &program;
    // SAFETY: `program` and the `filter` array it points to are live for the call; the kernel
    // copies the filter before returning.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            program_ptr,
            0,
            0,
        )
    };
    assert_eq!(ret, 0, "PR_SET_SECCOMP");
}

fn child(errno: u32) {
    deny_io_uring_setup(errno);
    let options = SetupOptions::new(8, KernelLevel::Native);
    let err = RawRing::kernel(&options).expect_err("the filter makes setup fail");
    // The default choice runs the ring on the readiness executor instead, and it works.
    let mut ring = RawRing::new(&options).expect("the readiness executor");
    assert_eq!(ring.executor(), Executor::Epoll);
    let sqe = io_uring_sqe {
        opcode: Opcode::Nop as u8,
        user_data: 7,
        ..io_uring_sqe::ZEROED
    };
    // SAFETY: a NOP names no memory.
    unsafe { ring.sq().push(&sqe) }.expect("room");
    ring.sq().publish();
    assert_eq!(ring.enter(1, 1, EnterFlags::GETEVENTS, None), Ok(1));
    let mut seen = Vec::new();
    ring.cq().reap(|cqe| seen.push((cqe.user_data, cqe.res)));
    assert_eq!(seen, [(7, 0)]);
    let message = err.to_string();
    match errno as i32 {
        libc::ENOSYS => {
            assert_eq!(err, SetupError::NotSupported);
            assert!(message.contains("seccomp"), "{message}");
        }
        libc::EPERM => {
            assert!(
                matches!(err, SetupError::PermissionDenied { .. }),
                "{err:?}"
            );
            assert!(message.contains("EPERM"), "{message}");
        }
        _ => unreachable!(),
    }
}

fn run_child(test: &str, errno: i32) {
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--quiet", "--test-threads=1"])
        .env(CHILD_ENV, errno.to_string())
        .stdout(Stdio::null())
        .status()
        .expect("spawn the child");
    assert!(
        status.success(),
        "child with errno {errno} failed: {status}"
    );
}

fn child_errno() -> Option<u32> {
    std::env::var(CHILD_ENV).ok()?.parse().ok()
}

#[test]
fn enosys_means_not_supported() {
    match child_errno() {
        Some(errno) => child(errno),
        None => run_child("enosys_means_not_supported", libc::ENOSYS),
    }
}

#[test]
fn eperm_means_permission_denied() {
    match child_errno() {
        Some(errno) => child(errno),
        None => run_child("eperm_means_permission_denied", libc::EPERM),
    }
}
