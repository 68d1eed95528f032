//! A child forked inside a callback queues an op while the parent has one in the SQ that no
//! `enter` has submitted yet. The SQ is shared (`MAP_SHARED`): had the child written its op
//! there, it would overwrite the parent's, and the parent's next `enter` would run the
//! child's read in the parent. The child's ring writes nothing: the parent's read is the one
//! that completes, and the child's target is untouched.
//!
//! One test in its own binary, so the fork happens with no other test threads running.

mod common;

use std::cell::Cell;
use std::time::Duration;

use xuring_core::{Context, Offset, OpResult, Ring, RingError, RunCondition, Task};

thread_local! {
    static IS_CHILD: Cell<bool> = const { Cell::new(false) };
    /// Parent's read end, child's target read end, and the go-ahead pipe (read, write).
    static FDS: Cell<[i32; 4]> = const { Cell::new([-1; 4]) };
    static GOT: Cell<Option<OpResult>> = const { Cell::new(None) };
    static CHILD_STATUS: Cell<Option<i32>> = const { Cell::new(None) };
}

fn on_read(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    GOT.with(|g| g.set(task.result));
    Ok(())
}

fn read_ctx() -> Context {
    Context {
        cb: on_read,
        ..Context::default()
    }
}

fn fork_here(ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    let [parent_r, child_r, go_r, go_w] = FDS.with(Cell::get);
    // SAFETY: the test binary has one test and the harness thread is idle in a channel
    // receive: no lock is held by another thread, so the child may allocate.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        IS_CHILD.with(|c| c.set(true));
        // Wait until the parent's read sits in the SQ, then queue one of our own.
        let mut b = [0u8; 1];
        // SAFETY: `b` is a live, writable byte.
        unsafe { libc::read(go_r, b.as_mut_ptr().cast(), 1) };
        ring.read(child_r, vec![0u8; 16], Offset::File, read_ctx());
        // The run goes on in the child after this callback: it must stop there.
        return Ok(());
    }
    // Parent: a read pushed into the SQ (not submitted before this callback returns).
    ring.read(parent_r, vec![0u8; 16], Offset::File, read_ctx());
    common::write_all(go_w, b"g");
    let status = common::wait_child(pid, Duration::from_secs(10));
    CHILD_STATUS.with(|c| c.set(status));
    Ok(())
}

#[test]
fn a_forked_child_writes_nothing_into_the_parents_sq() {
    let (parent_r, parent_w) = common::pipe();
    let (child_r, child_w) = common::pipe();
    let (go_r, go_w) = common::pipe();
    FDS.with(|c| c.set([parent_r.raw(), child_r.raw(), go_r.raw(), go_w.raw()]));
    common::write_all(child_w.raw(), b"child target");
    let mut ring = Ring::builder(8).build().expect("ring");
    ring.noop(Context {
        cb: fork_here,
        ..Context::default()
    });
    let run = ring.run(RunCondition::Once);
    if IS_CHILD.with(Cell::get) {
        let mut code = if matches!(run, Err(RingError::Forked)) {
            0
        } else {
            1
        };
        // Outside the run, too, the child's ring refuses to drive the shared queues.
        if !matches!(ring.run(RunCondition::NoWait), Err(RingError::Forked)) {
            code |= 2;
        }
        // SAFETY: leave without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    run.expect("the parent's run");
    assert_eq!(
        CHILD_STATUS.with(Cell::get),
        Some(0),
        "the child's runs stopped with Forked"
    );
    common::write_all(parent_w.raw(), b"from parent");
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(GOT.with(Cell::get), Some(OpResult::Read(Ok(11))));
    assert_eq!(ring.stats().stale_completions, 0);
    assert_eq!(ring.stats().foreign_completions, 0);
    assert!(ring.is_idle());
    // The child's target still holds its bytes.
    let mut back = [0u8; 32];
    // SAFETY: `back` is a live, writable buffer of its length.
    let n = unsafe { libc::read(child_r.raw(), back.as_mut_ptr().cast(), back.len()) };
    assert_eq!(n, 12);
    assert_eq!(&back[..12], b"child target");
}
