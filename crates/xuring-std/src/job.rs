//! Where a helper's state lives between its steps: a per-thread registry of typed slabs.
//!
//! Each kind of job (`M`, a [`Machine`]) has its own slab of [`Job<M>`] slots, found by type:
//! core's [`Slab`](xuring_core::Slab), the one user code keeps its own state in. A slot is
//! named by a [`Token`] (core's [`Key`]: index + generation) that travels in the `userdata` of
//! every op the job submits, as an integer with no provenance: nothing ever dereferences it,
//! so this needs no `unsafe`. A completion's token finds its slot only while the generation
//! matches, so a completion for a job that already finished finds nothing.
//!
//! A step checks its job *out* of the slab (the slot stays reserved), advances it with the
//! ring, and either parks it again (its next op is in flight) or releases the slot. The
//! caller's callback always runs after that, with no borrow of the registry held, so it may
//! start or cancel other jobs.

use core::any::Any;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::marker::PhantomData;

use xuring_core::{Backend, Context, Key, Ring, RingError, Task, TaskHandle, Uring};

use crate::{Done, Then};

thread_local! {
    /// One `Slab<Job<M>>` per kind of job started on this thread.
    static SLABS: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
    /// Jobs started and not yet finished, over all slabs.
    static LIVE: Cell<usize> = const { Cell::new(0) };
}

/// How many helper jobs started on this thread have not delivered their final result yet.
///
/// Zero once every job has finished; tests use it to show that no job (and no fd it holds)
/// was left behind.
pub fn jobs_in_flight() -> usize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// A slot's name: core's generation-checked [`Key`], carried in `userdata` as an integer.
pub(crate) type Token = Key;

/// A job's slot: waiting for its op's completion, or checked out by the step running it.
enum Slot<E> {
    Parked(E),
    Running,
}

/// The slots of one kind of job: core's [`Slab`](xuring_core::Slab), whose keys a finished
/// job's stale token never matches again.
struct Slab<E> {
    slots: xuring_core::Slab<Slot<E>>,
}

impl<E: 'static> Slab<E> {
    fn with<R>(f: impl FnOnce(&mut Slab<E>) -> R) -> Option<R> {
        SLABS
            .try_with(|slabs| {
                let mut slabs = slabs.borrow_mut();
                let at = match slabs.iter().position(|s| (**s).is::<Slab<E>>()) {
                    Some(at) => at,
                    None => {
                        slabs.push(Box::new(Slab::<E> {
                            slots: xuring_core::Slab::new(),
                        }));
                        slabs.len() - 1
                    }
                };
                let slab = slabs[at]
                    .downcast_mut::<Slab<E>>()
                    .expect("found by its type");
                f(slab)
            })
            .ok()
    }

    /// A new slot, checked out.
    fn reserve(&mut self) -> Token {
        self.slots.insert(Slot::Running)
    }

    fn check_out(&mut self, token: Token) -> Option<E> {
        let slot = self.slots.get_mut(token)?;
        match core::mem::replace(slot, Slot::Running) {
            Slot::Parked(e) => Some(e),
            Slot::Running => None,
        }
    }

    fn park(&mut self, token: Token, e: E) {
        if let Some(slot) = self.slots.get_mut(token) {
            debug_assert!(matches!(slot, Slot::Running));
            *slot = Slot::Parked(e);
        }
    }

    fn release(&mut self, token: Token) {
        let released = self.slots.remove(token);
        debug_assert!(matches!(released, Some(Slot::Running)));
    }

    fn parked_mut<R>(&mut self, token: Token, f: impl FnOnce(&mut E) -> R) -> Option<R> {
        match self.slots.get_mut(token)? {
            Slot::Parked(e) => Some(f(e)),
            Slot::Running => None,
        }
    }

    fn is_live(&mut self, token: Token) -> bool {
        self.slots.contains(token)
    }
}

/// A job in its slot: the machine, the op it has in flight, and whether it was cancelled.
struct Job<M, B: Backend> {
    machine: M,
    current: Option<TaskHandle<B>>,
    cancelled: bool,
}

/// What a step did.
pub(crate) enum Progress<T, B: Backend> {
    /// Submitted its next op; nothing to report yet.
    Wait(TaskHandle<B>),
    /// Submitted a close of what the job made ([`Progress::closing`]); nothing to report
    /// yet. A cancel of the job leaves it alone: a close taken back before it ran would leave
    /// the descriptor open.
    Closing,
    /// Report this, and keep going: the next op is in flight.
    Emit(T, TaskHandle<B>),
    /// Report this; the job is over.
    Finish(T),
}

impl<T, B: Backend> Progress<T, B> {
    /// [`Progress::Closing`], for the close just submitted.
    pub(crate) fn closing(_close: TaskHandle<B>) -> Self {
        Progress::Closing
    }
}

/// What a step knows about its job besides the machine: how to address its next op, and
/// whether the job was cancelled (then it must not start anything new).
pub(crate) struct Step<B, M> {
    token: Token,
    cancelled: bool,
    _types: PhantomData<fn() -> (B, M)>,
}

impl<B: Backend + 'static, M: Machine<B>> Step<B, M> {
    /// The context for the job's next op, at step `msg`.
    pub(crate) fn ctx(&self, msg: u16) -> Context<B> {
        Context {
            cb: drive::<B, M>,
            msg,
            userdata: Some(self.token.to_userdata()),
        }
    }

    /// Whether [`Handle::cancel`] was called for this job.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancelled
    }
}

/// A helper's state machine. The registry stores it between steps; [`drive`] runs its steps.
pub(crate) trait Machine<B: Backend + 'static>: Sized + 'static {
    /// What the job reports through its [`Then`].
    type Output;

    /// Submits the first op (with a context from `step`).
    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B>;

    /// Handles the completion of the op in flight (`task.msg()` is its step).
    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B>;

    /// The caller's callback.
    fn then(&self) -> Then<Self::Output, B>;
}

/// Starts a job: reserves its slot, submits its first op and parks it.
pub(crate) fn start<B: Backend + 'static, M: Machine<B>>(
    ring: &mut Ring<B>,
    mut machine: M,
) -> Handle<B> {
    let token = Slab::<Job<M, B>>::with(Slab::reserve)
        .expect("xuring-std helpers cannot start while the thread is exiting");
    LIVE.with(|n| n.set(n.get() + 1));
    let step = Step {
        token,
        cancelled: false,
        _types: PhantomData,
    };
    let first = machine.start(ring, &step);
    let job = Job {
        machine,
        current: Some(first),
        cancelled: false,
    };
    Slab::<Job<M, B>>::with(|slab| slab.park(token, job));
    Handle {
        token,
        cancel: request_cancel::<M, B>,
        live: is_live::<M, B>,
        _backend: PhantomData,
        _this_thread: PhantomData,
    }
}

/// The callback of every op a job submits: finds the job, runs its step, reports.
fn drive<B: Backend + 'static, M: Machine<B>>(
    ring: &mut Ring<B>,
    task: &Task<B>,
) -> Result<(), RingError> {
    let Some(token) = task.userdata().map(Token::from_userdata) else {
        return Ok(());
    };
    let Some(Some(mut job)) = Slab::<Job<M, B>>::with(|slab| slab.check_out(token)) else {
        // Not a live job (only possible if something else submitted with this callback).
        return Ok(());
    };
    job.current = None;
    let step = Step {
        token,
        cancelled: job.cancelled,
        _types: PhantomData,
    };
    let progress = job.machine.advance(ring, task, &step);
    let then = job.machine.then();
    let result = match progress {
        Progress::Wait(next) => {
            job.current = Some(next);
            Slab::<Job<M, B>>::with(|slab| slab.park(token, job));
            return Ok(());
        }
        Progress::Closing => {
            job.current = None;
            Slab::<Job<M, B>>::with(|slab| slab.park(token, job));
            return Ok(());
        }
        Progress::Emit(result, next) => {
            job.current = Some(next);
            Slab::<Job<M, B>>::with(|slab| slab.park(token, job));
            result
        }
        Progress::Finish(result) => {
            Slab::<Job<M, B>>::with(|slab| slab.release(token));
            LIVE.with(|n| n.set(n.get() - 1));
            drop(job);
            result
        }
    };
    (then.cb)(
        ring,
        Done {
            result,
            msg: then.msg,
            userdata: then.userdata,
        },
    )
}

/// Marks a parked job cancelled; `Some(op in flight)` if it is live.
fn request_cancel<M: 'static, B: Backend + 'static>(token: Token) -> Option<Option<TaskHandle<B>>> {
    Slab::<Job<M, B>>::with(|slab| {
        slab.parked_mut(token, |job| {
            job.cancelled = true;
            job.current
        })
    })
    .flatten()
}

fn is_live<M: 'static, B: Backend + 'static>(token: Token) -> bool {
    Slab::<Job<M, B>>::with(|slab| slab.is_live(token)).unwrap_or(false)
}

/// A running helper job, to cancel it.
///
/// Returned by every helper. It names the job by slot and generation, so it goes stale
/// (cancel does nothing) once the job has reported its final result, even if the slot has
/// been reused. Dropping it does not stop the job. It belongs to the thread that started the
/// job (the job lives in that thread's registry), so it is neither `Send` nor `Sync`:
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// fn try_it(handle: xuring_std::Handle) {
///     send(handle);
/// }
/// ```
pub struct Handle<B: Backend = Uring> {
    token: Token,
    cancel: fn(Token) -> Option<Option<TaskHandle<B>>>,
    live: fn(Token) -> bool,
    /// The job lives in this thread's registry: a handle sent to another thread would name
    /// that thread's job in the same slot, so it is neither `Send` nor `Sync`.
    _backend: PhantomData<fn() -> B>,
    _this_thread: PhantomData<*const ()>,
}

impl<B: Backend> Clone for Handle<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Handle<B> {}

impl<B: Backend> fmt::Debug for Handle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle").field(&self.token).finish()
    }
}

impl<B: Backend> Handle<B> {
    /// Cancels the job: its op in flight is cancelled on `ring` (on any ring but the one that
    /// runs the job, that cancel misses and the job only stops at its next step); it starts
    /// nothing new, cleans up what it made (closes the socket it
    /// created, the files it opened) and then reports through its callback, from a later
    /// `run`: `ECANCELED` for most jobs, `Stopped` for an accept loop. An op that finished
    /// before the cancel reached it still counts: a transfer that completed reports success.
    ///
    /// Returns `false` if the job has already delivered its final result.
    pub fn cancel(&self, ring: &mut Ring<B>) -> bool {
        match (self.cancel)(self.token) {
            None => false,
            Some(current) => {
                // A handle: on any ring but the job's, the cancel misses.
                if let Some(op) = current {
                    op.cancel(ring, Context::default());
                }
                true
            }
        }
    }

    /// Whether the job has not delivered its final result yet.
    pub fn is_active(&self) -> bool {
        (self.live)(self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_slot_gets_a_new_generation() {
        struct Marker;
        let (a, b) = Slab::<Marker>::with(|slab| {
            let a = slab.reserve();
            slab.park(a, Marker);
            assert!(slab.check_out(a).is_some());
            assert!(slab.check_out(a).is_none(), "checked out once");
            slab.release(a);
            assert!(!slab.is_live(a));
            let b = slab.reserve();
            (a, b)
        })
        .expect("registry");
        assert_ne!(a, b);
        Slab::<Marker>::with(|slab| {
            slab.park(b, Marker);
            assert!(slab.check_out(a).is_none(), "a stale token finds nothing");
            assert!(slab.check_out(b).is_some());
            slab.release(b);
        });
    }
}
