//! # xuring-std
//!
//! Networking ([`net`]) and filesystem ([`fs`]) helpers built only from `xuring-core`'s public
//! operations: the multi-step callback state machines every user of a callback-driven ring
//! ends up writing (socket -> connect, accept and re-arm, send until everything is sent, open
//! -> stat -> read -> close, splice through a pipe), written once, with their error paths.
//!
//! This crate owns no `unsafe` code (`forbid(unsafe_code)`), reaches into no core internals,
//! and adds no syscall of its own except what `std` does to create a listener or a pipe.
//!
//! ## How a helper reports
//!
//! A helper takes a [`Then`] where an op takes a [`Context`](xuring_core::Context): the
//! callback to run when the whole job is done, and the caller's `msg` and `userdata`, which
//! the helper hands back untouched in a [`Done`] together with the job's typed result (a
//! connected socket, a transfer with its buffer, a file's bytes, ...):
//!
//! ```no_run
//! use std::os::fd::RawFd;
//! use xuring_core::{Context, Errno, Ring, RingError, RunCondition};
//! use xuring_std::{Done, Then, net};
//!
//! fn on_connected(ring: &mut Ring, done: Done<Result<RawFd, Errno>>) -> Result<(), RingError> {
//!     match done.result {
//!         // The socket is ours now: close it when we are done with it.
//!         Ok(fd) => {
//!             ring.close(fd, Context::default());
//!         }
//!         Err(e) => eprintln!("connect failed: {e}"),
//!     }
//!     Ok(())
//! }
//!
//! let mut ring = Ring::init(16)?;
//! let addr = "127.0.0.1:7000".parse().expect("address");
//! net::tcp_connect_to_addr(&mut ring, addr, Then::new(on_connected));
//! ring.run(RunCondition::UntilDone)?;
//! # Ok::<(), RingError>(())
//! ```
//!
//! The callback runs from [`Ring::run`](xuring_core::Ring::run), never inside the call that
//! starts the job, and exactly once per job (the accept loop, once per event). An error it
//! returns stops that `run`, like an op callback's.
//!
//! ## Where the state lives
//!
//! A job's state (its step, the fd it made, how much it has transferred, the caller's
//! [`Then`]) is plain Rust data that the kernel never sees. It sits in a per-thread registry:
//! one slab per kind of job, and every op the job submits carries the slot's index and
//! generation in its `userdata` (as an integer, never as a pointer anyone dereferences) and
//! the step in its `msg`. So the helpers need no `unsafe`: a completion finds its job by
//! index, and a completion for a finished job (an old generation) finds nothing. The only
//! memory the kernel touches is what the ops own: the tasks' buffers, addresses and paths.
//!
//! The registry is per thread because rings are: a ring never leaves the thread that made it,
//! and so neither do its jobs. [`jobs_in_flight`] counts the jobs of this thread that have not
//! reported yet (zero when everything finished). A job whose ring is dropped before it
//! finishes never reports: the ring cancels its op, and the job's state (and the fd it was
//! building, which `forbid(unsafe_code)` code cannot close without a ring) stays in the
//! registry until the thread exits. Cancel jobs with [`Handle::cancel`] and run the ring dry
//! before dropping it to avoid that.
//!
//! ## Buffers and short transfers
//!
//! Buffers are owned ([`IoBuf`]), as in the core ops, and come back in
//! the result. A helper that must finish a short transfer submits the caller's buffer again,
//! advanced past the bytes already moved ([`IoBuf::advance`]): the rest goes out, or comes
//! in, in place. No transfer copies or allocates, short or not; the buffer comes back at the
//! offset it was handed over with.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use core::fmt;
use core::ptr::NonNull;

use std::os::fd::RawFd;

use xuring_core::{Backend, Errno, IoBuf, Key, Ring, RingError, Uring};

mod chunk;
pub mod fs;
mod job;
pub mod net;
mod pump;
pub mod signal;

pub use job::{Handle, jobs_in_flight};

/// The callback of a helper: the ring (to submit more work) and the job's outcome.
pub type DoneFn<T, B = Uring> = fn(&mut Ring<B>, Done<T>) -> Result<(), RingError>;

/// What a helper calls when its job is done, and the caller's state for it: the helpers'
/// counterpart of [`Context`](xuring_core::Context).
///
/// `msg` and `userdata` are the caller's: the helper never reads them, and hands them back
/// in [`Done`]. (The helper's own ops use their `msg` and `userdata` for its step and slot.)
pub struct Then<T, B: Backend = Uring> {
    /// The callback.
    pub cb: DoneFn<T, B>,
    /// A tag of the caller's choosing, returned in [`Done::msg`].
    pub msg: u16,
    /// A pointer to the caller's state, returned in [`Done::userdata`].
    pub userdata: Option<NonNull<()>>,
}

impl<T, B: Backend> Then<T, B> {
    /// `cb` with `msg` 0 and no userdata.
    pub fn new(cb: DoneFn<T, B>) -> Self {
        Then {
            cb,
            msg: 0,
            userdata: None,
        }
    }

    /// The same callback with this `msg`.
    pub fn with_msg(self, msg: u16) -> Self {
        Then { msg, ..self }
    }

    /// The same callback with this `userdata`.
    pub fn with_userdata(self, userdata: Option<NonNull<()>>) -> Self {
        Then { userdata, ..self }
    }

    /// `cb` with `key` as its userdata (read it back with [`Done::key`]), as
    /// [`Context::keyed`](xuring_core::Context::keyed) does for an op: the caller's state for
    /// this job lives in a [`Slab`](xuring_core::Slab) the ring holds.
    pub fn keyed(cb: DoneFn<T, B>, key: Key) -> Self {
        Then::new(cb).with_userdata(Some(key.to_userdata()))
    }
}

impl<T, B: Backend> Clone for Then<T, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, B: Backend> Copy for Then<T, B> {}

impl<T, B: Backend> fmt::Debug for Then<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Then")
            .field("msg", &self.msg)
            .field("userdata", &self.userdata)
            .finish_non_exhaustive()
    }
}

fn ignore<T, B: Backend>(_ring: &mut Ring<B>, _done: Done<T>) -> Result<(), RingError> {
    Ok(())
}

impl<T, B: Backend> Default for Then<T, B> {
    /// A callback that drops the result (a buffer returns to its pool; a raw fd in it is
    /// *not* closed), `msg` 0, no userdata.
    fn default() -> Self {
        Then::new(ignore::<T, B>)
    }
}

/// A helper's outcome, with the caller's `msg` and `userdata` from its [`Then`].
#[derive(Debug)]
pub struct Done<T> {
    /// What the job produced.
    pub result: T,
    /// [`Then::msg`].
    pub msg: u16,
    /// [`Then::userdata`].
    pub userdata: Option<NonNull<()>>,
}

impl<T> Done<T> {
    /// The key in the [`Then`] (see [`Then::keyed`]), if it had a `userdata`.
    pub fn key(&self) -> Option<Key> {
        self.userdata.map(Key::from_userdata)
    }
}

/// The outcome of a transfer over one fd ([`net::send_all`], [`net::recv_exact`],
/// [`net::recv_some`], [`fs::write_all`], [`fs::read_exact`]).
#[derive(Debug)]
pub struct Transfer {
    /// The fd the transfer used (still open: the caller owns it).
    pub fd: RawFd,
    /// The caller's buffer, back. After a receive or read its first `len` bytes are the data.
    pub buf: IoBuf,
    /// Bytes moved (all of `buf` on success, except for `recv_some`).
    pub len: usize,
    /// `Ok` when the transfer is complete; otherwise why it stopped after `len` bytes.
    pub status: Result<(), Error>,
}

/// Why a transfer or file helper failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// An operation failed with this errno (`ECANCELED` after [`Handle::cancel`]).
    Os(Errno),
    /// The peer closed the connection, or the file ended, before the buffer was full.
    UnexpectedEof,
    /// A send, write or splice moved zero bytes although bytes were left: retrying would not
    /// make progress.
    WriteZero,
}

impl Error {
    /// The errno, for [`Error::Os`].
    pub fn errno(self) -> Option<Errno> {
        match self {
            Error::Os(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Error {
        Error::Os(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os(e) => e.fmt(f),
            Error::UnexpectedEof => f.write_str("unexpected end of file or connection"),
            Error::WriteZero => f.write_str("a write moved zero bytes"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        match e {
            Error::Os(e) => e.into(),
            Error::UnexpectedEof => std::io::ErrorKind::UnexpectedEof.into(),
            Error::WriteZero => std::io::ErrorKind::WriteZero.into(),
        }
    }
}
