//! A forked child's copy of a `Thread` has no thread behind it (only the forking thread is
//! copied) and shares the mailbox's eventfd with the parent: joining or dropping it must
//! neither wait for a thread that does not exist nor signal the parent's.
//!
//! One test in its own binary, so the fork happens with no other test threads running (the
//! `Thread`'s own thread is the only other one, and the child touches nothing it could lock).

use std::sync::atomic::{AtomicU32, Ordering};

use xuring_core::{Context, Mail, Ring, RingError, RunCondition, Thread};

static HANDLED: AtomicU32 = AtomicU32::new(0);

fn handled(_ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[test]
fn a_forked_childs_thread_is_refused_and_the_parents_runs_on() {
    let mut ring = Ring::init(8).expect("ring");
    let thread = Thread::spawn(&mut ring, 8).expect("spawn");

    // SAFETY: the child calls only `Thread::join` on its copy, which in a forked child reads
    // an atomic and forgets its handle (no allocation, no lock), then leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let code = match thread.join() {
            Err(RingError::Forked) => 0,
            _ => 1,
        };
        std::mem::forget(ring);
        // SAFETY: `_exit` ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a live int for `waitpid` to fill.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status), "the child exited normally");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "its join was refused with Forked"
    );

    // The parent's thread is untouched: it handles a message, then stops when joined.
    thread.send(&mut ring, handled, 1, Context::default());
    ring.run(RunCondition::UntilDone).expect("run");
    thread.join().expect("join in the parent");
    assert_eq!(HANDLED.load(Ordering::SeqCst), 1);
}
