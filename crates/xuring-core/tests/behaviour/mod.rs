//! The ring's behaviour, written once and run on every backend: on the real kernel by
//! `tests/behaviour_uring.rs`, on the mock by `xuring-mock/tests/behaviour.rs` (which includes
//! this file with `#[path]`).
//!
//! Each test takes a [`Fixture`]: how to build a ring on the backend, how to get an fd whose
//! reads stay in flight until cancelled, how to set up files, pipes and listening sockets
//! for the ops to work on, and a backend-specific check run after every step.
//!
//! The op tests (`files_*`, `pipes`, `sockets`, `splice`, `msg_ring`) assert what Linux
//! does, so the mock's world is held to the kernel's semantics: each waits for events (a
//! completion), never for time.
#![allow(dead_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use xuring_core::{
    Accepted, Backend, Context, Errno, IoBuf, IoVecs, KernelLevel, Message, Offset, OpKind,
    OpResult, Ring, RingBuilder, RingError, RunCondition, Stat, Task, TaskHandle, TaskId,
    TaskState, Timespec,
};

/// An fd whose reads stay in flight until cancelled, and whatever keeps it open.
pub type StuckFd = (RawFd, Box<dyn Any>);

/// A directory's path, and whatever removes it when dropped.
pub type TempDir = (String, Box<dyn Any>);

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
    /// A new empty directory (its absolute path), and whatever removes it when dropped
    /// (after the ring).
    pub dir: fn(&mut Ring<B>) -> TempDir,
    /// A regular file at `path` holding `data` (missing parent directories are created).
    pub file: fn(&mut Ring<B>, path: &str, data: &[u8]),
    /// A symbolic link at `path` to `target`.
    pub symlink: fn(&mut Ring<B>, path: &str, target: &str),
    /// A new pipe: (read end, write end). The test closes both through the ring.
    pub pipe: fn(&mut Ring<B>) -> (RawFd, RawFd),
    /// A stream socket listening on the loopback, and its address. The test closes it
    /// through the ring.
    pub listener: fn(&mut Ring<B>) -> (RawFd, SocketAddr),
    /// The ring's own descriptor (the target of a `msg_ring` to itself).
    pub ring_fd: fn(&Ring<B>) -> RawFd,
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
    // An op already written into the backend's queue (io_uring's SQ) is `InFlight` as a
    // task while the ring still counts it queued: the sum is what must match.
    let (queued, in_flight) = (
        ring.count_tasks(TaskState::Queued),
        ring.count_tasks(TaskState::InFlight),
    );
    assert!(ring.queued() >= queued, "{} < {queued}", ring.queued());
    assert_eq!(
        ring.queued() + ring.in_flight() as usize,
        queued + in_flight
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

// ----- ops on files, pipes and sockets -----

/// A descriptor no process has (above Linux's `nr_open` limit, and above the mock's): every op
/// on it fails with `EBADF`. (Closing a real descriptor twice could close another test's.)
const BAD_FD: RawFd = i32::MAX - 1;

const POLLIN: u32 = libc::POLLIN as u32;
const POLLOUT: u32 = libc::POLLOUT as u32;
const POLLERR: u32 = libc::POLLERR as u32;
const POLLHUP: u32 = libc::POLLHUP as u32;

thread_local! {
    /// The bytes each read-like task got (the first `n` of its buffers), by task.
    static BYTES: RefCell<Vec<(TaskId, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// Records the task like `rec`, and the bytes a read, readv or recv got.
fn rec_bytes<B: Backend>(ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    let n = match task.result {
        Some(OpResult::Read(Ok(n)) | OpResult::Readv(Ok(n)) | OpResult::Recv(Ok(n))) => n,
        _ => 0,
    };
    let mut bytes = Vec::new();
    if let Some(buf) = task.take_buf() {
        bytes.extend_from_slice(buf.as_slice());
    }
    if let Some(bufs) = task.take_iovecs() {
        for buf in bufs.bufs() {
            bytes.extend_from_slice(buf.as_slice());
        }
    }
    bytes.truncate(n);
    BYTES.with(|b| b.borrow_mut().push((task.id(), bytes)));
    rec(ring, task)
}

fn bytes_of(id: TaskId) -> Vec<u8> {
    BYTES.with(|b| {
        b.borrow()
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, bytes)| bytes.clone())
            .unwrap_or_default()
    })
}

fn ctx_bytes<B: Backend>() -> Context<B> {
    Context {
        cb: rec_bytes::<B>,
        ..Context::default()
    }
}

fn op_reset() {
    log_reset();
    BYTES.with(|b| b.borrow_mut().clear());
}

/// Submits one op, runs the ring until nothing is left, and returns its result.
fn one<B: Backend>(
    f: &Fixture<B>,
    ring: &mut Ring<B>,
    submit: impl FnOnce(&mut Ring<B>, Context<B>) -> TaskHandle<B>,
) -> OpResult {
    let id = submit(ring, ctx_bytes()).id();
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(ring);
    assert_eq!(calls(id), 1);
    result_of(id).expect("a result")
}

/// Like [`one`], for a read-like op: its result and the bytes it got.
fn one_read<B: Backend>(
    f: &Fixture<B>,
    ring: &mut Ring<B>,
    submit: impl FnOnce(&mut Ring<B>, Context<B>) -> TaskHandle<B>,
) -> (OpResult, Vec<u8>) {
    let id = submit(ring, ctx_bytes()).id();
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(ring);
    (result_of(id).expect("a result"), bytes_of(id))
}

/// Submits an op that must wait (for a write, a connection, ...): after a submitting run it
/// is still in flight.
fn waiting<B: Backend>(
    f: &Fixture<B>,
    ring: &mut Ring<B>,
    submit: impl FnOnce(&mut Ring<B>, Context<B>) -> TaskHandle<B>,
) -> TaskId {
    let id = submit(ring, ctx_bytes()).id();
    ring.run(RunCondition::NoWait).expect("submit");
    f.check(ring);
    assert_eq!(calls(id), 0, "it waits");
    id
}

fn open_fd<B: Backend>(
    f: &Fixture<B>,
    ring: &mut Ring<B>,
    path: &str,
    how: i32,
    mode: u32,
) -> RawFd {
    match one(f, ring, |r, c| r.open(cpath(path), how, mode, c)) {
        OpResult::Open(Ok(fd)) => fd,
        other => panic!("open {path}: {other:?}"),
    }
}

fn cpath(path: &str) -> CString {
    CString::new(path).expect("a path without NUL")
}

fn stat<B: Backend>(f: &Fixture<B>, ring: &mut Ring<B>, path: &str) -> Stat {
    match one(f, ring, |r, c| r.stat(cpath(path), c)) {
        OpResult::Stat(Ok(stat)) => stat,
        other => panic!("stat {path}: {other:?}"),
    }
}

fn close<B: Backend>(f: &Fixture<B>, ring: &mut Ring<B>, fd: RawFd) {
    assert_eq!(one(f, ring, |r, c| r.close(fd, c)), OpResult::Close(Ok(())));
}

fn iovecs(lens: &[usize]) -> IoVecs {
    IoVecs::new(lens.iter().map(|&n| IoBuf::from(vec![0u8; n])).collect())
}

/// Reading and writing a file: at its position (which reads and writes advance) and at
/// offsets (which leave it alone), readv and writev over their buffers in order, a hole
/// past the end, fsync, close; `EBADF` for a write on a read-only descriptor and for a
/// descriptor nobody has.
pub fn files_read_write<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (dir, keep) = (f.dir)(&mut ring);
    let a = format!("{dir}/a");
    (f.file)(&mut ring, &a, b"hello world");
    let fd = open_fd(f, &mut ring, &a, libc::O_RDONLY, 0);
    let read = |ring: &mut Ring<B>, n: usize, at: Offset| {
        one_read(f, ring, |r, c| r.read(fd, vec![0u8; n], at, c))
    };
    assert_eq!(
        read(&mut ring, 5, Offset::File),
        (OpResult::Read(Ok(5)), b"hello".to_vec())
    );
    assert_eq!(
        read(&mut ring, 5, Offset::At(6)),
        (OpResult::Read(Ok(5)), b"world".to_vec())
    );
    assert_eq!(
        read(&mut ring, 3, Offset::File),
        (OpResult::Read(Ok(3)), b" wo".to_vec())
    );
    assert_eq!(
        one_read(f, &mut ring, |r, c| r.readv(
            fd,
            iovecs(&[2, 4]),
            Offset::File,
            c
        )),
        (OpResult::Readv(Ok(3)), b"rld".to_vec()),
        "readv fills its buffers in order, up to the end"
    );
    assert_eq!(
        read(&mut ring, 4, Offset::File),
        (OpResult::Read(Ok(0)), Vec::new())
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.write(fd, b"x", Offset::File, c)),
        OpResult::Write(Err(Errno::EBADF)),
        "read-only"
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.fsync(fd, c)),
        OpResult::Fsync(Ok(()))
    );
    close(f, &mut ring, fd);

    let b = format!("{dir}/b");
    let how = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    let fd = open_fd(f, &mut ring, &b, how, 0o600);
    let write = |ring: &mut Ring<B>, bytes: &'static [u8], at: Offset| {
        one(f, ring, |r, c| r.write(fd, bytes, at, c))
    };
    assert_eq!(
        write(&mut ring, b"abc", Offset::File),
        OpResult::Write(Ok(3))
    );
    let bufs = IoVecs::new(vec![
        IoBuf::from(b"de".to_vec()),
        IoBuf::from(b"f".to_vec()),
    ]);
    assert_eq!(
        one(f, &mut ring, |r, c| r.writev(fd, bufs, Offset::File, c)),
        OpResult::Writev(Ok(3))
    );
    assert_eq!(
        write(&mut ring, b"z", Offset::At(10)),
        OpResult::Write(Ok(1))
    );
    assert_eq!(write(&mut ring, b"g", Offset::File), OpResult::Write(Ok(1)));
    assert_eq!(
        one(f, &mut ring, |r, c| r.fdatasync(fd, c)),
        OpResult::Fsync(Ok(()))
    );
    close(f, &mut ring, fd);
    let fd = open_fd(f, &mut ring, &b, libc::O_RDONLY, 0);
    assert_eq!(
        read_all(f, &mut ring, fd),
        b"abcdefg\0\0\0z",
        "in order, the position after the writev, a hole before the write at 10"
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.fsync(BAD_FD, c)),
        OpResult::Fsync(Err(Errno::EBADF))
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.read(
            BAD_FD,
            vec![0u8; 1],
            Offset::File,
            c
        )),
        OpResult::Read(Err(Errno::EBADF))
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.close(BAD_FD, c)),
        OpResult::Close(Err(Errno::EBADF))
    );
    close(f, &mut ring, fd);
    assert!(ring.is_idle());
    drop(ring);
    drop(keep);
}

fn read_all<B: Backend>(f: &Fixture<B>, ring: &mut Ring<B>, fd: RawFd) -> Vec<u8> {
    match one_read(f, ring, |r, c| r.read(fd, vec![0u8; 64], Offset::At(0), c)) {
        (OpResult::Read(Ok(_)), bytes) => bytes,
        other => panic!("read: {other:?}"),
    }
}

/// fstat: a descriptor's own file, directory or pipe, through `AT_EMPTY_PATH`.
pub fn files_fstat<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (dir, keep) = (f.dir)(&mut ring);
    let a = format!("{dir}/a");
    (f.file)(&mut ring, &a, b"0123456789");
    let fstat = |ring: &mut Ring<B>, fd: RawFd| one(f, ring, |r, c| r.fstat(fd, c));
    let fd = open_fd(f, &mut ring, &a, libc::O_RDONLY, 0);
    let by_path = stat(f, &mut ring, &a);
    match fstat(&mut ring, fd) {
        OpResult::Stat(Ok(st)) => {
            assert!(st.is_file());
            assert_eq!((st.size, st.ino), (10, by_path.ino), "the same file");
        }
        other => panic!("fstat of a file: {other:?}"),
    }
    close(f, &mut ring, fd);
    // (Not the number just closed: a test running alongside may have been given it.)
    assert_eq!(
        fstat(&mut ring, BAD_FD),
        OpResult::Stat(Err(Errno::EBADF)),
        "a descriptor nobody has"
    );
    let dfd = open_fd(f, &mut ring, &dir, libc::O_RDONLY | libc::O_DIRECTORY, 0);
    match fstat(&mut ring, dfd) {
        OpResult::Stat(Ok(st)) => assert!(st.is_dir()),
        other => panic!("fstat of a directory: {other:?}"),
    }
    close(f, &mut ring, dfd);
    let (r, w) = (f.pipe)(&mut ring);
    match fstat(&mut ring, r) {
        OpResult::Stat(Ok(st)) => assert_eq!(st.mode & libc::S_IFMT, libc::S_IFIFO),
        other => panic!("fstat of a pipe: {other:?}"),
    }
    close(f, &mut ring, r);
    close(f, &mut ring, w);
    drop(ring);
    drop(keep);
}

/// openat2 relative to a directory descriptor, with each `RESOLVE_*` rule that keeps a
/// lookup inside that directory, and its stricter argument checks.
pub fn files_openat2<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (dir, keep) = (f.dir)(&mut ring);
    (f.file)(&mut ring, &format!("{dir}/a"), b"abc");
    (f.file)(&mut ring, &format!("{dir}/sub/b"), b"b");
    (f.symlink)(&mut ring, &format!("{dir}/sub/up"), "../a");
    (f.symlink)(&mut ring, &format!("{dir}/abs"), &format!("{dir}/a"));
    let dfd = open_fd(f, &mut ring, &dir, libc::O_RDONLY | libc::O_DIRECTORY, 0);
    let at2 = |ring: &mut Ring<B>, path: &str, flags: i32, mode: u32, resolve: u64| {
        one(f, ring, |r, c| {
            r.openat2(dfd, cpath(path), flags, mode, resolve, c)
        })
    };
    let read_back = |ring: &mut Ring<B>, result: OpResult| match result {
        OpResult::Openat2(Ok(fd)) => {
            let bytes = read_all(f, ring, fd);
            close(f, ring, fd);
            bytes
        }
        other => panic!("openat2: {other:?}"),
    };
    let plain = at2(&mut ring, "a", libc::O_RDONLY, 0, 0);
    assert_eq!(read_back(&mut ring, plain), b"abc");
    let beneath = libc::RESOLVE_BENEATH;
    let inside = at2(&mut ring, "sub/../a", libc::O_RDONLY, 0, beneath);
    assert_eq!(read_back(&mut ring, inside), b"abc");
    let via_link = at2(&mut ring, "sub/up", libc::O_RDONLY, 0, beneath);
    assert_eq!(
        read_back(&mut ring, via_link),
        b"abc",
        "a link that stays inside"
    );
    let exdev = OpResult::Openat2(Err(Errno::EXDEV));
    assert_eq!(at2(&mut ring, "../x", libc::O_RDONLY, 0, beneath), exdev);
    let absolute = format!("{dir}/a");
    assert_eq!(at2(&mut ring, &absolute, libc::O_RDONLY, 0, beneath), exdev);
    assert_eq!(at2(&mut ring, "abs", libc::O_RDONLY, 0, beneath), exdev);
    assert_eq!(
        at2(
            &mut ring,
            "sub/up",
            libc::O_RDONLY,
            0,
            libc::RESOLVE_NO_SYMLINKS
        ),
        OpResult::Openat2(Err(Errno::ELOOP))
    );
    let rooted = at2(&mut ring, "/a", libc::O_RDONLY, 0, libc::RESOLVE_IN_ROOT);
    assert_eq!(read_back(&mut ring, rooted), b"abc", "`/` is the directory");
    let escaped = at2(
        &mut ring,
        "../../a",
        libc::O_RDONLY,
        0,
        libc::RESOLVE_IN_ROOT,
    );
    assert_eq!(read_back(&mut ring, escaped), b"abc", "`..` stops at it");
    assert_eq!(
        at2(&mut ring, "a", libc::O_RDONLY, 0o600, 0),
        OpResult::Openat2(Err(Errno::EINVAL)),
        "a mode without O_CREAT"
    );
    let created = at2(
        &mut ring,
        "new",
        libc::O_WRONLY | libc::O_CREAT,
        0o600,
        beneath,
    );
    match created {
        OpResult::Openat2(Ok(fd)) => close(f, &mut ring, fd),
        other => panic!("create: {other:?}"),
    }
    assert!(stat(f, &mut ring, &format!("{dir}/new")).is_file());
    let file = open_fd(f, &mut ring, &absolute, libc::O_RDONLY, 0);
    assert_eq!(
        one(f, &mut ring, |r, c| r.openat2(file, c"a", 0, 0, 0, c)),
        OpResult::Openat2(Err(Errno::ENOTDIR)),
        "relative to a file"
    );
    close(f, &mut ring, file);
    let cwd = one(f, &mut ring, |r, c| {
        r.openat2(libc::AT_FDCWD, cpath(&absolute), 0, 0, 0, c)
    });
    assert_eq!(read_back(&mut ring, cwd), b"abc");
    close(f, &mut ring, dfd);
    drop(ring);
    drop(keep);
}

/// fallocate grows a file (or not, with `KEEP_SIZE`) and zeroes what it adds; fadvise is
/// accepted on a file; both refuse pipes and descriptors of the wrong kind.
pub fn files_allocate_and_advise<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (dir, keep) = (f.dir)(&mut ring);
    let a = format!("{dir}/a");
    (f.file)(&mut ring, &a, b"abc");
    let fd = open_fd(f, &mut ring, &a, libc::O_RDWR, 0);
    assert_eq!(
        one(f, &mut ring, |r, c| r.fallocate(fd, 0, 0, 4096, c)),
        OpResult::Fallocate(Ok(()))
    );
    assert_eq!(stat(f, &mut ring, &a).size, 4096);
    let keep_size = libc::FALLOC_FL_KEEP_SIZE;
    assert_eq!(
        one(f, &mut ring, |r, c| r
            .fallocate(fd, keep_size, 4096, 4096, c)),
        OpResult::Fallocate(Ok(()))
    );
    assert_eq!(stat(f, &mut ring, &a).size, 4096, "KEEP_SIZE keeps it");
    assert_eq!(
        one(f, &mut ring, |r, c| r.fallocate(fd, 0, 0, 0, c)),
        OpResult::Fallocate(Err(Errno::EINVAL)),
        "an empty range"
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.fadvise(
            fd,
            0,
            0,
            libc::POSIX_FADV_SEQUENTIAL,
            c
        )),
        OpResult::Fadvise(Ok(()))
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.fadvise(fd, 0, 0, 99, c)),
        OpResult::Fadvise(Err(Errno::EINVAL))
    );
    close(f, &mut ring, fd);
    let fd = open_fd(f, &mut ring, &a, libc::O_RDONLY, 0);
    let data = match one_read(f, &mut ring, |r, c| {
        r.read(fd, vec![0u8; 8192], Offset::At(0), c)
    }) {
        (OpResult::Read(Ok(4096)), bytes) => bytes,
        other => panic!("read: {other:?}"),
    };
    assert_eq!(&data[..3], b"abc");
    assert!(
        data[3..].iter().all(|&b| b == 0),
        "the added range reads as zeros"
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.fallocate(fd, 0, 0, 8192, c)),
        OpResult::Fallocate(Err(Errno::EBADF)),
        "not open for writing"
    );
    close(f, &mut ring, fd);
    let (r, w) = (f.pipe)(&mut ring);
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.fallocate(w, 0, 0, 1, c)),
        OpResult::Fallocate(Err(Errno::ESPIPE))
    );
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.fadvise(
            r,
            0,
            0,
            libc::POSIX_FADV_NORMAL,
            c
        )),
        OpResult::Fadvise(Err(Errno::ESPIPE))
    );
    close(f, &mut ring, r);
    close(f, &mut ring, w);
    drop(ring);
    drop(keep);
}

/// mkdir, symlink, link, rename, unlink and rmdir: each one's effect seen through stat, and
/// its usual errors; `EOPNOTSUPP` where the opcode is missing (an older kernel or level).
pub fn files_names<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (dir, keep) = (f.dir)(&mut ring);
    let has = |ring: &Ring<B>, op: OpKind| ring.features().supports(op.opcode());
    let missing = |ring: &mut Ring<B>, path: &str| {
        one(f, ring, |r, c| r.lstat(cpath(path), c)) == OpResult::Stat(Err(Errno::ENOENT))
    };
    let a = format!("{dir}/a");
    (f.file)(&mut ring, &a, b"abc");

    let d = format!("{dir}/d");
    let made = one(f, &mut ring, |r, c| r.mkdir(cpath(&d), 0o755, c));
    if has(&ring, OpKind::Mkdir) {
        assert_eq!(made, OpResult::Mkdir(Ok(())));
        assert!(stat(f, &mut ring, &d).is_dir());
        assert_eq!(
            one(f, &mut ring, |r, c| r.mkdir(cpath(&d), 0o755, c)),
            OpResult::Mkdir(Err(Errno::EEXIST))
        );
        let orphan = format!("{dir}/no/such");
        assert_eq!(
            one(f, &mut ring, |r, c| r.mkdir(cpath(&orphan), 0o755, c)),
            OpResult::Mkdir(Err(Errno::ENOENT))
        );
    } else {
        assert_eq!(made, OpResult::Mkdir(Err(Errno::EOPNOTSUPP)));
        (f.file)(&mut ring, &format!("{d}/keep"), b"");
    }

    let s = format!("{dir}/s");
    let linked = one(f, &mut ring, |r, c| r.symlink(cpath(&a), cpath(&s), c));
    if has(&ring, OpKind::Symlink) {
        assert_eq!(linked, OpResult::Symlink(Ok(())));
        match one(f, &mut ring, |r, c| r.lstat(cpath(&s), c)) {
            OpResult::Stat(Ok(st)) => assert!(st.is_symlink()),
            other => panic!("lstat of the symlink: {other:?}"),
        }
        assert_eq!(stat(f, &mut ring, &s).size, 3, "stat follows it to a");
        assert_eq!(
            one(f, &mut ring, |r, c| r.symlink(cpath(&a), cpath(&s), c)),
            OpResult::Symlink(Err(Errno::EEXIST))
        );
    } else {
        assert_eq!(linked, OpResult::Symlink(Err(Errno::EOPNOTSUPP)));
    }

    let h = format!("{dir}/h");
    let hard = one(f, &mut ring, |r, c| r.link(cpath(&a), cpath(&h), c));
    if has(&ring, OpKind::Link) {
        assert_eq!(hard, OpResult::Link(Ok(())));
        let (sa, sh) = (stat(f, &mut ring, &a), stat(f, &mut ring, &h));
        assert_eq!((sa.ino, sa.nlink), (sh.ino, 2), "one file, two names");
        assert_eq!(
            one(f, &mut ring, |r, c| r.link(
                cpath(&d),
                cpath(&format!("{dir}/dl")),
                c
            )),
            OpResult::Link(Err(Errno::EPERM)),
            "directories cannot be linked"
        );
    } else {
        assert_eq!(hard, OpResult::Link(Err(Errno::EOPNOTSUPP)));
    }

    let b = format!("{d}/b");
    let renamed = one(f, &mut ring, |r, c| r.rename(cpath(&a), cpath(&b), 0, c));
    if has(&ring, OpKind::Rename) {
        assert_eq!(renamed, OpResult::Rename(Ok(())));
        assert!(missing(&mut ring, &a));
        assert_eq!(stat(f, &mut ring, &b).size, 3);
        (f.file)(&mut ring, &a, b"x");
        assert_eq!(
            one(f, &mut ring, |r, c| r.rename(
                cpath(&a),
                cpath(&b),
                libc::RENAME_NOREPLACE,
                c
            )),
            OpResult::Rename(Err(Errno::EEXIST))
        );
        assert_eq!(
            one(f, &mut ring, |r, c| r.rename(
                cpath(&d),
                cpath(&format!("{d}/in")),
                0,
                c
            )),
            OpResult::Rename(Err(Errno::EINVAL)),
            "a directory cannot move into itself"
        );
    } else {
        assert_eq!(renamed, OpResult::Rename(Err(Errno::EOPNOTSUPP)));
    }

    let gone = one(f, &mut ring, |r, c| r.unlink(cpath(&a), c));
    if has(&ring, OpKind::Unlink) {
        assert_eq!(gone, OpResult::Unlink(Ok(())));
        assert!(missing(&mut ring, &a));
        assert_eq!(
            one(f, &mut ring, |r, c| r.unlink(cpath(&a), c)),
            OpResult::Unlink(Err(Errno::ENOENT))
        );
        assert_eq!(
            one(f, &mut ring, |r, c| r.unlink(cpath(&d), c)),
            OpResult::Unlink(Err(Errno::EISDIR))
        );
        assert_eq!(
            one(f, &mut ring, |r, c| r.rmdir(cpath(&d), c)),
            OpResult::Unlink(Err(Errno::ENOTEMPTY))
        );
        let e = format!("{dir}/e");
        (f.file)(&mut ring, &format!("{e}/x"), b"");
        assert_eq!(
            one(f, &mut ring, |r, c| r.unlink(cpath(&format!("{e}/x")), c)),
            OpResult::Unlink(Ok(()))
        );
        assert_eq!(
            one(f, &mut ring, |r, c| r.rmdir(cpath(&e), c)),
            OpResult::Unlink(Ok(()))
        );
        assert!(missing(&mut ring, &e));
    } else {
        assert_eq!(gone, OpResult::Unlink(Err(Errno::EOPNOTSUPP)));
    }
    drop(ring);
    drop(keep);
}

/// Opening and stat: `ENOENT` for a missing path, `O_CREAT | O_EXCL` makes a file with the
/// mode asked for and then fails with `EEXIST`, `O_APPEND` writes at the end (even at an
/// offset), `O_TRUNC` empties; stat tells files, directories and (lstat) links apart;
/// `EISDIR` for writing a directory, `ENOTDIR` for a path through a file.
pub fn files_open_and_stat<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (dir, keep) = (f.dir)(&mut ring);
    let a = format!("{dir}/a");
    (f.file)(&mut ring, &a, b"0123456789");
    let open = |ring: &mut Ring<B>, path: &str, how: i32| {
        one(f, ring, |r, c| r.open(cpath(path), how, 0o600, c))
    };
    let missing = format!("{dir}/missing");
    assert_eq!(
        open(&mut ring, &missing, libc::O_RDONLY),
        OpResult::Open(Err(Errno::ENOENT))
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.lstat(cpath(&missing), c)),
        OpResult::Stat(Err(Errno::ENOENT))
    );
    let exclusive = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    let fd = open_fd(f, &mut ring, &missing, exclusive, 0o600);
    close(f, &mut ring, fd);
    assert_eq!(
        open(&mut ring, &missing, exclusive),
        OpResult::Open(Err(Errno::EEXIST))
    );
    let made = stat(f, &mut ring, &missing);
    assert!(made.is_file());
    assert_eq!((made.size, made.mode & 0o7777), (0, 0o600));

    let fd = open_fd(f, &mut ring, &a, libc::O_WRONLY | libc::O_APPEND, 0);
    assert_eq!(
        one(f, &mut ring, |r, c| r.write(fd, b"!", Offset::File, c)),
        OpResult::Write(Ok(1))
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.write(fd, b"?", Offset::At(0), c)),
        OpResult::Write(Ok(1))
    );
    close(f, &mut ring, fd);
    let fd = open_fd(f, &mut ring, &a, libc::O_RDONLY, 0);
    assert_eq!(read_all(f, &mut ring, fd), b"0123456789!?");
    close(f, &mut ring, fd);
    let fd = open_fd(f, &mut ring, &a, libc::O_RDWR | libc::O_TRUNC, 0);
    assert_eq!(stat(f, &mut ring, &a).size, 0);
    close(f, &mut ring, fd);

    assert!(stat(f, &mut ring, &dir).is_dir());
    let link = format!("{dir}/link");
    (f.symlink)(&mut ring, &link, &missing);
    assert!(stat(f, &mut ring, &link).is_file(), "stat follows the link");
    match one(f, &mut ring, |r, c| r.lstat(cpath(&link), c)) {
        OpResult::Stat(Ok(stat)) => assert!(stat.is_symlink(), "lstat does not"),
        other => panic!("lstat: {other:?}"),
    }
    assert_eq!(
        open(&mut ring, &dir, libc::O_WRONLY),
        OpResult::Open(Err(Errno::EISDIR))
    );
    let through = format!("{a}/x");
    assert_eq!(
        open(&mut ring, &through, libc::O_RDONLY),
        OpResult::Open(Err(Errno::ENOTDIR))
    );
    assert!(ring.is_idle());
    drop(ring);
    drop(keep);
}

thread_local! {
    /// A buffer taken back whole by `rec_whole`: its offset and all of its bytes.
    static WHOLE: RefCell<Option<(usize, Vec<u8>)>> = const { RefCell::new(None) };
}

/// Records the task like `rec`, and its buffer whole (skipped bytes included).
fn rec_whole<B: Backend>(ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    let whole = task
        .take_buf()
        .map(|buf| (buf.offset(), buf.whole_slice().to_vec()));
    WHOLE.with(|w| *w.borrow_mut() = whole);
    rec(ring, task)
}

/// A buffer advanced past its first bytes: a write sends only the rest, and a read fills
/// only the room after them, in place, with the skipped bytes untouched.
pub fn buffer_windows<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (r, w) = (f.pipe)(&mut ring);
    let mut sent = IoBuf::from(b"hello world".to_vec());
    sent.advance(6);
    assert_eq!((sent.len(), sent.as_slice()), (5, &b"world"[..]));
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.write(w, sent, Offset::File, c)),
        OpResult::Write(Ok(5))
    );
    let mut room = IoBuf::from(b"abc\0\0\0\0\0".to_vec());
    room.advance(3);
    let read = ring
        .read(
            r,
            room,
            Offset::File,
            Context {
                cb: rec_whole::<B>,
                ..Context::default()
            },
        )
        .id();
    ring.run(RunCondition::UntilDone).expect("run");
    f.check(&ring);
    assert_eq!(result_of(read), Some(OpResult::Read(Ok(5))));
    assert_eq!(
        WHOLE.with(|w| w.borrow_mut().take()),
        Some((3, b"abcworld".to_vec())),
        "the read filled the window; the skipped bytes stayed"
    );
    close(f, &mut ring, r);
    close(f, &mut ring, w);
}

/// Pipes: a read of an empty pipe waits for a write; poll reports `POLLOUT` on the write
/// end and waits for `POLLIN` on the read end; recv and send are for sockets (`ENOTSOCK`);
/// once the write end is closed reads return 0 and poll reports `POLLHUP`; once the read end
/// is closed writes fail with `EPIPE` and poll reports `POLLERR`.
pub fn pipes<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (r, w) = (f.pipe)(&mut ring);
    let read = waiting(f, &mut ring, |ring, c| {
        ring.read(r, vec![0u8; 8], Offset::File, c)
    });
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.write(
            w,
            b"abc",
            Offset::File,
            c
        )),
        OpResult::Write(Ok(3))
    );
    assert_eq!(
        (result_of(read), bytes_of(read)),
        (Some(OpResult::Read(Ok(3))), b"abc".to_vec())
    );

    assert_eq!(
        one(f, &mut ring, |ring, c| ring.poll(w, POLLOUT, c)),
        OpResult::Poll(Ok(POLLOUT))
    );
    let poll = waiting(f, &mut ring, |ring, c| ring.poll(r, POLLIN, c));
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.write(
            w,
            b"xy",
            Offset::File,
            c
        )),
        OpResult::Write(Ok(2))
    );
    assert_eq!(result_of(poll), Some(OpResult::Poll(Ok(POLLIN))));
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.recv(r, vec![0u8; 8], 0, c)),
        OpResult::Recv(Err(Errno::ENOTSOCK))
    );
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.send(w, b"no", 0, c)),
        OpResult::Send(Err(Errno::ENOTSOCK))
    );
    assert_eq!(
        one_read(f, &mut ring, |ring, c| ring.read(
            r,
            vec![0u8; 8],
            Offset::File,
            c
        )),
        (OpResult::Read(Ok(2)), b"xy".to_vec())
    );

    close(f, &mut ring, w);
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.read(
            r,
            vec![0u8; 8],
            Offset::File,
            c
        )),
        OpResult::Read(Ok(0)),
        "EOF once the writer is gone"
    );
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.poll(r, POLLIN, c)),
        OpResult::Poll(Ok(POLLHUP))
    );
    close(f, &mut ring, r);

    let (r, w) = (f.pipe)(&mut ring);
    close(f, &mut ring, r);
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.write(
            w,
            b"lost",
            Offset::File,
            c
        )),
        OpResult::Write(Err(Errno::EPIPE))
    );
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.poll(w, POLLOUT, c)),
        OpResult::Poll(Ok(POLLOUT | POLLERR))
    );
    close(f, &mut ring, w);
    assert!(ring.is_idle());
}

/// Sockets: an accept waits for a connection (and can be cancelled while it does); a connect
/// to the listener completes it with a new descriptor and the connecting socket's address;
/// a recv waits for the peer's send; poll reports `POLLIN` when bytes are there; recv with
/// `MSG_DONTWAIT` fails with `EAGAIN` when they are not; recv returns 0 once the peer closed;
/// a connect to an address nobody listens at is refused.
pub fn sockets<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (listener, addr) = (f.listener)(&mut ring);
    let socket = |ring: &mut Ring<B>| match one(f, ring, |r, c| {
        r.socket(libc::AF_INET, libc::SOCK_STREAM, 0, c)
    }) {
        OpResult::Socket(Ok(fd)) => fd,
        other => panic!("socket: {other:?}"),
    };
    let client = socket(&mut ring);

    let accept = waiting(f, &mut ring, |r, c| r.accept(listener, c));
    let cancel = ring.cancel(accept, ctx());
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(
        result_of(accept),
        Some(OpResult::Accept(Err(Errno::ECANCELED)))
    );
    assert_eq!(result_of(cancel.id()), Some(OpResult::Cancel(Ok(()))));

    let accept = waiting(f, &mut ring, |r, c| r.accept(listener, c));
    assert_eq!(
        one(f, &mut ring, |r, c| r.connect(client, addr, c)),
        OpResult::Connect(Ok(()))
    );
    let server = match result_of(accept) {
        Some(OpResult::Accept(Ok(Accepted {
            fd,
            peer: Some(peer),
        }))) => {
            assert_eq!(peer.ip(), addr.ip(), "the peer is on the loopback too");
            assert_ne!(peer.port(), 0);
            assert_ne!(peer.port(), addr.port(), "the connecting socket's own port");
            fd
        }
        other => panic!("accept: {other:?}"),
    };

    let recv = waiting(f, &mut ring, |r, c| r.recv(server, vec![0u8; 8], 0, c));
    assert_eq!(
        one(f, &mut ring, |r, c| r.send(client, b"ping", 0, c)),
        OpResult::Send(Ok(4))
    );
    assert_eq!(
        (result_of(recv), bytes_of(recv)),
        (Some(OpResult::Recv(Ok(4))), b"ping".to_vec())
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.send(server, b"pong", 0, c)),
        OpResult::Send(Ok(4))
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.poll(client, POLLIN, c)),
        OpResult::Poll(Ok(POLLIN))
    );
    assert_eq!(
        one_read(f, &mut ring, |r, c| r.recv(client, vec![0u8; 8], 0, c)),
        (OpResult::Recv(Ok(4)), b"pong".to_vec())
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.recv(
            client,
            vec![0u8; 8],
            libc::MSG_DONTWAIT,
            c
        )),
        OpResult::Recv(Err(Errno::EAGAIN))
    );
    close(f, &mut ring, client);
    assert_eq!(
        one(f, &mut ring, |r, c| r.recv(server, vec![0u8; 8], 0, c)),
        OpResult::Recv(Ok(0)),
        "EOF once the peer closed"
    );
    close(f, &mut ring, server);
    close(f, &mut ring, listener);

    let refused = socket(&mut ring);
    assert_eq!(
        one(f, &mut ring, |r, c| r.connect(refused, addr, c)),
        OpResult::Connect(Err(Errno::ECONNREFUSED)),
        "nobody listens there any more"
    );
    close(f, &mut ring, refused);
    assert!(ring.is_idle());
}

/// Send-to and receive-from on a connection: the bytes flow as with send and recv (a stream
/// socket ignores the address it is given), the receive reports no sender, and a pipe is
/// `ENOTSOCK`. (Datagrams with addresses: `tests/ops.rs`, on the kernel.)
pub fn send_to_and_recv_from<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (listener, addr) = (f.listener)(&mut ring);
    let client = match one(f, &mut ring, |r, c| {
        r.socket(libc::AF_INET, libc::SOCK_STREAM, 0, c)
    }) {
        OpResult::Socket(Ok(fd)) => fd,
        other => panic!("socket: {other:?}"),
    };
    let accept = waiting(f, &mut ring, |r, c| r.accept(listener, c));
    assert_eq!(
        one(f, &mut ring, |r, c| r.connect(client, addr, c)),
        OpResult::Connect(Ok(()))
    );
    let Some(OpResult::Accept(Ok(Accepted { fd: server, .. }))) = result_of(accept) else {
        panic!("accept: {:?}", result_of(accept));
    };
    let recv = waiting(f, &mut ring, |r, c| r.recv_from(server, vec![0u8; 8], 0, c));
    assert_eq!(
        one(f, &mut ring, |r, c| r.send_to(client, b"ping", addr, 0, c)),
        OpResult::SendTo(Ok(4))
    );
    assert_eq!(
        result_of(recv),
        Some(OpResult::RecvFrom(Ok(xuring_core::Received {
            len: 4,
            peer: None
        })))
    );
    let (r, w) = (f.pipe)(&mut ring);
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.send_to(w, b"no", addr, 0, c)),
        OpResult::SendTo(Err(Errno::ENOTSOCK))
    );
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.recv_from(
            r,
            vec![0u8; 2],
            0,
            c
        )),
        OpResult::RecvFrom(Err(Errno::ENOTSOCK))
    );
    for fd in [r, w, client, server, listener] {
        close(f, &mut ring, fd);
    }
    assert!(ring.is_idle());
}

/// Shutdown (5.11): a connection whose client shut down its writing side reads as EOF at
/// the server, which can still send back; the client cannot send any more. `ENOTSOCK` for a
/// pipe, `ENOTCONN` for a socket without a connection, `EINVAL` for an unknown `how`.
/// (`EOPNOTSUPP` where the opcode is missing.)
pub fn shutdown<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (listener, addr) = (f.listener)(&mut ring);
    let socket = |ring: &mut Ring<B>| match one(f, ring, |r, c| {
        r.socket(libc::AF_INET, libc::SOCK_STREAM, 0, c)
    }) {
        OpResult::Socket(Ok(fd)) => fd,
        other => panic!("socket: {other:?}"),
    };
    let client = socket(&mut ring);
    if !ring.features().supports(OpKind::Shutdown.opcode()) {
        assert_eq!(
            one(f, &mut ring, |r, c| r.shutdown(client, libc::SHUT_WR, c)),
            OpResult::Shutdown(Err(Errno::EOPNOTSUPP))
        );
        close(f, &mut ring, client);
        close(f, &mut ring, listener);
        return;
    }
    // A socket of its own: Linux marks even an unconnected socket shut down (after
    // reporting `ENOTCONN`), so the client must not be the one asked.
    let lonely = socket(&mut ring);
    assert_eq!(
        one(f, &mut ring, |r, c| r.shutdown(lonely, libc::SHUT_WR, c)),
        OpResult::Shutdown(Err(Errno::ENOTCONN)),
        "not connected"
    );
    close(f, &mut ring, lonely);
    let accept = waiting(f, &mut ring, |r, c| r.accept(listener, c));
    assert_eq!(
        one(f, &mut ring, |r, c| r.connect(client, addr, c)),
        OpResult::Connect(Ok(()))
    );
    let server = match result_of(accept) {
        Some(OpResult::Accept(Ok(accepted))) => accepted.fd,
        other => panic!("accept: {other:?}"),
    };
    assert_eq!(
        one(f, &mut ring, |r, c| r.shutdown(client, 99, c)),
        OpResult::Shutdown(Err(Errno::EINVAL))
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.send(client, b"last", 0, c)),
        OpResult::Send(Ok(4))
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.shutdown(client, libc::SHUT_WR, c)),
        OpResult::Shutdown(Ok(()))
    );
    assert_eq!(
        one_read(f, &mut ring, |r, c| r.recv(server, vec![0u8; 8], 0, c)),
        (OpResult::Recv(Ok(4)), b"last".to_vec()),
        "what was sent before the shutdown arrives"
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.recv(server, vec![0u8; 8], 0, c)),
        OpResult::Recv(Ok(0)),
        "then end of file"
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.send(server, b"back", 0, c)),
        OpResult::Send(Ok(4)),
        "the other direction stays open"
    );
    assert_eq!(
        one_read(f, &mut ring, |r, c| r.recv(client, vec![0u8; 8], 0, c)),
        (OpResult::Recv(Ok(4)), b"back".to_vec())
    );
    assert_eq!(
        one(f, &mut ring, |r, c| r.send(client, b"more", 0, c)),
        OpResult::Send(Err(Errno::EPIPE)),
        "a shut-down side sends no more"
    );
    let (r, w) = (f.pipe)(&mut ring);
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.shutdown(r, libc::SHUT_RD, c)),
        OpResult::Shutdown(Err(Errno::ENOTSOCK))
    );
    for fd in [r, w, client, server, listener] {
        close(f, &mut ring, fd);
    }
    assert!(ring.is_idle());
}

/// Splice: from a file (at an offset, which leaves its position alone, or at its position,
/// which moves) into a pipe, and from a pipe into a file at an offset; `ESPIPE` for an
/// offset on the pipe's side, `EINVAL` when neither side is a pipe, 0 from a pipe whose
/// writer is gone. (`EOPNOTSUPP` where the opcode is missing.)
pub fn splice<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let (dir, keep) = (f.dir)(&mut ring);
    let src = format!("{dir}/src");
    (f.file)(&mut ring, &src, b"0123456789");
    let fd = open_fd(f, &mut ring, &src, libc::O_RDONLY, 0);
    let (r, w) = (f.pipe)(&mut ring);
    let splice = |ring: &mut Ring<B>, from: (RawFd, Option<u64>), to: (RawFd, Option<u64>), n| {
        one(f, ring, |ring, c| {
            ring.splice(from.0, from.1, to.0, to.1, n, 0, c)
        })
    };
    let read = |ring: &mut Ring<B>, fd: RawFd, n: usize| {
        one_read(f, ring, |ring, c| {
            ring.read(fd, vec![0u8; n], Offset::File, c)
        })
        .1
    };
    if !ring.features().supports(OpKind::Splice.opcode()) {
        assert_eq!(
            splice(&mut ring, (fd, None), (w, None), 4),
            OpResult::Splice(Err(Errno::EOPNOTSUPP))
        );
    } else {
        assert_eq!(
            splice(&mut ring, (fd, Some(2)), (w, None), 4),
            OpResult::Splice(Ok(4))
        );
        assert_eq!(read(&mut ring, r, 8), b"2345");
        assert_eq!(
            splice(&mut ring, (fd, None), (w, None), 3),
            OpResult::Splice(Ok(3))
        );
        assert_eq!(read(&mut ring, r, 8), b"012");
        assert_eq!(
            read(&mut ring, fd, 3),
            b"345",
            "the splice moved the file position"
        );

        let out_path = format!("{dir}/out");
        let out = open_fd(
            f,
            &mut ring,
            &out_path,
            libc::O_WRONLY | libc::O_CREAT,
            0o644,
        );
        assert_eq!(
            one(f, &mut ring, |ring, c| ring.write(
                w,
                b"abc",
                Offset::File,
                c
            )),
            OpResult::Write(Ok(3))
        );
        assert_eq!(
            splice(&mut ring, (r, None), (out, Some(5)), 8),
            OpResult::Splice(Ok(3))
        );
        assert_eq!(stat(f, &mut ring, &out_path).size, 8);
        assert_eq!(
            splice(&mut ring, (r, Some(0)), (out, None), 1),
            OpResult::Splice(Err(Errno::ESPIPE))
        );
        assert_eq!(
            splice(&mut ring, (fd, None), (out, None), 1),
            OpResult::Splice(Err(Errno::EINVAL))
        );
        assert_eq!(
            splice(&mut ring, (r, None), (fd, None), 4),
            OpResult::Splice(Err(Errno::EBADF)),
            "into a read-only file"
        );
        close(f, &mut ring, w);
        assert_eq!(
            splice(&mut ring, (r, None), (out, None), 4),
            OpResult::Splice(Ok(0))
        );
        close(f, &mut ring, out);
        let back = open_fd(f, &mut ring, &out_path, libc::O_RDONLY, 0);
        assert_eq!(read_all(f, &mut ring, back), b"\0\0\0\0\0abc");
        close(f, &mut ring, back);
        close(f, &mut ring, r);
        close(f, &mut ring, fd);
        assert!(ring.is_idle());
        drop(ring);
        drop(keep);
        return;
    }
    for fd in [fd, r, w] {
        close(f, &mut ring, fd);
    }
    drop(ring);
    drop(keep);
}

/// `msg_ring` to the ring itself: the message reaches its `on_message` handler; a target
/// that is not a ring is `EBADFD`, one nobody has `EBADF`. (`EOPNOTSUPP` where the opcode is
/// missing; `EPERM` for the readiness executor's own fd.)
pub fn msg_ring<B: Backend>(f: &Fixture<B>) {
    op_reset();
    let mut ring = f.ring();
    let own = (f.ring_fd)(&ring);
    let message = Message { data: 42, value: 7 };
    if !ring.features().supports(OpKind::MsgRing.opcode()) {
        // A ring the readiness executor runs has no `MSG_RING`, and its fd (an epoll fd) is
        // the runtime's own, which user ops are refused first.
        let expected = if xuring_sys::runtime_fds::is_claimed(own) {
            Errno::EPERM
        } else {
            Errno::EOPNOTSUPP
        };
        assert_eq!(
            one(f, &mut ring, |r, c| r.msg_ring(own, message, c)),
            OpResult::MsgRing(Err(expected))
        );
        return;
    }
    ring.on_message(ctx());
    let send = ring.msg_ring(own, message, ctx()).id();
    let arrived = || {
        log()
            .iter()
            .any(|e| e.result == Some(OpResult::Message(message)))
    };
    while result_of(send).is_none() || !arrived() {
        ring.run(RunCondition::Once).expect("run");
        f.check(&ring);
    }
    assert_eq!(result_of(send), Some(OpResult::MsgRing(Ok(()))));
    let (r, w) = (f.pipe)(&mut ring);
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.msg_ring(r, message, c)),
        OpResult::MsgRing(Err(Errno::from_raw(libc::EBADFD)))
    );
    assert_eq!(
        one(f, &mut ring, |ring, c| ring.msg_ring(BAD_FD, message, c)),
        OpResult::MsgRing(Err(Errno::EBADF))
    );
    close(f, &mut ring, r);
    close(f, &mut ring, w);
    assert!(ring.is_idle());
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
    files_read_write(f);
    files_open_and_stat(f);
    files_names(f);
    files_allocate_and_advise(f);
    files_openat2(f);
    files_fstat(f);
    pipes(f);
    buffer_windows(f);
    sockets(f);
    send_to_and_recv_from(f);
    splice(f);
    msg_ring(f);
}
