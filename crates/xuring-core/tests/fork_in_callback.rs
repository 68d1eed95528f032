//! A callback that forks leaves the child inside the parent's run. The ring's SQ and CQ are
//! shared with the parent (`MAP_SHARED`), so the child's copy of the run must stop before it
//! touches them (`RingError::Forked`), or it reaps the parent's completions.
//!
//! One test in its own binary, so the fork happens with no other test threads running.

mod common;

use std::cell::Cell;
use std::time::Duration;

use xuring_core::{Context, KernelLevel, Offset, OpResult, Ring, RingError, RunCondition, Task};

thread_local! {
    static GOT: Cell<Option<OpResult>> = const { Cell::new(None) };
    static IS_CHILD: Cell<bool> = const { Cell::new(false) };
    static WRITE_FD: Cell<i32> = const { Cell::new(-1) };
    static CHILD_STATUS: Cell<Option<i32>> = const { Cell::new(None) };
}

fn on_read(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    GOT.with(|g| g.set(task.result));
    Ok(())
}

fn fork_here(_ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    // SAFETY: the test binary has one test and the harness thread is idle in a channel
    // receive: no lock is held by another thread, so the child may allocate.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        IS_CHILD.with(|c| c.set(true));
        // Just return: the parent's run goes on in the child.
        return Ok(());
    }
    // Parent: make the read complete, then wait (bounded) for the child.
    common::write_all(WRITE_FD.with(Cell::get), b"from parent");
    let status = common::wait_child(pid, Duration::from_secs(3));
    CHILD_STATUS.with(|c| c.set(status));
    Ok(())
}

#[test]
fn a_fork_inside_a_callback_stops_the_childs_copy_of_the_run() {
    let (r, w) = common::pipe();
    WRITE_FD.with(|c| c.set(w.raw()));
    let mut ring = Ring::builder(8)
        .kernel_level(KernelLevel::V5_6)
        .build()
        .expect("ring");
    ring.read(
        r.raw(),
        vec![0u8; 16],
        Offset::File,
        Context {
            cb: on_read,
            ..Context::default()
        },
    );
    ring.run(RunCondition::NoWait).expect("submit the read");
    ring.noop(Context {
        cb: fork_here,
        ..Context::default()
    });
    let run = ring.run(RunCondition::For(Duration::from_secs(2)));
    if IS_CHILD.with(Cell::get) {
        // The child got here by finishing the parent's run.
        let code = match (GOT.with(Cell::get), &run) {
            (Some(OpResult::Read(Ok(_))), _) => 42,
            (None, Err(RingError::Forked)) => 1,
            _ => 2,
        };
        // SAFETY: leave without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let status = CHILD_STATUS.with(Cell::get);
    assert!(run.is_ok(), "{run:?}");
    // The child's copy stopped with `Forked` before reaping anything (exit 1, not 42), and the
    // parent's read completed in the parent.
    assert_eq!(
        status,
        Some(1),
        "the child did not reap the parent's completion"
    );
    assert!(
        matches!(GOT.with(Cell::get), Some(OpResult::Read(Ok(11)))),
        "{:?}",
        GOT.with(Cell::get)
    );
    // Only the deadline run's own wake timer (below 5.11) may be left in flight.
    assert!(ring.is_idle());
}
