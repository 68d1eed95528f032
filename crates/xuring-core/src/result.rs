//! `OpResult`: what an operation produced, one variant per operation.

use std::os::fd::RawFd;

use xuring_sys::Errno;

use crate::op::{Accepted, Message};
use crate::stat::Stat;

/// The outcome of an operation, delivered in [`Task::result`](crate::Task::result) before its
/// callback runs. Each variant carries `Result<T, Errno>` with the operation's natural `T`.
///
/// An op the kernel does not support (by probe, or by the ring's kernel level) completes with
/// `EOPNOTSUPP` without being submitted.
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
    /// A write: the number of bytes written (may be short).
    Write(Result<usize, Errno>),
    /// A vectored read: the number of bytes read over all buffers.
    Readv(Result<usize, Errno>),
    /// A vectored write: the number of bytes written over all buffers.
    Writev(Result<usize, Errno>),
    /// An open: the new file descriptor (the caller owns it; close it with `close`).
    Open(Result<RawFd, Errno>),
    /// A close.
    Close(Result<(), Errno>),
    /// An fsync or fdatasync.
    Fsync(Result<(), Errno>),
    /// A stat or lstat.
    Stat(Result<Stat, Errno>),
    /// A socket: the new socket's descriptor.
    Socket(Result<RawFd, Errno>),
    /// A connect.
    Connect(Result<(), Errno>),
    /// An accept: the connection and its peer.
    Accept(Result<Accepted, Errno>),
    /// A receive: bytes received (0 when the peer closed).
    Recv(Result<usize, Errno>),
    /// A send: bytes sent (may be short).
    Send(Result<usize, Errno>),
    /// A poll: the events that are ready (`POLLIN`, `POLLOUT`, `POLLHUP`, ...).
    Poll(Result<u32, Errno>),
    /// A splice: bytes moved (0 at end of input).
    Splice(Result<usize, Errno>),
    /// A message sent to another ring: `Ok` once the kernel posted it there.
    MsgRing(Result<(), Errno>),
    /// A message received from another ring (delivered to the message handler).
    Message(Message),
    /// A cancel of one task: `Ok(())` if the target was found and cancelled, `ENOENT` if it
    /// was not in flight (already completed, or recycled), `EALREADY` if it was running and
    /// could not be stopped (it completes on its own).
    Cancel(Result<(), Errno>),
    /// A cancel of everything in flight: how many operations were cancelled.
    CancelAll(Result<u32, Errno>),
}

impl OpResult {
    /// The descriptor a successful open, accept or socket created: the receiver owns it.
    pub fn created_fd(&self) -> Option<RawFd> {
        match self {
            OpResult::Open(Ok(fd)) | OpResult::Socket(Ok(fd)) => Some(*fd),
            OpResult::Accept(Ok(accepted)) => Some(accepted.fd),
            _ => None,
        }
    }
}
