//! `Engine`: a ring's state and its task lifecycle: queue -> submit -> reap -> (callback, in
//! `run.rs`) -> recycle. [`Ring`](crate::Ring) is the handle users hold; cancellation is in
//! `cancel.rs`, teardown in `teardown.rs`.
//!
//! # Safety
//!
//! The engine dereferences task pointers from its [`TaskPool`]. They are always valid
//! (chunks are freed only when the engine is, after teardown). What the engine may do with a
//! task depends on its [`TaskState`]:
//! - `Free`, `Waiting`, and `Queued` on `submission_q`: the engine owns the task outright and
//!   writes its op and result.
//! - `InFlight`: its op was pushed into the backend's queue (at queue time where the backend
//!   can take ops back, [`Backend::CAN_RETRACT`], else by `flush`). The backend (and, from
//!   the next `enter`, the kernel) owns the op; the engine reads only the `Cell` fields (id,
//!   state, kind, flags, context) until either the completion is reaped or
//!   [`Backend::retract`] has taken the op back before any `enter` handed it over
//!   (`retract_pushed`, from a cancel, `cancel_all` or teardown). A retracted task is the
//!   engine's again: it reads the op to decode a local completion. A forked child never
//!   pushes (it must not write into the SQ it shares with its parent), never retracts, and
//!   never enters.
//! - `Ready`: the engine owns it again.
//! - `Running`: the callback holds `&Task`; the engine touches only `Cell` fields.
//!
//! The engine never creates `&mut Task`: it writes `result` and the op through raw pointers
//! derived from the chunk allocation, in the states where nothing else looks at them.
//!
//! Whatever a callback does with its `&mut Ring` goes through these same paths: queueing
//! pushes or lists a new task (never one in use), cancelling retracts or cancels in the
//! kernel, dropping the ring tears it down (retracting what no `enter` handed over). A push
//! and the task's move to `InFlight` have nothing in between that can panic.

use core::ptr::NonNull;

use crate::backend::Completion;
use crate::op::{Declared, Message};
use crate::ops::OpKind;
use crate::pool::{TaskList, TaskPool, TaskRef};
use crate::ready::ReadyQueue;
use crate::ring::RingStats;
use crate::task::{BACKGROUND, CANCELLING, FALLBACK, NOT_A_TASK, OWNS, THREAD_MAIL, TaskState};
use crate::{Backend, BufferPool, Context, Op, OpResult, Task, TaskHandle, TaskId, Timespec};

/// A ring's state. Lives in its own heap allocation, owned by a [`Ring`] handle (see
/// `ring.rs` for why).
pub(crate) struct Engine<B: Backend> {
    // Fields drop in declaration order: the lists (emptied by `Drop`, or by `shut_down` if a
    // panic interrupts it) before the backend, the backend (the kernel ring) before the pool
    // whose chunks it may have been using.
    /// Tasks queued but not yet handed to the backend: those that could not be pushed at
    /// once (no [`Backend::CAN_RETRACT`], a full queue, older tasks waiting, a fallback to
    /// decide). Doubly linked so a cancel can take a task out of the middle in O(1).
    pub(crate) submission_q: TaskList<B>,
    /// Tasks whose completion was reaped, waiting for their callback. Completions are moved
    /// here before any callback runs, because callbacks get `&mut Ring` and may submit, cancel
    /// or even run out of room in the backend's queue while we would still be iterating it.
    pub(crate) completions: ReadyQueue<B>,
    pub(crate) backend: B,
    pub(crate) pool: TaskPool<B>,
    /// This engine among all engines of the process, for [`TaskHandle`]s: task addresses and
    /// ids repeat across rings (and across a freed ring and a new one), this does not.
    pub(crate) serial: u64,
    pub(crate) in_flight: u32,
    pub(crate) running: bool,
    /// The handle was dropped by a callback of this engine's own run: the run frees the
    /// engine once that callback has returned.
    pub(crate) orphaned: bool,
    /// `shut_down` ran: the backend is never entered again (an orphaned engine lives on until
    /// its callback returns, and the memory of ops teardown gave up on may be freed by then).
    pub(crate) shut: bool,
    /// A mailbox send was admitted into the backend's queue and no `enter` has taken it
    /// yet: `run` submits it before it returns.
    pub(crate) admitted_unsubmitted: bool,
    /// The task whose callback is running, recycled even if the callback panics.
    pub(crate) current: Option<TaskRef<B>>,
    pub(crate) stats: RingStats,
    pub(crate) buffers: Option<BufferPool>,
    pub(crate) teardown_timeout: core::time::Duration,
    /// The internal timer that bounds a deadline wait without `FEAT_EXT_ARG`, and its time.
    pub(crate) wake: Option<(TaskId, Timespec)>,
    /// Background tasks in flight: internal wake-up timers and mailbox reads. They are not
    /// user work: `run(UntilDone)` does not wait for them.
    pub(crate) background_in_flight: u32,
    /// `statx` buffers of finished stats, reused so that a stat allocates only in warm-up.
    /// Boxed, because the kernel writes into a buffer while the box moves with its task.
    #[allow(clippy::vec_box)]
    pub(crate) statx_cache: Vec<Box<libc::statx>>,
    /// Message headers of finished send-to and receive-from ops, for the next ones. Boxed on
    /// purpose: each box moves into an op and back without allocating.
    #[allow(clippy::vec_box)]
    pub(crate) msg_cache: Vec<Box<crate::msghdr::MsgSpace>>,
    /// Where messages from other rings go (the user's [`Ring::on_message`] handler).
    pub(crate) message_ctx: Option<Context<B>>,
    /// Where [`Thread`](crate::Thread) messages go: the mailbox's own handler, which user
    /// code cannot replace.
    pub(crate) mailbox_ctx: Option<Context<B>>,
    /// The ring's mailbox, once it talks to threads (real kernel only).
    pub(crate) mailbox: Option<std::sync::Arc<crate::Mailbox>>,
    /// The ops the kernel cancelled on its own that the ring is resubmitting (see `reap`).
    pub(crate) kernel_cancels: KernelCancels,
    /// Values the ring holds for its callbacks, one per type ([`Ring::with_state`]).
    pub(crate) states: Vec<crate::state::StateSlot>,
}

/// The ops the kernel cancelled on its own and the ring resubmitted, each with its own
/// patience. Kernels before about 6.2 cancel io-wq work they could not create a worker for;
/// under a signal storm that can go on for hundreds of milliseconds (a thousand resubmissions
/// and more on Debian's 6.1 without `COOP_TASKRUN`), and a kernel that can never create a
/// worker (say, at `RLIMIT_NPROC`), or a file system whose answer is `ECANCELED`, would
/// cancel forever. The ring resubmits an op for [`KERNEL_CANCEL_PATIENCE`] on the backend's
/// clock from its first such cancel, then delivers the `ECANCELED`; a clock that does not move
/// (the mock's virtual one) ends it after [`KERNEL_CANCEL_RETRIES`]. Other ops getting
/// through, or being cancelled by the user, change nothing for it.
#[derive(Default)]
pub(crate) struct KernelCancels {
    /// The tasks being resubmitted; empty but for storms, so the normal path never looks.
    retrying: Vec<Retry>,
    /// The backend's clock after the last `reap` that resubmitted something.
    now: Option<Timespec>,
}

/// One resubmitted task.
struct Retry {
    id: TaskId,
    /// Its resubmissions so far.
    count: u32,
    /// Its first kernel-made cancel (dated after the `reap` that saw it).
    since: Option<Timespec>,
}

impl KernelCancels {
    /// Whether to resubmit task `id` after a kernel-made cancel (and counts it), or deliver
    /// the `ECANCELED` (its patience ran out).
    #[cold]
    fn resubmit(&mut self, id: TaskId) -> bool {
        let now = self.now;
        let index = match self.retrying.iter().position(|r| r.id == id) {
            Some(index) => index,
            None => {
                self.retrying.push(Retry {
                    id,
                    count: 0,
                    since: None,
                });
                self.retrying.len() - 1
            }
        };
        let retry = &mut self.retrying[index];
        let waited = match (retry.since, now) {
            (Some(since), Some(now)) => now.saturating_sub(since),
            _ => core::time::Duration::ZERO,
        };
        if waited >= KERNEL_CANCEL_PATIENCE || retry.count >= KERNEL_CANCEL_RETRIES {
            self.retrying.swap_remove(index);
            return false;
        }
        retry.count += 1;
        true
    }

    /// After a `reap`: dates the new entries and forgets the tasks no longer being resubmitted
    /// (they completed otherwise, or were cancelled while queued).
    #[cold]
    fn after_reap(&mut self, now: Timespec, still_retrying: impl Fn(TaskId) -> bool) {
        self.now = Some(now);
        self.retrying.retain(|r| still_retrying(r.id));
        for retry in &mut self.retrying {
            retry.since.get_or_insert(now);
        }
    }
}

/// How long the ring resubmits an op the kernel keeps cancelling on its own before it delivers
/// the `ECANCELED`.
pub(crate) const KERNEL_CANCEL_PATIENCE: core::time::Duration = core::time::Duration::from_secs(5);

/// How many kernel-made cancels of one op the ring resubmits when its clock does not move
/// (see [`KernelCancels`]).
pub(crate) const KERNEL_CANCEL_RETRIES: u32 = 100_000;

impl<B: Backend> Engine<B> {
    pub(crate) fn new(
        backend: B,
        pool: TaskPool<B>,
        teardown_timeout: core::time::Duration,
    ) -> Engine<B> {
        static SERIAL: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
        Engine {
            submission_q: TaskList::new(),
            completions: ReadyQueue::with_capacity(pool.capacity() as usize),
            backend,
            pool,
            serial: SERIAL.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
            in_flight: 0,
            running: false,
            orphaned: false,
            shut: false,
            admitted_unsubmitted: false,
            current: None,
            stats: RingStats::default(),
            buffers: None,
            teardown_timeout,
            wake: None,
            background_in_flight: 0,
            statx_cache: Vec::new(),
            msg_cache: Vec::new(),
            message_ctx: None,
            mailbox_ctx: None,
            mailbox: None,
            kernel_cancels: KernelCancels::default(),
            states: Vec::new(),
        }
    }

    /// Queues a task for `op`, staging it where it can be.
    #[inline(always)]
    pub(crate) fn queue(&mut self, op: Op, ctx: Context<B>) -> TaskHandle<B> {
        let task = self.new_task(op, ctx);
        self.enqueue(task, true);
        self.handle(task)
    }

    /// A task from the pool, `Queued` with `op` and `ctx` but on no queue yet: the caller
    /// enqueues it or completes it locally.
    /// Its flags are `OWNS` or nothing: the caller adds the others.
    #[inline(always)]
    pub(crate) fn new_task(&mut self, op: impl Into<Op>, ctx: Context<B>) -> TaskRef<B> {
        let task = self.pool.get(&mut self.completions);
        let t = task.get();
        // Converted in place, so only the variant's own fields are written.
        // SAFETY: a task fresh from the free list is `Free`: nothing else refers to its op,
        // and recycling left an op that owns nothing.
        unsafe { t.write_op(op.into()) };
        // SAFETY: as above; the op was just written and no reference to it is alive.
        let op = unsafe { t.op() };
        t.kind.set(op.kind());
        t.flags.set(if op.owns_resources() { OWNS } else { 0 });
        t.ctx.set(ctx);
        t.state.set(TaskState::Queued);
        task
    }

    #[inline(always)]
    fn handle(&self, task: TaskRef<B>) -> TaskHandle<B> {
        let id = task.get().id.get();
        TaskHandle::new(task.as_ptr(), id, self.serial)
    }

    /// Puts a `Queued` task in line for submission. With `may_push`, a backend that can take
    /// ops back ([`Backend::CAN_RETRACT`]), nothing waiting ahead of it and room in the
    /// backend's queue, the op is pushed into the backend's queue right away: the executor
    /// sees it at the next `enter`, which `run` makes, and until then a cancel or teardown
    /// retracts it. Otherwise it waits on `submission_q` for `flush`.
    #[inline(always)]
    fn enqueue(&mut self, task: TaskRef<B>, may_push: bool) {
        if B::CAN_RETRACT
            && may_push
            && self.submission_q.is_empty()
            && !self.backend.forked()
            && self.push(task)
        {
            return;
        }
        self.submission_q.push_back(task);
    }

    /// Pushes a `Queued` task's op into the backend's queue and counts it in flight; false
    /// (and nothing changed) if the queue has no room. Never in a forked child, which must
    /// not write into the queue it shares with its parent.
    #[inline(always)]
    fn push(&mut self, task: TaskRef<B>) -> bool {
        let t = task.get();
        let op = NonNull::new(t.op.get()).expect("UnsafeCell::get is never null");
        // SAFETY: the op lives in the task, which stays at its address until it is recycled.
        // An `InFlight` task is neither recycled nor has its op replaced or borrowed mutably
        // until its completion is reaped or `retract_pushed` took the op back, and the task
        // is `InFlight` from right after this push, with nothing in between that can panic.
        if unsafe { self.backend.push(op, t.id.get().to_u64()) }.is_err() {
            return false;
        }
        t.state.set(TaskState::InFlight);
        if t.has(BACKGROUND) {
            self.background_in_flight += 1;
        }
        self.in_flight += 1;
        self.stats.submitted += 1;
        true
    }

    /// Takes `task`'s op back from the backend if no `enter` has handed it over yet (see
    /// [`retract_pushed`](Self::retract_pushed)); true if it did: the task is no longer
    /// counted in flight, and the caller completes it.
    pub(crate) fn retract_one(&mut self, task: TaskRef<B>) -> bool {
        let mut found = false;
        let taken = self.retract_pushed_with(|t| {
            let pick = !found && t == task;
            found |= pick;
            pick
        });
        taken > 0
    }

    /// Takes back from the backend the pushed ops that `select` picks among those no `enter`
    /// has handed to the executor yet, keeping the others in order, and returns their tasks
    /// in queue order, no longer counted in flight (state still `InFlight`: the caller
    /// completes or recycles them). Only with [`Backend::CAN_RETRACT`]; in a forked child
    /// the backend's queue is the parent's, and nothing is taken.
    pub(crate) fn retract_pushed(
        &mut self,
        mut select: impl FnMut(&Task<B>) -> bool,
    ) -> Vec<TaskRef<B>> {
        let mut taken = Vec::new();
        self.retract_pushed_with(|t| {
            let pick = select(t.get());
            if pick {
                taken.push(t);
            }
            pick
        });
        taken
    }

    /// [`retract_pushed`](Self::retract_pushed) without collecting: `select` sees each
    /// candidate task (in queue order) and picks; returns how many were taken back.
    fn retract_pushed_with(&mut self, mut select: impl FnMut(TaskRef<B>) -> bool) -> u32 {
        if !B::CAN_RETRACT || self.backend.forked() {
            return 0;
        }
        let Engine {
            backend,
            pool,
            in_flight,
            background_in_flight,
            stats,
            ..
        } = self;
        backend.retract(|user_data| {
            let Some(task) = TaskId::from_u64(user_data).and_then(|id| pool.lookup(id)) else {
                return false;
            };
            let t = task.get();
            if t.state.get() != TaskState::InFlight || !select(task) {
                return false;
            }
            *in_flight -= 1;
            if t.has(BACKGROUND) {
                *background_in_flight -= 1;
            }
            stats.submitted -= 1;
            true
        })
    }

    /// Completes a task without the backend (it never reached it): its result is `op`'s
    /// decoding of `-errno`.
    pub(crate) fn complete_locally(&mut self, task: TaskRef<B>, res: i32) {
        // SAFETY: the task is `Free`/`Queued`/`Waiting` (not with the backend): the engine owns
        // its op, and holds only pointers to the task.
        unsafe { Task::store_result(task.as_ptr(), res) };
        self.make_ready(task);
    }

    fn make_ready(&mut self, task: TaskRef<B>) {
        task.get().state.set(TaskState::Ready);
        self.completions.push_back(task);
    }

    /// Queues a declared op: what every op method does. Arguments the kernel must never see
    /// complete the task with their errno at the next `run`; an op on caller-owned memory is
    /// marked (`BORROWED`); an op whose opcode is newer than the 5.6 floor and missing here is
    /// marked for its fallback and waits on the ring's queue. For a noop all of that folds
    /// away at compile time.
    #[inline(always)]
    pub(crate) fn submit<T: Declared>(&mut self, op: T, ctx: Context<B>) -> TaskHandle<B> {
        let refuse = op.refuse();
        let borrowed = op.borrows_memory();
        let missing = !T::KIND.on_floor() && !self.backend.features().supports(T::KIND.opcode());
        let task = self.new_task(op, ctx);
        if borrowed || missing {
            let t = task.get();
            t.mark(
                if borrowed { crate::task::BORROWED } else { 0 }
                    | if missing { FALLBACK } else { 0 },
            );
        }
        match refuse {
            None => self.enqueue(task, !missing),
            Some(errno) => self.complete_locally(task, -errno),
        }
        self.handle(task)
    }

    /// A `statx` buffer for a stat: one a finished stat left, so a stat allocates only in
    /// warm-up.
    pub(crate) fn statx_buf(&mut self) -> Box<libc::statx> {
        self.statx_cache
            .pop()
            .unwrap_or_else(crate::stat::zeroed_statx)
    }

    /// A message header space for a send-to or receive-from, reused like `statx` buffers.
    pub(crate) fn msg_space(&mut self) -> Box<crate::msghdr::MsgSpace> {
        self.msg_cache
            .pop()
            .unwrap_or_else(crate::msghdr::MsgSpace::boxed)
    }

    /// The task a handle this engine just made names (still queued, so its id is current).
    pub(crate) fn task_of(&self, handle: TaskHandle<B>) -> TaskRef<B> {
        match self.pool.lookup(handle.id()) {
            Some(task) => task,
            None => unreachable!("a task queued by this engine is in its pool"),
        }
    }

    /// Marks a queued task as background work (`run(UntilDone)` does not wait for it).
    pub(crate) fn set_background(&mut self, handle: TaskHandle<B>) {
        let task = self.task_of(handle);
        let t = task.get();
        if !t.has(BACKGROUND) && t.state.get() == TaskState::InFlight {
            // Pushed as it was queued: counted in flight already, as user work until now.
            self.background_in_flight += 1;
        }
        t.mark(BACKGROUND);
    }

    /// A task for `op` that completes with `res` at the next `run`, without the backend.
    pub(crate) fn complete_now(
        &mut self,
        op: impl Into<Op>,
        ctx: Context<B>,
        res: i32,
    ) -> TaskHandle<B> {
        let task = self.new_task(op, ctx);
        self.complete_locally(task, res);
        self.handle(task)
    }

    /// What the backend can do (clamped to the ring's kernel level).
    pub(crate) fn features(&self) -> &xuring_sys::Features {
        self.backend.features()
    }

    // ----- the lifecycle, driven by `run` -----

    /// Hands queued tasks to the backend while it has room.
    #[inline]
    pub(crate) fn flush(&mut self) {
        if !self.submission_q.is_empty() {
            self.flush_until(false);
        }
    }

    /// [`flush`](Self::flush) before returning from `run` (the next `run` enters): stops at
    /// the first marked op, which is decided (a mailbox send admitted) only right before an
    /// `enter`, so a sender cannot hold an admitted send while it does something else, such
    /// as joining the thread the send is for.
    #[inline]
    pub(crate) fn flush_unmarked(&mut self) {
        if !self.submission_q.is_empty() {
            self.flush_until(true);
        }
    }

    fn flush_until(&mut self, stop_at_marked: bool) {
        if self.backend.forked() {
            // The backend's queue is shared with the parent: a child writes nothing into it.
            return;
        }
        let mut space = self.backend.space();
        while space > 0 {
            let Some(task) = self.submission_q.pop_front() else {
                break;
            };
            let t = task.get();
            if t.has(FALLBACK) {
                if stop_at_marked {
                    self.submission_q.push_front(task);
                    break;
                }
                // SAFETY: a `Queued` task's op belongs to the ring.
                if let Some(res) = unsafe { t.op() }.missing(&mut self.backend) {
                    self.complete_locally(task, res);
                    continue;
                }
                // Admitted: it must reach the kernel before `run` returns.
                self.admitted_unsubmitted = true;
            }
            if !self.push(task) {
                // The backend's `space` was optimistic: keep the task first in line.
                self.submission_q.push_front(task);
                break;
            }
            space -= 1;
        }
    }

    /// Queues `op`, marked so that [`Op::missing`] decides at submission.
    pub(crate) fn queue_marked(&mut self, op: Op, ctx: Context<B>) -> TaskHandle<B> {
        let task = self.new_task(op, ctx);
        task.get().mark(FALLBACK);
        self.enqueue(task, false);
        self.handle(task)
    }

    /// Moves every available completion to the completion list. Out of line, so that the
    /// backend's reap loop and this sink are compiled into one function.
    #[inline(never)]
    pub(crate) fn reap(&mut self) {
        let Engine {
            backend,
            pool,
            completions,
            submission_q,
            stats,
            in_flight,
            wake,
            background_in_flight,
            shut,
            kernel_cancels,
            message_ctx,
            mailbox_ctx,
            mailbox,
            ..
        } = self;
        backend.reap(|c: Completion| {
            if c.user_data & NOT_A_TASK != 0 {
                let to = Recipients {
                    message_ctx: *message_ctx,
                    mailbox_ctx: *mailbox_ctx,
                    mailbox: mailbox.as_deref(),
                };
                to.deliver(c, pool, completions, stats);
                return;
            }
            let Some(task) = TaskId::from_u64(c.user_data).and_then(|id| pool.lookup(id)) else {
                count_unknown(c.user_data, pool, stats);
                return;
            };
            let t = task.get();
            if t.state.get() != TaskState::InFlight {
                stats.stale_completions += 1;
                return;
            }
            *in_flight -= 1;
            if let Some((w, _)) = wake
                && w.to_u64() == c.user_data
            {
                *wake = None;
            }
            if t.has(BACKGROUND) {
                *background_in_flight -= 1;
            }
            if c.res == -libc::ECANCELED
                && !t.has(CANCELLING)
                && !*shut
                && t.kind.get().retries_kernel_cancel()
                && kernel_cancels.resubmit(t.id.get())
            {
                // Nobody asked for this cancel: the kernel's (before about 6.2, io-wq cancels
                // work it could not create a worker for, as under a signal storm). The op
                // never ran, and is submitted again, for as long as its patience lasts.
                stats.resubmitted += 1;
                t.state.set(TaskState::Queued);
                submission_q.push_back(task);
                return;
            }
            t.state.set(TaskState::Ready);
            // Older kernels interrupt a cancelled op running in an io-wq worker with EINTR.
            let res = if c.res == -libc::EINTR && t.has(CANCELLING) {
                -libc::ECANCELED
            } else {
                c.res
            };
            // SAFETY: the completion for this task's id was just delivered, so the backend
            // and kernel are done with its op; the ring holds only pointers to the task (`t`
            // is not used below).
            unsafe { Task::store_result(task.as_ptr(), res) };
            completions.push_back(task);
        });
        if !kernel_cancels.retrying.is_empty() {
            kernel_cancels.after_reap(backend.now(), |id| {
                pool.lookup(id).is_some_and(|task| {
                    matches!(
                        task.get().state.get(),
                        TaskState::Queued | TaskState::InFlight
                    )
                })
            });
        }
    }

    /// Drops what a finished op owned, keeping `statx` buffers and message headers for the
    /// next ops. Runs after the task is back in the pool, so a panicking buffer drop cannot
    /// lose the task.
    fn drop_op(&mut self, op: Op) {
        if let Op::Stat(stat) = op {
            self.statx_cache.push(stat.into_buf());
        } else if let Op::SendTo(send) = op {
            self.msg_cache.push(send.into_space());
        } else if let Op::RecvFrom(recv) = op {
            self.msg_cache.push(recv.into_space());
        }
    }

    /// Returns a finished task to the pool, dropping what its op still owns. The task's
    /// `result` stays: the next completion of the slot overwrites it before anything reads it.
    #[inline(always)]
    pub(crate) fn recycle(&mut self, task: TaskRef<B>) {
        if task.get().has(OWNS) {
            self.recycle_owning(task);
        } else {
            // An op that owns nothing stays; the next `queue` overwrites it without a drop.
            self.put(task);
        }
    }

    /// [`recycle`](Self::recycle) for a task whose op owns resources.
    #[inline(never)]
    fn recycle_owning(&mut self, task: TaskRef<B>) {
        let t = task.get();
        // SAFETY: the task's callback has returned (or unwound), or it never ran, and the
        // backend is done with (or never had) the op: nothing else accesses it.
        let op = core::mem::take(unsafe { t.op_mut() });
        self.put(task);
        self.drop_op(op);
    }

    /// Puts the task back in the pool (under a new id).
    #[inline(always)]
    fn put(&mut self, task: TaskRef<B>) {
        #[cfg(xuring_canary)]
        let stale_id = task.get().id.get();
        self.pool.put(task);
        // Canary (`RUSTFLAGS="--cfg xuring_canary"`, see xuring-mock's `tests/canary.rs`): a
        // deliberately broken recycle that keeps the old generation, so the slot's next task
        // reuses its predecessor's `TaskId`. The mock's invariant checks must catch it. Never
        // enable it anywhere else.
        #[cfg(xuring_canary)]
        task.get().id.set(stale_id);
    }
}

/// Where a completion that is not a task's goes: a message from another ring.
struct Recipients<'a, B: Backend> {
    message_ctx: Option<Context<B>>,
    mailbox_ctx: Option<Context<B>>,
    mailbox: Option<&'a crate::Mailbox>,
}

impl<B: Backend> Recipients<'_, B> {
    /// Delivers a message as a task of its own, ready for its handler.
    #[cold]
    #[inline(never)]
    fn deliver(
        &self,
        c: Completion,
        pool: &mut TaskPool<B>,
        completions: &mut ReadyQueue<B>,
        stats: &mut RingStats,
    ) {
        stats.messages += 1;
        let (to, internal) = if c.user_data & THREAD_MAIL != 0 {
            (
                self.mailbox_ctx,
                self.mailbox.map(|m| NonNull::from(m).cast::<()>()),
            )
        } else {
            (self.message_ctx, None)
        };
        let Some(ctx) = to else {
            stats.unhandled_messages += 1;
            return;
        };
        let message = Message {
            data: c.user_data & !NOT_A_TASK,
            value: c.res,
        };
        let task = pool.get(completions);
        let t = task.get();
        // A received message has no op: the task's is whatever its last one left (one that
        // owns nothing), and it is never decoded or submitted.
        t.kind.set(OpKind::Noop);
        t.flags.set(0);
        t.ctx.set(ctx);
        t.internal.set(internal);
        t.state.set(TaskState::Ready);
        // SAFETY: the ring holds only pointers to the free task.
        unsafe { Task::write_result(task.as_ptr(), Some(OpResult::Message(message))) };
        completions.push_back(task);
    }
}

/// Counts a completion whose `user_data` names no live task of this ring: an index this
/// ring never had, or an old generation. Never dereferenced.
#[cold]
#[inline(never)]
fn count_unknown<B: Backend>(user_data: u64, pool: &TaskPool<B>, stats: &mut RingStats) {
    let known_slot = TaskId::from_u64(user_data).is_some_and(|id| pool.slot(id.index()).is_some());
    if known_slot {
        stats.stale_completions += 1;
    } else {
        stats.foreign_completions += 1;
    }
}
