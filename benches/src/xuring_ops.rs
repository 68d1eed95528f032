//! The xuring side of each scenario: the same work through the full Task lifecycle (get a
//! task, queue it, submit, reap, call back, recycle), with callbacks that resubmit.
//!
//! # Safety
//!
//! Callbacks reach their runner's state through the task's `userdata`, a pointer to a state
//! struct that the runner keeps in a `Box` for its whole life, next to (and declared after) the
//! ring, so the state outlives every task that points to it. The state is only ever accessed
//! through shared references: its fields are `Cell`s and `RefCell`s.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::rc::Rc;

use xuring_core::{
    Context, Executor, Features, IoBuf, Offset, OpResult, Ring, RingError, RunCondition, Task,
    Timespec,
};

use crate::error::{BenchError, check_complete};
use crate::raw::BLOCK;

/// The state a task's `userdata` points to, if any.
///
/// # Safety
///
/// The task's `userdata`, when set, must point to a live `T` that stays valid and is not
/// mutated except through interior mutability for as long as the returned reference is used.
pub(crate) unsafe fn state_of<T>(task: &Task) -> Option<&T> {
    let ptr = task.userdata()?.cast::<T>();
    // SAFETY: the caller guarantees `ptr` points to a live `T` used only through `&T`.
    Some(unsafe { ptr.as_ref() })
}

/// What the noop and timer callbacks count.
#[derive(Debug, Default)]
struct Counter {
    done: Cell<u64>,
    failed: Cell<u64>,
}

impl Counter {
    fn reset(&self) {
        self.done.set(0);
        self.failed.set(0);
    }

    fn check(&self, what: &str, ops: u64) -> Result<u64, BenchError> {
        if self.failed.get() > 0 {
            return Err(BenchError::Failed {
                what: what.to_owned(),
                count: self.failed.get(),
            });
        }
        check_complete(what, ops, self.done.get())
    }
}

fn on_counted(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    // SAFETY: every task queued with this callback carries a pointer to its runner's boxed
    // `Counter` (see the module's safety notes).
    let Some(counter) = (unsafe { state_of::<Counter>(task) }) else {
        return Err(RingError::callback("a counted task without its counter"));
    };
    let ok = matches!(
        task.result,
        Some(OpResult::Noop(Ok(()))) | Some(OpResult::Timer(Ok(())))
    );
    counter.failed.set(counter.failed.get() + u64::from(!ok));
    counter.done.set(counter.done.get() + 1);
    Ok(())
}

/// What a batch runner queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BatchOp {
    Noop,
    Timer(Timespec),
}

/// Batches of noops (or timers) through the full Task lifecycle: queue `batch` tasks,
/// `run(UntilDone)`, repeat.
pub struct XuringBatch {
    ring: Ring,
    // Declared after the ring: tasks point to it.
    counter: Box<Counter>,
    batch: u32,
    op: BatchOp,
}

impl XuringBatch {
    /// A ring of `entries` entries (options from the environment, as `Ring::init`) running
    /// noops `batch` at a time.
    pub fn noop(entries: u32, batch: u32) -> Result<XuringBatch, BenchError> {
        Self::new(entries, batch, BatchOp::Noop, None)
    }

    /// [`noop`](Self::noop) on `executor` (`None`: the default choice).
    pub fn noop_on(
        entries: u32,
        batch: u32,
        executor: Option<Executor>,
    ) -> Result<XuringBatch, BenchError> {
        Self::new(entries, batch, BatchOp::Noop, executor)
    }

    /// A ring of `entries` entries running relative timers of `after`, `batch` at a time.
    pub fn timer(entries: u32, batch: u32, after: Timespec) -> Result<XuringBatch, BenchError> {
        Self::new(entries, batch, BatchOp::Timer(after), None)
    }

    /// [`timer`](Self::timer) on `executor` (`None`: the default choice).
    pub fn timer_on(
        entries: u32,
        batch: u32,
        after: Timespec,
        executor: Option<Executor>,
    ) -> Result<XuringBatch, BenchError> {
        Self::new(entries, batch, BatchOp::Timer(after), executor)
    }

    fn new(
        entries: u32,
        batch: u32,
        op: BatchOp,
        executor: Option<Executor>,
    ) -> Result<XuringBatch, BenchError> {
        if batch == 0 {
            return Err(BenchError::Other("batch 0".to_owned()));
        }
        Ok(XuringBatch {
            ring: crate::backend::builder(entries, executor).build()?,
            counter: Box::default(),
            batch,
            op,
        })
    }

    /// What the ring can do (its setup flags make the raw baseline's).
    pub fn features(&self) -> &Features {
        self.ring.features()
    }

    /// What runs the ring.
    pub fn executor(&self) -> Executor {
        self.ring.executor()
    }

    /// Runs `ops` operations; returns the callbacks run.
    pub fn run(&mut self, ops: u64) -> Result<u64, BenchError> {
        self.counter.reset();
        let ctx = Context {
            cb: on_counted,
            msg: 0,
            userdata: Some(NonNull::from(&*self.counter).cast()),
        };
        let mut left = ops;
        while left > 0 {
            let n = left.min(u64::from(self.batch));
            for _ in 0..n {
                match self.op {
                    BatchOp::Noop => self.ring.noop(ctx),
                    BatchOp::Timer(after) => self.ring.timer(after, ctx),
                };
            }
            self.ring.run(RunCondition::UntilDone)?;
            left -= n;
        }
        let what = match self.op {
            BatchOp::Noop => "xuring noop",
            BatchOp::Timer(_) => "xuring timer",
        };
        self.counter.check(what, ops)
    }
}

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoKind {
    /// `Ring::read` (`READ`, or `READ_FIXED` with a registered pool buffer).
    Read,
    /// `Ring::write` (`WRITE`, or `WRITE_FIXED`).
    Write,
}

/// Where the buffers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufSource {
    /// The ring's [`BufferPool`](xuring_core::BufferPool), registered as fixed buffers where
    /// the kernel allows.
    Pool,
    /// Plain `Vec<u8>`s, taken back with `Task::take_buf` and reused.
    Vec,
}

/// The state of an I/O runner, shared with its callbacks.
struct IoState {
    fd: RawFd,
    kind: IoKind,
    offsets: Rc<[u64]>,
    cursor: Cell<usize>,
    target: Cell<u64>,
    issued: Cell<u64>,
    done: Cell<u64>,
    bad: Cell<u64>,
    /// Buffers not in flight; capacity `qd`, so pushing never allocates.
    spare: RefCell<Vec<IoBuf>>,
}

impl IoState {
    fn submit(&self, ring: &mut Ring, buf: IoBuf, ctx: Context) {
        let cursor = self.cursor.get();
        let offset = Offset::At(self.offsets[cursor]);
        self.cursor.set((cursor + 1) % self.offsets.len());
        self.issued.set(self.issued.get() + 1);
        match self.kind {
            IoKind::Read => ring.read(self.fd, buf, offset, ctx),
            IoKind::Write => ring.write(self.fd, buf, offset, ctx),
        };
    }
}

fn on_io(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    // SAFETY: every task queued with this callback carries a pointer to its runner's boxed
    // `IoState` (see the module's safety notes).
    let Some(state) = (unsafe { state_of::<IoState>(task) }) else {
        return Err(RingError::callback("an I/O task without its state"));
    };
    let ok = matches!(
        task.result,
        Some(OpResult::Read(Ok(BLOCK))) | Some(OpResult::Write(Ok(BLOCK)))
    );
    state.bad.set(state.bad.get() + u64::from(!ok));
    state.done.set(state.done.get() + 1);
    let Some(buf) = task.take_buf() else {
        return Err(RingError::callback("an I/O task without its buffer"));
    };
    if state.issued.get() < state.target.get() {
        let ctx = Context {
            cb: on_io,
            msg: 0,
            userdata: task.userdata(),
        };
        state.submit(ring, buf, ctx);
    } else {
        state.spare.borrow_mut().push(buf);
    }
    Ok(())
}

/// 4 KiB reads (or writes) at a fixed queue depth through xuring: `qd` operations in flight,
/// each callback takes its buffer back and resubmits it at the next offset, until `ops` are
/// done.
pub struct XuringIo {
    ring: Ring,
    // Declared after the ring: tasks point to it.
    state: Box<IoState>,
    qd: u32,
    source: BufSource,
}

impl XuringIo {
    /// A ring of `qd` entries doing `kind` on `fd` at `offsets` in turn, with buffers from
    /// `source`.
    pub fn new(
        fd: RawFd,
        offsets: Rc<[u64]>,
        qd: u32,
        kind: IoKind,
        source: BufSource,
    ) -> Result<XuringIo, BenchError> {
        Self::on(None, fd, offsets, qd, kind, source)
    }

    /// [`new`](Self::new) on `executor` (`None`: the default choice).
    pub fn on(
        executor: Option<Executor>,
        fd: RawFd,
        offsets: Rc<[u64]>,
        qd: u32,
        kind: IoKind,
        source: BufSource,
    ) -> Result<XuringIo, BenchError> {
        if offsets.is_empty() || qd == 0 {
            return Err(BenchError::Other("no offsets or queue depth 0".to_owned()));
        }
        let mut builder = crate::backend::builder(qd, executor);
        if source == BufSource::Pool {
            builder = builder.buffer_pool(qd as usize, BLOCK);
        }
        let ring = builder.build()?;
        let mut spare = Vec::with_capacity(qd as usize);
        for _ in 0..qd {
            let buf = match source {
                BufSource::Pool => ring
                    .buffers()
                    .and_then(|pool| pool.get())
                    .map(IoBuf::from)
                    .ok_or_else(|| BenchError::Other("buffer pool exhausted".to_owned()))?,
                BufSource::Vec => IoBuf::from(vec![0xa5u8; BLOCK]),
            };
            spare.push(buf);
        }
        let state = Box::new(IoState {
            fd,
            kind,
            offsets,
            cursor: Cell::new(0),
            target: Cell::new(0),
            issued: Cell::new(0),
            done: Cell::new(0),
            bad: Cell::new(0),
            spare: RefCell::new(spare),
        });
        Ok(XuringIo {
            ring,
            state,
            qd,
            source,
        })
    }

    /// What the ring can do.
    pub fn features(&self) -> &Features {
        self.ring.features()
    }

    /// What runs the ring.
    pub fn executor(&self) -> Executor {
        self.ring.executor()
    }

    /// Whether the buffers are registered fixed buffers (`READ_FIXED`/`WRITE_FIXED`).
    pub fn fixed(&self) -> bool {
        self.source == BufSource::Pool && self.ring.buffers().is_some_and(|p| p.is_registered())
    }

    /// Runs `ops` operations; returns the completions seen. Every one must transfer 4096
    /// bytes, and every buffer must come back.
    pub fn run(&mut self, ops: u64) -> Result<u64, BenchError> {
        let state = &*self.state;
        state.target.set(ops);
        state.issued.set(0);
        state.done.set(0);
        state.bad.set(0);
        let ctx = Context {
            cb: on_io,
            msg: 0,
            userdata: Some(NonNull::from(state).cast()),
        };
        for _ in 0..u64::from(self.qd).min(ops) {
            let buf = state.spare.borrow_mut().pop();
            let buf = buf.ok_or_else(|| BenchError::Other("a buffer went missing".to_owned()))?;
            state.submit(&mut self.ring, buf, ctx);
        }
        self.ring.run(RunCondition::UntilDone)?;
        let what = match state.kind {
            IoKind::Read => "xuring read",
            IoKind::Write => "xuring write",
        };
        if state.bad.get() > 0 {
            return Err(BenchError::Failed {
                what: what.to_owned(),
                count: state.bad.get(),
            });
        }
        if state.spare.borrow().len() != self.qd as usize {
            return Err(BenchError::Other(format!("{what}: buffers not returned")));
        }
        check_complete(what, ops, state.done.get())
    }
}
