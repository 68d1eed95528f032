//! Cancellation: [`Ring::cancel`] and [`Ring::cancel_all`], and how the engine carries them
//! out (locally for queued tasks, with `ASYNC_CANCEL`/`TIMEOUT_REMOVE` for tasks in flight,
//! with one `ALL | ANY` cancel or a join of per-task cancels for `cancel_all`).
//!
//! # Safety
//!
//! As in `engine.rs`: the task pointers dereferenced here come from the engine's pool and stay
//! valid for the engine's life; only `Cell` fields are touched while a task is in flight.

use core::ptr::NonNull;

use xuring_sys::{CancelFlags, Opcode};

use crate::engine::Engine;
use crate::op::CancelVia;
use crate::ops::{self, CancelAll, OpKind};
use crate::pool::{TaskList, TaskRef};
use crate::task::{BACKGROUND, CANCELLING, TaskState};
use crate::{Backend, Context, Op, OpResult, Ring, RingError, Task, TaskHandle, TaskId};

/// Where the id of a cancel came from.
pub(crate) enum CancelFrom<B: Backend> {
    /// A bare [`TaskId`]: taken as this ring's.
    Id,
    /// A [`TaskHandle`], made by the engine with this serial.
    Handle(u64),
    /// A `&Task` (which exists only inside a callback, so its ring is alive) at this address.
    Task(NonNull<Task<B>>),
}

impl<B: Backend> Ring<B> {
    /// Cancels the task `target`, completing with [`OpResult::Cancel`](crate::OpResult::Cancel):
    /// - still queued: it is taken off the queue and completes with `ECANCELED` without
    ///   reaching the kernel; the cancel completes with `Ok(())`;
    /// - in flight: a timer is removed with `IORING_OP_TIMEOUT_REMOVE`, anything else with
    ///   `IORING_OP_ASYNC_CANCEL`; the target completes with `ECANCELED` (unless it finished
    ///   first) and the cancel with the kernel's verdict: `Ok(())`, or `EALREADY` when the
    ///   target was already running and the kernel interrupted it (kernels before about 6.2
    ///   give the target `EINTR` then; xuring reports it as `ECANCELED` on every kernel);
    /// - completed, or its slot reused by another task (different generation): the cancel
    ///   completes with `ENOENT` and nothing else happens.
    ///
    /// The ring's own background work (a [`Thread`](crate::Thread) mailbox's read, the wake
    /// timer of a deadline run) is not the caller's to cancel: a cancel aimed at it completes
    /// with `ENOENT`, as for a task that does not exist.
    pub fn cancel(&mut self, target: TaskId, ctx: Context<B>) -> TaskHandle<B> {
        self.engine().cancel_user(target, CancelFrom::Id, ctx)
    }

    /// [`cancel`](Self::cancel), missing unless `target` came from this ring: a
    /// [`TaskHandle`] or [`Task`](crate::Task) of another ring (or of a dropped one) never
    /// cancels this ring's.
    pub(crate) fn cancel_from(
        &mut self,
        target: TaskId,
        from: CancelFrom<B>,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        self.engine().cancel_user(target, from, ctx)
    }

    /// Cancels every queued and in-flight task, completing with `OpResult::CancelAll(Ok(n))`,
    /// `n` the number of tasks cancelled. Queued tasks complete with `ECANCELED` without
    /// reaching the kernel. In flight, this uses one `ASYNC_CANCEL` with `ALL | ANY` where the
    /// kernel has them (5.19), and one cancel per in-flight task otherwise. Cancels (including
    /// an earlier `cancel_all` still queued) are not cancelled.
    ///
    /// The ring's own background work (a [`Thread`](crate::Thread) mailbox's read, the wake
    /// timer of a deadline run) is neither counted nor, where the kernel allows, cancelled;
    /// where the kernel cancels it anyway (`ALL | ANY`), the ring re-arms it.
    pub fn cancel_all(&mut self, ctx: Context<B>) -> TaskHandle<B> {
        self.engine().cancel_all(ctx)
    }
}

impl<B: Backend> Engine<B> {
    /// Takes a queued task off the submission queue.
    pub(crate) fn unqueue(&mut self, task: TaskRef<B>) {
        debug_assert_eq!(task.get().state.get(), TaskState::Queued);
        self.submission_q.remove(task);
    }

    /// [`Ring::cancel`] for the caller: the ring's own background tasks are not theirs to
    /// cancel, so a cancel aimed at one misses (`ENOENT`) as if it did not exist. `from` says
    /// where the id came from (a handle's engine, a live task's address): it misses unless
    /// that is this engine, since ids repeat across rings.
    pub(crate) fn cancel_user(
        &mut self,
        target: TaskId,
        from: CancelFrom<B>,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        let found = self.pool.lookup(target);
        let elsewhere = match from {
            CancelFrom::Id => false,
            CancelFrom::Handle(serial) => serial != self.serial,
            CancelFrom::Task(at) => found.map(TaskRef::as_ptr) != Some(at),
        };
        let background = found.is_some_and(|task| task.get().has(BACKGROUND));
        if background || elsewhere {
            return self.cancel_missed(target, ctx);
        }
        self.cancel(target, ctx)
    }

    /// A cancel that found nothing: completes with `ENOENT` at the next `run`.
    fn cancel_missed(&mut self, target: TaskId, ctx: Context<B>) -> TaskHandle<B> {
        self.cancel_locally(target, -libc::ENOENT, ctx)
    }

    /// A cancel decided without the backend: completes with `res` at the next `run`.
    fn cancel_locally(&mut self, target: TaskId, res: i32, ctx: Context<B>) -> TaskHandle<B> {
        self.complete_now(ops::Cancel::new(target, CancelVia::AsyncCancel), ctx, res)
    }

    /// Cancels the task `target` (see [`Ring::cancel`]), background tasks included.
    pub(crate) fn cancel(&mut self, target: TaskId, ctx: Context<B>) -> TaskHandle<B> {
        let found = self.pool.lookup(target);
        let state = found.map(|t| t.get().state.get());
        match (found, state) {
            (Some(task), Some(TaskState::Queued)) => {
                self.unqueue(task);
                self.complete_locally(task, -libc::ECANCELED);
                self.cancel_locally(target, 0, ctx)
            }
            (Some(task), Some(TaskState::InFlight)) if self.retract_one(task) => {
                // Pushed, but no `enter` handed it over: as good as queued.
                self.complete_locally(task, -libc::ECANCELED);
                self.cancel_locally(target, 0, ctx)
            }
            (Some(task), Some(TaskState::InFlight)) => {
                let t = task.get();
                t.mark(CANCELLING);
                // The op itself is not read: the kernel may be writing into it.
                let via = if t.kind.get() == OpKind::Timer {
                    CancelVia::TimeoutRemove
                } else {
                    CancelVia::AsyncCancel
                };
                self.queue(ops::Cancel::new(target, via).into(), ctx)
            }
            _ => self.cancel_missed(target, ctx),
        }
    }

    /// [`Ring::cancel_all`].
    pub(crate) fn cancel_all(&mut self, ctx: Context<B>) -> TaskHandle<B> {
        let mut local = 0;
        // Background work and cancels (an earlier `cancel_all` among them) stay queued. The
        // background tasks go in ahead of this cancel, so `ALL | ANY` cancels them too: they
        // are subtracted from its count with those already in flight. Ops pushed but not yet
        // handed over by an `enter` are older than those on the submission queue: they go
        // first.
        let stays = |t: &Task<B>| t.has(BACKGROUND) || t.kind.get().is_cancel();
        for task in self.retract_pushed(|t| !stays(t)) {
            self.complete_locally(task, -libc::ECANCELED);
            local += 1;
        }
        let mut background = self.background_in_flight;
        let mut kept: TaskList<B> = TaskList::new();
        while let Some(task) = self.submission_q.pop_front() {
            let t = task.get();
            if stays(t) {
                background += u32::from(t.has(BACKGROUND));
                kept.push_back(task);
                continue;
            }
            self.complete_locally(task, -libc::ECANCELED);
            local += 1;
        }
        while let Some(task) = kept.pop_front() {
            self.submission_q.push_back(task);
        }
        if self.cancel_any_supported() {
            // Everything in flight may come back `ECANCELED` from this cancel (background
            // work too, which its own callback re-arms): none of it is the kernel's doing.
            for task in self.pool.all() {
                let t = task.get();
                if t.state.get() == TaskState::InFlight {
                    t.mark(CANCELLING);
                }
            }
            return self.queue(CancelAll::any(local, background).into(), ctx);
        }
        let join_task = self.new_task(CancelAll::join(local), ctx);
        let join = TaskHandle::new(join_task.as_ptr(), join_task.get().id.get(), self.serial);
        join_task.get().state.set(TaskState::Waiting);
        let targets: Vec<TaskId> = self
            .in_flight_user_tasks()
            .filter(|&id| {
                let Some(task) = self.pool.lookup(id) else {
                    return true;
                };
                let t = task.get();
                !t.has(BACKGROUND)
            })
            .collect();
        let mut outstanding = 0;
        for target in targets {
            let ctx = Context {
                cb: on_cancel_all_part::<B>,
                ..Context::default()
            };
            let part = self.cancel(target, ctx);
            self.task_of(part)
                .get()
                .internal
                .set(Some(join_task.as_ptr().cast()));
            outstanding += 1;
        }
        if outstanding == 0 {
            self.complete_locally(join_task, 0);
        } else {
            // SAFETY: the join task is `Waiting`: only the ring touches its op.
            if let Op::CancelAll(join) = unsafe { join_task.get().op_mut() }
                && let Some((o, _)) = join.join_counts()
            {
                *o = outstanding;
            }
        }
        join
    }

    /// Whether `ASYNC_CANCEL` takes `ALL | ANY` here (5.19).
    pub(crate) fn cancel_any_supported(&self) -> bool {
        self.features().supports(Opcode::AsyncCancel)
            && self
                .features()
                .cancel
                .contains(CancelFlags::ALL | CancelFlags::ANY)
    }

    /// In-flight tasks that a cancel can target (not cancels themselves).
    pub(crate) fn in_flight_user_tasks(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.pool.all().filter_map(|task| {
            let t = task.get();
            if t.state.get() != TaskState::InFlight {
                return None;
            }
            (!t.kind.get().is_cancel()).then(|| t.id.get())
        })
    }
}

/// The callback of each per-task cancel of a `cancel_all` on a kernel without `CANCEL_ALL`.
fn on_cancel_all_part<B: Backend>(ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    // Only the engine sets `internal`, on the parts of a live `cancel_all`; a replayed
    // context carries none.
    let Some(join) = task.internal.get() else {
        return Ok(());
    };
    let hit = matches!(task.result, Some(OpResult::Cancel(Ok(()))));
    // SAFETY: only `cancel_all` sets a part's `internal`, to the address of its join task,
    // a `TaskRef` of the same engine's pool: the engine this callback runs on. The join
    // stays `Waiting` (never recycled) until its last part reports here.
    let join = unsafe { TaskRef::from_ptr(join.cast()) };
    let join_task = join.get();
    debug_assert_eq!(join_task.state.get(), TaskState::Waiting);
    // SAFETY: a `Waiting` task's op is touched only by the ring (this code).
    let done = if let Op::CancelAll(join) = unsafe { join_task.op_mut() }
        && let Some((outstanding, cancelled)) = join.join_counts()
    {
        *cancelled += u32::from(hit);
        *outstanding -= 1;
        *outstanding == 0
    } else {
        debug_assert!(false, "a cancel_all part's join is a join");
        false
    };
    if done {
        ring.engine().complete_locally(join, 0);
    }
    Ok(())
}
