//! `signal::stop_on`: a signal becomes a callback of the ring, once, and the signal mask is
//! restored afterwards. Signals are sent to the test's own thread (`pthread_kill`), which is
//! the one that blocks them, so no other test thread can receive them.

use std::cell::Cell;

use xuring_core::{Errno, Ring, RingError, RunCondition};
use xuring_std::{Done, Error, Then, signal};

thread_local!(static GOT: Cell<Option<Result<i32, Error>>> = const { Cell::new(None) });

fn on_signal(_ring: &mut Ring, done: Done<Result<i32, Error>>) -> Result<(), RingError> {
    GOT.with(|g| g.set(Some(done.result)));
    Ok(())
}

fn blocked(signal: i32) -> bool {
    // SAFETY: an all-zero sigset_t is a valid value for `pthread_sigmask` to overwrite.
    let mut current: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new set only reads the mask into `current`.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current) };
    // SAFETY: `current` was filled above.
    unsafe { libc::sigismember(&current, signal) == 1 }
}

#[test]
fn the_first_signal_is_delivered_as_a_callback_and_the_mask_restored() {
    GOT.with(|g| g.set(None));
    let mut ring = Ring::init(8).expect("ring");
    let handle = signal::stop_on(
        &mut ring,
        &[libc::SIGUSR2, libc::SIGWINCH],
        Then::new(on_signal),
    );
    ring.run(RunCondition::NoWait).expect("run");
    assert!(GOT.with(Cell::take).is_none(), "no signal yet");
    assert!(handle.is_active());
    assert!(blocked(libc::SIGWINCH) && blocked(libc::SIGUSR2));
    // SAFETY: `pthread_self` has no preconditions.
    let me = unsafe { libc::pthread_self() };
    // SAFETY: sent to this thread, which blocks the signal.
    unsafe { libc::pthread_kill(me, libc::SIGWINCH) };
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(GOT.with(Cell::take), Some(Ok(libc::SIGWINCH)));
    assert!(
        !blocked(libc::SIGWINCH) && !blocked(libc::SIGUSR2),
        "unblocked after"
    );
    assert_eq!(xuring_std::jobs_in_flight(), 0);
}

#[test]
fn a_cancelled_wait_reports_ecanceled_and_unblocks() {
    GOT.with(|g| g.set(None));
    let mut ring = Ring::init(8).expect("ring");
    let handle = signal::stop_on(&mut ring, &[libc::SIGUSR2], Then::new(on_signal));
    ring.run(RunCondition::NoWait).expect("run");
    handle.cancel(&mut ring);
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(GOT.with(Cell::take), Some(Err(Error::Os(Errno::ECANCELED))));
    assert!(!blocked(libc::SIGUSR2));
}

#[test]
fn signals_that_cannot_be_blocked_are_an_error_not_a_hang() {
    GOT.with(|g| g.set(None));
    let mut ring = Ring::init(8).expect("ring");
    signal::stop_on(&mut ring, &[libc::SIGKILL], Then::new(on_signal));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(GOT.with(Cell::take), Some(Err(Error::Os(Errno::EINVAL))));
}
