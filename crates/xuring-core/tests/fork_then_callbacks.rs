//! A callback that forks, with more completions behind it: the child's copy of the run stops
//! right after that callback (`RingError::Forked`), so every other callback runs once, in the
//! parent only.
//!
//! One test in its own binary, so the fork happens with no other test threads running.

mod common;

use std::cell::Cell;

use xuring_core::{Context, Ring, RingError, RunCondition, Task};

thread_local! {
    static IS_CHILD: Cell<bool> = const { Cell::new(false) };
    static OUT: Cell<i32> = const { Cell::new(-1) };
}

fn fork_here(_ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    // SAFETY: the test binary has one test and the harness thread is idle in a channel
    // receive: no lock is held by another thread, so the child may go on.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        IS_CHILD.with(|c| c.set(true));
    }
    Ok(())
}

/// Writes who ran it: `P` in the parent, `C` in a child.
fn side_effect(_ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    let who: &[u8] = if IS_CHILD.with(Cell::get) { b"C" } else { b"P" };
    common::write_all(OUT.with(Cell::get), who);
    Ok(())
}

#[test]
fn the_child_runs_none_of_the_parents_other_callbacks() {
    let (r, w) = common::pipe();
    OUT.with(|c| c.set(w.raw()));
    let mut ring = Ring::builder(8).build().expect("ring");
    ring.noop(Context {
        cb: fork_here,
        ..Context::default()
    });
    for _ in 0..3 {
        ring.noop(Context {
            cb: side_effect,
            ..Context::default()
        });
    }
    let run = ring.run(RunCondition::UntilDone);
    if IS_CHILD.with(Cell::get) {
        let code = if matches!(run, Err(RingError::Forked)) {
            0
        } else {
            1
        };
        // SAFETY: leave without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    run.expect("the parent's run");
    let mut status = 0;
    // SAFETY: `status` is a live int; the child exits right after its run.
    let waited = unsafe { libc::wait(&mut status) };
    assert!(waited > 0);
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child's run stopped with Forked"
    );
    drop(w);
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        // SAFETY: `buf` is a live, writable buffer of its length.
        let n = unsafe { libc::read(r.raw(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        got.extend_from_slice(&buf[..n as usize]);
    }
    assert_eq!(got, b"PPP", "each callback ran once, in the parent");
}
