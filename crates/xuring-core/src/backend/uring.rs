//! `Uring`: the backend that runs operations on the kernel's io_uring, or, where io_uring is
//! forbidden or missing, on the readiness executor behind the same queues (`xuring-sys`'s
//! [`RawRing::emulated`]: `epoll`, files and filesystem operations synchronously).
//!
//! # Safety
//!
//! Each op's declaration (`ops.rs`) fills the SQE, with raw addresses into the op
//! (timespecs, addresses) and into the buffers it owns. [`Backend::push`]'s contract keeps all of them valid until the
//! completion is reaped, which is exactly how long the kernel may use them. Registering the
//! buffer pool hands the kernel its memory for the ring's whole life; the backend keeps a
//! clone of the pool, so that memory is freed only after the ring's file descriptor is closed.

use core::ptr::NonNull;

use xuring_sys::abi::register;
use xuring_sys::syscall;
use xuring_sys::{
    EnterFlags, Errno, Executor, Features, RawRing, SetupError, SetupFlags, SetupOptions, SqFull,
    SqRingFlags,
};

use super::{Backend, Completion};
use crate::op::PrepEnv;
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

    /// What executes this backend's ring: the kernel's io_uring or the readiness executor.
    pub fn executor(&self) -> Executor {
        self.ring.executor()
    }

    /// The sys-layer ring.
    pub fn raw(&self) -> &RawRing {
        &self.ring
    }
}

// SAFETY: `reap` reports a `user_data` only from the kernel's CQE for it, after which the
// kernel no longer uses the request's memory; a CQE is reported once (the CQ head moves past
// it). `Control` is `&Uring`, through which nothing can be replaced or driven. Dropping a
// `Uring` closes the ring fd, after the ring has reaped (or leaked) everything in flight.
// Retracting: `push` only writes an SQE slot beyond the published tail, which the kernel
// does not read (no `SQPOLL`: the ring never sets it up); only `enter` publishes, and
// `retract` removes unpublished entries only, so a retracted op never reaches the kernel.
unsafe impl Backend for Uring {
    type Control<'a> = &'a Uring;

    const CAN_RETRACT: bool = true;

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
    fn retractable(&self) -> u32 {
        if self.forked() {
            // The published tail moves with the parent; the child never pushes.
            return 0;
        }
        self.ring_sq().unpublished()
    }

    #[inline(always)]
    unsafe fn push(&mut self, op: NonNull<Op>, user_data: u64) -> Result<(), SqFull> {
        let env = PrepEnv {
            fixed: self.pool.as_ref(),
        };
        let sq = self.ring.sq();
        let Some(mut slot) = sq.next_free() else {
            return Err(SqFull);
        };
        // SAFETY: `next_free` hands out an unpublished slot nothing else refers to.
        let sqe = unsafe { slot.as_mut() };
        sqe.user_data = user_data;
        // SAFETY: the caller guarantees `op` is valid and exclusively ours until completion,
        // so a `&mut` for the length of this call is the only reference.
        unsafe { &mut *op.as_ptr() }.prep(sqe, env);
        // SAFETY: the slot came from `next_free` just now; every address `prep` wrote points
        // into `*op` or the buffer it owns, which the caller keeps valid until the completion
        // for `user_data` is reaped (or the op is retracted).
        unsafe { sq.commit_next() };
        Ok(())
    }

    fn retract(&mut self, mut retract: impl FnMut(u64) -> bool) -> u32 {
        self.ring
            .sq()
            .retract_unpublished(|sqe| retract(sqe.user_data))
    }

    fn enter(&mut self, min_complete: u32, timeout: Option<Timespec>) -> Result<(), Errno> {
        let sq = self.ring.sq();
        sq.publish();
        let to_submit = sq.pending();
        let ts = timeout.map(Timespec::to_kernel);
        self.ring
            .enter(to_submit, min_complete, EnterFlags::GETEVENTS, ts.as_ref())
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
        syscall::forked_since(self.fork_generation)
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
        if self.ring.executor() == Executor::Epoll {
            // Nothing to register with: the pool's buffers go through plain reads and writes.
            return Ok(false);
        }
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
        let mut op: Op = crate::ops::MsgRing::to_mailbox(
            Arc::clone(&mailbox),
            Message { data: 7, value: 1 },
            false,
        )
        .into();
        let mut sqe = xuring_sys::abi::io_uring_sqe::default();
        op.prep(&mut sqe, PrepEnv::default());
        let one = &crate::thread::EVENTFD_ONE;
        assert_eq!(sqe.opcode, xuring_sys::Opcode::Write as u8);
        assert_eq!(sqe.fd, mailbox.eventfd());
        assert_eq!(
            sqe.addr,
            one.as_ptr() as u64,
            "source is the static counter"
        );
        assert_eq!(sqe.len, 8);
    }
}
