//! A ring belongs to the process that created it: a forked child's copy refuses to run and,
//! when dropped, does not cancel or reap the parent's operations.
//!
//! One test in its own binary, so the fork happens with no other test threads running.

use std::cell::Cell;
use std::time::Duration;

use xuring_core::{Context, Offset, OpResult, Ring, RingError, RunCondition, Task};

mod common;
use common::{pipe, write_all};

thread_local!(static GOT: Cell<Option<OpResult>> = const { Cell::new(None) });

fn on_read(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    GOT.with(|g| g.set(task.result));
    Ok(())
}

#[test]
fn forked_child_leaves_the_parents_ring_alone() {
    let (r, w) = pipe();
    let mut ring = Ring::init(8).expect("ring");
    ring.read(
        r.raw(),
        vec![0u8; 16],
        Offset::File,
        Context {
            cb: on_read,
            ..Context::default()
        },
    );
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 1);

    // SAFETY: the child only runs code that does not take locks another thread could hold
    // (no allocation on its path: `run` fails before doing anything, and the drop of a
    // forked ring frees memory only after the checks below), then leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let code = match ring.run(RunCondition::UntilDone) {
            Err(RingError::Forked) => 0,
            _ => 1,
        };
        drop(ring);
        // SAFETY: `_exit` ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a live int for `waitpid` to fill.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status), "child exited normally");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child's run was refused with Forked"
    );

    // The parent's read is still pending: the child's drop did not cancel it.
    std::thread::sleep(Duration::from_millis(10));
    ring.run(RunCondition::NoWait).expect("poll");
    assert_eq!(
        GOT.with(Cell::get),
        None,
        "still in flight after the child is gone"
    );
    write_all(w.raw(), b"from parent");
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(GOT.with(Cell::get), Some(OpResult::Read(Ok(11))));
}
