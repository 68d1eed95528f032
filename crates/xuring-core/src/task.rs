//! `Task`, its identity, and the `Context` a caller attaches to it.
//!
//! # Safety
//!
//! A task's [`Op`] sits in an `UnsafeCell` because the kernel (or a backend) uses it while the
//! ring only holds raw pointers to the task. The ring touches the op only in states where
//! nothing else can: `Free` and `Queued` on the ring's own queue (before submission), and
//! `Ready`/`Running` (after the completion was reaped, when the backend has let go of it). An
//! `InFlight` task is off limits until its completion is reaped or the backend retracts its
//! op (see `engine.rs`). [`Task::take_buf`] is the one public entry, and it checks that the
//! task is `Running`: its callback is the only code that can see it then.

use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::ptr::NonNull;

use xuring_queue::Link;

use crate::{Backend, IoBuf, Op, OpKind, OpResult, Ring, RingError, Uring};

/// A task's identity: its slot index and the slot's generation, which changes every time the
/// slot is recycled. It is the `user_data` of the task's submission.
///
/// A completion or a cancel carrying an old generation does not match the task now in the
/// slot, so it cannot reach it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

/// Bit 63 of `user_data` marks values that are not tasks (internal or cross-ring messages).
pub(crate) const NOT_A_TASK: u64 = 1 << 63;
/// Bit 62 of a message's `user_data` marks a [`Thread`](crate::Thread) message, which goes to
/// the ring's mailbox; a user's `msg_ring` cannot set it.
pub(crate) const THREAD_MAIL: u64 = 1 << 62;
const GENERATION_MASK: u32 = (1 << 31) - 1;

impl TaskId {
    pub(crate) const fn new(index: u32, generation: u32) -> TaskId {
        TaskId(((generation as u64) << 32) | index as u64)
    }

    /// The `user_data` value.
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// Interprets a `user_data` value; `None` for values no task can have.
    pub const fn from_u64(user_data: u64) -> Option<TaskId> {
        let generation = (user_data >> 32) as u32;
        if user_data & NOT_A_TASK != 0 || generation == 0 {
            None
        } else {
            Some(TaskId(user_data))
        }
    }

    /// The slot index.
    pub const fn index(self) -> u32 {
        self.0 as u32
    }

    /// The slot's generation (never 0).
    pub const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The id of the slot's next occupant.
    #[inline]
    pub(crate) const fn next(self) -> TaskId {
        // The generation sits in bits 32..63 and never exceeds `GENERATION_MASK`, so adding
        // one to it carries into bit 63 exactly when it wraps: then it starts over at 1.
        debug_assert!(self.generation() <= GENERATION_MASK);
        let next = self.0 + (1 << 32);
        if next & NOT_A_TASK != 0 {
            TaskId::new(self.index(), 1)
        } else {
            TaskId(next)
        }
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({}#{})", self.index(), self.generation())
    }
}

/// Where a task is in its lifecycle:
/// `Free -> Queued -> InFlight -> Ready -> Running -> Free`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// On the free list.
    Free,
    /// Queued, not yet submitted: waiting on the ring's queue, or already written into the
    /// backend's queue but not yet handed over by an `enter` (a cancel still takes it back).
    Queued,
    /// Given to the backend (the kernel may be using its memory).
    InFlight,
    /// Waiting for other tasks before it completes (a `cancel_all` on old kernels).
    Waiting,
    /// Completed; on the completion list, waiting for its callback.
    Ready,
    /// Its callback is running.
    Running,
}

/// The completion handler of a task.
pub type Callback<B = Uring> = fn(&mut Ring<B>, &Task<B>) -> Result<(), RingError>;

/// What to call when a task completes, and the caller's state for it.
///
/// `msg` is a small discriminant for multi-step state machines (which step this completion
/// belongs to); `userdata` a type-erased pointer to the caller's state. Neither is touched by
/// the ring.
pub struct Context<B: Backend = Uring> {
    /// The completion handler.
    pub cb: Callback<B>,
    /// A step number or tag of the caller's choosing.
    pub msg: u16,
    /// A pointer to the caller's state.
    pub userdata: Option<NonNull<()>>,
}

impl<B: Backend> Clone for Context<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Context<B> {}

impl<B: Backend> fmt::Debug for Context<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("msg", &self.msg)
            .field("userdata", &self.userdata)
            .finish_non_exhaustive()
    }
}

fn ignore<B: Backend>(_ring: &mut Ring<B>, _task: &Task<B>) -> Result<(), RingError> {
    Ok(())
}

impl<B: Backend> Default for Context<B> {
    /// A callback that does nothing, `msg` 0, no userdata.
    fn default() -> Self {
        Context {
            cb: ignore::<B>,
            msg: 0,
            userdata: None,
        }
    }
}

/// One operation's state, from submission to callback. Tasks live in the ring's pool at
/// stable addresses and are recycled after their callback returns.
///
/// `repr(C)`, so that what every operation touches (id, context, state, kind, flags) shares
/// the first cache line with the start of the op; the queue link, used only by ops that wait
/// on the ring's own queue, comes last.
#[repr(C)]
pub struct Task<B: Backend = Uring> {
    pub(crate) id: Cell<TaskId>,
    pub(crate) ctx: Cell<Context<B>>,
    /// What an internal callback needs (a `cancel_all`'s join task, a mailbox), kept out of
    /// `ctx`: a context can be read back ([`Task::context`]) and resubmitted, so it must not
    /// carry pointers the engine trusts.
    pub(crate) internal: Cell<Option<NonNull<()>>>,
    pub(crate) state: Cell<TaskState>,
    /// The kind of the op, set when it is queued: what a cancel needs to know about the op,
    /// kept outside it so it can be read while the kernel may be writing into the op (an
    /// accept's peer address lives there).
    pub(crate) kind: Cell<OpKind>,
    /// [`BACKGROUND`], [`FALLBACK`], [`BORROWED`], [`OWNS`]: written whole (one store) when a
    /// task is taken from the pool; meaningless while it is `Free`.
    pub(crate) flags: Cell<u8>,
    pub(crate) op: UnsafeCell<Op>,
    /// The operation's outcome; `Some` when the callback runs. (Until a task's completion
    /// writes it, it holds whatever the slot's previous occupant left: the ring reads it only
    /// after its own completion wrote it.)
    pub result: Option<OpResult>,
    pub(crate) link: Link<Task<B>>,
}

/// Task flag: internal work that `run(UntilDone)` does not wait for.
pub(crate) const BACKGROUND: u8 = 1;
/// Task flag: the op's opcode is missing here, or the op decides at submission: `run`
/// completes it with its fallback or admits it ([`Op::missing`]) instead of submitting it
/// as it is. Such a task always waits on the ring's own queue.
pub(crate) const FALLBACK: u8 = 2;
/// Task flag: the op uses memory the caller owns (a raw `IoBuf`): teardown waits for it
/// without a time limit, since it cannot leak that memory instead.
pub(crate) const BORROWED: u8 = 4;
/// Task flag: the op owns resources ([`Op::owns_resources`]) that recycling must drop; an op
/// without it is left in place and overwritten by the next one.
pub(crate) const OWNS: u8 = 8;
/// Task flag: a cancel was sent for this in-flight task. Kernels before about 6.2 complete a
/// read that a cancel interrupts inside an io-wq worker with `EINTR`; with this flag set, the
/// ring reports it as the `ECANCELED` the cancel contract promises. Without it, `ECANCELED`
/// is the kernel's own (an io-wq worker it could not create), and the op never ran.
pub(crate) const CANCELLING: u8 = 16;

// SAFETY: `link` projects to the `link` field with `&raw const`, keeping the node's
// provenance and creating no reference; the field is an inline, aligned `Link<Task<B>>`.
// Tasks live in pool chunks that never move while linked (see `pool`).
unsafe impl<B: Backend> xuring_queue::Linked for Task<B> {
    #[inline(always)]
    unsafe fn link(node: NonNull<Self>) -> NonNull<Link<Self>> {
        // SAFETY: the caller passes a pointer to a live task, so the field place is in bounds.
        let link = unsafe { &raw const (*node.as_ptr()).link };
        // SAFETY: `link` points into the live task, so it is not null.
        unsafe { NonNull::new_unchecked(link.cast_mut()) }
    }
}

impl<B: Backend> Task<B> {
    pub(crate) fn new(index: u32) -> Task<B> {
        Task {
            id: Cell::new(TaskId::new(index, 1)),
            ctx: Cell::new(Context::default()),
            internal: Cell::new(None),
            state: Cell::new(TaskState::Free),
            kind: Cell::new(OpKind::Noop),
            flags: Cell::new(0),
            op: UnsafeCell::new(Op::Noop(crate::ops::Noop {})),
            result: None,
            link: Link::new(),
        }
    }

    /// Whether the task carries `flag`.
    #[inline(always)]
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags.get() & flag != 0
    }

    /// Adds `flag`.
    #[inline(always)]
    pub(crate) fn mark(&self, flag: u8) {
        self.flags.set(self.flags.get() | flag);
    }

    /// The task's op, for the ring.
    ///
    /// # Safety
    ///
    /// The caller must be the only code accessing the op: the task is `Free`, `Queued`,
    /// `Waiting`, `Ready` or `Running` (not with the backend), and no other reference
    /// obtained from `op`/`op_mut` is alive.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn op_mut(&self) -> &mut Op {
        // SAFETY: the caller guarantees exclusive access to the op.
        unsafe { &mut *self.op.get() }
    }

    /// The task's op, read-only.
    ///
    /// # Safety
    ///
    /// No `&mut` to the op may be alive, and the task must not be with the backend: the
    /// kernel may write into the op while it is in flight (an accept's peer address), so a
    /// reference to it then would alias a concurrent write. Read `kind` instead.
    #[inline]
    pub(crate) unsafe fn op(&self) -> &Op {
        // SAFETY: the caller guarantees no mutable access is alive.
        unsafe { &*self.op.get() }
    }

    /// Puts `op` in the task without dropping the op that was there.
    ///
    /// # Safety
    ///
    /// As for [`op_mut`](Self::op_mut), and the op being replaced must own nothing
    /// ([`Op::owns_resources`] is false): recycling drops the ops that do.
    #[inline]
    pub(crate) unsafe fn write_op(&self, op: Op) {
        // SAFETY: the caller guarantees exclusive access, and the old op needs no drop.
        unsafe { self.op.get().write(op) };
    }

    /// Decodes the op's completion result `res` into the task's `result`.
    ///
    /// # Safety
    ///
    /// `task` must be valid, the backend must be done with its op, and no reference to the
    /// task's `result` may be alive.
    #[inline(always)]
    pub(crate) unsafe fn store_result(task: NonNull<Self>, res: i32) {
        let p = task.as_ptr();
        // SAFETY: the caller guarantees `task` is valid.
        let cell = unsafe { &(*p).op };
        // SAFETY: the backend is done with the op, so reading it is exclusive of writers.
        let op = unsafe { &*cell.get() };
        // SAFETY: `result` is a different field than `op`, and nothing else refers to it.
        let out = unsafe { &mut (*p).result };
        op.decode_into(res, out);
    }

    /// Stores `result` in the task.
    ///
    /// # Safety
    ///
    /// `task` must be valid and no reference to the task may be alive (the ring holds only
    /// pointers), so writing the non-`Cell` field cannot invalidate one.
    #[inline]
    pub(crate) unsafe fn write_result(task: NonNull<Self>, result: Option<OpResult>) {
        // SAFETY: the caller guarantees `task` is valid and unaliased.
        unsafe { (*task.as_ptr()).result = result };
    }

    /// The `msg` of the task's context.
    #[inline]
    pub fn msg(&self) -> u16 {
        self.ctx.get().msg
    }

    /// The `userdata` of the task's context.
    #[inline]
    pub fn userdata(&self) -> Option<NonNull<()>> {
        self.ctx.get().userdata
    }

    /// The task's result as op `O`'s own type (`task.output::<ops::Read>()` is the read's
    /// `Result<usize, Errno>`), or `None` if the task's op is another one (or has no result).
    ///
    /// ```
    /// use xuring_core::{Context, Ring, RingError, RunCondition, Task, ops};
    ///
    /// fn on_noop(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    ///     assert_eq!(task.output::<ops::Noop>(), Some(Ok(())));
    ///     assert_eq!(task.output::<ops::Read>(), None, "not a read");
    ///     Ok(())
    /// }
    ///
    /// let mut ring = Ring::init(4)?;
    /// ring.noop(Context { cb: on_noop, ..Context::default() });
    /// ring.run(RunCondition::UntilDone)?;
    /// # Ok::<(), RingError>(())
    /// ```
    #[inline]
    pub fn output<O: crate::Outcome>(&self) -> Option<Result<O::Output, crate::Errno>> {
        self.result.as_ref().and_then(O::of)
    }

    /// The task's context (to resubmit with the same callback and state).
    #[inline]
    pub fn context(&self) -> Context<B> {
        self.ctx.get()
    }

    /// The task's current identity.
    #[inline]
    pub fn id(&self) -> TaskId {
        self.id.get()
    }

    /// Where the task is in its lifecycle.
    #[inline]
    pub fn state(&self) -> TaskState {
        self.state.get()
    }

    /// Which operation the task carries (a received message's task says `Noop`: it carries
    /// none).
    #[inline]
    pub fn kind(&self) -> OpKind {
        self.kind.get()
    }

    /// Takes the operation's buffer back, to reuse it. Only from the task's own callback:
    /// elsewhere (and for ops without an owned buffer) it returns `None`. A buffer not taken is
    /// dropped when the task is recycled (a pool buffer returns to its pool).
    pub fn take_buf(&self) -> Option<IoBuf> {
        if self.state.get() != TaskState::Running {
            return None;
        }
        // SAFETY: a `Running` task's completion has been reaped, so no backend or kernel
        // holds its op; the ring does not touch a running task's op; and `&self` callers
        // cannot obtain another reference into the op (no public accessor returns one).
        unsafe { self.op_mut() }.take_buf()
    }

    /// Takes a `readv`/`writev`'s buffers back, like [`take_buf`](Self::take_buf).
    pub fn take_iovecs(&self) -> Option<crate::IoVecs> {
        if self.state.get() != TaskState::Running {
            return None;
        }
        // SAFETY: as in `take_buf`.
        unsafe { self.op_mut() }.take_iovecs()
    }

    /// Cancels whatever operation occupies this task's slot now.
    ///
    /// Prefer [`TaskHandle::cancel`]: it carries the generation of the task it was returned
    /// for, so it misses when that task has completed and the slot was reused.
    pub fn cancel(&self, ring: &mut Ring<B>, ctx: Context<B>) -> TaskHandle<B> {
        ring.cancel_from(
            self.id(),
            crate::cancel::CancelFrom::Task(NonNull::from(self)),
            ctx,
        )
    }
}

impl<B: Backend> fmt::Debug for Task<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id.get())
            .field("state", &self.state.get())
            .field("msg", &self.msg())
            .field("result", &self.result)
            .finish_non_exhaustive()
    }
}

/// What an op method returns: the task's address and the identity it had when submitted.
pub struct TaskHandle<B: Backend = Uring> {
    ptr: NonNull<Task<B>>,
    id: TaskId,
    /// The engine that made it (see `Engine::serial`).
    engine: u64,
}

impl<B: Backend> Clone for TaskHandle<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for TaskHandle<B> {}

impl<B: Backend> fmt::Debug for TaskHandle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskHandle").field(&self.id).finish()
    }
}

impl<B: Backend> TaskHandle<B> {
    pub(crate) fn new(ptr: NonNull<Task<B>>, id: TaskId, engine: u64) -> Self {
        TaskHandle { ptr, id, engine }
    }

    /// The identity the task had when this handle was made.
    #[inline]
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's address. It stays valid (a task slot is never freed) while the ring lives,
    /// but the slot is reused after the task's callback returns. A reference made from it
    /// must not be held across a call into the ring, which may update the task.
    #[inline]
    pub fn as_ptr(&self) -> *mut Task<B> {
        self.ptr.as_ptr()
    }

    /// The task's address, as a `NonNull`.
    #[inline]
    pub fn as_non_null(&self) -> NonNull<Task<B>> {
        self.ptr
    }

    /// Cancels the task if it is still queued or in flight; a no-op (`ENOENT`) once it has
    /// completed, even if its slot now holds another task, and when `ring` is not the ring
    /// the handle came from.
    pub fn cancel(self, ring: &mut Ring<B>, ctx: Context<B>) -> TaskHandle<B> {
        ring.cancel_from(self.id, crate::cancel::CancelFrom::Handle(self.engine), ctx)
    }
}
