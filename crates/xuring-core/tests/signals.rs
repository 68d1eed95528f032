//! `EINTR` from `io_uring_enter` is retried: a storm of signals (1 kHz, handler installed
//! without `SA_RESTART`) aimed at the ring's thread during a mixed workload loses nothing.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use xuring_core::{Context, Offset, OpResult, Ring, RingError, RunCondition, Task, Timespec};

mod common;
use common::pipe;

extern "C" fn on_signal(_: libc::c_int) {}

thread_local!(static DONE: Cell<u32> = const { Cell::new(0) });

fn count(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert!(
        matches!(
            task.result,
            Some(OpResult::Timer(Ok(())) | OpResult::Read(Ok(_)) | OpResult::Write(Ok(_)))
        ),
        "{:?} ({:?})",
        task.result,
        ring.stats()
    );
    DONE.with(|d| d.set(d.get() + 1));
    Ok(())
}

#[test]
fn signal_storm_loses_nothing() {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as *const () as usize;
    action.sa_flags = 0; // no SA_RESTART: blocking syscalls fail with EINTR
    let mut old: libc::sigaction = {
        // SAFETY: as above.
        unsafe { std::mem::zeroed() }
    };
    // SAFETY: `action` and `old` are live sigaction structs; the handler is an extern "C"
    // function that does nothing (async-signal-safe).
    let installed = unsafe { libc::sigaction(libc::SIGUSR1, &action, &mut old) };
    assert_eq!(installed, 0);

    // SAFETY: `pthread_self` has no preconditions.
    let target = unsafe { libc::pthread_self() };
    let stop = Arc::new(AtomicBool::new(false));
    let signals = Arc::new(AtomicU32::new(0));
    let storm = {
        let stop = Arc::clone(&stop);
        let signals = Arc::clone(&signals);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: `target` is the test thread, alive until `stop` is set and this
                // thread is joined.
                unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
                signals.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let mut ring = Ring::init(16).expect("ring");
    let pipes: Vec<_> = (0..8).map(|_| pipe()).collect();
    let ctx = || Context {
        cb: count,
        ..Context::default()
    };
    let mut expected = 0;
    // At least 25 rounds, and on until the storm has really hit the run loop (the storm
    // thread may get the CPU late on a loaded machine): bounded, so a storm that never
    // arrives fails below instead of hanging.
    for round in 0..20_000 {
        if round >= 25 && signals.load(Ordering::Relaxed) > 20 && ring.stats().eintr_retries > 0 {
            break;
        }
        for i in 0..20 {
            ring.timer(
                Timespec {
                    sec: 0,
                    nsec: 500_000 + 100_000 * i,
                },
                ctx(),
            );
            expected += 1;
        }
        for (r, w) in &pipes {
            ring.read(r.raw(), vec![0u8; 8], Offset::File, ctx());
            ring.write(w.raw(), b"12345678", Offset::File, ctx());
            expected += 2;
        }
        ring.run(RunCondition::UntilDone)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    stop.store(true, Ordering::Relaxed);
    storm.join().expect("storm thread");
    let sent = signals.load(Ordering::Relaxed);
    // SAFETY: restores the previous disposition saved above.
    unsafe { libc::sigaction(libc::SIGUSR1, &old, std::ptr::null_mut()) };

    assert_eq!(
        DONE.with(Cell::get),
        expected,
        "every callback ran exactly once"
    );
    let retries = ring.stats().eintr_retries;
    assert!(sent > 20, "the storm ran ({sent} signals)");
    assert!(
        retries > 0,
        "some enters were interrupted and retried ({sent} signals sent)"
    );
}
