//! `OpResult`: what an operation produced, one variant per operation.

use xuring_sys::Errno;

/// The outcome of an operation, delivered in [`Task::result`](crate::Task::result) before its
/// callback runs. Each variant carries `Result<T, Errno>` with the operation's natural `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpResult {
    /// A noop completed. (A noop cancelled before it reached the kernel also reports this:
    /// either way it did nothing.)
    Noop,
    /// A timer: `Ok(())` when it expired, `Err(ECANCELED)` when it was cancelled.
    Timer(Result<(), Errno>),
    /// A read: the number of bytes read (0 at end of file).
    Read(Result<usize, Errno>),
    /// A write: the number of bytes written.
    Write(Result<usize, Errno>),
    /// A cancel of one task: `Ok(())` if the target was found and cancelled, `ENOENT` if it
    /// was not in flight (already completed, or recycled), `EALREADY` if it was running and
    /// could not be stopped (it completes on its own).
    Cancel(Result<(), Errno>),
    /// A cancel of everything in flight: how many operations were cancelled.
    CancelAll(Result<u32, Errno>),
}
