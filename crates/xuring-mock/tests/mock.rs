//! The mock's own controls: handlers, byte sources, order, virtual time, holding, faults,
//! seeds.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use xuring_core::{
    Backend, Context, Errno, IoBuf, KernelLevel, Offset, Op, OpResult, Ring, RingBuilder,
    RingError, RunCondition, Task, TaskId, Timespec,
};
use xuring_mock::{
    DEADLOCK, Faults, Mock, MockBuilder, MockRingExt, OpKind, Order, Reply, check_invariants,
    run_seeded, track,
};

/// Op counts shrink under Miri.
const SCALE: usize = if cfg!(miri) { 4 } else { 1 };

fn hours(h: i64) -> Timespec {
    Timespec {
        sec: h * 3600,
        nsec: 0,
    }
}

fn expect_result(id: TaskId) -> OpResult {
    track::result(id).unwrap_or_else(|| panic!("{id:?} has no result"))
}

#[test]
fn init_mock_type_infers() {
    let mut ring = Ring::init_mock();
    ring.noop(Context::default());
    ring.run(RunCondition::Once).expect("run");
    assert_eq!(ring.stats().callbacks, 1);
    assert!(ring.is_idle());
}

thread_local!(static ORDER: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) });

fn order_cb(_ring: &mut Ring<Mock>, task: &Task<Mock>) -> Result<(), RingError> {
    ORDER.with(|o| o.borrow_mut().push(task.msg()));
    Ok(())
}

fn completion_order(builder: MockBuilder) -> Vec<u16> {
    ORDER.with(|o| o.borrow_mut().clear());
    let mut ring = builder.build_ring();
    for msg in 0..8 {
        ring.noop(Context {
            cb: order_cb,
            msg,
            userdata: None,
        });
    }
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    ORDER.with(|o| o.borrow().clone())
}

#[test]
fn completion_order_follows_the_option() {
    assert_eq!(
        completion_order(MockBuilder::new()),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(
        completion_order(MockBuilder::new().order(Order::Reversed)),
        (0..8).rev().collect::<Vec<_>>()
    );
    let a = completion_order(MockBuilder::new().order(Order::Shuffled).seed(1));
    let b = completion_order(MockBuilder::new().order(Order::Shuffled).seed(1));
    let c = completion_order(MockBuilder::new().order(Order::Shuffled).seed(2));
    assert_eq!(a, b, "same seed, same order");
    assert_ne!(a, c, "another seed, another order");
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..8).collect::<Vec<_>>(), "a permutation");
}

#[test]
fn handlers_decide_results_and_read_bytes() {
    track::reset();
    let mut ring = Ring::init_mock();
    let writes = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&writes);
    let mut mock = ring.backend_mut();
    mock.handle(OpKind::Read, |req| match (req.fd, req.offset) {
        (Some(3), Some(Offset::At(10))) => Reply::Bytes(b"0123456789abcdef-too-long".to_vec()),
        _ => Reply::Err(Errno::EBADF),
    });
    mock.handle(OpKind::Write, move |req| {
        seen.borrow_mut().push((req.fd, req.data.to_vec()));
        Reply::Complete(2)
    });
    mock.handle(OpKind::Timer, |req| {
        assert_eq!(req.timer, Some(hours(5)));
        Reply::Err(Errno::EINVAL)
    });
    let read = track::expect(ring.read(3, vec![0u8; 16], Offset::At(10), track::context()));
    let bad = track::expect(ring.read(4, vec![0u8; 4], Offset::File, track::context()));
    let write = track::expect(ring.write(5, b"hello", Offset::File, track::context()));
    let timer = track::expect(ring.timer(hours(5), track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    track::check_complete();
    assert_eq!(expect_result(read.id()), OpResult::Read(Ok(16)));
    assert_eq!(expect_result(bad.id()), OpResult::Read(Err(Errno::EBADF)));
    assert_eq!(expect_result(write.id()), OpResult::Write(Ok(2)));
    assert_eq!(
        expect_result(timer.id()),
        OpResult::Timer(Err(Errno::EINVAL))
    );
    assert_eq!(&*writes.borrow(), &[(Some(5), b"hello".to_vec())]);
    assert_eq!(ring.backend().now(), Timespec::ZERO, "the timer never ran");
}

#[test]
fn handler_sees_the_bytes_in_the_buffer_and_can_keep_an_op_pending() {
    thread_local!(static GOT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) });
    fn on_read(_ring: &mut Ring<Mock>, task: &Task<Mock>) -> Result<(), RingError> {
        let n = match task.result {
            Some(OpResult::Read(Ok(n))) => n,
            other => panic!("{other:?}"),
        };
        let buf = task.take_buf().and_then(|b| b.into_vec()).expect("vec");
        GOT.with(|g| *g.borrow_mut() = buf[..n].to_vec());
        Ok(())
    }
    let mut ring = Ring::init_mock();
    let ready = Rc::new(Cell::new(false));
    let gate = Rc::clone(&ready);
    ring.backend_mut().handle(OpKind::Read, move |req| {
        if gate.get() {
            Reply::Bytes(format!("polled {} times", req.polls).into_bytes())
        } else {
            Reply::Pending
        }
    });
    ring.read(
        9,
        vec![0u8; 32],
        Offset::File,
        Context {
            cb: on_read,
            ..Context::default()
        },
    );
    for _ in 0..3 {
        ring.run(RunCondition::NoWait).expect("poll");
        check_invariants(&ring);
    }
    assert_eq!(ring.in_flight(), 1);
    assert!(matches!(
        ring.run(RunCondition::UntilDone),
        Err(RingError::Enter(DEADLOCK))
    ));
    ready.set(true);
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    assert_eq!(GOT.with(|g| g.borrow().clone()), b"polled 4 times");
}

#[test]
fn a_cancel_handler_can_say_ealready() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().pipe(5);
    ring.backend_mut()
        .handle(OpKind::Cancel, |_| Reply::Err(Errno::EALREADY));
    let read = track::expect(ring.read(5, vec![0; 4], Offset::File, track::context()));
    ring.run(RunCondition::NoWait).expect("submit");
    let cancel = track::expect(read.cancel(&mut ring, track::context()));
    ring.run(RunCondition::Once).expect("run");
    assert_eq!(
        expect_result(cancel.id()),
        OpResult::Cancel(Err(Errno::EALREADY))
    );
    assert_eq!(track::calls(read.id()), Some(0), "the target runs on");
    ring.backend_mut().feed(5, b"late");
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(expect_result(read.id()), OpResult::Read(Ok(4)));
    check_invariants(&ring);
    track::check_complete();
}

#[test]
fn files_pipes_and_written_bytes() {
    track::reset();
    let mut ring = Ring::init_mock();
    let mut mock = ring.backend_mut();
    mock.set_file(3, b"abcdefgh".to_vec());
    mock.pipe(4);
    let r1 = track::expect(ring.read(3, vec![0; 3], Offset::File, track::context()));
    let r2 = track::expect(ring.read(3, vec![0; 3], Offset::File, track::context()));
    let r3 = track::expect(ring.read(3, vec![0; 8], Offset::At(6), track::context()));
    let eof = track::expect(ring.read(3, vec![0; 8], Offset::At(100), track::context()));
    let unknown = track::expect(ring.read(77, vec![0; 8], Offset::File, track::context()));
    let w1 = track::expect(ring.write(6, b"hello", Offset::File, track::context()));
    let w2 = track::expect(ring.write(6, b"J", Offset::At(0), track::context()));
    let w3 = track::expect(ring.write(6, b"!", Offset::At(7), track::context()));
    let p = track::expect(ring.read(4, vec![0; 8], Offset::File, track::context()));
    ring.run(RunCondition::NoWait).expect("run");
    check_invariants(&ring);
    assert_eq!(expect_result(r1.id()), OpResult::Read(Ok(3)));
    assert_eq!(expect_result(r2.id()), OpResult::Read(Ok(3)));
    assert_eq!(expect_result(r3.id()), OpResult::Read(Ok(2)));
    assert_eq!(expect_result(eof.id()), OpResult::Read(Ok(0)));
    assert_eq!(expect_result(unknown.id()), OpResult::Read(Ok(0)));
    assert_eq!(expect_result(w1.id()), OpResult::Write(Ok(5)));
    assert_eq!(expect_result(w2.id()), OpResult::Write(Ok(1)));
    assert_eq!(expect_result(w3.id()), OpResult::Write(Ok(1)));
    assert_eq!(ring.backend().written(6), b"Jello\0\0!");
    assert_eq!(track::calls(p.id()), Some(0), "an empty pipe waits");
    ring.backend_mut().feed(4, b"xy");
    let p2 = track::expect(ring.read(4, vec![0; 8], Offset::File, track::context()));
    ring.run(RunCondition::Once).expect("run");
    assert_eq!(expect_result(p.id()), OpResult::Read(Ok(2)));
    assert_eq!(track::calls(p2.id()), Some(0));
    ring.backend_mut().close(4);
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(expect_result(p2.id()), OpResult::Read(Ok(0)), "closed: EOF");
    check_invariants(&ring);
    track::check_complete();
}

/// Caller-owned bytes in a `static`, which may sit in read-only memory.
static OUTGOING: [u8; 5] = *b"raw!!";

#[test]
fn raw_buffers_read_only_for_writes_writable_for_reads() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().set_file(3, b"fresh".to_vec());
    let out = std::ptr::NonNull::from(&OUTGOING).cast::<u8>();
    // SAFETY: `OUTGOING` is valid for reads for the whole program and never written.
    let w = track::expect(unsafe {
        ring.write_raw(6, out, OUTGOING.len(), Offset::File, track::context())
    });
    // A read into read-only memory is refused before the backend sees it.
    // SAFETY: as above.
    let ro = unsafe { IoBuf::from_raw_parts(out, OUTGOING.len()) };
    assert!(!ro.is_writable());
    let refused = track::expect(ring.read(3, ro, Offset::At(0), track::context()));
    let mut memory = Box::new([0u8; 5]);
    let into = std::ptr::NonNull::from(&mut *memory).cast::<u8>();
    // SAFETY: `memory` is valid for reads and writes of 5 bytes and untouched until the run
    // below has completed the read.
    let r = track::expect(unsafe { ring.read_raw(3, into, 5, Offset::At(0), track::context()) });
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(expect_result(w.id()), OpResult::Write(Ok(5)));
    assert_eq!(ring.backend().written(6), b"raw!!");
    assert_eq!(
        expect_result(refused.id()),
        OpResult::Read(Err(Errno::EFAULT))
    );
    assert_eq!(expect_result(r.id()), OpResult::Read(Ok(5)));
    assert_eq!(&*memory, b"fresh");
    check_invariants(&ring);
    track::check_complete();
}

#[test]
fn blocked_fds_hold_io_until_unblocked() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().block_fd(8);
    let w = track::expect(ring.write(8, b"abc", Offset::File, track::context()));
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.backend().pending(), 1);
    assert_eq!(track::calls(w.id()), Some(0));
    ring.backend_mut().unblock_fd(8);
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(expect_result(w.id()), OpResult::Write(Ok(3)));
    check_invariants(&ring);
}

#[test]
fn virtual_time_jumps_to_timers_and_timeouts() {
    track::reset();
    let mut ring = Ring::init_mock();
    let t = track::expect(ring.timer(hours(1), track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(expect_result(t.id()), OpResult::Timer(Ok(())));
    assert_eq!(ring.backend().now(), hours(1), "virtual time, no sleeping");
    let at = track::expect(ring.timer_at(hours(3), track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(expect_result(at.id()), OpResult::Timer(Ok(())));
    assert_eq!(ring.backend().now(), hours(3));
    // An absolute deadline already passed fires at once, without moving the clock.
    let past = track::expect(ring.timer_at(hours(2), track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(expect_result(past.id()), OpResult::Timer(Ok(())));
    assert_eq!(ring.backend().now(), hours(3));
    check_invariants(&ring);
    track::check_complete();
}

fn run_for_with_a_long_timer(level: KernelLevel) {
    track::reset();
    let mut ring = MockBuilder::new().level(level).build_ring();
    let long = track::expect(ring.timer(hours(10), track::context()));
    ring.run(RunCondition::For(Duration::from_secs(60)))
        .expect("run");
    check_invariants(&ring);
    assert_eq!(ring.backend().now(), Timespec { sec: 60, nsec: 0 });
    assert_eq!(track::calls(long.id()), Some(0));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(ring.backend().now(), hours(10));
    assert_eq!(expect_result(long.id()), OpResult::Timer(Ok(())));
    check_invariants(&ring);
    track::check_complete();
}

#[test]
fn deadline_runs_stop_at_the_deadline_with_ext_arg() {
    run_for_with_a_long_timer(KernelLevel::Native);
}

#[test]
fn deadline_runs_stop_at_the_deadline_with_a_wake_timer() {
    let ring = MockBuilder::new().level(KernelLevel::V5_6).build_ring();
    assert!(!ring.features().has(xuring_sys::FeatureFlags::EXT_ARG));
    run_for_with_a_long_timer(KernelLevel::V5_6);
}

/// `run(Until(deadline))` with the deadline written unnormalised (`nsec` of 3.5 s): a timer
/// firing on the way must not end the run early, whether the wait uses `EXT_ARG` or a wake
/// timer.
fn run_until_an_unnormalised_deadline(level: KernelLevel) {
    track::reset();
    let mut ring = MockBuilder::new().level(level).build_ring();
    // Move the clock off whole seconds first.
    let half = Timespec {
        sec: 0,
        nsec: 500_000_000,
    };
    track::expect(ring.timer(half, track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    let now = ring.backend().now();
    assert_eq!(now, half);
    let deadline = Timespec {
        sec: now.sec,
        nsec: now.nsec + 3_000_000_000,
    };
    let early = track::expect(ring.timer(Timespec { sec: 1, nsec: 0 }, track::context()));
    let long = track::expect(ring.timer(hours(10), track::context()));
    ring.run(RunCondition::Until(deadline)).expect("run");
    assert_eq!(expect_result(early.id()), OpResult::Timer(Ok(())));
    assert_eq!(
        ring.backend().now(),
        Timespec {
            sec: 3,
            nsec: 500_000_000
        },
        "{level}: the run lasts until now + 3 s"
    );
    assert_eq!(track::calls(long.id()), Some(0));
    // The same with nothing but a message handler to wait for.
    ring.on_message(track::context());
    let now = ring.backend().now();
    let deadline = Timespec {
        sec: now.sec,
        nsec: now.nsec + 2_500_000_000,
    };
    ring.run(RunCondition::Until(deadline)).expect("run");
    assert_eq!(
        ring.backend().now(),
        Timespec { sec: 6, nsec: 0 },
        "{level}"
    );
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(expect_result(long.id()), OpResult::Timer(Ok(())));
    check_invariants(&ring);
    track::check_complete();
}

#[test]
fn unnormalised_deadlines_are_not_cut_short_with_ext_arg() {
    run_until_an_unnormalised_deadline(KernelLevel::Native);
}

#[test]
fn unnormalised_deadlines_are_not_cut_short_with_a_wake_timer() {
    run_until_an_unnormalised_deadline(KernelLevel::V5_6);
}

#[test]
fn held_completions_stage_a_cancel_race() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().set_file(3, b"data".to_vec());
    ring.backend_mut().hold(true);
    let read = track::expect(ring.read(3, vec![0; 4], Offset::File, track::context()));
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.backend().held(), 1, "done, but not posted");
    assert_eq!(ring.in_flight(), 1);
    check_invariants(&ring);
    // The op has completed in the "kernel": the cancel cannot find it.
    let cancel = track::expect(read.cancel(&mut ring, track::context()));
    ring.run(RunCondition::NoWait).expect("submit cancel");
    assert_eq!(ring.backend().held(), 2);
    assert_eq!(ring.backend_mut().release_held(), 2);
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(expect_result(read.id()), OpResult::Read(Ok(4)));
    assert_eq!(
        expect_result(cancel.id()),
        OpResult::Cancel(Err(Errno::ENOENT))
    );
    check_invariants(&ring);
    track::check_complete();
}

#[test]
fn a_wait_nothing_can_satisfy_releases_held_completions_or_reports_deadlock() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().hold(true);
    let n = track::expect(ring.noop(track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(track::calls(n.id()), Some(1));
    assert_eq!(ring.backend().stats().auto_released, 1);

    let mut strict = MockBuilder::new().auto_release(false).build_ring();
    strict.backend_mut().hold(true);
    strict.noop(Context::default());
    assert!(matches!(
        strict.run(RunCondition::UntilDone),
        Err(RingError::Enter(DEADLOCK))
    ));
    check_invariants(&strict);
    strict.backend_mut().hold(false);
    strict.backend_mut().release_held();
    strict.run(RunCondition::UntilDone).expect("run");
    assert!(strict.is_idle());
    check_invariants(&strict);
}

#[test]
fn enter_faults_are_retried_by_the_ring() {
    track::reset();
    let faults = Faults {
        enter_eintr: 0.5,
        enter_ebusy: 0.3,
        partial_submit: 0.5,
        ..Faults::none()
    };
    let mut ring = MockBuilder::new()
        .sq_entries(4)
        .faults(faults)
        .seed(3)
        .build_ring();
    for _ in 0..200 / SCALE {
        track::expect(ring.noop(track::context()));
    }
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    track::check_complete();
    let m = ring.backend().stats();
    let r = ring.stats();
    assert!(
        m.enter_eintr > 0 && m.enter_ebusy > 0 && m.partial_submits > 0,
        "{m:?}"
    );
    assert_eq!(r.eintr_retries, m.enter_eintr);
    assert_eq!(r.busy_retries, m.enter_ebusy);
    assert_eq!(r.enters, m.enters);
}

#[test]
fn op_errors_and_short_transfers() {
    track::reset();
    let faults = Faults {
        op_error: 0.3,
        errnos: vec![Errno::EIO, Errno::ENOBUFS],
        short_io: 0.5,
        ..Faults::none()
    };
    let mut ring = MockBuilder::new().faults(faults).seed(11).build_ring();
    ring.backend_mut().set_file(3, vec![7u8; 1 << 12]);
    let mut ids = Vec::new();
    for i in 0..(100 / SCALE) as u64 {
        ids.push(track::expect(ring.write(4, vec![1u8; 64], Offset::At(i), track::context())).id());
        ids.push(track::expect(ring.read(3, vec![0u8; 64], Offset::At(i), track::context())).id());
    }
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    track::check_complete();
    let (mut errors, mut short, mut full) = (0, 0, 0);
    for id in ids {
        match expect_result(id) {
            OpResult::Read(Err(e)) | OpResult::Write(Err(e)) => {
                assert!(e == Errno::EIO || e == Errno::ENOBUFS, "{e:?}");
                errors += 1;
            }
            OpResult::Read(Ok(64)) | OpResult::Write(Ok(64)) => full += 1,
            OpResult::Read(Ok(n)) | OpResult::Write(Ok(n)) => {
                assert!((1..64).contains(&n));
                short += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    let stats = ring.backend().stats();
    assert_eq!(errors, stats.op_errors);
    assert_eq!(short, stats.short_io);
    assert!(errors > 0 && short > 0 && full > 0);
}

#[test]
fn cq_overflow_holds_completions_until_the_next_enter() {
    track::reset();
    let mut ring = MockBuilder::new().sq_entries(16).cq_entries(2).build_ring();
    for _ in 0..10 {
        track::expect(ring.noop(track::context()));
    }
    ring.run(RunCondition::NoWait).expect("run");
    check_invariants(&ring);
    assert!(ring.backend().overflowed());
    assert_eq!(track::finished(), 2, "only what fit the CQ");
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    assert!(!ring.backend().overflowed());
    track::check_complete();
    assert!(ring.backend().stats().overflowed >= 8);
}

#[test]
fn duplicate_and_foreign_completions_are_counted_and_dropped() {
    track::reset();
    let faults = Faults {
        duplicate: 1.0,
        foreign: 1.0,
        ..Faults::none()
    };
    let mut ring = MockBuilder::new().faults(faults).seed(5).build_ring();
    let n = 50 / SCALE;
    for _ in 0..n {
        track::expect(ring.noop(track::context()));
    }
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    track::check_complete();
    let m = ring.backend().stats();
    assert_eq!(ring.stats().stale_completions, n as u64);
    assert_eq!(m.duplicates_delivered, n as u64);
    assert!(ring.stats().foreign_completions > 0);
    assert_eq!(ring.stats().foreign_completions, m.foreign_delivered);
}

#[test]
fn a_clamped_level_makes_the_ring_cancel_one_by_one() {
    track::reset();
    let mut ring = MockBuilder::new().level(KernelLevel::V5_6).build_ring();
    let any = Rc::new(Cell::new(0));
    let count = Rc::clone(&any);
    ring.backend_mut().handle(OpKind::CancelAll, move |_| {
        count.set(count.get() + 1);
        Reply::Default
    });
    ring.backend_mut().pipe(3);
    for _ in 0..3 {
        track::expect(ring.read(3, vec![0; 1], Offset::File, track::context()));
    }
    ring.run(RunCondition::NoWait).expect("submit");
    let all = track::expect(ring.cancel_all(track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    track::check_complete();
    assert_eq!(expect_result(all.id()), OpResult::CancelAll(Ok(3)));
    assert_eq!(any.get(), 0, "no CANCEL_ALL at 5.6");
    assert_eq!(ring.backend().stats().cancelled, 3);
}

#[test]
fn pool_buffers_travel_with_the_task() {
    thread_local!(static GOT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) });
    fn on_read(_ring: &mut Ring<Mock>, task: &Task<Mock>) -> Result<(), RingError> {
        let Some(OpResult::Read(Ok(n))) = task.result else {
            panic!("{:?}", task.result)
        };
        let buf = task
            .take_buf()
            .and_then(|b| b.into_pool_buf())
            .expect("pool buf");
        GOT.with(|g| *g.borrow_mut() = buf[..n].to_vec());
        Ok(())
    }
    let mut ring = MockBuilder::new()
        .build_ring_with(RingBuilder::new(16).buffer_pool(2, 16))
        .expect("ring");
    let pool = ring.buffers().expect("pool").clone();
    ring.backend_mut().pipe(3);
    ring.read(
        3,
        pool.get().expect("buf"),
        Offset::File,
        Context {
            cb: on_read,
            ..Context::default()
        },
    );
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.backend().buffers_held(&pool), 1);
    assert_eq!(pool.available(), 1);
    check_invariants(&ring);
    ring.backend_mut().feed(3, b"pooled");
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(GOT.with(|g| g.borrow().clone()), b"pooled");
    assert_eq!(pool.available(), 2);
    check_invariants(&ring);
}

#[test]
fn a_tiny_sq_takes_the_sq_full_path() {
    track::reset();
    let mut ring = MockBuilder::new().sq_entries(1).build_ring();
    for _ in 0..20 {
        track::expect(ring.noop(track::context()));
    }
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    track::check_complete();
    assert!(ring.backend().stats().enters >= 20);
}

/// One chaotic run, as a trace of completions and the results the callbacks saw.
fn chaotic_run(seed: u64) -> (Vec<xuring_core::Completion>, Vec<(u16, Option<OpResult>)>) {
    thread_local!(static SEEN: RefCell<Vec<(u16, Option<OpResult>)>> = const { RefCell::new(Vec::new()) });
    fn cb(ring: &mut Ring<Mock>, task: &Task<Mock>) -> Result<(), RingError> {
        SEEN.with(|s| s.borrow_mut().push((task.msg(), task.result)));
        if task.msg() % 7 == 0 && task.msg() < 100 {
            ring.write(
                4,
                vec![0u8; 32],
                Offset::File,
                Context {
                    cb,
                    msg: task.msg() + 100,
                    userdata: None,
                },
            );
        }
        Ok(())
    }
    SEEN.with(|s| s.borrow_mut().clear());
    let mut ring = MockBuilder::new()
        .sq_entries(4)
        .cq_entries(4)
        .order(Order::Shuffled)
        .faults(Faults::chaos())
        .seed(seed)
        .trace(true)
        .build_ring();
    ring.backend_mut().set_file(3, vec![9u8; 1024]);
    for msg in 0..(60 / SCALE) as u16 {
        let ctx = Context {
            cb,
            msg,
            userdata: None,
        };
        match msg % 3 {
            0 => ring.noop(ctx),
            1 => ring.read(3, vec![0u8; 16], Offset::File, ctx),
            _ => ring.timer(
                Timespec {
                    sec: i64::from(msg),
                    nsec: 0,
                },
                ctx,
            ),
        };
    }
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    let trace = ring.backend().trace().expect("trace").to_vec();
    (trace, SEEN.with(|s| s.borrow().clone()))
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = chaotic_run(42);
    let b = chaotic_run(42);
    let c = chaotic_run(43);
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    assert!(a.1.len() >= 60 / SCALE);
}

#[test]
fn run_seeded_resumes_the_panic() {
    let outcome = std::panic::catch_unwind(|| {
        run_seeded(1234, |seed| {
            assert_eq!(seed, xuring_mock::seed_from_env().unwrap_or(1234));
            panic!("deliberate failure at seed {seed}");
        })
    });
    let panic = outcome.expect_err("the panic comes through");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.starts_with("deliberate failure at seed"), "{msg}");
    assert_eq!(
        run_seeded(5, |seed| seed + 1),
        xuring_mock::seed_from_env().unwrap_or(5) + 1
    );
}

#[test]
fn a_handler_sees_every_argument_of_its_op() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut()
        .handle(OpKind::Fsync, |req| match req.op {
            Op::Fsync(f) if f.fd == 7 && f.datasync => Reply::Complete(0),
            Op::Fsync(f) if f.fd == 7 => Reply::Err(Errno::EIO),
            _ => Reply::Default,
        });
    let datasync = track::expect(ring.fdatasync(7, track::context()));
    let full = track::expect(ring.fsync(7, track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    track::check_complete();
    assert_eq!(expect_result(datasync.id()), OpResult::Fsync(Ok(())));
    assert_eq!(expect_result(full.id()), OpResult::Fsync(Err(Errno::EIO)));
}

/// An op the kernel cancels on its own (older kernels do, when io-wq cannot create a worker
/// for it) never ran: the ring submits it again, and the callback sees the real outcome.
#[test]
fn an_op_the_kernel_cancelled_on_its_own_is_submitted_again() {
    track::reset();
    let mut ring = Ring::init_mock();
    let offered = Rc::new(Cell::new(0u32));
    let count = Rc::clone(&offered);
    ring.backend_mut().handle(OpKind::Write, move |req| {
        count.set(count.get() + 1);
        if count.get() <= 3 {
            Reply::Err(Errno::ECANCELED)
        } else {
            Reply::Complete(req.data.len() as i32)
        }
    });
    let write = track::expect(ring.write(5, b"hello", Offset::File, track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    track::check_complete();
    assert_eq!(expect_result(write.id()), OpResult::Write(Ok(5)));
    assert_eq!(offered.get(), 4, "offered once and resubmitted three times");
    assert_eq!(ring.stats().resubmitted, 3);
}

/// A cancel the user asked for is delivered, never resubmitted.
#[test]
fn an_op_the_user_cancelled_is_not_submitted_again() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().handle(OpKind::Read, |_| Reply::Pending);
    let read = track::expect(ring.read(3, vec![0u8; 4], Offset::File, track::context()));
    ring.run(RunCondition::NoWait).expect("submit");
    let cancel = track::expect(ring.cancel(read.id(), track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(&ring);
    track::check_complete();
    assert_eq!(
        expect_result(read.id()),
        OpResult::Read(Err(Errno::ECANCELED))
    );
    assert_eq!(expect_result(cancel.id()), OpResult::Cancel(Ok(())));
    assert_eq!(ring.stats().resubmitted, 0);
}

/// A kernel that keeps cancelling does not keep the ring spinning: the ring resubmits for a
/// while (5 s on the backend's clock; the mock's virtual clock does not move here, so the
/// bound is the count of 100,000 resubmissions with none getting through), then the
/// `ECANCELED` is delivered.
#[test]
#[cfg_attr(miri, ignore = "a thousand round trips")]
fn a_kernel_that_keeps_cancelling_ends_in_ecanceled() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut()
        .handle(OpKind::Write, |_| Reply::Err(Errno::ECANCELED));
    let write = track::expect(ring.write(5, b"hello", Offset::File, track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    track::check_complete();
    assert_eq!(
        expect_result(write.id()),
        OpResult::Write(Err(Errno::ECANCELED))
    );
    assert_eq!(ring.stats().resubmitted, 100_000);
}

/// On a clock that moves, the patience is time: a kernel that cancels for 5 s is given up on
/// after about 5 s, not after a count (a storm on a real kernel can take thousands of
/// resubmissions to pass).
#[test]
#[cfg_attr(miri, ignore = "many round trips")]
fn a_kernel_that_keeps_cancelling_is_given_five_seconds() {
    track::reset();
    let mut ring = Ring::init_mock();
    let attempts = Rc::new(Cell::new(0u32));
    let seen = Rc::clone(&attempts);
    ring.backend_mut().handle(OpKind::Write, move |_| {
        seen.set(seen.get() + 1);
        Reply::Err(Errno::ECANCELED)
    });
    let write = track::expect(ring.write(5, b"hello", Offset::File, track::context()));
    // One enter and reap: the first cancel is resubmitted and the run of cancels dated.
    ring.run(RunCondition::NoWait).expect("run");
    assert_eq!(ring.stats().resubmitted, 1);
    // 4.9 s later the ring still resubmits; at 5 s it gives up on the next cancel.
    ring.backend_mut().advance(Duration::from_millis(4_900));
    ring.run(RunCondition::NoWait).expect("run");
    assert_eq!(ring.stats().resubmitted, 2);
    ring.backend_mut().advance(Duration::from_millis(100));
    ring.run(RunCondition::NoWait).expect("run");
    assert_eq!(
        ring.stats().resubmitted,
        3,
        "still resubmitted: the run is dated after reaps"
    );
    ring.run(RunCondition::UntilDone).expect("run");
    track::check_complete();
    assert_eq!(
        expect_result(write.id()),
        OpResult::Write(Err(Errno::ECANCELED))
    );
    assert_eq!(ring.stats().resubmitted, 3);
    assert_eq!(
        attempts.get(),
        4,
        "offered once and resubmitted three times"
    );
}

/// The patience is each op's own: other writes getting through meanwhile (the kernel making
/// progress elsewhere) do not keep one op that is always cancelled resubmitted forever (a file
/// system whose answer is `ECANCELED`, say).
#[test]
#[cfg_attr(miri, ignore = "thousands of round trips")]
fn one_op_always_cancelled_is_delivered_while_others_get_through() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().handle(OpKind::Write, |req| {
        if req.fd == Some(5) {
            Reply::Err(Errno::ECANCELED)
        } else {
            Reply::Complete(req.len as i32)
        }
    });
    let stuck = track::expect(ring.write(5, b"x", Offset::File, track::context()));
    for _ in 0..1_000 {
        track::expect(ring.write(6, b"y", Offset::File, track::context()));
        ring.run(RunCondition::NoWait).expect("run");
        ring.backend_mut().advance(Duration::from_millis(10));
    }
    // 10 s of virtual time: delivered once its own 5 s had passed.
    ring.run(RunCondition::UntilDone).expect("run");
    track::check_complete();
    assert_eq!(
        expect_result(stuck.id()),
        OpResult::Write(Err(Errno::ECANCELED))
    );
    let resubmitted = ring.stats().resubmitted;
    assert!(
        (500..=510).contains(&resubmitted),
        "about 5 s of them: {resubmitted}"
    );
    xuring_mock::check_invariants(&ring);
}

/// The user's own cancels of other ops do not extend an op's patience either.
#[test]
#[cfg_attr(miri, ignore = "hundreds of round trips")]
fn the_users_cancels_do_not_extend_another_ops_patience() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut()
        .handle(OpKind::Write, |req| match req.fd {
            Some(5) => Reply::Err(Errno::ECANCELED),
            _ => Reply::Pending,
        });
    let stuck = track::expect(ring.write(5, b"x", Offset::File, track::context()));
    for _ in 0..100 {
        let other = track::expect(ring.write(7, b"y", Offset::File, track::context()));
        ring.run(RunCondition::NoWait).expect("run");
        track::expect(other.cancel(&mut ring, track::context()));
        ring.run(RunCondition::NoWait).expect("run");
        ring.run(RunCondition::NoWait).expect("run");
        ring.backend_mut().advance(Duration::from_millis(100));
    }
    // 10 s of virtual time.
    assert_eq!(
        track::result(stuck.id()),
        Some(OpResult::Write(Err(Errno::ECANCELED)))
    );
    ring.run(RunCondition::UntilDone).expect("run");
    track::check_complete();
}

/// Giving up on one op does not give up on the next: a single kernel-made cancel of a new op
/// an hour later is resubmitted as usual.
#[test]
fn giving_up_on_one_op_leaves_the_next_its_own_patience() {
    track::reset();
    let mut ring = Ring::init_mock();
    let first = Rc::new(Cell::new(true));
    let once = Rc::clone(&first);
    ring.backend_mut()
        .handle(OpKind::Write, move |req| match req.fd {
            Some(5) => Reply::Err(Errno::ECANCELED),
            _ if once.replace(false) => Reply::Err(Errno::ECANCELED),
            _ => Reply::Complete(req.len as i32),
        });
    let stuck = track::expect(ring.write(5, b"x", Offset::File, track::context()));
    ring.run(RunCondition::NoWait).expect("run");
    ring.backend_mut().advance(Duration::from_secs(5));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(
        expect_result(stuck.id()),
        OpResult::Write(Err(Errno::ECANCELED))
    );
    ring.backend_mut().advance(Duration::from_secs(3600));
    let before = ring.stats().resubmitted;
    let next = track::expect(ring.write(8, b"z", Offset::File, track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    track::check_complete();
    assert_eq!(expect_result(next.id()), OpResult::Write(Ok(1)));
    assert_eq!(ring.stats().resubmitted, before + 1);
}

/// A read's `ECANCELED` can be its own answer (a `timerfd` read after the clock was set), so
/// it is delivered, never taken for the kernel's cancel and resubmitted.
#[test]
fn a_reads_ecanceled_is_delivered() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut()
        .handle(OpKind::Read, |_| Reply::Err(Errno::ECANCELED));
    let read = track::expect(ring.read(3, vec![0u8; 8], Offset::File, track::context()));
    ring.run(RunCondition::UntilDone).expect("run");
    track::check_complete();
    assert_eq!(
        expect_result(read.id()),
        OpResult::Read(Err(Errno::ECANCELED))
    );
    assert_eq!(ring.stats().resubmitted, 0);
}
