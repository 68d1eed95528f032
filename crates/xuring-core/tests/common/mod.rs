//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An fd that closes on drop, with a short accessor.
pub struct Fd(pub OwnedFd);

impl Fd {
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A pipe: (read end, write end).
pub fn pipe() -> (Fd, Fd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for `pipe2` to fill.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(ret, 0, "pipe2");
    // SAFETY: `pipe2` returned two new descriptors that nothing else owns.
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let write = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    (Fd(read), Fd(write))
}

/// Writes all of `data` to `fd` with a plain syscall.
pub fn write_all(fd: RawFd, data: &[u8]) {
    let mut done = 0;
    while done < data.len() {
        // SAFETY: the pointer and length describe the live slice `data[done..]`.
        let n = unsafe { libc::write(fd, data[done..].as_ptr().cast(), data.len() - done) };
        assert!(n > 0, "write: {}", std::io::Error::last_os_error());
        done += n as usize;
    }
}

/// Opens `/dev/zero` or `/dev/null`.
pub fn open(path: &std::ffi::CStr, flags: i32) -> Fd {
    // SAFETY: `path` is a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {path:?}");
    // SAFETY: a new descriptor that nothing else owns.
    Fd(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits for the child `pid` to exit and returns its exit status; after `limit` (a hung
/// child, which the caller's assertion then reports) kills it and returns `None`.
pub fn wait_child(pid: libc::pid_t, limit: std::time::Duration) -> Option<i32> {
    let start = std::time::Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: `status` is a live int for `waitpid` to fill.
        let waited = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if waited == pid {
            return Some(libc::WEXITSTATUS(status));
        }
        if start.elapsed() > limit {
            // SAFETY: the caller's own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above; reaps it.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
