//! What safe code can do to a ring from inside its own callbacks, and to its backend through
//! `backend_mut`, without reaching freed memory or desynchronising the ring (docs/reliability.md,
//! "What the safe API guarantees"). Every test here runs under Miri, which is what catches a
//! use-after-free; natively they check the behaviour.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use xuring_core::{
    Context, KernelLevel, Offset, OpResult, Ring, RingError, RunCondition, Task, TaskId,
};
use xuring_mock::{Mock, MockBuilder, MockRingExt, OpKind, Reply};

type MockRing = Ring<Mock>;

const PIPE_FD: i32 = 4;

thread_local! {
    /// A second ring for callbacks to swap with.
    static SPARE: RefCell<Option<MockRing>> = const { RefCell::new(None) };
    /// What callbacks saw.
    static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

/// Runs `ring` until done, which must end with `RingError::Replaced`: a callback replaced it.
fn assert_replaced(ring: &mut MockRing) {
    let run = ring.run(RunCondition::UntilDone);
    assert!(matches!(run, Err(RingError::Replaced)), "{run:?}");
}

fn reset() {
    SPARE.with(|s| s.borrow_mut().take());
    SEEN.with(|s| s.borrow_mut().clear());
    CALLS.with(|c| c.set(0));
}

fn seen() -> Vec<String> {
    SEEN.with(|s| s.borrow().clone())
}

fn note(what: String) {
    SEEN.with(|s| s.borrow_mut().push(what));
}

fn count(_ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
    CALLS.with(|c| c.set(c.get() + 1));
    Ok(())
}

fn ctx(cb: fn(&mut MockRing, &Task<Mock>) -> Result<(), RingError>) -> Context<Mock> {
    Context {
        cb,
        ..Context::default()
    }
}

/// A ring with `noops` noops queued after the one whose callback is `first`, and a read of an
/// empty pipe in flight behind them (its buffer is what a freed ring would lose).
fn staged(first: fn(&mut MockRing, &Task<Mock>) -> Result<(), RingError>, noops: u32) -> MockRing {
    let mut ring = Ring::init_mock();
    ring.backend_mut().pipe(PIPE_FD);
    ring.read(PIPE_FD, vec![0u8; 64], Offset::File, ctx(count));
    ring.noop(ctx(first));
    for _ in 0..noops {
        ring.noop(ctx(count));
    }
    ring
}

fn assign(ring: &mut MockRing, task: &Task<Mock>) -> Result<(), RingError> {
    *ring = Ring::init_mock();
    // The task belongs to the ring just dropped: it must still be readable.
    note(format!("{:?} {:?}", task.result, task.state()));
    ring.noop(ctx(count));
    Ok(())
}

#[test]
fn assigning_the_ring_in_its_callback_stops_that_run_and_frees_nothing_under_it() {
    reset();
    let mut ring = staged(assign, 3);
    assert_replaced(&mut ring);
    assert_eq!(seen(), ["Some(Noop(Ok(()))) Running"]);
    assert_eq!(
        CALLS.with(Cell::get),
        0,
        "the old ring's other callbacks never ran"
    );
    // The handle now holds the new ring, with the noop the callback queued on it.
    assert_eq!(ring.queued(), 1);
    ring.run(RunCondition::UntilDone)
        .expect("the new ring runs");
    assert_eq!(CALLS.with(Cell::get), 1);
    assert!(ring.is_idle());
}

fn swap_out(ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
    SPARE.with(|s| {
        let mut spare = s.borrow_mut();
        let other = spare.as_mut().expect("a spare ring");
        core::mem::swap(ring, other);
    });
    ring.noop(ctx(count));
    Ok(())
}

#[test]
fn swapping_the_ring_in_its_callback_leaves_both_rings_whole() {
    reset();
    SPARE.with(|s| *s.borrow_mut() = Some(Ring::init_mock()));
    let mut ring = staged(swap_out, 3);
    assert_replaced(&mut ring);
    assert_eq!(CALLS.with(Cell::get), 0);
    // `ring` is now the spare, holding the callback's noop.
    ring.run(RunCondition::UntilDone).expect("the spare runs");
    assert_eq!(CALLS.with(Cell::get), 1);
    // The original, now in the slot, still has its three noops and the read, and runs on.
    let mut original = SPARE.with(|s| s.borrow_mut().take()).expect("the original");
    assert_eq!(original.ready() + original.queued(), 3);
    assert_eq!(original.in_flight(), 1, "the pipe read is still in flight");
    original.backend_mut().feed(PIPE_FD, b"late");
    original
        .run(RunCondition::UntilDone)
        .expect("the original runs");
    assert_eq!(CALLS.with(Cell::get), 5, "three noops and the read");
    assert!(original.is_idle());
    xuring_mock::check_invariants(&original);
}

fn swap_and_back(ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
    let other = core::mem::replace(ring, Ring::init_mock());
    let _unused = core::mem::replace(ring, other);
    Ok(())
}

#[test]
fn a_ring_swapped_away_and_back_keeps_running() {
    reset();
    let mut ring = staged(swap_and_back, 3);
    ring.backend_mut().feed(PIPE_FD, b"x");
    ring.run(RunCondition::UntilDone)
        .expect("the same ring again");
    assert_eq!(CALLS.with(Cell::get), 4);
    xuring_mock::check_invariants(&ring);
}

fn drop_it(ring: &mut MockRing, task: &Task<Mock>) -> Result<(), RingError> {
    drop(core::mem::replace(ring, Ring::init_mock()));
    note(format!("{:?}", task.result));
    Ok(())
}

#[test]
fn dropping_the_ring_in_its_callback_tears_it_down_after_the_callback() {
    reset();
    let mut ring = staged(drop_it, 2);
    assert_replaced(&mut ring);
    assert_eq!(seen(), ["Some(Noop(Ok(())))"]);
    assert!(ring.is_idle(), "the replacement is a fresh ring");
}

fn replace_then_panic(ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
    *ring = Ring::init_mock();
    ring.noop(ctx(count));
    panic!("after replacing the ring");
}

#[test]
fn a_callback_that_replaces_its_ring_and_panics_leaves_both_sound() {
    reset();
    let mut ring = staged(replace_then_panic, 2);
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ring.run(RunCondition::UntilDone)
    }));
    assert!(unwound.is_err());
    ring.run(RunCondition::UntilDone)
        .expect("the new ring runs");
    assert_eq!(CALLS.with(Cell::get), 1);
}

fn run_the_swapped_out_ring(ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
    let mut original = core::mem::replace(ring, Ring::init_mock());
    // The run of `original` is on the stack: running it again is re-entry.
    let again = original.run(RunCondition::NoWait);
    note(format!("{again:?}"));
    // Running the replacement from here is a run of another ring: allowed.
    ring.noop(ctx(count));
    ring.run(RunCondition::UntilDone)?;
    SPARE.with(|s| *s.borrow_mut() = Some(original));
    Ok(())
}

#[test]
fn a_swapped_out_ring_refuses_reentry_and_its_replacement_runs_nested() {
    reset();
    let mut ring = staged(run_the_swapped_out_ring, 1);
    assert_replaced(&mut ring);
    assert_eq!(seen(), ["Err(Reentrant)"]);
    assert_eq!(CALLS.with(Cell::get), 1, "the nested run called back");
    let mut original = SPARE.with(|s| s.borrow_mut().take()).expect("the original");
    original.backend_mut().close(PIPE_FD);
    original
        .run(RunCondition::UntilDone)
        .expect("the original runs on");
    assert_eq!(CALLS.with(Cell::get), 3, "its noop and its read");
}

#[test]
#[cfg_attr(miri, ignore = "leaks the ring on purpose")]
fn a_ring_forgotten_in_its_callback_is_leaked_not_freed() {
    fn forget(ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
        core::mem::forget(core::mem::replace(ring, Ring::init_mock()));
        Ok(())
    }
    reset();
    let mut ring = staged(forget, 1);
    assert_replaced(&mut ring);
}

#[test]
fn steering_views_cannot_trade_backends() {
    // Swapping the views trades two borrows, not the mocks: each ring keeps its own.
    let mut a = Ring::init_mock();
    let mut b = Ring::init_mock();
    a.backend_mut()
        .handle(OpKind::Read, |_| Reply::Bytes(b"a".to_vec()));
    b.backend_mut()
        .handle(OpKind::Read, |_| Reply::Bytes(b"bb".to_vec()));
    {
        let (mut va, mut vb) = (a.backend_mut(), b.backend_mut());
        core::mem::swap(&mut va, &mut vb);
        va.handle(OpKind::Noop, |_| Reply::Default);
    }
    fn read_one(ring: &mut MockRing, task: &Task<Mock>) -> Result<(), RingError> {
        let n = match task.result {
            Some(OpResult::Read(Ok(n))) => n,
            ref other => panic!("{other:?}"),
        };
        note(format!("{n}"));
        let _ = ring;
        Ok(())
    }
    reset();
    a.read(3, vec![0u8; 8], Offset::File, ctx(read_one));
    b.read(3, vec![0u8; 8], Offset::File, ctx(read_one));
    a.run(RunCondition::UntilDone).expect("a");
    b.run(RunCondition::UntilDone).expect("b");
    assert_eq!(seen(), ["1", "2"]);
}

fn record(ring: &mut MockRing, task: &Task<Mock>) -> Result<(), RingError> {
    let _ = ring;
    note(format!("{} {:?}", task.msg(), task.result));
    Ok(())
}

#[test]
fn the_rings_wake_timer_is_not_the_users_to_cancel() {
    reset();
    let mut ring = MockBuilder::new().level(KernelLevel::V5_6).build_ring();
    // The noop completes before the deadline: the run returns and leaves its wake timer.
    ring.noop(ctx(count));
    ring.run(RunCondition::For(Duration::from_secs(1)))
        .expect("a deadline run");
    let wake = *ring
        .backend()
        .pending_wakes()
        .first()
        .expect("below 5.11 a deadline run leaves its wake timer in flight");
    let id = TaskId::from_u64(wake).expect("a task id");
    ring.cancel(
        id,
        Context {
            msg: 7,
            ..ctx(record)
        },
    );
    ring.run(RunCondition::NoWait).expect("run");
    assert_eq!(seen(), ["7 Some(Cancel(Err(ENOENT)))"]);
    assert_eq!(
        ring.backend().pending_wakes().len(),
        1,
        "the wake timer is untouched"
    );
    ring.cancel_all(Context {
        msg: 8,
        ..ctx(record)
    });
    ring.run(RunCondition::UntilDone).expect("drain");
    assert_eq!(
        seen()[1..],
        ["8 Some(CancelAll(Ok(0)))"],
        "cancel_all counts no background task"
    );
}

#[test]
fn a_second_cancel_all_leaves_the_first_alone() {
    reset();
    let mut ring = Ring::init_mock();
    for _ in 0..3 {
        ring.noop(ctx(count));
    }
    ring.cancel_all(Context {
        msg: 1,
        ..ctx(record)
    });
    ring.cancel_all(Context {
        msg: 2,
        ..ctx(record)
    });
    ring.run(RunCondition::UntilDone).expect("run");
    // The replays of user contexts report their local EFAULT; the rest is untouched.
    let mut seen: Vec<String> = seen()
        .into_iter()
        .filter(|s| !s.ends_with("Read(Err(EFAULT)))"))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        ["1 Some(CancelAll(Ok(3)))", "2 Some(CancelAll(Ok(0)))"],
        "the first counts the noops; the second finds nothing of the user's"
    );
    assert_eq!(
        CALLS.with(Cell::get),
        3,
        "the noops' callbacks ran, cancelled"
    );
}

#[test]
fn teardown_closes_descriptors_no_callback_received() {
    fn stop(_ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
        Err(RingError::callback("stop here"))
    }
    let mut ring = Ring::init_mock();
    let next = std::rc::Rc::new(Cell::new(100));
    for kind in [OpKind::Open, OpKind::Accept, OpKind::Socket] {
        let next = std::rc::Rc::clone(&next);
        ring.backend_mut().handle(kind, move |_req| {
            next.set(next.get() + 1);
            Reply::Complete(next.get())
        });
    }
    let closed = std::rc::Rc::new(RefCell::new(Vec::new()));
    let spy = std::rc::Rc::clone(&closed);
    ring.backend_mut()
        .on_undelivered_close(move |fd| spy.borrow_mut().push(fd));
    ring.noop(ctx(stop));
    for _ in 0..5 {
        ring.open(c"/nowhere", 0, 0, Context::default());
    }
    // The run stops at the noop's error, with the five opens completed but not called back.
    assert!(matches!(
        ring.run(RunCondition::UntilDone),
        Err(RingError::Callback(_))
    ));
    assert!(
        closed.borrow().is_empty(),
        "nothing is closed while the ring lives"
    );
    drop(ring);
    assert_eq!(*closed.borrow(), [101, 102, 103, 104, 105]);
}

#[test]
fn a_handle_from_another_ring_cancels_nothing_here() {
    reset();
    let mut a = Ring::init_mock();
    let mut b = Ring::init_mock();
    let done = a.noop(Context::default());
    a.run(RunCondition::UntilDone).expect("a");
    let timer = b.timer(
        xuring_core::Timespec { sec: 3600, nsec: 0 },
        Context {
            msg: 1,
            ..ctx(record)
        },
    );
    assert_eq!(timer.id(), done.id(), "ids repeat across rings");
    done.cancel(
        &mut b,
        Context {
            msg: 2,
            ..ctx(record)
        },
    );
    b.run(RunCondition::NoWait).expect("b");
    assert_eq!(seen(), ["2 Some(Cancel(Err(ENOENT)))"]);
    assert_eq!(b.in_flight(), 1, "b's timer runs on");
    timer.cancel(
        &mut b,
        Context {
            msg: 3,
            ..ctx(record)
        },
    );
    b.run(RunCondition::UntilDone).expect("b");
    assert_eq!(
        seen()[1..],
        ["1 Some(Timer(Err(ECANCELED)))", "3 Some(Cancel(Ok(())))"]
    );
}

#[test]
fn offsets_the_kernel_would_misread_are_refused_and_huge_mock_files_fail_cleanly() {
    reset();
    let mut ring = Ring::init_mock();
    for (msg, at) in [(1, u64::MAX), (2, 1 << 63)] {
        ring.write(
            3,
            vec![1u8; 4],
            Offset::At(at),
            Context { msg, ..ctx(record) },
        );
        ring.read(
            3,
            vec![0u8; 4],
            Offset::At(at),
            Context { msg, ..ctx(record) },
        );
    }
    ring.write(
        3,
        vec![1u8; 4],
        Offset::At(1 << 40),
        Context {
            msg: 3,
            ..ctx(record)
        },
    );
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(
        seen(),
        [
            "1 Some(Write(Err(EINVAL)))",
            "1 Some(Read(Err(EINVAL)))",
            "2 Some(Write(Err(EINVAL)))",
            "2 Some(Read(Err(EINVAL)))",
            "3 Some(Write(Err(EFBIG)))",
        ]
    );
    assert!(ring.is_idle());
}

thread_local! {
    static RAW: Cell<Option<core::ptr::NonNull<u8>>> = const { Cell::new(None) };
}

fn feed_drop_free(ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
    // Bytes the pending read would take at its ring's next enter.
    ring.backend_mut().feed(PIPE_FD, b"late data");
    *ring = Ring::init_mock();
    let ptr = RAW.with(Cell::take).expect("raw");
    // SAFETY: `read_raw`'s contract ends when the ring has been dropped, as it just was; the
    // box is freed once.
    drop(unsafe { Box::from_raw(ptr.as_ptr().cast::<[u8; 16]>()) });
    Ok(())
}

#[test]
fn a_ring_dropped_in_its_callback_lets_go_of_raw_memory_before_the_drop_returns() {
    reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().pipe(PIPE_FD);
    let ptr = core::ptr::NonNull::from(Box::leak(Box::new([0u8; 16]))).cast::<u8>();
    RAW.with(|r| r.set(Some(ptr)));
    // SAFETY: 16 bytes of the box, valid until the ring is dropped (the callback frees them
    // right after dropping it).
    unsafe { ring.read_raw(PIPE_FD, ptr, 16, Offset::File, ctx(count)) };
    ring.run(RunCondition::NoWait)
        .expect("the read is in flight");
    ring.noop(ctx(feed_drop_free));
    // Under Miri, a read completed into the freed box by the old ring's teardown would be a
    // use-after-free; the drop inside the callback cancels and reaps it first.
    assert_replaced(&mut ring);
}

#[test]
#[cfg_attr(miri, ignore = "needs the allocator to hand a freed chunk out again")]
fn a_handle_of_a_dropped_ring_cancels_nothing_in_a_new_one() {
    reset();
    let mut a = Ring::init_mock();
    a.backend_mut().pipe(PIPE_FD);
    let stale = a.read(PIPE_FD, vec![0u8; 8], Offset::File, ctx(count));
    drop(a);
    // New rings until one's first task sits where the dropped ring's did, with the same id.
    let mut others = Vec::new();
    let found = (0..64).find_map(|_| {
        let mut b = Ring::init_mock();
        b.backend_mut().pipe(PIPE_FD);
        let fresh = b.read(
            PIPE_FD,
            vec![0u8; 8],
            Offset::File,
            Context {
                msg: 1,
                ..ctx(record)
            },
        );
        if fresh.as_ptr() == stale.as_ptr() && fresh.id() == stale.id() {
            Some(b)
        } else {
            others.push(b);
            None
        }
    });
    let Some(mut b) = found else {
        return; // the allocator never reused the chunk: nothing to check in this run
    };
    b.run(RunCondition::NoWait).expect("b");
    stale.cancel(
        &mut b,
        Context {
            msg: 2,
            ..ctx(record)
        },
    );
    b.run(RunCondition::NoWait).expect("b");
    assert_eq!(seen(), ["2 Some(Cancel(Err(ENOENT)))"], "b's read runs on");
    b.backend_mut().close(PIPE_FD);
    b.run(RunCondition::UntilDone).expect("b");
}

#[test]
#[cfg_attr(miri, ignore = "leaks the pool on purpose, which Miri reports")]
fn a_panic_during_teardown_leaks_instead_of_freeing_linked_tasks() {
    fn stop(_ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
        Err(RingError::callback("stop here"))
    }
    let mut ring = Ring::init_mock();
    ring.backend_mut()
        .handle(OpKind::Open, |_req| Reply::Complete(100));
    ring.backend_mut()
        .on_undelivered_close(|fd| panic!("the watch refuses fd {fd}"));
    ring.noop(ctx(stop));
    for _ in 0..3 {
        ring.open(c"/nowhere", 0, 0, Context::default());
    }
    assert!(ring.run(RunCondition::UntilDone).is_err());
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(ring)));
    assert!(
        dropped.is_err(),
        "the watch's panic comes through, without an abort"
    );
}

#[test]
fn contexts_read_back_from_internal_tasks_carry_nothing_the_engine_trusts() {
    reset();
    let mut ring = MockBuilder::new().level(KernelLevel::V5_6).build_ring();
    ring.backend_mut().pipe(PIPE_FD);
    ring.backend_mut().pipe(PIPE_FD + 1);
    // Handles whose slots the cancel_all's parts take next (the free list is LIFO).
    let probes: Vec<_> = (0..8).map(|_| ring.noop(Context::default())).collect();
    ring.run(RunCondition::UntilDone).expect("noops");
    ring.read(
        PIPE_FD,
        vec![0u8; 8],
        Offset::File,
        Context {
            msg: 1,
            ..ctx(record)
        },
    );
    ring.read(
        PIPE_FD + 1,
        vec![0u8; 8],
        Offset::File,
        Context {
            msg: 2,
            ..ctx(record)
        },
    );
    ring.run(RunCondition::NoWait).expect("reads in flight");
    ring.cancel_all(Context {
        msg: 9,
        ..ctx(record)
    });
    // Replay every context now in those slots (the parts' among them) twice, on reads that
    // complete locally at once: before the fix a replayed part drove the join's count.
    let contexts: Vec<Context<Mock>> = probes
        .iter()
        // SAFETY: `as_ptr` stays valid while the ring lives; the reference is not held across
        // a call into the ring.
        .map(|h| unsafe { &*h.as_ptr() }.context())
        .collect();
    let read_only: &'static [u8] = b"read-only";
    for context in contexts.iter().chain(&contexts) {
        ring.read(3, read_only, Offset::File, *context);
    }
    ring.run(RunCondition::UntilDone).expect("run");
    // The replays of user contexts report their local EFAULT; the rest is untouched.
    let mut seen: Vec<String> = seen()
        .into_iter()
        .filter(|s| !s.ends_with("Read(Err(EFAULT)))"))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "1 Some(Read(Err(ECANCELED)))",
            "2 Some(Read(Err(ECANCELED)))",
            "9 Some(CancelAll(Ok(2)))"
        ]
    );
}

fn drop_stuck(ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
    drop(core::mem::replace(ring, Ring::init_mock()));
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore = "leaks the stuck task on purpose, which Miri reports")]
fn a_ring_dropped_in_its_callback_gives_up_on_a_stuck_op_once() {
    reset();
    let mut ring = MockBuilder::new()
        .build_ring_with(
            xuring_core::RingBuilder::new(8).teardown_timeout(Duration::from_millis(10)),
        )
        .expect("ring");
    // A read nothing completes and no cancel reaches: the kernel's op stuck in a driver.
    ring.backend_mut().handle(OpKind::Read, |_| Reply::Pending);
    ring.backend_mut()
        .handle(OpKind::Cancel, |_| Reply::Err(xuring_core::Errno::EALREADY));
    ring.backend_mut()
        .handle(OpKind::CancelAll, |_| Reply::Complete(0));
    ring.read(3, vec![0u8; 8], Offset::File, ctx(count));
    ring.run(RunCondition::NoWait)
        .expect("the read is in flight");
    ring.noop(ctx(drop_stuck));
    let before = xuring_core::leaked_tasks();
    assert_replaced(&mut ring);
    assert_eq!(
        xuring_core::leaked_tasks() - before,
        1,
        "leaked (never freed) and counted once, though torn down twice"
    );
}

thread_local! {
    static ASKED: Cell<u32> = const { Cell::new(0) };
    static RAW_STUCK: Cell<Option<core::ptr::NonNull<u8>>> = const { Cell::new(None) };
}

/// A mock whose reads stay in flight for `asks` enters and whose cancels never land: an op
/// the kernel holds past the teardown timeout. With `outlives`, the mock behaves like the
/// kernel, which goes on after the ring lets go.
fn stuck_ring(asks: u32, outlives: bool) -> MockRing {
    ASKED.with(|a| a.set(0));
    let mut ring = MockBuilder::new()
        .outlives_drop(outlives)
        .build_ring_with(
            xuring_core::RingBuilder::new(8).teardown_timeout(Duration::from_millis(10)),
        )
        .expect("ring");
    ring.backend_mut().handle(OpKind::Read, move |_| {
        let n = ASKED.with(|a| {
            a.set(a.get() + 1);
            a.get()
        });
        if n <= asks {
            Reply::Pending
        } else {
            Reply::Bytes(b"finally".to_vec())
        }
    });
    ring.backend_mut()
        .handle(OpKind::Cancel, |_| Reply::Err(xuring_core::Errno::EALREADY));
    ring.backend_mut()
        .handle(OpKind::CancelAll, |_| Reply::Complete(0));
    ring
}

#[test]
fn dropping_a_ring_waits_for_ops_on_caller_memory_past_the_timeout() {
    // Like the kernel: the op would go on after the drop, so the drop waits for it, however
    // many enters that takes (the timeout is 10 ms of virtual time, long gone).
    let mut ring = stuck_ring(50, true);
    let mut buf = Box::new([0u8; 16]);
    let ptr = core::ptr::NonNull::from(&mut *buf).cast::<u8>();
    // SAFETY: the box outlives the ring, which is dropped below, before the box.
    unsafe { ring.read_raw(3, ptr, 16, Offset::File, Context::default()) };
    ring.run(RunCondition::NoWait)
        .expect("the read is in flight");
    let before = xuring_core::leaked_tasks();
    drop(ring);
    assert_eq!(
        ASKED.with(Cell::get),
        51,
        "the read finished before the drop returned"
    );
    assert_eq!(&buf[..7], b"finally");
    assert_eq!(xuring_core::leaked_tasks(), before, "nothing leaked");
}

fn drop_then_free_stuck(ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
    *ring = Ring::init_mock();
    let asked = ASKED.with(Cell::get);
    let ptr = RAW_STUCK.with(Cell::take).expect("raw");
    // SAFETY: the ring was dropped, which ends `read_raw`'s contract; the box is freed once.
    drop(unsafe { Box::from_raw(ptr.as_ptr().cast::<[u8; 16]>()) });
    note(format!("{asked}"));
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore = "leaks the stuck task on purpose, which Miri reports")]
fn a_ring_given_up_on_is_never_entered_again() {
    reset();
    // A backend that stops with its drop: the ring gives up at the timeout and leaks the
    // task. The engine lives on until the callback returns, but is never entered again, so
    // the memory freed in the callback is not touched.
    let mut ring = stuck_ring(u32::MAX, false);
    let ptr = core::ptr::NonNull::from(Box::leak(Box::new([0u8; 16]))).cast::<u8>();
    RAW_STUCK.with(|r| r.set(Some(ptr)));
    // SAFETY: the box stays valid until the ring is dropped (in the callback, which then
    // frees it).
    unsafe { ring.read_raw(3, ptr, 16, Offset::File, Context::default()) };
    ring.run(RunCondition::NoWait)
        .expect("the read is in flight");
    ring.noop(ctx(drop_then_free_stuck));
    assert_replaced(&mut ring);
    let at_drop: u32 = seen()[0].parse().expect("a count");
    assert_eq!(ASKED.with(Cell::get), at_drop, "no enter after the drop");
}

fn drop_with_panicking_cancels(ring: &mut MockRing, _task: &Task<Mock>) -> Result<(), RingError> {
    *ring = Ring::init_mock();
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore = "leaks the pool on purpose, which Miri reports")]
fn a_panic_while_a_callback_drops_its_ring_unwinds_without_an_abort() {
    let mut ring = Ring::init_mock();
    ring.backend_mut().pipe(PIPE_FD);
    ring.backend_mut()
        .handle(OpKind::Cancel, |_| panic!("the cancel handler fails"));
    ring.backend_mut()
        .handle(OpKind::CancelAll, |_| panic!("the cancel handler fails"));
    ring.read(PIPE_FD, vec![0u8; 8], Offset::File, Context::default());
    ring.run(RunCondition::NoWait)
        .expect("the read is in flight");
    ring.noop(ctx(drop_with_panicking_cancels));
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ring.run(RunCondition::UntilDone)
    }));
    assert!(unwound.is_err(), "the handler's panic comes through");
    // The handle holds the replacement, which works.
    ring.noop(Context::default());
    ring.run(RunCondition::UntilDone)
        .expect("the new ring runs");
}
