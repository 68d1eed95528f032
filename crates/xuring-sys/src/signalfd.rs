//! Signals read from a descriptor: block them in the calling thread and read them from a
//! `signalfd`, so a ring can wait for `SIGINT`/`SIGTERM` like any other event.

use core::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::Errno;

/// Signals blocked in this thread and readable from a non-blocking `signalfd`. Dropping it
/// closes the descriptor and unblocks the signals this value blocked (not those that were
/// blocked before it), so a second `SIGINT` during a graceful stop acts as usual.
///
/// A signal mask belongs to a thread: this value is neither `Send` nor `Sync`. A signal sent
/// to the process (`kill`, a terminal's `^C`) goes to a thread that does not block it, if
/// there is one, so create this before spawning other threads (they inherit the mask), or
/// block the signals in them too.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
    /// The signals this value added to the thread's mask.
    added: libc::sigset_t,
    _thread: PhantomData<*const ()>,
}

impl SignalFd {
    /// Blocks `signals` in the calling thread and opens a `signalfd` for them
    /// (`SFD_NONBLOCK | SFD_CLOEXEC`).
    ///
    /// Errors: `EINVAL` for an empty list or a number that is not a signal (or is `SIGKILL`
    /// or `SIGSTOP`, which cannot be blocked), `signalfd`'s errors (`EMFILE`, ...).
    pub fn new(signals: &[i32]) -> Result<SignalFd, Errno> {
        if signals.is_empty() {
            return Err(Errno::EINVAL);
        }
        let mut set = empty_set();
        let mut old = empty_set();
        for &signal in signals {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                return Err(Errno::EINVAL);
            }
            // SAFETY: `set` is an initialised sigset_t; `sigaddset` checks the number.
            if unsafe { libc::sigaddset(&mut set, signal) } != 0 {
                return Err(Errno::EINVAL);
            }
        }
        // SAFETY: `set` and `old` are live, initialised sigset_t values.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        if ret != 0 {
            return Err(Errno::from_raw(ret));
        }
        let mut added = empty_set();
        for &signal in signals {
            // SAFETY: `old` was filled by `pthread_sigmask`; `signal` passed `sigaddset`.
            let was_blocked = unsafe { libc::sigismember(&old, signal) } == 1;
            if !was_blocked {
                // SAFETY: as above, for `added`.
                unsafe { libc::sigaddset(&mut added, signal) };
            }
        }
        // SAFETY: `set` is a live sigset_t; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            let e = Errno::last();
            unblock(&added);
            return Err(e);
        }
        Ok(SignalFd {
            // SAFETY: `fd` is a new descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            added,
            _thread: PhantomData,
        })
    }

    /// Takes one pending signal: its number, or `None` if none is pending.
    pub fn take(&self) -> Result<Option<i32>, Errno> {
        let mut info = core::mem::MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: `info` is writable for `size` bytes for the duration of the call.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
            if n == size as isize {
                // SAFETY: the kernel wrote a whole `signalfd_siginfo`.
                let info = unsafe { info.assume_init() };
                return Ok(Some(info.ssi_signo as i32));
            }
            if n >= 0 {
                // A signalfd reads whole records only.
                return Err(Errno::EIO);
            }
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::EAGAIN => return Ok(None),
                e => return Err(e),
            }
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        unblock(&self.added);
    }
}

/// An empty signal set.
fn empty_set() -> libc::sigset_t {
    let mut set = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initialises the whole set.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: initialised just above.
    unsafe { set.assume_init() }
}

/// Unblocks `set` in the calling thread.
fn unblock(set: &libc::sigset_t) {
    // SAFETY: `set` is a live, initialised sigset_t; no old mask is asked for.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, set, core::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(signal: i32) -> bool {
        let mut current = empty_set();
        // SAFETY: a null new set only reads the mask into `current`.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &mut current) };
        // SAFETY: `current` was filled above.
        unsafe { libc::sigismember(&current, signal) == 1 }
    }

    #[test]
    fn a_signal_sent_to_the_thread_is_read_and_the_mask_restored() {
        let fd = SignalFd::new(&[libc::SIGUSR2]).expect("signalfd");
        assert!(blocked(libc::SIGUSR2));
        assert_eq!(fd.take(), Ok(None), "nothing pending yet");
        // SAFETY: `pthread_self` has no preconditions.
        let me = unsafe { libc::pthread_self() };
        // SAFETY: the signal goes to this thread, which blocks it.
        unsafe { libc::pthread_kill(me, libc::SIGUSR2) };
        assert_eq!(fd.take(), Ok(Some(libc::SIGUSR2)));
        assert_eq!(fd.take(), Ok(None), "taken once");
        drop(fd);
        assert!(!blocked(libc::SIGUSR2), "unblocked again");
    }

    #[test]
    fn signals_that_cannot_be_blocked_are_refused() {
        assert_eq!(SignalFd::new(&[]).err(), Some(Errno::EINVAL));
        assert_eq!(SignalFd::new(&[libc::SIGKILL]).err(), Some(Errno::EINVAL));
        assert_eq!(SignalFd::new(&[999]).err(), Some(Errno::EINVAL));
    }
}
