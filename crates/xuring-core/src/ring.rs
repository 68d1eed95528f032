//! `Ring`: the handle users hold, its accessors, and the handle's life (its engine, `Drop`).
//! The options of a new ring are in `builder.rs`, the op methods are declared with their ops
//! in `ops.rs`, cancellation is in `cancel.rs` and the run loop in `run.rs`.
//!
//! # Safety
//!
//! A `Ring` is a thin handle: the ring's state (tasks, queues, backend) is an [`Engine`] in
//! its own heap allocation, which the handle owns through a raw pointer. The split exists
//! because a callback receives `&mut Ring` and safe code may assign, swap or drop that ring
//! from inside the callback: the running `run` keeps its own pointer to the engine, and an
//! engine whose handle is dropped while it runs is only marked orphaned; `run` frees it after
//! the callback returns (see `run.rs`). So:
//! - the engine is freed exactly once: by the handle's `Drop` when it is not running, or by
//!   the run that was driving it when its handle went away meanwhile;
//! - [`Ring::engine`] creates the only reference to the engine from the handle's `&mut self`;
//!   `run` holds no reference to the engine while a callback runs (only the raw pointer), so
//!   the callback's accesses through its `&mut Ring` are exclusive.
//!
//! The task pointers the methods here read come from the engine's pool and stay valid for the
//! engine's life.

use core::marker::PhantomData;
use core::ptr::NonNull;
use std::os::fd::RawFd;

use xuring_sys::Features;

use crate::engine::Engine;

use crate::task::TaskState;
use crate::{Backend, BufferPool, Context, IoBuf, Offset, TaskHandle, Uring};

/// Counters of what the ring has seen. Cheap to read at any time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Completions whose `user_data` names no task of this ring (e.g. posted by another
    /// process after `fork`): counted and dropped.
    pub foreign_completions: u64,
    /// Completions for a task that was not in flight (a duplicate, or for an old generation):
    /// counted and dropped.
    pub stale_completions: u64,
    /// `io_uring_enter` calls interrupted by a signal and retried.
    pub eintr_retries: u64,
    /// Ops the kernel cancelled on its own, before they ran, and the ring submitted again
    /// (kernels before about 6.2 do this when they cannot create an io-wq worker, as under a
    /// signal storm).
    pub resubmitted: u64,
    /// `EBUSY`/`EAGAIN` from `io_uring_enter`: completions reaped, then retried.
    pub busy_retries: u64,
    /// Messages received from other rings.
    pub messages: u64,
    /// Messages received with no handler set ([`Ring::on_message`]): dropped.
    pub unhandled_messages: u64,
    /// Calls of `io_uring_enter` (or the backend's equivalent).
    pub enters: u64,
    /// Operations written into the backend's queue (not those a cancel or teardown took
    /// back before an `enter` handed them over).
    pub submitted: u64,
    /// Callbacks run.
    pub callbacks: u64,
}

/// Tasks that could not be reaped at teardown (the kernel may still write into them), over the
/// life of the process. Their memory is leaked on purpose, never freed.
static LEAKED_TASKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// How many tasks rings have leaked at teardown because the kernel did not complete them in
/// time (see [`RingBuilder::teardown_timeout`](crate::RingBuilder::teardown_timeout)).
pub fn leaked_tasks() -> u64 {
    LEAKED_TASKS.load(core::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn count_leaked(tasks: u64) {
    LEAKED_TASKS.fetch_add(tasks, core::sync::atomic::Ordering::Relaxed);
}

/// A single-threaded io_uring event loop: tasks, callbacks, and the backend that runs them.
///
/// Submit work with the op methods ([`noop`](Self::noop), [`timer`](Self::timer),
/// [`read`](Self::read), [`write`](Self::write), [`cancel`](Self::cancel), ...): each takes a
/// [`Context`] and queues a task. [`run`](Self::run) submits the queued tasks, waits for
/// completions, and calls each task's callback with `&mut Ring`, so callbacks can submit
/// follow-up work.
///
/// A callback may even assign, swap or drop the ring it was given: the run that called it
/// stops with [`RingError::Replaced`](crate::RingError::Replaced), and the replaced ring's state stays valid until it is
/// torn down (nothing is freed under a running callback).
pub struct Ring<B: Backend = Uring> {
    /// The ring's state, owned (see the module's `# Safety`).
    engine: NonNull<Engine<B>>,
    _owns: PhantomData<Engine<B>>,
}

impl Ring<Uring> {
    /// The ring's file descriptor (on the readiness executor, a descriptor of its `epoll`
    /// instance).
    pub fn fd(&self) -> RawFd {
        self.engine_ref().backend.fd()
    }

    /// What runs this ring's operations: the kernel's io_uring, or the readiness executor
    /// (`epoll`) where io_uring is forbidden or missing (see
    /// [`RingBuilder::executor`](crate::RingBuilder::executor)).
    pub fn executor(&self) -> xuring_sys::Executor {
        self.engine_ref().backend.executor()
    }
}

impl<B: Backend> Ring<B> {
    /// What the backend can do (clamped to the ring's kernel level).
    pub fn features(&self) -> &Features {
        self.engine_ref().backend.features()
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.engine_ref().backend
    }

    /// A view of the backend that can steer it (tests use it to set the mock's handlers and
    /// faults), but neither replace it nor drive it: the backend belongs to this ring for
    /// its whole life, so the ring and its backend always agree on what is in flight. For
    /// io_uring it is `&Uring`; for the mock, `xuring_mock::MockControl`.
    ///
    /// ```compile_fail
    /// # use xuring_core::Ring;
    /// let mut a = Ring::init(8).unwrap();
    /// let mut b = Ring::init(8).unwrap();
    /// // Trading the rings' kernel queues (with reads in flight) does not compile.
    /// core::mem::swap(&mut *a.backend_mut(), &mut *b.backend_mut());
    /// ```
    ///
    /// ```compile_fail
    /// # use xuring_core::{Backend, Ring};
    /// let mut ring = Ring::init(8).unwrap();
    /// // Reaping behind the ring's back does not compile either.
    /// ring.backend_mut().reap(|_| {});
    /// ```
    ///
    /// ```
    /// # use xuring_core::Ring;
    /// let mut ring = Ring::init(8).unwrap();
    /// // Reading through the view is fine.
    /// let _fd = ring.backend_mut().fd();
    /// ```
    pub fn backend_mut(&mut self) -> B::Control<'_> {
        self.engine().backend.control()
    }

    /// The counters.
    pub fn stats(&self) -> RingStats {
        self.engine_ref().stats
    }

    /// The buffer pool, if the ring was built with one.
    pub fn buffers(&self) -> Option<&BufferPool> {
        self.engine_ref().buffers.as_ref()
    }

    /// Tasks handed to the backend's executor (the kernel) and not yet completed.
    pub fn in_flight(&self) -> u32 {
        let engine = self.engine_ref();
        engine
            .in_flight
            .saturating_sub(engine.backend.retractable())
    }

    /// Tasks queued whose ops the executor has not seen yet: those waiting on the ring's own
    /// queue and those already written into the backend's (io_uring's SQ, which the next
    /// `run` submits). Cancelling one completes it without the kernel.
    pub fn queued(&self) -> usize {
        let engine = self.engine_ref();
        engine.submission_q.len() + engine.backend.retractable() as usize
    }

    /// Tasks completed whose callbacks have not run yet.
    pub fn ready(&self) -> usize {
        self.engine_ref().completions.len()
    }

    /// The number of task slots (grows in chunks).
    pub fn capacity(&self) -> u32 {
        self.engine_ref().pool.capacity()
    }

    /// Free task slots.
    pub fn free_tasks(&self) -> usize {
        self.engine_ref().pool.free_len()
    }

    /// Whether nothing of the user's is queued, in flight or waiting for a callback. The
    /// ring's own background tasks in flight (a [`Thread`](crate::Thread) mailbox's read, the
    /// wake timer a deadline run leaves behind below 5.11) do not count: they never keep
    /// `run(UntilDone)` going either.
    pub fn is_idle(&self) -> bool {
        let e = self.engine_ref();
        e.in_flight == e.background_in_flight
            && e.submission_q.is_empty()
            && e.completions.is_empty()
    }

    /// How many task slots are in `state` right now. Walks every slot, so it costs
    /// O([`capacity`](Self::capacity)): for tests and diagnostics (the mock's invariant checks
    /// compare it with the list lengths above), not for hot paths. A task whose op was
    /// written into the backend's queue is `InFlight` as a task (the ring no longer touches
    /// its op) while [`queued`](Self::queued) still counts it.
    pub fn count_tasks(&self, state: TaskState) -> usize {
        self.engine_ref()
            .pool
            .all()
            .filter(|task| task.get().state.get() == state)
            .count()
    }

    // ----- operations (the others are declared in `ops.rs`) -----

    /// Like [`read`](Self::read) into memory the caller owns (see
    /// [`IoBuf::from_raw_parts_mut`]).
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes, and not accessed by anything
    /// else, until this task's callback has run or the ring has been dropped (a drop waits for
    /// the read however long it takes, see [`IoBuf::from_raw_parts_mut`]); if the ring is
    /// leaked (`mem::forget`), for the rest of the process.
    pub unsafe fn read_raw(
        &mut self,
        fd: RawFd,
        ptr: NonNull<u8>,
        len: usize,
        offset: Offset,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        // SAFETY: the caller's contract is `IoBuf::from_raw_parts_mut`'s.
        let buf = unsafe { IoBuf::from_raw_parts_mut(ptr, len) };
        self.read(fd, buf, offset, ctx)
    }

    /// Like [`write`](Self::write) from memory the caller owns, which may be read-only (see
    /// [`IoBuf::from_raw_parts`]).
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads of `len` bytes, and not written by anything, until this
    /// task's callback has run or the ring has been dropped (a drop waits for the write
    /// however long it takes, see [`IoBuf::from_raw_parts`]); if the ring is leaked
    /// (`mem::forget`), for the rest of the process.
    pub unsafe fn write_raw(
        &mut self,
        fd: RawFd,
        ptr: NonNull<u8>,
        len: usize,
        offset: Offset,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        // SAFETY: the caller's contract is `IoBuf::from_raw_parts`'s (read-only memory).
        let buf = unsafe { IoBuf::from_raw_parts(ptr, len) };
        self.write(fd, buf, offset, ctx)
    }

    /// Sets the handler for messages from other rings: each one runs `ctx.cb` with a task
    /// whose result is `OpResult::Message(message)`. Without a handler, messages are counted
    /// ([`RingStats::unhandled_messages`]) and dropped.
    pub fn on_message(&mut self, ctx: Context<B>) {
        self.engine().message_ctx = Some(ctx);
    }

    // ----- the handle -----

    /// Takes ownership of `engine`.
    pub(crate) fn from_engine(engine: Engine<B>) -> Ring<B> {
        Ring {
            engine: NonNull::from(Box::leak(Box::new(engine))),
            _owns: PhantomData,
        }
    }

    /// The engine's address, which identifies the ring: a run compares it after each callback
    /// to notice that the callback replaced its ring.
    #[inline]
    pub(crate) fn engine_ptr(&self) -> NonNull<Engine<B>> {
        self.engine
    }

    /// The ring's state.
    #[inline]
    pub(crate) fn engine(&mut self) -> &mut Engine<B> {
        // SAFETY: the handle owns a live engine (freed only in `Drop`, or by the run that
        // drives it after this handle is gone), and `&mut self` makes this the only reference
        // made from the handle; `run` holds no reference while it calls back (module docs).
        unsafe { &mut *self.engine.as_ptr() }
    }

    /// The ring's state, read-only.
    #[inline]
    pub(crate) fn engine_ref(&self) -> &Engine<B> {
        // SAFETY: as in `engine`, with `&self`: no `&mut` made from this handle is alive.
        unsafe { self.engine.as_ref() }
    }
}
