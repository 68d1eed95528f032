//! The file descriptors the runtime itself owns (a `Thread` mailbox's eventfd and ring fd
//! duplicate, a ring's own fd, the epoll fd of a ring the readiness executor runs),
//! process-wide.
//!
//! Fds are process-wide, so one ring's op can name another ring's private fd. Op methods that
//! take a caller's fd check it here and refuse (`EPERM`) the runtime's own: a user `close`
//! would otherwise free the fd number for reuse while the runtime still writes to it, and a
//! user `read` of a mailbox eventfd would swallow the wake-up of a waiting message.
//!
//! The check is by number. Safe code cannot get another number for a runtime fd, nor unlist
//! one: the `xuring-sys` calls that duplicate, write, enter or register an fd take a
//! `BorrowedFd`, reopening an eventfd through `/proc/self/fd` fails (`ENXIO`), and only a
//! [`RuntimeFd`] (which owns its fd) claims and releases. A duplicate made with `unsafe` code
//! (`BorrowedFd::borrow_raw`, `libc::dup`) is that code's responsibility.
//!
//! The check is on every fd-taking op, so it must be cheap: fds below `DENSE` (4096: nearly all
//! of them) are one bit each in a fixed bitmap; the rare higher ones sit in a short list,
//! consulted only while it is non-empty.

use std::os::fd::RawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Fds below this are tracked in the bitmap.
const DENSE: usize = 4096;

static DENSE_BITS: [AtomicU64; DENSE / 64] = [const { AtomicU64::new(0) }; DENSE / 64];
static SPARSE: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());
static SPARSE_LEN: AtomicUsize = AtomicUsize::new(0);

fn dense(fd: RawFd) -> Option<(usize, u64)> {
    let fd = usize::try_from(fd).ok().filter(|&fd| fd < DENSE)?;
    Some((fd / 64, 1 << (fd % 64)))
}

fn sparse() -> std::sync::MutexGuard<'static, Vec<RawFd>> {
    SPARSE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records `fd` as the runtime's. Called right after the fd is created, before anything else
/// can learn its number. Private: only a [`RuntimeFd`], which owns the fd, claims and releases
/// (a public `release` would let safe code unguard a runtime fd and close it).
pub(crate) fn claim(fd: RawFd) {
    if let Some((word, bit)) = dense(fd) {
        DENSE_BITS[word].fetch_or(bit, Ordering::SeqCst);
        return;
    }
    let mut list = sparse();
    list.push(fd);
    SPARSE_LEN.store(list.len(), Ordering::SeqCst);
}

/// Forgets `fd`. Called before closing the fd: after the close, its number may come back as
/// someone else's.
pub(crate) fn release(fd: RawFd) {
    if let Some((word, bit)) = dense(fd) {
        DENSE_BITS[word].fetch_and(!bit, Ordering::SeqCst);
        return;
    }
    let mut list = sparse();
    if let Some(i) = list.iter().position(|&f| f == fd) {
        list.swap_remove(i);
    }
    SPARSE_LEN.store(list.len(), Ordering::SeqCst);
}

/// Whether `fd` is one of the runtime's own.
#[inline]
pub fn is_claimed(fd: RawFd) -> bool {
    if let Some((word, bit)) = dense(fd) {
        // Relaxed suffices: an fd is claimed before its number is handed to anyone, and
        // released before it is closed, so a caller holding the number of a live runtime fd
        // was ordered after its claim by however it learned the number.
        return DENSE_BITS[word].load(Ordering::Relaxed) & bit != 0;
    }
    SPARSE_LEN.load(Ordering::Relaxed) != 0 && sparse().contains(&fd)
}

/// An fd the runtime owns: claimed while it lives, released and closed on drop.
#[derive(Debug)]
pub struct RuntimeFd(std::os::fd::OwnedFd);

impl RuntimeFd {
    /// Takes `fd` over and claims it.
    pub fn new(fd: std::os::fd::OwnedFd) -> RuntimeFd {
        claim(std::os::fd::AsRawFd::as_raw_fd(&fd));
        RuntimeFd(fd)
    }

    /// The fd's number.
    pub fn raw(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }

    /// The fd, borrowed.
    pub fn borrow(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }
}

impl Drop for RuntimeFd {
    fn drop(&mut self) {
        // Released first: once the `OwnedFd` closes it, the number may be reused.
        release(self.raw());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_and_releases_low_and_high_fds() {
        // Numbers no test of this binary opens: well above what the harness uses, and above
        // the dense range.
        for fd in [4000, 70_000] {
            assert!(!is_claimed(fd));
            claim(fd);
            assert!(is_claimed(fd));
            assert!(!is_claimed(fd + 1));
            release(fd);
            assert!(!is_claimed(fd));
        }
        assert!(!is_claimed(-1));
    }
}
