//! `RingError`: failures of the ring itself, as opposed to a failed operation (whose errno
//! arrives in its [`OpResult`](crate::OpResult)).

use std::fmt;

use xuring_sys::{Errno, InvalidExecutor, InvalidKernelLevel, SetupError};

/// An error of the ring or of a callback.
///
/// A failed operation is not a `RingError`: its errno is delivered in the task's
/// [`OpResult`](crate::OpResult). [`Ring::run`](crate::Ring::run) returns a `RingError` only
/// when the ring cannot go on (a syscall failure that is not retried) or a callback returned
/// one; in both cases the ring stays usable and the next `run` resumes where it stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum RingError {
    /// The ring could not be created; the message names the likely cause and what to do.
    Setup(SetupError),
    /// `XURING_KERNEL_LEVEL` holds a value that names no level.
    KernelLevel(InvalidKernelLevel),
    /// `XURING_BACKEND` holds a value that names no executor.
    Executor(InvalidExecutor),
    /// The ring's options are inconsistent (e.g. zero entries).
    InvalidOptions(&'static str),
    /// `io_uring_enter` failed with an error other than the retried `EINTR`, `EAGAIN` and
    /// `EBUSY`.
    Enter(Errno),
    /// A system call the runtime makes for its own needs failed (e.g. the `eventfd` and the
    /// `dup` of a ring's fd that a [`Thread`](crate::Thread) mailbox needs, which fail with
    /// `EMFILE` when the process is out of file descriptors).
    Os {
        /// The call that failed.
        call: &'static str,
        /// Its error.
        errno: Errno,
    },
    /// `run` was called from inside a callback of the same ring. Return from the callback
    /// instead: work it submits runs in the current `run`.
    Reentrant,
    /// A callback assigned, swapped or dropped the ring its `run` was driving (`*ring = ...`,
    /// `mem::swap`, `mem::replace`): that run stopped after the callback. The replaced ring,
    /// if it still exists somewhere, keeps its remaining work for its own next `run`; if it
    /// was dropped, it was torn down (cancelled and reaped) when the run stopped.
    Replaced,
    /// The ring was created by another process: this is a `fork`ed child's copy. A ring
    /// belongs to the process that created it; create a new one in the child.
    Forked,
    /// A handler on a child [`Thread`](crate::Thread) panicked; the panic's message.
    ThreadPanicked(String),
    /// A stopping child [`Thread`](crate::Thread) gave up waiting for this many `msg_ring`
    /// messages that were admitted before it stopped (their sends report `Ok`) but never
    /// arrived: their sender kept them unsubmitted (its `enter` was refused) and did not run
    /// again within the child's stop limit.
    MessagesLost(u64),
    /// [`Ring::with_state`](crate::Ring::with_state) found no value of the type named (never
    /// inserted, removed, or already out in an enclosing `with_state`).
    NoState(&'static str),
    /// A callback failed; the value is the callback's own error.
    Callback(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl RingError {
    /// Wraps a callback's own error.
    pub fn callback(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        RingError::Callback(error.into())
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Setup(e) => write!(f, "ring setup failed: {e}"),
            Self::KernelLevel(e) => e.fmt(f),
            Self::Executor(e) => e.fmt(f),
            Self::InvalidOptions(what) => write!(f, "invalid ring options: {what}"),
            Self::Enter(e) => write!(f, "io_uring_enter failed: {e}"),
            Self::Os { call, errno } => write!(f, "{call} failed: {errno}"),
            Self::Reentrant => f.write_str(
                "Ring::run was called from inside one of its callbacks; return from the \
                 callback instead (work it submits runs in the current run)",
            ),
            Self::Replaced => {
                f.write_str("a callback replaced the ring its run was driving; that run stopped")
            }
            Self::Forked => f.write_str(
                "this ring was created by the parent process; a forked child must create its \
                 own ring",
            ),
            Self::ThreadPanicked(m) => write!(f, "a handler on a child thread panicked: {m}"),
            Self::MessagesLost(n) => write!(
                f,
                "a stopping child thread gave up on {n} admitted messages that never arrived"
            ),
            Self::NoState(ty) => write!(
                f,
                "the ring holds no {ty} (insert it with Ring::insert_state; inside \
                 Ring::with_state it is out of the ring)"
            ),
            Self::Callback(e) => write!(f, "callback failed: {e}"),
        }
    }
}

impl std::error::Error for RingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Setup(e) => Some(e),
            Self::KernelLevel(e) => Some(e),
            Self::Executor(e) => Some(e),
            Self::Enter(e) | Self::Os { errno: e, .. } => Some(e),
            Self::Callback(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<SetupError> for RingError {
    fn from(e: SetupError) -> Self {
        RingError::Setup(e)
    }
}

impl From<InvalidKernelLevel> for RingError {
    fn from(e: InvalidKernelLevel) -> Self {
        RingError::KernelLevel(e)
    }
}

impl From<InvalidExecutor> for RingError {
    fn from(e: InvalidExecutor) -> Self {
        RingError::Executor(e)
    }
}

impl From<std::io::Error> for RingError {
    fn from(e: std::io::Error) -> Self {
        RingError::Callback(Box::new(e))
    }
}
