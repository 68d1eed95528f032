//! `Op`: an operation with every argument the kernel reads or writes, owned by its task.
//!
//! This is the interface between [`Ring`](crate::Ring) and a [`Backend`](crate::Backend):
//! the ring stores an `Op` in a task, at an address that does not change until the task
//! completes, and hands the backend a pointer to it. The real backend turns it into an SQE
//! (`backend::uring::prep`, one exhaustive `match`); the mock interprets it directly. Turning a
//! completion's `res` back into an [`OpResult`] is [`Op::decode`], also one exhaustive `match`,
//! and [`Op::opcode`] names the opcode whose probe bit and kernel version (in `xuring-sys`'s
//! table) decide whether the op can run: so a new op without a decoder, a preparation or an
//! opcode does not compile.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use xuring_sys::abi::__kernel_timespec;
use xuring_sys::{Errno, Opcode};

use crate::sockaddr::SockAddrBuf;
use crate::stat::Stat;
use crate::{IoBuf, IoVecs, OpResult, TaskId};

/// Where a read or write happens in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Offset {
    /// At the file's current position, which the operation advances (like `read(2)`); the
    /// only choice for pipes and sockets.
    #[default]
    File,
    /// At this byte offset, leaving the position alone (like `pread(2)`).
    At(u64),
}

impl Offset {
    /// The SQE `off` value: `-1` selects the current position (`FEAT_RW_CUR_POS`, 5.6).
    pub const fn to_raw(self) -> u64 {
        match self {
            Offset::File => u64::MAX,
            Offset::At(n) => n,
        }
    }
}

/// A path the kernel reads while the task is in flight: `'static` or owned by the task.
#[derive(Clone, Debug)]
pub enum CPath {
    /// A string that lives forever, e.g. `c"/dev/null"`.
    Static(&'static CStr),
    /// A string the task owns until it completes.
    Owned(CString),
}

impl CPath {
    /// The NUL-terminated bytes.
    pub fn as_c_str(&self) -> &CStr {
        match self {
            CPath::Static(s) => s,
            CPath::Owned(s) => s,
        }
    }
}

impl From<&'static CStr> for CPath {
    fn from(s: &'static CStr) -> CPath {
        CPath::Static(s)
    }
}

impl From<CString> for CPath {
    fn from(s: CString) -> CPath {
        CPath::Owned(s)
    }
}

/// How a cancel reaches its target in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelVia {
    /// `IORING_OP_TIMEOUT_REMOVE`: the target is a timer.
    TimeoutRemove,
    /// `IORING_OP_ASYNC_CANCEL`: any other target.
    AsyncCancel,
}

/// A value posted into a ring by another ring's `msg_ring`, or by a `Thread`'s fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// The 63-bit payload (the CQE's `user_data` without its top bit).
    pub data: u64,
    /// The 32-bit value (the CQE's `res`).
    pub value: i32,
}

/// The peer of an accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The new connection.
    pub fd: RawFd,
    /// The peer's address (`None` for families other than IPv4/IPv6).
    pub peer: Option<std::net::SocketAddr>,
}

/// An operation and its kernel-visible arguments.
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum Op {
    /// A free task: no operation.
    #[default]
    Idle,
    /// `IORING_OP_NOP`.
    Noop,
    /// `IORING_OP_TIMEOUT` with no completion count: fires after `ts` (or at `ts`).
    Timer {
        /// The time the kernel reads.
        ts: __kernel_timespec,
        /// An absolute `CLOCK_MONOTONIC` time instead of a relative one.
        absolute: bool,
    },
    /// An internal absolute timer that bounds a deadline wait on kernels without
    /// `FEAT_EXT_ARG`; submitted like an absolute `Timer`.
    Wake {
        /// The deadline on `CLOCK_MONOTONIC`.
        ts: __kernel_timespec,
    },
    /// `IORING_OP_READ` (or `READ_FIXED` with a registered pool buffer).
    Read {
        /// The file to read.
        fd: RawFd,
        /// Where the bytes go.
        buf: IoBuf,
        /// Where in the file.
        offset: Offset,
    },
    /// `IORING_OP_WRITE` (or `WRITE_FIXED` with a registered pool buffer).
    Write {
        /// The file to write.
        fd: RawFd,
        /// The bytes.
        buf: IoBuf,
        /// Where in the file.
        offset: Offset,
    },
    /// `IORING_OP_READV`.
    Readv {
        /// The file to read.
        fd: RawFd,
        /// The buffers and their iovec array.
        bufs: IoVecs,
        /// Where in the file.
        offset: Offset,
    },
    /// `IORING_OP_WRITEV`.
    Writev {
        /// The file to write.
        fd: RawFd,
        /// The buffers and their iovec array.
        bufs: IoVecs,
        /// Where in the file.
        offset: Offset,
    },
    /// `IORING_OP_OPENAT` relative to the current directory.
    Open {
        /// The path.
        path: CPath,
        /// `O_*` flags (`O_CLOEXEC` is always added).
        flags: u32,
        /// Permission bits for a created file.
        mode: u32,
    },
    /// `IORING_OP_CLOSE`.
    Close {
        /// The descriptor to close.
        fd: RawFd,
    },
    /// `IORING_OP_FSYNC`.
    Fsync {
        /// The file to sync.
        fd: RawFd,
        /// Data only (`IORING_FSYNC_DATASYNC`, like `fdatasync(2)`).
        datasync: bool,
    },
    /// `IORING_OP_STATX`.
    Stat {
        /// The path.
        path: CPath,
        /// Do not follow a final symlink (`AT_SYMLINK_NOFOLLOW`, for `lstat`).
        nofollow: bool,
        /// The buffer the kernel fills.
        buf: Box<libc::statx>,
    },
    /// `IORING_OP_SOCKET` (5.19), or a direct `socket(2)` where it is missing.
    Socket {
        /// `AF_*`.
        domain: i32,
        /// `SOCK_*` (`SOCK_CLOEXEC` is always added).
        ty: i32,
        /// Protocol, usually 0.
        protocol: i32,
    },
    /// `IORING_OP_CONNECT`.
    Connect {
        /// The socket.
        fd: RawFd,
        /// The peer address the kernel reads.
        addr: SockAddrBuf,
    },
    /// `IORING_OP_ACCEPT`.
    Accept {
        /// The listening socket.
        fd: RawFd,
        /// The peer address the kernel writes.
        addr: SockAddrBuf,
    },
    /// `IORING_OP_RECV`.
    Recv {
        /// The socket.
        fd: RawFd,
        /// Where the bytes go.
        buf: IoBuf,
        /// `MSG_*` flags.
        flags: i32,
    },
    /// `IORING_OP_SEND`.
    Send {
        /// The socket.
        fd: RawFd,
        /// The bytes.
        buf: IoBuf,
        /// `MSG_*` flags (`MSG_NOSIGNAL` is always added).
        flags: i32,
    },
    /// `IORING_OP_POLL_ADD`, one shot.
    Poll {
        /// The file to watch.
        fd: RawFd,
        /// `POLL*` events to wait for.
        events: u32,
    },
    /// `IORING_OP_SPLICE` (5.7).
    Splice {
        /// Source.
        fd_in: RawFd,
        /// Source offset; `None` for a pipe or the file position.
        off_in: Option<u64>,
        /// Destination.
        fd_out: RawFd,
        /// Destination offset; `None` for a pipe or the file position.
        off_out: Option<u64>,
        /// Bytes to move at most.
        len: u32,
        /// `SPLICE_F_*` flags.
        flags: u32,
    },
    /// `IORING_OP_MSG_RING` (5.18): post a completion into another ring.
    MsgRing {
        /// The target ring's fd.
        target: RawFd,
        /// What the target receives.
        message: Message,
    },
    /// A message to a [`Peer`](crate::Peer)'s mailbox. The op holds the mailbox, so its ring
    /// fd and eventfd stay open until the message has left: a send can never reach a closed
    /// (or reused) fd. Whether the peer still takes messages is checked when the op is
    /// submitted. With `msg_ring` it is an `IORING_OP_MSG_RING` to the peer's ring; without,
    /// the message is queued in the mailbox and the op is an 8-byte `write` of 1 to its
    /// eventfd. Reported as a `MsgRing` result.
    MailboxSend {
        /// The receiver.
        mailbox: std::sync::Arc<crate::Mailbox>,
        /// What it receives.
        message: Message,
        /// Through `msg_ring` (else the queue and the eventfd).
        msg_ring: bool,
        /// Set when the mailbox admitted it for `msg_ring` (see `Mailbox::admit`): from
        /// then on it counts as on its way until it arrives or its send fails.
        admitted: core::cell::Cell<bool>,
    },
    /// A message received from another ring: never submitted, delivered to the ring's
    /// message handler.
    Received {
        /// The message.
        message: Message,
    },
    /// Cancel one task in flight.
    Cancel {
        /// The target's `user_data`.
        target: TaskId,
        /// Which opcode cancels it.
        via: CancelVia,
    },
    /// `IORING_OP_ASYNC_CANCEL` with `ALL | ANY` (5.19): every request in flight.
    CancelAny {
        /// Tasks already cancelled locally (still queued) by the same `cancel_all`.
        local: u32,
        /// The ring's own background tasks in flight when it was queued (a mailbox read, a
        /// wake timer): the kernel cancels them too, but they are not the user's, so they
        /// are not counted.
        background: u32,
    },
    /// A `cancel_all` waiting for its per-task cancels (kernels without `CANCEL_ALL`).
    CancelAllJoin {
        /// Cancels still outstanding.
        outstanding: u32,
        /// Targets cancelled so far.
        cancelled: u32,
    },
}

impl Op {
    /// The opcode this op submits; `None` for ops that never reach a backend.
    pub fn opcode(&self) -> Option<Opcode> {
        Some(match self {
            Op::Idle | Op::CancelAllJoin { .. } | Op::Received { .. } => return None,
            Op::Noop => Opcode::Nop,
            Op::Timer { .. } | Op::Wake { .. } => Opcode::Timeout,
            Op::Read { .. } => Opcode::Read,
            Op::Write { .. } => Opcode::Write,
            Op::Readv { .. } => Opcode::Readv,
            Op::Writev { .. } => Opcode::Writev,
            Op::Open { .. } => Opcode::Openat,
            Op::Close { .. } => Opcode::Close,
            Op::Fsync { .. } => Opcode::Fsync,
            Op::Stat { .. } => Opcode::Statx,
            Op::Socket { .. } => Opcode::Socket,
            Op::Connect { .. } => Opcode::Connect,
            Op::Accept { .. } => Opcode::Accept,
            Op::Recv { .. } => Opcode::Recv,
            Op::Send { .. } => Opcode::Send,
            Op::Poll { .. } => Opcode::PollAdd,
            Op::Splice { .. } => Opcode::Splice,
            Op::MsgRing { .. } => Opcode::MsgRing,
            Op::MailboxSend { msg_ring: true, .. } => Opcode::MsgRing,
            Op::MailboxSend {
                msg_ring: false, ..
            } => Opcode::Write,
            Op::Cancel {
                via: CancelVia::TimeoutRemove,
                ..
            } => Opcode::TimeoutRemove,
            Op::Cancel {
                via: CancelVia::AsyncCancel,
                ..
            }
            | Op::CancelAny { .. } => Opcode::AsyncCancel,
        })
    }

    /// Whether the op owns memory that must be dropped when its task is recycled. Ops that
    /// own nothing are left in place and overwritten by the next op without a drop, which
    /// keeps recycling a noop or a timer to a few stores.
    #[inline]
    pub fn owns_resources(&self) -> bool {
        match self {
            Op::Read { .. }
            | Op::Write { .. }
            | Op::Readv { .. }
            | Op::Writev { .. }
            | Op::Recv { .. }
            | Op::Send { .. }
            | Op::MailboxSend { .. }
            | Op::Open { .. }
            | Op::Stat { .. } => true,
            Op::Idle
            | Op::Noop
            | Op::Timer { .. }
            | Op::Wake { .. }
            | Op::Close { .. }
            | Op::Fsync { .. }
            | Op::Socket { .. }
            | Op::Connect { .. }
            | Op::Accept { .. }
            | Op::Poll { .. }
            | Op::Splice { .. }
            | Op::MsgRing { .. }
            | Op::Received { .. }
            | Op::Cancel { .. }
            | Op::CancelAny { .. }
            | Op::CancelAllJoin { .. } => false,
        }
    }

    /// Turns a completion's `res` (`>= 0` success, `-errno` failure) into this op's result.
    pub fn decode(&self, res: i32) -> OpResult {
        let mut out = None;
        self.decode_into(res, &mut out);
        out.unwrap_or(OpResult::Noop)
    }

    /// [`decode`](Self::decode) straight into `out`. Each arm stores only its own variant,
    /// so a noop's completion writes a tag, not the whole (large) `OpResult`.
    #[inline(always)]
    pub(crate) fn decode_into(&self, res: i32, out: &mut Option<OpResult>) {
        let r = Errno::result(res);
        let count = |r: Result<u32, Errno>| r.map(|n| n as usize);
        let unit = |r: Result<u32, Errno>| r.map(|_| ());
        let fd = |r: Result<u32, Errno>| r.map(|n| n as RawFd);
        match self {
            Op::Idle | Op::Noop => *out = Some(OpResult::Noop),
            // A timer without a count completes with -ETIME when it expires.
            Op::Timer { .. } | Op::Wake { .. } => {
                *out = Some(OpResult::Timer(match r {
                    Err(Errno::ETIME) | Ok(_) => Ok(()),
                    Err(e) => Err(e),
                }))
            }
            Op::Read { .. } => *out = Some(OpResult::Read(count(r))),
            Op::Write { .. } => *out = Some(OpResult::Write(count(r))),
            Op::Readv { .. } => *out = Some(OpResult::Readv(count(r))),
            Op::Writev { .. } => *out = Some(OpResult::Writev(count(r))),
            Op::Open { .. } => *out = Some(OpResult::Open(fd(r))),
            Op::Close { .. } => *out = Some(OpResult::Close(unit(r))),
            Op::Fsync { .. } => *out = Some(OpResult::Fsync(unit(r))),
            Op::Stat { buf, .. } => *out = Some(OpResult::Stat(r.map(|_| Stat::from_statx(buf)))),
            Op::Socket { .. } => *out = Some(OpResult::Socket(fd(r))),
            Op::Connect { .. } => *out = Some(OpResult::Connect(unit(r))),
            Op::Accept { addr, .. } => {
                *out = Some(OpResult::Accept(r.map(|n| Accepted {
                    fd: n as RawFd,
                    peer: addr.to_socket_addr(),
                })))
            }
            Op::Recv { .. } => *out = Some(OpResult::Recv(count(r))),
            Op::Send { .. } => *out = Some(OpResult::Send(count(r))),
            Op::Poll { .. } => *out = Some(OpResult::Poll(r)),
            Op::Splice { .. } => *out = Some(OpResult::Splice(count(r))),
            Op::MsgRing { .. } => *out = Some(OpResult::MsgRing(unit(r))),
            Op::MailboxSend {
                mailbox, admitted, ..
            } => {
                if r.is_err() && admitted.get() {
                    // It will never arrive: stop counting it as on its way.
                    mailbox.settle();
                }
                *out = Some(OpResult::MsgRing(unit(r)))
            }
            Op::Received { message } => *out = Some(OpResult::Message(*message)),
            Op::Cancel { .. } => *out = Some(OpResult::Cancel(unit(r))),
            Op::CancelAny { local, background } => {
                *out = Some(OpResult::CancelAll(match r {
                    Ok(n) => Ok(n.saturating_sub(*background) + local),
                    // Nothing in flight to cancel in the kernel.
                    Err(Errno::ENOENT) => Ok(*local),
                    Err(e) => Err(e),
                }))
            }
            Op::CancelAllJoin { cancelled, .. } => {
                *out = Some(OpResult::CancelAll(match r {
                    Ok(_) => Ok(*cancelled),
                    Err(e) => Err(e),
                }))
            }
        }
    }

    /// Whether the op uses memory its caller owns (a raw [`IoBuf`], see
    /// [`IoBuf::is_borrowed`]).
    pub fn borrows_memory(&self) -> bool {
        match self {
            Op::Readv { bufs, .. } | Op::Writev { bufs, .. } => {
                bufs.bufs().iter().any(IoBuf::is_borrowed)
            }
            _ => self.buf().is_some_and(IoBuf::is_borrowed),
        }
    }

    /// The single buffer this op owns, if any.
    pub fn buf(&self) -> Option<&IoBuf> {
        match self {
            Op::Read { buf, .. }
            | Op::Write { buf, .. }
            | Op::Recv { buf, .. }
            | Op::Send { buf, .. } => Some(buf),
            _ => None,
        }
    }

    /// The single buffer this op owns, mutably (for a backend that fills it).
    pub fn buf_mut(&mut self) -> Option<&mut IoBuf> {
        match self {
            Op::Read { buf, .. }
            | Op::Write { buf, .. }
            | Op::Recv { buf, .. }
            | Op::Send { buf, .. } => Some(buf),
            _ => None,
        }
    }

    /// Takes the op's single buffer out, leaving the op without one.
    pub(crate) fn take_buf(&mut self) -> Option<IoBuf> {
        match core::mem::take(self) {
            Op::Read { buf, .. }
            | Op::Write { buf, .. }
            | Op::Recv { buf, .. }
            | Op::Send { buf, .. } => Some(buf),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Takes the op's vectored buffers out.
    pub(crate) fn take_iovecs(&mut self) -> Option<IoVecs> {
        match core::mem::take(self) {
            Op::Readv { bufs, .. } | Op::Writev { bufs, .. } => Some(bufs),
            other => {
                *self = other;
                None
            }
        }
    }
}
