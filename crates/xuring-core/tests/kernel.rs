//! Mechanics that need the real kernel: CQ overflow, deadlines, cancel-all at every level,
//! registered buffers, and teardown with reads pending on pipes.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use xuring_core::{
    Context, Errno, KernelLevel, Offset, OpResult, Ring, RingError, RunCondition, Task, Timespec,
};

mod common;
use common::{Fd, pipe, write_all};

thread_local! {
    static CALLS: Cell<u32> = const { Cell::new(0) };
    static RESULTS: RefCell<Vec<OpResult>> = const { RefCell::new(Vec::new()) };
}

fn count(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    CALLS.with(|c| c.set(c.get() + 1));
    RESULTS.with(|r| r.borrow_mut().push(task.result.expect("a result")));
    Ok(())
}

fn counted() -> Context {
    Context {
        cb: count,
        ..Context::default()
    }
}

fn reset() {
    CALLS.with(|c| c.set(0));
    RESULTS.with(|r| r.borrow_mut().clear());
}

fn results() -> Vec<OpResult> {
    RESULTS.with(|r| r.borrow().clone())
}

#[test]
fn cq_overflow_loses_no_completion() {
    reset();
    // 4 SQ entries, 8 CQ entries, 10,000 timers that all fire at the same instant.
    let mut ring = Ring::builder(4).build().expect("ring");
    assert_eq!(ring.backend().raw().params().cq_entries, 8);
    let at = Timespec::now().saturating_add(Duration::from_millis(200));
    for _ in 0..10_000 {
        ring.timer_at(at, counted());
    }
    // Submit everything without waiting for completions.
    while ring.queued() > 0 {
        ring.run(RunCondition::NoWait).expect("submit");
    }
    let fired = Instant::now();
    std::thread::sleep(Duration::from_millis(250));
    // One pass reaps at most a CQ's worth; the rest waits in the kernel's overflow list.
    ring.run(RunCondition::NoWait).expect("reap some");
    let overflowed = ring.backend().raw().sq_ref().flags();
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(
        CALLS.with(Cell::get),
        10_000,
        "every timer's callback ran once"
    );
    assert!(
        results().iter().all(|r| *r == OpResult::Timer(Ok(()))),
        "all expired"
    );
    assert!(
        overflowed.contains(xuring_sys::SqRingFlags::CQ_OVERFLOW),
        "the CQ really overflowed ({overflowed:?})"
    );
    assert!(fired.elapsed() < Duration::from_secs(30), "no hang");
}

fn deadline_run_returns_in_time(level: KernelLevel) {
    reset();
    let mut ring = Ring::builder(8).kernel_level(level).build().expect("ring");
    let long = ring.timer(Timespec { sec: 3600, nsec: 0 }, counted());
    let start = Instant::now();
    ring.run(RunCondition::For(Duration::from_millis(30)))
        .expect("run");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(30), "{level}: {waited:?}");
    assert!(waited < Duration::from_secs(10), "{level}: {waited:?}");
    assert_eq!(CALLS.with(Cell::get), 0, "the long timer is still pending");
    assert!(!ring.is_idle());
    long.cancel(&mut ring, counted());
    let start = Instant::now();
    ring.run(RunCondition::UntilDone).expect("run");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "UntilDone does not wait for wake timers"
    );
    // The kernel posts the cancel's completion and the timer's in either order.
    let results = results();
    assert_eq!(results.len(), 2, "{level}: {results:?}");
    assert!(results.contains(&OpResult::Timer(Err(Errno::ECANCELED))));
    assert!(results.contains(&OpResult::Cancel(Ok(()))));
}

#[test]
fn deadline_with_ext_arg() {
    deadline_run_returns_in_time(KernelLevel::Native);
}

#[test]
fn deadline_without_ext_arg_uses_a_wake_timer() {
    deadline_run_returns_in_time(KernelLevel::V5_6);
}

fn unnormalised_timespecs_at(level: KernelLevel, whole_second: bool) {
    reset();
    let mut ring = Ring::builder(8).kernel_level(level).build().expect("ring");
    // 10 ms written with a negative second: the kernel refuses a timeout with a negative
    // tv_sec, so this fires only if it gets the normalised value.
    ring.timer(
        Timespec {
            sec: -1,
            nsec: 1_010_000_000,
        },
        counted(),
    );
    if whole_second {
        // All of it in nsec (1.005 s).
        ring.timer(
            Timespec {
                sec: 0,
                nsec: 1_005_000_000,
            },
            counted(),
        );
    }
    let now = Timespec::now();
    ring.timer_at(
        Timespec {
            sec: now.sec - 1,
            nsec: now.nsec + 1_020_000_000,
        },
        counted(),
    );
    ring.run(RunCondition::UntilDone).expect("run");
    let fired = results();
    assert_eq!(fired.len(), 2 + usize::from(whole_second), "{level}");
    assert!(
        fired.iter().all(|r| *r == OpResult::Timer(Ok(()))),
        "{level}: {fired:?}"
    );
    // A deadline 30 ms away, with two seconds' worth in nsec: the run lasts until then.
    ring.timer(Timespec { sec: 3600, nsec: 0 }, counted());
    let now = Timespec::now();
    let deadline = Timespec {
        sec: now.sec - 2,
        nsec: now.nsec + 2_030_000_000,
    };
    ring.run(RunCondition::Until(deadline)).expect("run");
    let after = Timespec::now();
    assert!(
        after >= deadline,
        "{level}: returned at {after:?}, before {deadline:?}"
    );
}

#[test]
fn unnormalised_timespecs_native() {
    unnormalised_timespecs_at(KernelLevel::Native, true);
}

#[test]
fn unnormalised_timespecs_with_a_wake_timer() {
    unnormalised_timespecs_at(KernelLevel::V5_6, false);
}

fn cancel_all_at(level: KernelLevel) {
    reset();
    let mut ring = Ring::builder(16).kernel_level(level).build().expect("ring");
    let pipes: Vec<(Fd, Fd)> = (0..6).map(|_| pipe()).collect();
    for (r, _) in &pipes {
        ring.read(r.raw(), vec![0u8; 32], Offset::File, counted());
    }
    for _ in 0..4 {
        ring.timer(Timespec { sec: 3600, nsec: 0 }, counted());
    }
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 10);
    // Two more that are still queued when cancel_all comes.
    ring.noop(counted());
    ring.timer(Timespec { sec: 3600, nsec: 0 }, counted());
    ring.cancel_all(counted());
    ring.run(RunCondition::UntilDone).expect("run");
    let results = results();
    assert_eq!(results.len(), 13, "{level}: {results:?}");
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == OpResult::Read(Err(Errno::ECANCELED)))
            .count(),
        6,
        "{level}: {results:?}"
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == OpResult::Timer(Err(Errno::ECANCELED)))
            .count(),
        5,
        "{level}: {results:?}"
    );
    assert!(
        results.contains(&OpResult::CancelAll(Ok(12))),
        "{level}: 10 in flight + 2 queued: {results:?}"
    );
    assert!(ring.is_idle());
}

#[test]
fn cancel_all_native() {
    cancel_all_at(KernelLevel::Native);
}

#[test]
fn cancel_all_per_task_fallback() {
    cancel_all_at(KernelLevel::V5_18);
}

#[test]
fn registered_pool_buffers_read_a_file() {
    reset();
    let path = std::env::temp_dir().join(format!("xuring-fixed-{}", std::process::id()));
    let data: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(&path, &data).expect("write file");
    let file = std::fs::File::open(&path).expect("open");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut ring = Ring::builder(8).buffer_pool(4, 4096).build().expect("ring");
    let pool = ring.buffers().expect("pool").clone();
    assert_eq!(
        pool.is_registered(),
        ring.executor() == xuring_core::Executor::IoUring,
        "fixed buffers are registered with io_uring (the readiness executor reads plainly)"
    );
    fn check(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        assert_eq!(task.result, Some(OpResult::Read(Ok(4096))));
        let buf = task
            .take_buf()
            .and_then(|b| b.into_pool_buf())
            .expect("pool buffer");
        let offset = usize::from(task.msg()) * 4096;
        let expected: Vec<u8> = (offset..offset + 4096)
            .map(|i| (i as u32 * 7) as u8)
            .collect();
        assert_eq!(&buf[..], &expected[..]);
        CALLS.with(|c| c.set(c.get() + 1));
        Ok(())
    }
    for part in 0..2u16 {
        let buf = pool.get().expect("free buffer");
        ring.read(
            fd,
            buf,
            Offset::At(u64::from(part) * 4096),
            Context {
                cb: check,
                msg: part,
                userdata: None,
            },
        );
    }
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(CALLS.with(Cell::get), 2);
    assert_eq!(pool.available(), 4, "buffers returned to the pool");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn dropping_a_ring_with_pipe_reads_pending_stops_them() {
    for round in 0..20 {
        let pipes: Vec<(Fd, Fd)> = (0..4).map(|_| pipe()).collect();
        // Memory the test keeps alive after the ring is gone, so that a late kernel write
        // would be observable (and harmless) rather than a use after free.
        let mut watched: Vec<Box<[u8; 64]>> = (0..4).map(|_| Box::new([0xAA; 64])).collect();
        {
            let mut ring = Ring::init(8).expect("ring");
            for ((r, _), buf) in pipes.iter().zip(watched.iter_mut()) {
                let ptr = std::ptr::NonNull::new(buf.as_mut_ptr()).expect("non-null");
                // SAFETY: `watched` outlives the ring, whose drop waits for the read.
                unsafe { ring.read_raw(r.raw(), ptr, 64, Offset::File, Context::default()) };
            }
            // Owned buffers too: these are freed by the drop, after the reads are reaped.
            for (r, _) in &pipes {
                ring.read(r.raw(), vec![0u8; 64], Offset::File, Context::default());
            }
            ring.run(RunCondition::NoWait).expect("submit");
            assert_eq!(ring.in_flight(), 8);
        }
        for (_, w) in &pipes {
            write_all(w.raw(), b"late bytes");
        }
        std::thread::sleep(Duration::from_millis(2));
        for buf in &watched {
            assert!(
                buf.iter().all(|&b| b == 0xAA),
                "round {round}: memory changed after drop"
            );
        }
        // Nobody consumed the bytes: no read was left behind.
        for (r, _) in &pipes {
            let mut got = [0u8; 16];
            // SAFETY: `got` is a live buffer of 16 bytes.
            let n = unsafe { libc::read(r.raw(), got.as_mut_ptr().cast(), got.len()) };
            assert_eq!(n, 10, "round {round}: the bytes are still in the pipe");
        }
    }
    assert_eq!(xuring_core::leaked_tasks(), 0);
}

#[test]
fn setup_flags_the_ring_cannot_drive_are_refused() {
    use xuring_sys::{SetupError, SetupFlags};
    for flags in [
        SetupFlags::SQE128,
        SetupFlags::CQE32,
        SetupFlags::SQPOLL,
        SetupFlags::SQPOLL | SetupFlags::SQ_AFF,
        SetupFlags::IOPOLL,
        SetupFlags::R_DISABLED,
        // IORING_SETUP_NO_SQARRAY (6.6), unknown to xuring's table.
        SetupFlags::from_bits_retain(1 << 16),
    ] {
        match Ring::builder(8).setup_flags(flags).build() {
            Err(RingError::Setup(SetupError::UnsupportedFlags { flags: refused })) => {
                assert_eq!(refused, flags);
            }
            Err(e) => panic!("{flags:?}: expected UnsupportedFlags, got {e}"),
            Ok(ring) => panic!("{flags:?}: built a ring with {:?}", ring.features().setup),
        }
    }
    // Every flag the ring drives still builds, and runs.
    let mut ring = Ring::builder(8)
        .setup_flags(SetupFlags::DRIVEN)
        .build()
        .expect("driven flags");
    reset();
    ring.noop(counted());
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(results(), [OpResult::Noop(Ok(()))]);
}

#[test]
fn attach_wq_to_an_fd_that_is_not_a_ring_falls_back_to_a_private_io_wq() {
    // No process can have this fd open (fs.nr_open is at most 2^30): the kernel says ENXIO.
    let closed = i32::MAX;
    // A pipe is open but not an io_uring: the kernel says EINVAL.
    let (r, _w) = pipe();
    let plain = Ring::builder(8).build().expect("ring").features().setup;
    for fd in [closed, r.raw()] {
        reset();
        let mut ring = Ring::builder(8)
            .attach_wq(fd)
            .build()
            .unwrap_or_else(|e| panic!("attach_wq({fd}): {e}"));
        assert!(
            !ring.features().has_setup(xuring_sys::SetupFlags::ATTACH_WQ),
            "fd {fd}: no sharing"
        );
        assert_eq!(
            ring.features().setup,
            plain,
            "fd {fd}: the setup flags a ring gets without attach_wq"
        );
        ring.noop(counted());
        ring.run(RunCondition::UntilDone).expect("run");
        assert_eq!(results(), [OpResult::Noop(Ok(()))]);
    }
}

/// Below 5.11 a deadline wait needs a timer in the SQ. Ops pushed at queue time can fill the
/// SQ with nothing on the ring's own queue; the run must still get its timer in, and return.
#[test]
fn a_deadline_run_returns_when_queued_ops_filled_the_sq() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (r, _w) = pipe();
        let mut ring = Ring::builder(2)
            .kernel_level(KernelLevel::V5_6)
            .build()
            .expect("ring");
        for _ in 0..2 {
            ring.read(r.raw(), vec![0u8; 8], Offset::File, Context::default());
        }
        let ran = ring.run(RunCondition::For(Duration::from_millis(20)));
        let _ = done.send((ran, ring.in_flight()));
    });
    // A bound only for a run that never returns (the failure this test is about).
    let (ran, in_flight) = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the deadline run returned");
    assert!(ran.is_ok(), "{ran:?}");
    assert_eq!(
        in_flight, 2,
        "both reads submitted and still waiting; the timer fired"
    );
}
