//! The seed's examples, with owned buffers, on the real kernel.

use std::cell::Cell;
use std::ptr::NonNull;

use xuring_core::{Context, Offset, OpResult, Ring, RingError, RunCondition, Task, Timespec};

mod common;
use common::pipe;

#[test]
fn noop() {
    thread_local!(static SEEN: Cell<u32> = const { Cell::new(0) });
    fn on_noop(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        assert!(matches!(task.result, Some(OpResult::Noop(Ok(())))));
        SEEN.with(|s| s.set(s.get() + 1));
        Ok(())
    }
    let mut ring = Ring::init(16).expect("ring");
    ring.noop(Context {
        cb: on_noop,
        ..Context::default()
    });
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(SEEN.with(Cell::get), 1);
    assert!(ring.is_idle());
}

#[test]
fn timer() {
    fn on_timer(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        assert!(matches!(task.result, Some(OpResult::Timer(Ok(())))));
        Ok(())
    }
    let mut ring = Ring::init(16).expect("ring");
    let start = std::time::Instant::now();
    ring.timer(
        Timespec {
            sec: 0,
            nsec: 10_000_000,
        },
        Context {
            cb: on_timer,
            ..Context::default()
        },
    );
    ring.run(RunCondition::UntilDone).expect("run");
    assert!(start.elapsed() >= std::time::Duration::from_millis(10));
    assert_eq!(ring.stats().callbacks, 1);
}

#[test]
fn absolute_timer() {
    let mut ring = Ring::init(16).expect("ring");
    let deadline = Timespec::now().saturating_add(std::time::Duration::from_millis(5));
    fn on_timer(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        assert_eq!(task.result, Some(OpResult::Timer(Ok(()))));
        assert!(Timespec::now() >= *unsafe_deadline(task));
        Ok(())
    }
    fn unsafe_deadline(task: &Task) -> &Timespec {
        let ptr = task.userdata().expect("deadline").cast::<Timespec>();
        // SAFETY: the test keeps `deadline` alive on its stack until `run` returns.
        unsafe { ptr.as_ref() }
    }
    ring.timer_at(
        deadline,
        Context {
            cb: on_timer,
            msg: 0,
            userdata: Some(NonNull::from(&deadline).cast()),
        },
    );
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(ring.stats().callbacks, 1);
}

#[test]
fn write_then_read_a_pipe_with_owned_buffers() {
    let (read_fd, write_fd) = pipe();
    thread_local!(static GOT: Cell<[u8; 16]> = const { Cell::new([0; 16]) });
    fn on_write(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        match &task.result {
            Some(OpResult::Write(Ok(n))) => assert_eq!(*n, 5),
            other => panic!("unexpected: {other:?}"),
        }
        Ok(())
    }
    fn on_read(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        let n = match &task.result {
            Some(OpResult::Read(Ok(n))) => *n,
            other => panic!("unexpected: {other:?}"),
        };
        assert_eq!(n, 5);
        let buf = task
            .take_buf()
            .and_then(|b| b.into_vec())
            .expect("our Vec back");
        assert_eq!(
            buf.len(),
            16,
            "the length is unchanged; the result says how much"
        );
        let mut got = [0; 16];
        got.copy_from_slice(&buf);
        GOT.with(|g| g.set(got));
        Ok(())
    }
    let mut ring = Ring::init(16).expect("ring");
    ring.write(
        write_fd.raw(),
        b"hello",
        Offset::File,
        Context {
            cb: on_write,
            ..Context::default()
        },
    );
    ring.read(
        read_fd.raw(),
        vec![0u8; 16],
        Offset::File,
        Context {
            cb: on_read,
            ..Context::default()
        },
    );
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(&GOT.with(Cell::get)[..5], b"hello");
}

#[test]
fn cancel_a_long_timer() {
    thread_local!(static RESULTS: Cell<(Option<OpResult>, Option<OpResult>)> = const { Cell::new((None, None)) });
    fn on_timer(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        RESULTS.with(|r| r.set((task.result, r.get().1)));
        Ok(())
    }
    fn on_cancel(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        RESULTS.with(|r| r.set((r.get().0, task.result)));
        Ok(())
    }
    let mut ring = Ring::init(16).expect("ring");
    let timer = ring.timer(
        Timespec { sec: 3600, nsec: 0 },
        Context {
            cb: on_timer,
            ..Context::default()
        },
    );
    // Get the timer into the kernel first, so the cancel has to go there too.
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 1);
    // SAFETY: the task lives in the ring's pool; no other reference to it is held.
    unsafe { &mut *timer.as_ptr() }.cancel(
        &mut ring,
        Context {
            cb: on_cancel,
            ..Context::default()
        },
    );
    let start = std::time::Instant::now();
    ring.run(RunCondition::UntilDone).expect("run");
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    let (timer_result, cancel_result) = RESULTS.with(Cell::get);
    assert_eq!(
        timer_result,
        Some(OpResult::Timer(Err(xuring_core::Errno::ECANCELED)))
    );
    assert_eq!(cancel_result, Some(OpResult::Cancel(Ok(()))));
}
