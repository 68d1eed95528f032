//! `Uring`: the backend that runs operations on the kernel's io_uring.
//!
//! # Safety
//!
//! This module turns [`Op`]s into SQEs that carry raw addresses into the op (timespecs) and
//! into the buffers it owns. [`Backend::push`]'s contract keeps all of them valid until the
//! completion is reaped, which is exactly how long the kernel may use them. Registering the
//! buffer pool hands the kernel its memory for the ring's whole life; the backend keeps a
//! clone of the pool, so that memory is freed only after the ring's file descriptor is closed.

use core::ptr::NonNull;

use xuring_sys::abi::{IORING_MSG_DATA, io_uring_sqe, register};
use xuring_sys::syscall::{self, io_uring_enter};
use xuring_sys::{
    CancelFlags, EnterFlags, Errno, Features, FsyncFlags, Opcode, RawRing, SetupError, SetupFlags,
    SetupOptions, SqFull, SqRingFlags, TimeoutFlags,
};

use super::{Backend, Completion};
use crate::op::CancelVia;
use crate::{BufferPool, Op, Timespec};

/// The io_uring backend.
#[derive(Debug)]
pub struct Uring {
    ring: RawRing,
    /// Fixed buffers, when registered. Kept until drop: the kernel holds the memory.
    pool: Option<BufferPool>,
    fork_generation: u64,
}

impl Uring {
    /// Creates a ring with these options.
    pub fn new(options: &SetupOptions) -> Result<Uring, SetupError> {
        // Read the fork generation first so that a fork during setup is noticed.
        let fork_generation = syscall::fork_generation();
        let ring = RawRing::new(options)?;
        Ok(Uring {
            ring,
            pool: None,
            fork_generation,
        })
    }

    /// The ring's file descriptor (for `msg_ring` targets and `ATTACH_WQ`).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.ring.fd()
    }

    /// The sys-layer ring.
    pub fn raw(&self) -> &RawRing {
        &self.ring
    }
}

/// Builds the SQE for `op`. One exhaustive `match`: a new op does not compile until it is
/// prepared here.
///
/// # Safety
///
/// `op` must be valid for reads and writes (a read's buffer pointer is derived from it).
#[inline(always)]
unsafe fn prep(
    op: NonNull<Op>,
    user_data: u64,
    fixed: Option<&BufferPool>,
    sqe: &mut io_uring_sqe,
) {
    sqe.user_data = user_data;
    // SAFETY: the caller passes a valid, exclusively owned op.
    let op = unsafe { &mut *op.as_ptr() };
    match op {
        Op::Idle | Op::CancelAllJoin { .. } | Op::Received { .. } => {
            debug_assert!(false, "{op:?} is never submitted");
            sqe.opcode = Opcode::Nop as u8;
        }
        Op::Noop => sqe.opcode = Opcode::Nop as u8,
        Op::Timer { ts, absolute } => {
            sqe.opcode = Opcode::Timeout as u8;
            sqe.addr = core::ptr::from_mut(ts) as u64;
            sqe.len = 1;
            // off = 0: no completion count, a pure timer.
            if *absolute {
                sqe.op_flags = TimeoutFlags::ABS.bits();
            }
        }
        Op::Wake { ts } => {
            sqe.opcode = Opcode::Timeout as u8;
            sqe.addr = core::ptr::from_mut(ts) as u64;
            sqe.len = 1;
            sqe.op_flags = TimeoutFlags::ABS.bits();
        }
        Op::Read { fd, buf, offset } => {
            let index = fixed.and_then(|pool| buf.pool_index(pool));
            sqe.opcode = if index.is_some() {
                Opcode::ReadFixed
            } else {
                Opcode::Read
            } as u8;
            sqe.fd = *fd;
            sqe.len = buf.len().min(u32::MAX as usize) as u32;
            // A read-only buffer is refused before it gets here.
            sqe.addr = buf.as_mut_ptr().unwrap_or(core::ptr::null_mut()) as u64;
            sqe.off = offset.to_raw();
            sqe.buf_index = index.unwrap_or(0);
        }
        Op::Write { fd, buf, offset } => {
            let index = fixed.and_then(|pool| buf.pool_index(pool));
            sqe.opcode = if index.is_some() {
                Opcode::WriteFixed
            } else {
                Opcode::Write
            } as u8;
            sqe.fd = *fd;
            sqe.len = buf.len().min(u32::MAX as usize) as u32;
            sqe.addr = buf.as_ptr() as u64;
            sqe.off = offset.to_raw();
            sqe.buf_index = index.unwrap_or(0);
        }
        Op::Readv { fd, bufs, offset } => {
            sqe.opcode = Opcode::Readv as u8;
            sqe.fd = *fd;
            sqe.off = offset.to_raw();
            // Read-only buffers are refused before a readv gets here.
            if let Some(iovecs) = bufs.prepare(true) {
                sqe.addr = iovecs.as_ptr() as u64;
                sqe.len = iovecs.len() as u32;
            }
        }
        Op::Writev { fd, bufs, offset } => {
            sqe.opcode = Opcode::Writev as u8;
            sqe.fd = *fd;
            sqe.off = offset.to_raw();
            if let Some(iovecs) = bufs.prepare(false) {
                sqe.addr = iovecs.as_ptr() as u64;
                sqe.len = iovecs.len() as u32;
            }
        }
        Op::Open { path, flags, mode } => {
            sqe.opcode = Opcode::Openat as u8;
            sqe.fd = libc::AT_FDCWD;
            sqe.addr = path.as_c_str().as_ptr() as u64;
            sqe.len = *mode;
            sqe.op_flags = *flags | libc::O_CLOEXEC as u32;
        }
        Op::Close { fd } => {
            sqe.opcode = Opcode::Close as u8;
            sqe.fd = *fd;
        }
        Op::Fsync { fd, datasync } => {
            sqe.opcode = Opcode::Fsync as u8;
            sqe.fd = *fd;
            if *datasync {
                sqe.op_flags = FsyncFlags::DATASYNC.bits();
            }
        }
        Op::Stat {
            path,
            nofollow,
            buf,
        } => {
            sqe.opcode = Opcode::Statx as u8;
            sqe.fd = libc::AT_FDCWD;
            sqe.addr = path.as_c_str().as_ptr() as u64;
            sqe.len = crate::stat::STATX_MASK;
            sqe.off = core::ptr::from_mut::<libc::statx>(buf) as u64;
            sqe.op_flags = if *nofollow {
                libc::AT_SYMLINK_NOFOLLOW as u32
            } else {
                0
            };
        }
        Op::Socket {
            domain,
            ty,
            protocol,
        } => {
            sqe.opcode = Opcode::Socket as u8;
            sqe.fd = *domain;
            sqe.off = (*ty | libc::SOCK_CLOEXEC) as u32 as u64;
            sqe.len = *protocol as u32;
        }
        Op::Connect { fd, addr } => {
            sqe.opcode = Opcode::Connect as u8;
            sqe.fd = *fd;
            sqe.addr = addr.as_ptr() as u64;
            // For CONNECT, `off` holds the address length itself.
            sqe.off = u64::from(addr.len());
        }
        Op::Accept { fd, addr } => {
            sqe.opcode = Opcode::Accept as u8;
            sqe.fd = *fd;
            sqe.addr = addr.as_mut_ptr() as u64;
            // For ACCEPT, `off` (addr2) points at the address length, updated by the kernel.
            sqe.off = addr.len_mut() as u64;
            sqe.op_flags = libc::SOCK_CLOEXEC as u32;
        }
        Op::Recv { fd, buf, flags } => {
            sqe.opcode = Opcode::Recv as u8;
            sqe.fd = *fd;
            sqe.addr = buf.as_mut_ptr().unwrap_or(core::ptr::null_mut()) as u64;
            sqe.len = buf.len().min(u32::MAX as usize) as u32;
            sqe.op_flags = *flags as u32;
        }
        Op::Send { fd, buf, flags } => {
            sqe.opcode = Opcode::Send as u8;
            sqe.fd = *fd;
            sqe.addr = buf.as_ptr() as u64;
            sqe.len = buf.len().min(u32::MAX as usize) as u32;
            sqe.op_flags = (*flags | libc::MSG_NOSIGNAL) as u32;
        }
        Op::Poll { fd, events } => {
            sqe.opcode = Opcode::PollAdd as u8;
            sqe.fd = *fd;
            // `poll32_events`: a 32-bit mask, in the kernel's word order on this host.
            sqe.op_flags = *events;
        }
        Op::Splice {
            fd_in,
            off_in,
            fd_out,
            off_out,
            len,
            flags,
        } => {
            sqe.opcode = Opcode::Splice as u8;
            sqe.splice_fd_in = *fd_in;
            sqe.addr = off_in.unwrap_or(u64::MAX);
            sqe.fd = *fd_out;
            sqe.off = off_out.unwrap_or(u64::MAX);
            sqe.len = *len;
            sqe.op_flags = *flags;
        }
        Op::MsgRing { target, message } => {
            sqe.opcode = Opcode::MsgRing as u8;
            sqe.fd = *target;
            sqe.addr = IORING_MSG_DATA;
            sqe.len = message.value as u32;
            sqe.off = message.data | crate::task::NOT_A_TASK;
        }
        Op::MailboxSend {
            mailbox,
            message,
            msg_ring: true,
            ..
        } => {
            sqe.opcode = Opcode::MsgRing as u8;
            sqe.fd = mailbox.ring_fd();
            sqe.addr = IORING_MSG_DATA;
            sqe.len = message.value as u32;
            sqe.off = message.data | crate::task::NOT_A_TASK;
        }
        Op::MailboxSend {
            mailbox,
            msg_ring: false,
            ..
        } => {
            let one: &'static [u8; 8] = &crate::thread::EVENTFD_ONE;
            sqe.opcode = Opcode::Write as u8;
            sqe.fd = mailbox.eventfd();
            sqe.addr = one.as_ptr() as u64;
            sqe.len = one.len() as u32;
            sqe.off = u64::MAX;
        }
        Op::Cancel { target, via } => {
            sqe.opcode = match via {
                CancelVia::TimeoutRemove => Opcode::TimeoutRemove,
                CancelVia::AsyncCancel => Opcode::AsyncCancel,
            } as u8;
            sqe.addr = target.to_u64();
        }
        Op::CancelAny { .. } => {
            sqe.opcode = Opcode::AsyncCancel as u8;
            sqe.op_flags = (CancelFlags::ALL | CancelFlags::ANY).bits();
        }
    }
}

// SAFETY: `reap` reports a `user_data` only from the kernel's CQE for it, after which the
// kernel no longer uses the request's memory; a CQE is reported once (the CQ head moves past
// it). `Control` is `&Uring`, through which nothing can be replaced or driven. Dropping a
// `Uring` closes the ring fd, after the ring has reaped (or leaked) everything in flight.
unsafe impl Backend for Uring {
    type Control<'a> = &'a Uring;

    fn control(&mut self) -> &Uring {
        self
    }

    #[inline]
    fn features(&self) -> &Features {
        self.ring.features()
    }

    #[inline]
    fn space(&self) -> u32 {
        // `space` reads the kernel's head; a shared borrow suffices.
        let sq: &xuring_sys::SubmissionQueue = self.ring_sq();
        sq.space()
    }

    #[inline]
    fn unsubmitted(&self) -> u32 {
        self.ring_sq().pending()
    }

    #[inline]
    unsafe fn push(&mut self, op: NonNull<Op>, user_data: u64) -> Result<(), SqFull> {
        let pool = self.pool.as_ref();
        let fill = |sqe: &mut io_uring_sqe| {
            // SAFETY: the caller guarantees `op` is valid and exclusively ours until
            // completion.
            unsafe { prep(op, user_data, pool, sqe) }
        };
        // SAFETY: every address `prep` writes points into `*op` or the buffer it owns, which
        // the caller keeps valid until the completion for `user_data` is reaped.
        unsafe { self.ring.sq().push_with(fill) }
    }

    fn enter(&mut self, min_complete: u32, timeout: Option<Timespec>) -> Result<(), Errno> {
        let sq = self.ring.sq();
        sq.publish();
        let to_submit = sq.pending();
        let ts = timeout.map(Timespec::to_kernel);
        io_uring_enter(
            self.ring.as_fd(),
            to_submit,
            min_complete,
            EnterFlags::GETEVENTS,
            ts.as_ref(),
        )
        .map(|_| ())
    }

    #[inline]
    fn reap(&mut self, mut sink: impl FnMut(Completion)) {
        self.ring.cq().reap(|cqe| {
            sink(Completion {
                user_data: cqe.user_data,
                res: cqe.res,
                flags: cqe.flags,
            })
        });
    }

    fn overflowed(&self) -> bool {
        self.ring_sq().flags().contains(SqRingFlags::CQ_OVERFLOW)
    }

    fn forked(&self) -> bool {
        syscall::fork_generation() != self.fork_generation
    }

    fn socket_fallback(&mut self, domain: i32, ty: i32, protocol: i32) -> i32 {
        match syscall::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) {
            Ok(fd) => fd,
            Err(e) => -e.raw(),
        }
    }

    fn close_undelivered(&mut self, fd: std::os::fd::RawFd) {
        // SAFETY: the kernel created `fd` for a request of this ring whose result no callback
        // received, so no one else knows it; it is not used after this. A failed close leaves
        // nothing to do.
        let _ = unsafe { syscall::close(fd) };
    }

    fn register_buffers(&mut self, pool: &BufferPool) -> Result<bool, Errno> {
        let iovecs: Vec<libc::iovec> = pool
            .iovecs()
            .map(|(base, len)| libc::iovec {
                iov_base: base.cast(),
                iov_len: len,
            })
            .collect();
        // SAFETY: `iovecs` describes the pool's allocation, which `self.pool` keeps alive
        // until this backend is dropped. The kernel may keep the registration longer (a
        // mailbox's duplicate of the ring fd can keep the io_uring file open), but only a
        // fixed-buffer op submitted through this backend can reach the memory, and by the
        // time the backend is dropped its ring has reaped every op and can submit no more.
        let registered = unsafe {
            syscall::register(
                self.ring.fd(),
                register::IORING_REGISTER_BUFFERS,
                iovecs.as_ptr().cast(),
                iovecs.len() as u32,
            )
        };
        match registered {
            Ok(_) => {
                pool.set_registered(true);
                self.pool = Some(pool.clone());
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }
}

impl Uring {
    fn ring_sq(&self) -> &xuring_sys::SubmissionQueue {
        self.ring.sq_ref()
    }

    /// Whether the ring was created with `flag`.
    pub fn has_setup(&self, flag: SetupFlags) -> bool {
        self.ring.features().has_setup(flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::Message;

    /// The fallback send's source bytes must outlive the `prep` call: the kernel reads them
    /// when it issues the write, after `prep` has returned.
    #[test]
    #[cfg_attr(miri, ignore = "needs a real ring")]
    fn eventfd_send_writes_from_static_memory() {
        let mut ring = crate::Ring::builder(8)
            .kernel_level(crate::KernelLevel::V5_6)
            .build()
            .expect("ring");
        let mailbox = ring.mailbox(None).expect("mailbox");
        let mut op = Op::MailboxSend {
            mailbox: Arc::clone(&mailbox),
            message: Message { data: 7, value: 1 },
            msg_ring: false,
            admitted: core::cell::Cell::new(false),
        };
        let mut sqe = io_uring_sqe::default();
        // SAFETY: `op` is a live, exclusively borrowed op for the whole call.
        unsafe { prep(NonNull::from(&mut op), 1, None, &mut sqe) };
        let one = &crate::thread::EVENTFD_ONE;
        assert_eq!(sqe.opcode, Opcode::Write as u8);
        assert_eq!(sqe.fd, mailbox.eventfd());
        assert_eq!(
            sqe.addr,
            one.as_ptr() as u64,
            "source is the static counter"
        );
        assert_eq!(sqe.len, 8);
    }
}
