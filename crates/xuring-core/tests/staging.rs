//! Ops written into the SQ when they are queued on the real kernel: until `run` enters, they
//! count as queued, and a cancel, `cancel_all` or teardown takes them back before the kernel
//! ever sees them.
//!
//! Whether the kernel saw a read is checked through its pipe: a read that reached the kernel
//! would consume the bytes written afterwards (or stay pending on them); a retracted one
//! leaves them for a plain `read(2)`.

use std::cell::RefCell;

use xuring_core::{
    Context, Errno, Offset, OpResult, Ring, RingError, RingStats, RunCondition, Task, TaskHandle,
};

mod common;
use common::{pipe, write_all};

thread_local! {
    static RESULTS: RefCell<Vec<(u16, OpResult)>> = const { RefCell::new(Vec::new()) };
}

fn record(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let result = task.result.expect("a result before the callback");
    RESULTS.with(|r| r.borrow_mut().push((task.msg(), result)));
    Ok(())
}

fn ctx(msg: u16) -> Context {
    Context {
        cb: record,
        msg,
        userdata: None,
    }
}

fn take_results() -> Vec<(u16, OpResult)> {
    RESULTS.with(|r| core::mem::take(&mut *r.borrow_mut()))
}

/// Bytes written to the pipe after the ring is done come back whole from `read(2)`: no read
/// of the ring consumed them.
fn assert_pipe_untouched(read: i32, write: i32) {
    write_all(write, b"still here");
    let mut back = [0u8; 32];
    // SAFETY: `back` is a live, writable buffer of its length.
    let n = unsafe { libc::read(read, back.as_mut_ptr().cast(), back.len()) };
    assert_eq!(n, 10, "the bytes are still in the pipe");
    assert_eq!(&back[..10], b"still here");
}

fn assert_no_stray_completions(stats: RingStats) {
    assert_eq!(stats.stale_completions, 0, "{stats:?}");
    assert_eq!(stats.foreign_completions, 0, "{stats:?}");
}

#[test]
fn a_queued_op_counts_as_queued_until_run_submits_it() {
    let mut ring = Ring::builder(8).build().expect("ring");
    for i in 0..3 {
        ring.noop(ctx(i));
    }
    let enters = ring.stats().enters;
    assert_eq!(ring.queued(), 3);
    assert_eq!(ring.in_flight(), 0);
    assert_eq!(ring.stats().enters, enters, "queueing does not enter");
    ring.run(RunCondition::UntilDone).expect("run");
    assert!(ring.stats().enters > enters);
    assert_eq!(ring.queued(), 0);
    assert_eq!(ring.stats().submitted, 3);
    let results = take_results();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|(_, r)| *r == OpResult::Noop(Ok(()))));
    assert_no_stray_completions(ring.stats());
}

#[test]
fn cancelling_a_staged_read_completes_it_locally_and_the_kernel_never_sees_it() {
    let (read, write) = pipe();
    let mut ring = Ring::builder(8).build().expect("ring");
    let before = ring.noop(ctx(1));
    let target: TaskHandle = ring.read(read.raw(), vec![0u8; 64], Offset::File, ctx(2));
    let after = ring.noop(ctx(3));
    assert_eq!(ring.queued(), 3);
    target.cancel(&mut ring, ctx(4));
    assert_eq!(
        ring.queued(),
        2,
        "the target left the queue, its cancel never joined it"
    );
    ring.run(RunCondition::UntilDone).expect("run");
    let mut results = take_results();
    results.sort_by_key(|(msg, _)| *msg);
    assert_eq!(
        results,
        [
            (1, OpResult::Noop(Ok(()))),
            (2, OpResult::Read(Err(Errno::ECANCELED))),
            (3, OpResult::Noop(Ok(()))),
            (4, OpResult::Cancel(Ok(()))),
        ]
    );
    let stats = ring.stats();
    assert_eq!(stats.submitted, 2, "only the two noops reached the kernel");
    assert_eq!(stats.callbacks, 4);
    assert_no_stray_completions(stats);
    assert_eq!(ring.in_flight(), 0);
    let _ = (before, after);
    // More work on the same ring: nothing left over from the retracted read shows up.
    ring.noop(ctx(5));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(take_results(), [(5, OpResult::Noop(Ok(())))]);
    assert_no_stray_completions(ring.stats());
    assert_pipe_untouched(read.raw(), write.raw());
}

#[test]
fn cancel_all_takes_staged_reads_back() {
    let (read, write) = pipe();
    let mut ring = Ring::builder(8).build().expect("ring");
    for i in 0..3 {
        ring.read(read.raw(), vec![0u8; 16], Offset::File, ctx(i));
    }
    ring.cancel_all(ctx(10));
    ring.run(RunCondition::UntilDone).expect("run");
    let mut results = take_results();
    results.sort_by_key(|(msg, _)| *msg);
    assert_eq!(
        results,
        [
            (0, OpResult::Read(Err(Errno::ECANCELED))),
            (1, OpResult::Read(Err(Errno::ECANCELED))),
            (2, OpResult::Read(Err(Errno::ECANCELED))),
            (10, OpResult::CancelAll(Ok(3))),
        ]
    );
    assert_no_stray_completions(ring.stats());
    assert_eq!(ring.in_flight(), 0);
    assert_pipe_untouched(read.raw(), write.raw());
}

#[test]
fn dropping_a_ring_with_staged_ops_retracts_them() {
    let (read, write) = pipe();
    let leaked = xuring_core::leaked_tasks();
    {
        let mut ring = Ring::builder(8).build().expect("ring");
        for i in 0..4 {
            ring.read(read.raw(), vec![0u8; 16], Offset::File, ctx(i));
        }
        ring.timer(
            xuring_core::Timespec::from_duration(std::time::Duration::from_secs(3600)),
            ctx(9),
        );
        assert_eq!(ring.queued(), 5);
        // Dropped before any `run`: the reads' buffers and the timer's timespec are freed
        // with the ring, and the kernel never had them.
    }
    assert!(take_results().is_empty(), "no callback runs at teardown");
    assert_eq!(
        xuring_core::leaked_tasks(),
        leaked,
        "nothing was left to the kernel"
    );
    assert_pipe_untouched(read.raw(), write.raw());
}

#[test]
fn teardown_retracts_staged_ops_while_others_are_in_flight() {
    let (read, write) = pipe();
    let leaked = xuring_core::leaked_tasks();
    {
        let mut ring = Ring::builder(8).build().expect("ring");
        // In flight: a read the kernel holds (nothing to read yet).
        ring.read(read.raw(), vec![0u8; 16], Offset::File, ctx(0));
        ring.run(RunCondition::NoWait).expect("run");
        assert_eq!(ring.in_flight(), 1);
        // Staged behind it.
        ring.read(read.raw(), vec![0u8; 16], Offset::File, ctx(1));
        ring.noop(ctx(2));
        assert_eq!(ring.queued(), 2);
    }
    assert!(take_results().is_empty());
    assert_eq!(xuring_core::leaked_tasks(), leaked);
    assert_pipe_untouched(read.raw(), write.raw());
}

fn fan_out(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    record(ring, task)?;
    if task.msg() == 0 {
        // More than the SQ holds: the first few fill it (staged), the rest are queued while
        // it is full and wait in the ring's own queue; all of them count as queued.
        for i in 1..=20 {
            ring.noop(Context {
                cb: fan_out,
                msg: i,
                userdata: None,
            });
        }
        assert_eq!(ring.queued(), 20);
    }
    Ok(())
}

#[test]
fn a_callback_queueing_more_than_the_sq_holds() {
    let mut ring = Ring::builder(4).build().expect("ring");
    ring.noop(Context {
        cb: fan_out,
        msg: 0,
        userdata: None,
    });
    for i in 100..103 {
        ring.noop(ctx(i));
    }
    ring.run(RunCondition::UntilDone).expect("run");
    let results = take_results();
    let mut msgs: Vec<u16> = results.iter().map(|(m, _)| *m).collect();
    msgs.sort_unstable();
    let expected: Vec<u16> = (0..=20).chain(100..103).collect();
    assert_eq!(msgs, expected);
    assert!(results.iter().all(|(_, r)| *r == OpResult::Noop(Ok(()))));
    let stats = ring.stats();
    assert_eq!(stats.submitted, 24);
    assert_eq!(stats.callbacks, 24);
    assert_no_stray_completions(stats);
    // The callback's noops ran in the order they were queued (a NOP completes inline).
    let fanned: Vec<u16> = results
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| (1..=20).contains(m))
        .collect();
    assert_eq!(fanned, (1..=20).collect::<Vec<u16>>());
}

#[test]
fn cancelling_staged_ops_in_the_middle_keeps_the_others_in_order() {
    let mut ring = Ring::builder(8).build().expect("ring");
    let handles: Vec<TaskHandle> = (0..8).map(|i| ring.noop(ctx(i))).collect();
    // The SQ is full: these wait in the ring's own queue.
    for i in 8..12 {
        ring.noop(ctx(i));
    }
    for i in [2, 5] {
        handles[i].cancel(&mut ring, ctx(100 + i as u16));
    }
    ring.run(RunCondition::UntilDone).expect("run");
    let results = take_results();
    let noops: Vec<u16> = results
        .iter()
        .filter(|(_, r)| *r == OpResult::Noop(Ok(())))
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(noops, [0, 1, 3, 4, 6, 7, 8, 9, 10, 11]);
    let cancelled: Vec<u16> = results
        .iter()
        .filter(|(_, r)| *r == OpResult::Noop(Err(Errno::ECANCELED)))
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(cancelled, [2, 5]);
    assert_eq!(ring.stats().submitted, 10);
    assert_no_stray_completions(ring.stats());
}
