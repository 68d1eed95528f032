//! The ring's behaviour, written once and run on every backend: on the real kernel by
//! `tests/behaviour_uring.rs`, on the mock by `xuring-mock/tests/behaviour.rs` (which includes
//! this file with `#[path]`).
//!
//! Each test takes a [`Fixture`]: how to build a ring on the backend, how to get an fd whose
//! reads stay in flight until cancelled, and a backend-specific check run after every step.
#![allow(dead_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use xuring_core::{
    Backend, Context, Errno, KernelLevel, Offset, OpResult, Ring, RingBuilder, RingError,
    RunCondition, Task, TaskHandle, TaskId, TaskState, Timespec,
};

/// An fd whose reads stay in flight until cancelled, and whatever keeps it open.
pub type StuckFd = (RawFd, Box<dyn Any>);

/// How to run the suite on one backend.
pub struct Fixture<B: Backend> {
    /// Builds a ring with these options (the suite asks for 16 SQ entries).
    pub build: fn(RingBuilder) -> Result<Ring<B>, RingError>,
    /// An fd on which reads stay in flight until they are cancelled, and whatever keeps it
    /// open (dropped after the ring).
    pub stuck_fd: fn(&mut Ring<B>) -> StuckFd,
    /// A backend-specific check after every step (the mock's invariants).
    pub check: fn(&Ring<B>),
    /// Whether this is the real kernel (time is real: timers are kept short).
    pub real_kernel: bool,
}

impl<B: Backend> Fixture<B> {
    fn ring(&self) -> Ring<B> {
        self.ring_with(RingBuilder::new(16))
    }

    fn ring_at(&self, level: KernelLevel) -> Ring<B> {
        self.ring_with(RingBuilder::new(16).kernel_level(level))
    }

    fn ring_with(&self, options: RingBuilder) -> Ring<B> {
        (self.build)(options).expect("ring")
    }

    /// The checks after a step: conservation (on every backend) and the fixture's own.
    fn check(&self, ring: &Ring<B>) {
        conserved(ring);
        (self.check)(ring);
    }
}

/// Every task slot is accounted for: free, queued, in flight, ready, running or waiting.
pub fn conserved<B: Backend>(ring: &Ring<B>) {
    let running = ring.count_tasks(TaskState::Running);
    let waiting = ring.count_tasks(TaskState::Waiting);
    assert_eq!(
        ring.free_tasks()
            + ring.queued()
            + ring.in_flight() as usize
            + ring.ready()
            + running
            + waiting,
        ring.capacity() as usize,
        "tasks not conserved: free {} queued {} in flight {} ready {} running {running} \
         waiting {waiting}, capacity {}",
        ring.free_tasks(),
        ring.queued(),
        ring.in_flight(),
        ring.ready(),
        ring.capacity()
    );
    assert_eq!(ring.free_tasks(), ring.count_tasks(TaskState::Free));
    assert_eq!(ring.queued(), ring.count_tasks(TaskState::Queued));
    assert_eq!(
        ring.in_flight() as usize,
        ring.count_tasks(TaskState::InFlight)
    );
    assert_eq!(ring.ready(), ring.count_tasks(TaskState::Ready));
}

// ----- the callback log -----

#[derive(Clone, Copy, Debug)]
struct Entry {
    id: TaskId,
    msg: u16,
    result: Option<OpResult>,
}

thread_local! {
    static LOG: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    static REENTRY: Cell<Option<bool>> = const { Cell::new(None) };
}

fn log_reset() {
    LOG.with(|l| l.borrow_mut().clear());
    REENTRY.with(|r| r.set(None));
}

fn log() -> Vec<Entry> {
    LOG.with(|l| l.borrow().clone())
}

fn calls(id: TaskId) -> usize {
    LOG.with(|l| l.borrow().iter().filter(|e| e.id == id).count())
}

fn result_of(id: TaskId) -> Option<OpResult> {
    LOG.with(|l| {
        l.borrow()
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| e.result)
    })
}

fn push<B: Backend>(task: &Task<B>) {
    LOG.with(|l| {
        l.borrow_mut().push(Entry {
            id: task.id(),
            msg: task.msg(),
            result: task.result,
        })
    });
}

fn rec<B: Backend>(_ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    push(task);
    Ok(())
}

fn ctx<B: Backend>() -> Context<B> {
    Context {
        cb: rec::<B>,
        ..Context::default()
    }
}

fn ctx_msg<B: Backend>(cb: xuring_core::Callback<B>, msg: u16) -> Context<B> {
    Context {
        cb,
        msg,
        userdata: None,
    }
}

fn stuck_read<B: Backend>(ring: &mut Ring<B>, fd: RawFd) -> TaskHandle<B> {
    ring.read(fd, vec![0u8; 8], Offset::File, ctx())
}

// ----- the tests -----

/// A slot's identity changes after its callback: the next task in the slot has a new
/// generation, and the old id no longer names anything.
pub fn recycling<B: Backend>(f: &Fixture<B>) {
    log_reset();
    let mut ring = f.ring();
    let a = ring.noop(ctx());
    f.check(&ring);
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    assert_eq!(calls(a.id()), 1, "the callback saw the task's own id");
    let b = ring.noop(ctx());
    assert_eq!(
        b.id().index(),
        a.id().index(),
        "the free list is LIFO: the slot is reused"
    );
    assert_ne!(b.id().generation(), a.id().generation());
    assert_ne!(b.id(), a.id());
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    assert_eq!(calls(a.id()), 1);
    assert_eq!(calls(b.id()), 1);
    assert!(ring.is_idle());
}

/// A 16-entry ring carries far more queued work than its SQ holds; each callback runs once.
pub fn oversubscription<B: Backend>(f: &Fixture<B>) {
    let n: usize = if cfg!(miri) { 100 } else { 100_000 };
    thread_local!(static IDS: RefCell<Vec<TaskId>> = const { RefCell::new(Vec::new()) });
    fn collect<B: Backend>(_ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
        IDS.with(|ids| ids.borrow_mut().push(task.id()));
        Ok(())
    }
    IDS.with(|ids| ids.borrow_mut().clear());
    let mut ring = f.ring();
    let mut handles: Vec<TaskId> = (0..n)
        .map(|_| {
            ring.noop(Context {
                cb: collect::<B>,
                ..Context::default()
            })
            .id()
        })
        .collect();
    assert_eq!(ring.queued(), n);
    f.check(&ring);
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    assert!(ring.is_idle());
    assert_eq!(ring.stats().callbacks, n as u64);
    let mut seen = IDS.with(|ids| core::mem::take(&mut *ids.borrow_mut()));
    seen.sort_unstable();
    handles.sort_unstable();
    assert_eq!(seen.len(), n);
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "a callback ran twice"
    );
    assert_eq!(seen, handles, "every task called back exactly once");
}

/// Cancelling a task that is still queued: it completes with `ECANCELED` without reaching the
/// backend, and the cancel with `Ok`.
pub fn cancel_queued<B: Backend>(f: &Fixture<B>) {
    log_reset();
    let mut ring = f.ring();
    let (fd, keep) = (f.stuck_fd)(&mut ring);
    let target = stuck_read(&mut ring, fd);
    let cancel = ring.cancel(target.id(), ctx());
    f.check(&ring);
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    assert_eq!(
        result_of(target.id()),
        Some(OpResult::Read(Err(Errno::ECANCELED)))
    );
    assert_eq!(result_of(cancel.id()), Some(OpResult::Cancel(Ok(()))));
    assert_eq!(ring.stats().submitted, 0, "nothing reached the backend");
    assert_eq!((calls(target.id()), calls(cancel.id())), (1, 1));
    assert!(ring.is_idle());
    drop(ring);
    drop(keep);
}

/// Cancelling a task in flight (a stuck read, and a long timer).
pub fn cancel_in_flight<B: Backend>(f: &Fixture<B>) {
    log_reset();
    let mut ring = f.ring();
    let (fd, keep) = (f.stuck_fd)(&mut ring);
    let read = stuck_read(&mut ring, fd);
    let timer = ring.timer(Timespec { sec: 3600, nsec: 0 }, ctx());
    ring.run(RunCondition::NoWait).expect("submit");
    f.check(&ring);
    assert_eq!(ring.in_flight(), 2);
    let cancel_read = ring.cancel(read.id(), ctx());
    let cancel_timer = ring.cancel(timer.id(), ctx());
    f.check(&ring);
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    assert_eq!(
        result_of(read.id()),
        Some(OpResult::Read(Err(Errno::ECANCELED)))
    );
    assert_eq!(
        result_of(timer.id()),
        Some(OpResult::Timer(Err(Errno::ECANCELED)))
    );
    assert_eq!(result_of(cancel_read.id()), Some(OpResult::Cancel(Ok(()))));
    assert_eq!(result_of(cancel_timer.id()), Some(OpResult::Cancel(Ok(()))));
    for id in [read.id(), timer.id(), cancel_read.id(), cancel_timer.id()] {
        assert_eq!(calls(id), 1, "{id:?}");
    }
    assert!(ring.is_idle());
    drop(ring);
    drop(keep);
}

/// Cancelling a task that has completed and whose slot holds a new task: `ENOENT`, and the new
/// occupant is not cancelled.
pub fn cancel_recycled<B: Backend>(f: &Fixture<B>) {
    log_reset();
    let mut ring = f.ring();
    let (fd, keep) = (f.stuck_fd)(&mut ring);
    let old = ring.noop(ctx());
    ring.run(RunCondition::UntilDone).expect("run");
    let occupant = stuck_read(&mut ring, fd);
    assert_eq!(occupant.id().index(), old.id().index(), "same slot");
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 1);
    let miss = ring.cancel(old.id(), ctx());
    f.check(&ring);
    ring.run(RunCondition::Once).expect("run");
    f.check(&ring);
    assert_eq!(
        result_of(miss.id()),
        Some(OpResult::Cancel(Err(Errno::ENOENT)))
    );
    assert_eq!(
        calls(occupant.id()),
        0,
        "the new occupant was not cancelled"
    );
    assert_eq!(ring.in_flight(), 1);
    // Clean up for real.
    let hit = occupant.cancel(&mut ring, ctx());
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    assert_eq!(result_of(hit.id()), Some(OpResult::Cancel(Ok(()))));
    assert_eq!(
        result_of(occupant.id()),
        Some(OpResult::Read(Err(Errno::ECANCELED)))
    );
    assert!(ring.is_idle());
    drop(ring);
    drop(keep);
}

/// `cancel_all` at `level`: three reads in flight and two queued are all cancelled.
fn cancel_all_at<B: Backend>(f: &Fixture<B>, level: Option<KernelLevel>) {
    log_reset();
    let mut ring = match level {
        Some(level) => f.ring_at(level),
        None => f.ring(),
    };
    let (fd, keep) = (f.stuck_fd)(&mut ring);
    let mut reads: Vec<TaskId> = (0..3).map(|_| stuck_read(&mut ring, fd).id()).collect();
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 3);
    reads.extend((0..2).map(|_| stuck_read(&mut ring, fd).id()));
    assert_eq!(ring.queued(), 2);
    let all = ring.cancel_all(ctx());
    f.check(&ring);
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    for id in &reads {
        assert_eq!(result_of(*id), Some(OpResult::Read(Err(Errno::ECANCELED))));
        assert_eq!(calls(*id), 1);
    }
    assert_eq!(result_of(all.id()), Some(OpResult::CancelAll(Ok(5))));
    assert_eq!(calls(all.id()), 1);
    assert!(ring.is_idle());
    drop(ring);
    drop(keep);
}

/// `cancel_all` with the backend's native cancel-all (where it has one).
pub fn cancel_all_native<B: Backend>(f: &Fixture<B>) {
    cancel_all_at(f, None);
}

/// `cancel_all` on a 5.6-level ring: one cancel per task in flight.
pub fn cancel_all_fallback<B: Backend>(f: &Fixture<B>) {
    cancel_all_at(f, Some(KernelLevel::V5_6));
}

/// Callbacks submit follow-ups, which the same `run(UntilDone)` runs.
pub fn chaining<B: Backend>(f: &Fixture<B>) {
    fn chain<B: Backend>(ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
        push(task);
        if task.msg() < 10 {
            ring.noop(ctx_msg(chain::<B>, task.msg() + 1));
        }
        Ok(())
    }
    log_reset();
    let mut ring = f.ring();
    ring.noop(ctx_msg(chain::<B>, 0));
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    let msgs: Vec<u16> = log().iter().map(|e| e.msg).collect();
    assert_eq!(msgs, (0..=10).collect::<Vec<u16>>());
    assert!(ring.is_idle());
}

/// `run` from inside a callback is refused with `Reentrant`; the outer run goes on.
pub fn reentrant_run<B: Backend>(f: &Fixture<B>) {
    fn nested<B: Backend>(ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
        push(task);
        let refused = matches!(ring.run(RunCondition::Once), Err(RingError::Reentrant));
        REENTRY.with(|r| r.set(Some(refused)));
        ring.noop(ctx());
        Ok(())
    }
    log_reset();
    let mut ring = f.ring();
    ring.noop(ctx_msg(nested::<B>, 0));
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    assert_eq!(REENTRY.with(Cell::get), Some(true));
    assert_eq!(log().len(), 2, "the follow-up ran in the outer run");
    assert!(ring.is_idle());
}

fn fail_on_msg_1<B: Backend>(_ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    push(task);
    if task.msg() == 1 {
        return Err(RingError::callback("boom"));
    }
    Ok(())
}

fn panic_on_msg_1<B: Backend>(_ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    push(task);
    if task.msg() == 1 {
        panic!("a callback panicked (on purpose)");
    }
    Ok(())
}

/// A callback's `Err` stops `run` right after it; the ring stays usable and the next run
/// continues with the rest.
pub fn callback_error<B: Backend>(f: &Fixture<B>) {
    log_reset();
    let mut ring = f.ring();
    let ids: Vec<TaskId> = [1, 0, 0]
        .into_iter()
        .map(|msg| ring.noop(ctx_msg(fail_on_msg_1::<B>, msg)).id())
        .collect();
    match ring.run(RunCondition::UntilDone) {
        Err(RingError::Callback(e)) => assert_eq!(e.to_string(), "boom"),
        other => panic!("expected the callback's error, got {other:?}"),
    }
    f.check(&ring);
    // Completion order is the backend's: the failing callback is the last one that ran.
    assert_eq!(
        log().last().map(|e| e.id),
        Some(ids[0]),
        "run stopped right after the failing callback"
    );
    assert_eq!(
        log().len() + ring.ready() + ring.queued() + ring.in_flight() as usize,
        3,
        "the rest is left for the next run"
    );
    ring.run(RunCondition::UntilDone)
        .expect("the next run continues");
    f.check(&ring);
    for id in &ids {
        assert_eq!(calls(*id), 1);
    }
    ring.noop(ctx());
    ring.run(RunCondition::UntilDone).expect("still usable");
    assert_eq!(log().len(), 4);
    assert!(ring.is_idle());
}

/// A panicking callback unwinds out of `run`, but its task is recycled and the ring stays
/// consistent: the next run does the rest.
pub fn callback_panic<B: Backend>(f: &Fixture<B>) {
    log_reset();
    let mut ring = f.ring();
    let ids: Vec<TaskId> = [1, 0, 0]
        .into_iter()
        .map(|msg| ring.noop(ctx_msg(panic_on_msg_1::<B>, msg)).id())
        .collect();
    let unwound = catch_unwind(AssertUnwindSafe(|| ring.run(RunCondition::UntilDone)));
    assert!(unwound.is_err(), "the panic reached the caller");
    f.check(&ring);
    assert_eq!(
        ring.count_tasks(TaskState::Running),
        0,
        "the task was recycled"
    );
    assert_eq!(log().last().map(|e| e.id), Some(ids[0]));
    assert_eq!(
        log().len() + ring.ready() + ring.queued() + ring.in_flight() as usize,
        3
    );
    ring.run(RunCondition::UntilDone)
        .expect("the next run works");
    f.check(&ring);
    for id in &ids {
        assert_eq!(calls(*id), 1);
    }
    assert!(ring.is_idle());
    assert_eq!(ring.free_tasks(), ring.capacity() as usize);
}

/// Dropping a ring with work queued, in flight and completed but not called back: everything
/// is cancelled and reaped, nothing leaks, buffers go back to their pool.
pub fn teardown<B: Backend>(f: &Fixture<B>) {
    log_reset();
    let leaked = xuring_core::leaked_tasks();
    let mut ring = f.ring_with(RingBuilder::new(16).buffer_pool(4, 64));
    let pool = ring.buffers().expect("pool").clone();
    let (fd, keep) = (f.stuck_fd)(&mut ring);
    for _ in 0..2 {
        let buf = pool.get().expect("buffer");
        ring.read(fd, buf, Offset::File, ctx());
    }
    stuck_read(&mut ring, fd);
    let timer = ring.timer(Timespec { sec: 3600, nsec: 0 }, ctx());
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 4);
    // Completed, callback not run: a callback error leaves the second noop ready.
    ring.noop(ctx_msg(fail_on_msg_1::<B>, 1));
    ring.noop(ctx());
    let _ = ring.run(RunCondition::NoWait);
    ring.read(fd, pool.get().expect("buffer"), Offset::File, ctx());
    ring.noop(ctx());
    f.check(&ring);
    assert_eq!(pool.available(), 1);
    let callbacks_before = log().len();
    drop(ring);
    assert_eq!(log().len(), callbacks_before, "teardown runs no callbacks");
    assert_eq!(xuring_core::leaked_tasks(), leaked, "nothing leaked");
    assert_eq!(pool.available(), 4, "every buffer back in the pool");
    assert_eq!(calls(timer.id()), 0);
    drop(keep);
}

/// Timers complete in deadline order, not submission order (short real times on the kernel,
/// hours of virtual time on the mock).
pub fn timers_in_deadline_order<B: Backend>(f: &Fixture<B>) {
    log_reset();
    let mut ring = f.ring();
    let unit = if f.real_kernel {
        Timespec {
            sec: 0,
            nsec: 5_000_000,
        }
    } else {
        Timespec { sec: 3600, nsec: 0 }
    };
    let scale = |k: u32| Timespec::from_duration(unit.to_duration() * k);
    let ids: Vec<TaskId> = [3, 1, 2]
        .into_iter()
        .map(|k| ring.timer(scale(k), ctx_msg(rec::<B>, k as u16)).id())
        .collect();
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    let msgs: Vec<u16> = log().iter().map(|e| e.msg).collect();
    assert_eq!(msgs, [1, 2, 3]);
    for id in ids {
        assert_eq!(result_of(id), Some(OpResult::Timer(Ok(()))));
    }
}

/// Runs every test of the suite on `f`.
pub fn all<B: Backend>(f: &Fixture<B>) {
    recycling(f);
    oversubscription(f);
    cancel_queued(f);
    cancel_in_flight(f);
    cancel_recycled(f);
    cancel_all_native(f);
    cancel_all_fallback(f);
    chaining(f);
    reentrant_run(f);
    callback_error(f);
    callback_panic(f);
    teardown(f);
    timers_in_deadline_order(f);
}
