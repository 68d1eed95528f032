//! The `Backend` trait: what a [`Ring`](crate::Ring) needs from whatever executes its
//! operations.
//!
//! The real one is [`Uring`] (io_uring on the running kernel); `xuring-mock` provides one that
//! needs no kernel. A backend receives operations as pointers to the [`Op`] stored in each
//! task, with the task's `user_data`; it completes each one exactly once by handing a
//! [`Completion`] with that `user_data` to [`Backend::reap`]'s sink, unless the ring takes it
//! back before the next [`Backend::enter`] ([`Backend::retract`], for a backend that opts in
//! with [`Backend::CAN_RETRACT`]: then the ring pushes ops as they are queued). Everything
//! else (task lifecycle, retries of `EINTR`/`EBUSY`, cancellation, callbacks) is the ring's.

use core::ptr::NonNull;

use xuring_sys::{Errno, Features, SqFull};

use crate::{BufferPool, Op, Timespec};

pub mod uring;

pub use uring::Uring;

/// One completion: the `user_data` of the submission and its result (`>= 0` success,
/// `-errno` failure), as in an io_uring CQE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The `user_data` given to [`Backend::push`].
    pub user_data: u64,
    /// The result.
    pub res: i32,
    /// CQE flags.
    pub flags: u32,
}

/// Something that executes operations for a ring.
///
/// # Safety
///
/// A ring trusts its backend with the memory of every op it pushes: it recycles a task (and
/// drops the buffers its op owns) as soon as the backend reports the task's `user_data`. So an
/// implementation must guarantee that:
/// - [`reap`](Self::reap) reports a pushed op's `user_data` only once the op, and the executor
///   behind it (the kernel), will never touch the op or its memory again;
/// - the backend is bound to the ring it is given to for its whole life: nothing reachable
///   from safe code (in particular [`Control`](Self::Control), the type
///   [`Ring::backend_mut`](crate::Ring::backend_mut) returns) can replace it, move it to
///   another ring, or call [`push`](Self::push), [`enter`](Self::enter) or
///   [`reap`](Self::reap) on it;
/// - dropping it stops the executor from using any pushed op (for io_uring: after every
///   completion was reaped, closing the ring fd suffices);
/// - where [`CAN_RETRACT`](Self::CAN_RETRACT) is true: an op pushed since the last
///   [`enter`](Self::enter) is not seen by the executor before that `enter`, and one that
///   [`retract`](Self::retract) takes back is never seen by it (no completion is ever
///   reported for it), so the ring may recycle its task at once.
pub unsafe trait Backend: Sized {
    /// Whether ops pushed since the last [`enter`](Self::enter) can be taken back with
    /// [`retract`](Self::retract). The ring then pushes an op as soon as it is queued (while
    /// nothing waits ahead of it), instead of holding it on its own queue until `run`:
    /// a cancel, `cancel_all` or teardown before the `enter` retracts it instead. Off by
    /// default: such a backend is handed ops only from `run`.
    const CAN_RETRACT: bool = false;

    /// What [`Ring::backend_mut`](crate::Ring::backend_mut) hands out: a view that can steer
    /// the backend (the mock's handlers and faults) but neither replace nor drive it.
    type Control<'a>
    where
        Self: 'a;

    /// The steering view of this backend.
    fn control(&mut self) -> Self::Control<'_>;

    /// What this backend can do. The ring checks it before using an opcode or flag.
    fn features(&self) -> &Features;

    /// How many more operations [`push`](Self::push) accepts before the next
    /// [`enter`](Self::enter).
    fn space(&self) -> u32;

    /// Operations pushed but not yet consumed by the executor.
    fn unsubmitted(&self) -> u32;

    /// Operations pushed that [`retract`](Self::retract) could still take back: none has
    /// been handed to the executor yet. Always 0 without [`CAN_RETRACT`](Self::CAN_RETRACT).
    fn retractable(&self) -> u32 {
        0
    }

    /// Queues `op` for execution under `user_data`.
    ///
    /// # Safety
    ///
    /// `op` must point to a live `Op` that stays at this address, unchanged and not accessed
    /// by the caller, until this backend has delivered a completion for `user_data` through
    /// [`reap`](Self::reap) (or the backend has been dropped after every completion was
    /// delivered, or [`retract`](Self::retract) took it back). The memory the op names (its
    /// buffer) must stay valid as long.
    unsafe fn push(&mut self, op: NonNull<Op>, user_data: u64) -> Result<(), SqFull>;

    /// Takes back every op pushed since the last [`enter`](Self::enter) whose `user_data`
    /// `retract` selects, keeping the others in order; returns how many it took back. The
    /// executor never sees them, and the backend lets go of their memory. Called only where
    /// [`CAN_RETRACT`](Self::CAN_RETRACT) is true, and never in a forked child.
    fn retract(&mut self, retract: impl FnMut(u64) -> bool) -> u32 {
        let _ = retract;
        0
    }

    /// Submits what was pushed and waits until at least `min_complete` completions are
    /// available, or `timeout` has passed (`ETIME`). `timeout` is given only when
    /// [`Features`] has `FEAT_EXT_ARG`. `EINTR`, `EAGAIN` and `EBUSY` are returned as they
    /// are; the ring retries them.
    fn enter(&mut self, min_complete: u32, timeout: Option<Timespec>) -> Result<(), Errno>;

    /// Hands every available completion to `sink`, oldest first.
    fn reap(&mut self, sink: impl FnMut(Completion));

    /// The current time on the clock absolute timers use (`CLOCK_MONOTONIC`; the mock's is
    /// virtual).
    fn now(&self) -> Timespec {
        Timespec::now()
    }

    /// Whether the executor holds completions that did not fit its queue (they arrive after
    /// the next `enter`).
    fn overflowed(&self) -> bool {
        false
    }

    /// Whether this process is a `fork` of the one that created the backend: then it must
    /// neither submit nor cancel anything.
    fn forked(&self) -> bool {
        false
    }

    /// Creates a socket without the `SOCKET` opcode (kernels before 5.19), returning the fd or
    /// `-errno` like a completion's `res`. The ring calls it from `run`, never inside the
    /// caller of `Ring::socket`, and completes the task through the normal callback path.
    fn socket_fallback(&mut self, domain: i32, ty: i32, protocol: i32) -> i32 {
        let _ = (domain, ty, protocol);
        -libc::EOPNOTSUPP
    }

    /// Whether dropping the backend stops every op it was given, so that a ring giving up on
    /// stuck ops at teardown may free memory they use once the backend is gone (the mock: its
    /// executor is itself). False for io_uring: the kernel goes on after the ring fd closes, so
    /// the ring waits for ops on caller-owned memory without a time limit.
    fn stops_on_drop(&self) -> bool {
        false
    }

    /// Closes `fd`, a descriptor that a completed open, accept or socket created but no callback
    /// ever received (its ring was dropped first): the ring owns it, and nobody else ever will.
    fn close_undelivered(&mut self, fd: std::os::fd::RawFd);

    /// Registers the pool's buffers as fixed buffers, if the backend has such a thing.
    /// Returns whether they are registered.
    fn register_buffers(&mut self, pool: &BufferPool) -> Result<bool, Errno> {
        let _ = pool;
        Ok(false)
    }
}
