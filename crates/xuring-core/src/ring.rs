//! `Ring`: the task lifecycle, the operation methods, cancellation and teardown.
//!
//! # Safety
//!
//! The ring dereferences task pointers from its [`TaskPool`](crate::pool::TaskPool). They are
//! always valid (chunks are never freed while the ring lives). What the ring may do with a
//! task depends on its [`TaskState`]:
//! - `Free`, `Queued`: the ring owns the task outright and writes its op and result.
//! - `InFlight`: the backend (and the kernel) owns the op; the ring reads only the `Cell`
//!   fields (id, state, context) until the completion is reaped.
//! - `Ready`: the ring owns it again.
//! - `Running`: the callback holds `&Task`; the ring touches only `Cell` fields.
//!
//! The ring never creates `&mut Task`: it writes `result` and the op through raw pointers
//! derived from the chunk allocation, in the states where nothing else looks at them.

use core::ptr::NonNull;
use std::os::fd::RawFd;

use xuring_queue::{List, Queue};
use xuring_sys::{CancelFlags, Errno, Features, KernelLevel, Opcode, SetupOptions};

use crate::backend::Completion;
use crate::op::CancelVia;
use crate::op::{CPath, Message};
use crate::pool::TaskPool;
use crate::task::{NOT_A_TASK, OpClass, TaskState};
use crate::{
    Backend, BufferPool, Context, IoBuf, IoVecs, Offset, Op, OpResult, RingError, Task, TaskHandle,
    TaskId, Timespec, Uring,
};

/// Counters of what the ring has seen. Cheap to read at any time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Completions whose `user_data` names no task of this ring (e.g. posted by another
    /// process after `fork`): counted and dropped.
    pub foreign_completions: u64,
    /// Completions for a task that was not in flight (a duplicate, or for an old generation):
    /// counted and dropped.
    pub stale_completions: u64,
    /// `io_uring_enter` calls interrupted by a signal and retried.
    pub eintr_retries: u64,
    /// `EBUSY`/`EAGAIN` from `io_uring_enter`: completions reaped, then retried.
    pub busy_retries: u64,
    /// Messages received from other rings.
    pub messages: u64,
    /// Messages received with no handler set ([`Ring::on_message`]): dropped.
    pub unhandled_messages: u64,
    /// Calls of `io_uring_enter` (or the backend's equivalent).
    pub enters: u64,
    /// Operations handed to the backend.
    pub submitted: u64,
    /// Callbacks run.
    pub callbacks: u64,
}

/// Tasks that could not be reaped at teardown (the kernel may still write into them), over the
/// life of the process. Their memory is leaked on purpose, never freed.
static LEAKED_TASKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// How many tasks rings have leaked at teardown because the kernel did not complete them in
/// time (see [`RingBuilder::teardown_timeout`](crate::RingBuilder::teardown_timeout)).
pub fn leaked_tasks() -> u64 {
    LEAKED_TASKS.load(core::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn count_leaked(tasks: u64) {
    LEAKED_TASKS.fetch_add(tasks, core::sync::atomic::Ordering::Relaxed);
}

/// A single-threaded io_uring event loop: tasks, callbacks, and the backend that runs them.
///
/// Submit work with the op methods ([`noop`](Self::noop), [`timer`](Self::timer),
/// [`read`](Self::read), [`write`](Self::write), [`cancel`](Self::cancel), ...): each takes a
/// [`Context`] and queues a task. [`run`](Self::run) submits the queued tasks, waits for
/// completions, and calls each task's callback with `&mut Ring`, so callbacks can submit
/// follow-up work.
pub struct Ring<B: Backend = Uring> {
    pub(crate) backend: B,
    pub(crate) pool: TaskPool<B>,
    /// Tasks queued but not yet handed to the backend. Doubly linked so a cancel can take a
    /// task out of the middle in O(1).
    pub(crate) submission_q: List<Task<B>>,
    /// Tasks whose completion was reaped, waiting for their callback. Completions are moved
    /// here before any callback runs, because callbacks get `&mut Ring` and may submit, cancel
    /// or even run out of room in the backend's queue while we would still be iterating it.
    pub(crate) completions: Queue<Task<B>>,
    pub(crate) in_flight: u32,
    pub(crate) running: bool,
    /// A mailbox send was admitted into the backend's queue and no `enter` has taken it
    /// yet: `run` submits it before it returns.
    pub(crate) admitted_unsubmitted: bool,
    /// The task whose callback is running, recycled even if the callback panics.
    pub(crate) current: Option<NonNull<Task<B>>>,
    pub(crate) stats: RingStats,
    pub(crate) buffers: Option<BufferPool>,
    pub(crate) teardown_timeout: core::time::Duration,
    /// The internal timer that bounds a deadline wait without `FEAT_EXT_ARG`, and its time.
    pub(crate) wake: Option<(TaskId, Timespec)>,
    /// Background tasks in flight: internal wake-up timers and mailbox reads. They are not
    /// user work: `run(UntilDone)` does not wait for them.
    pub(crate) background_in_flight: u32,
    /// `statx` buffers of finished stats, reused so that a stat allocates only in warm-up.
    /// Boxed, because the kernel writes into a buffer while the box moves with its task.
    #[allow(clippy::vec_box)]
    pub(crate) statx_cache: Vec<Box<libc::statx>>,
    /// Where messages from other rings go.
    pub(crate) message_ctx: Option<Context<B>>,
    /// The ring's mailbox, once it talks to threads (real kernel only).
    pub(crate) mailbox: Option<std::sync::Arc<crate::Mailbox>>,
}

/// Options for a new ring.
#[derive(Clone, Debug)]
pub struct RingBuilder {
    entries: u32,
    cq_entries: Option<u32>,
    setup: Option<xuring_sys::SetupFlags>,
    chunk_size: u32,
    initial_tasks: u32,
    buffers: Option<(usize, usize)>,
    level: Option<KernelLevel>,
    attach_wq: Option<RawFd>,
    teardown_timeout: core::time::Duration,
}

impl RingBuilder {
    /// Options for a ring of `entries` SQ entries (`1..=32768`, rounded up to a power of
    /// two), the kernel's default CQ size (twice that), the default setup flags, chunks of 256
    /// tasks and no buffer pool.
    pub fn new(entries: u32) -> RingBuilder {
        RingBuilder {
            entries,
            cq_entries: None,
            setup: None,
            chunk_size: 256,
            initial_tasks: 0,
            buffers: None,
            level: None,
            attach_wq: None,
            teardown_timeout: core::time::Duration::from_secs(5),
        }
    }

    /// CQ entries (at least the SQ entries; rounded up to a power of two).
    pub fn cq_entries(mut self, cq_entries: u32) -> Self {
        self.cq_entries = Some(cq_entries);
        self
    }

    /// The setup flags to try (each dropped if the kernel refuses it). The default is
    /// `SUBMIT_ALL | COOP_TASKRUN | SINGLE_ISSUER | DEFER_TASKRUN`.
    ///
    /// Accepted: those four, `TASKRUN_FLAG`, and `CLAMP`, `CQSIZE` and `ATTACH_WQ`, which
    /// the ring sets itself (always, with [`cq_entries`](Self::cq_entries), and with
    /// [`attach_wq`](Self::attach_wq)): [`xuring_sys::SetupFlags::DRIVEN`]. Any other flag
    /// (`SQPOLL`, `SQ_AFF`, `IOPOLL`, `R_DISABLED`, `SQE128`, `CQE32`, or a bit newer than
    /// xuring) makes [`build`](Self::build) fail with
    /// [`SetupError::UnsupportedFlags`](xuring_sys::SetupError::UnsupportedFlags).
    pub fn setup_flags(mut self, flags: xuring_sys::SetupFlags) -> Self {
        self.setup = Some(flags);
        self
    }

    /// How many tasks the pool adds when it runs out (a power of two; default 256).
    pub fn chunk_size(mut self, tasks: u32) -> Self {
        self.chunk_size = tasks;
        self
    }

    /// How many tasks to allocate up front (default: one chunk when first needed).
    pub fn initial_tasks(mut self, tasks: u32) -> Self {
        self.initial_tasks = tasks;
        self
    }

    /// A pool of `count` buffers of `size` bytes, registered with the kernel as fixed buffers
    /// where it can be (see [`Ring::buffers`]).
    pub fn buffer_pool(mut self, count: usize, size: usize) -> Self {
        self.buffers = Some((count, size));
        self
    }

    /// Clamp the kernel's features to `level` (default: `XURING_KERNEL_LEVEL`, else native).
    pub fn kernel_level(mut self, level: KernelLevel) -> Self {
        self.level = Some(level);
        self
    }

    /// Share the io-wq worker pool of the ring with this fd (`SETUP_ATTACH_WQ`).
    pub fn attach_wq(mut self, fd: RawFd) -> Self {
        self.attach_wq = Some(fd);
        self
    }

    /// How long dropping the ring waits for cancelled operations to complete before it
    /// gives up and leaks their memory (default 5 s).
    pub fn teardown_timeout(mut self, timeout: core::time::Duration) -> Self {
        self.teardown_timeout = timeout;
        self
    }

    /// The kernel level these options select.
    pub fn level(&self) -> Result<KernelLevel, RingError> {
        match self.level {
            Some(level) => Ok(level),
            None => Ok(KernelLevel::from_env()?),
        }
    }

    /// Creates the ring on the real kernel.
    pub fn build(self) -> Result<Ring<Uring>, RingError> {
        if self.entries == 0 {
            return Err(RingError::InvalidOptions("a ring needs at least one entry"));
        }
        let mut options = SetupOptions::new(self.entries, self.level()?);
        options.cq_entries = self.cq_entries;
        if let Some(flags) = self.setup {
            options.wanted = flags;
        }
        options.attach_wq = self.attach_wq;
        let backend = Uring::new(&options)?;
        self.build_with(backend)
    }

    /// Creates a ring on `backend`, with these options' pool and buffer settings.
    pub fn build_with<B: Backend>(self, backend: B) -> Result<Ring<B>, RingError> {
        let mut ring = Ring {
            backend,
            pool: TaskPool::new(self.chunk_size, self.initial_tasks),
            submission_q: List::new(),
            completions: Queue::new(),
            in_flight: 0,
            running: false,
            admitted_unsubmitted: false,
            current: None,
            stats: RingStats::default(),
            buffers: None,
            teardown_timeout: self.teardown_timeout,
            wake: None,
            background_in_flight: 0,
            statx_cache: Vec::new(),
            message_ctx: None,
            mailbox: None,
        };
        if let Some((count, size)) = self.buffers {
            let pool = BufferPool::new(count, size)
                .ok_or(RingError::InvalidOptions("buffer pool size"))?;
            // Registration is an optimisation: without it (e.g. RLIMIT_MEMLOCK too low on an
            // old kernel) the same buffers work with plain READ/WRITE.
            match ring.backend.register_buffers(&pool) {
                Ok(_) | Err(Errno::ENOMEM | Errno::EPERM | Errno::EOPNOTSUPP | Errno::EINVAL) => {}
                Err(e) => return Err(RingError::Register(e)),
            }
            ring.buffers = Some(pool);
        }
        Ok(ring)
    }
}

impl Ring<Uring> {
    /// A ring of `entries` SQ entries on the real kernel, with default options (the kernel
    /// level from `XURING_KERNEL_LEVEL`, if set).
    pub fn init(entries: u32) -> Result<Ring<Uring>, RingError> {
        RingBuilder::new(entries).build()
    }

    /// Options for a ring of `entries` SQ entries.
    pub fn builder(entries: u32) -> RingBuilder {
        RingBuilder::new(entries)
    }

    /// The ring's file descriptor.
    pub fn fd(&self) -> RawFd {
        self.backend.fd()
    }
}

impl<B: Backend> Ring<B> {
    /// A ring on `backend` with default pool settings.
    pub fn with_backend(backend: B) -> Ring<B> {
        match RingBuilder::new(1).build_with(backend) {
            Ok(ring) => ring,
            // No buffer pool is requested, the only fallible part.
            Err(_) => unreachable!("a ring without a buffer pool cannot fail to build"),
        }
    }

    /// What the backend can do (clamped to the ring's kernel level).
    pub fn features(&self) -> &Features {
        self.backend.features()
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably (tests use this to steer the mock).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// The counters.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// The buffer pool, if the ring was built with one.
    pub fn buffers(&self) -> Option<&BufferPool> {
        self.buffers.as_ref()
    }

    /// Tasks handed to the backend and not yet completed.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Tasks queued and not yet handed to the backend.
    pub fn queued(&self) -> usize {
        self.submission_q.len()
    }

    /// Tasks completed whose callbacks have not run yet.
    pub fn ready(&self) -> usize {
        self.completions.len()
    }

    /// The number of task slots (grows in chunks).
    pub fn capacity(&self) -> u32 {
        self.pool.capacity()
    }

    /// Free task slots.
    pub fn free_tasks(&self) -> usize {
        self.pool.free_len()
    }

    /// Whether nothing of the user's is queued, in flight or waiting for a callback. The
    /// ring's own background tasks in flight (a [`Thread`](crate::Thread) mailbox's read, the
    /// wake timer a deadline run leaves behind below 5.11) do not count: they never keep
    /// `run(UntilDone)` going either.
    pub fn is_idle(&self) -> bool {
        self.in_flight == self.background_in_flight
            && self.submission_q.is_empty()
            && self.completions.is_empty()
    }

    /// How many task slots are in `state` right now. Walks every slot, so it costs
    /// O([`capacity`](Self::capacity)): for tests and diagnostics (the mock's invariant checks
    /// compare it with the list lengths above), not for hot paths.
    pub fn count_tasks(&self, state: TaskState) -> usize {
        self.pool
            .all()
            // SAFETY: the pool's pointers are valid for the ring's life; only the `Cell`
            // state is read.
            .filter(|task| unsafe { task.as_ref() }.state.get() == state)
            .count()
    }

    // ----- operations -----

    /// Queues a task for `op`; the common path of every op method.
    #[inline]
    pub(crate) fn queue(&mut self, op: Op, ctx: Context<B>) -> TaskHandle<B> {
        let task = self.pool.get();
        // SAFETY: the pool's pointers are valid for the ring's life.
        let t = unsafe { task.as_ref() };
        t.class.set(OpClass::of(&op));
        // SAFETY: a task fresh from the free list is `Free`: nothing else refers to its op,
        // and recycling left an op that owns nothing.
        unsafe { t.write_op(op) };
        t.ctx.set(ctx);
        t.state.set(TaskState::Queued);
        let id = t.id.get();
        // SAFETY: the task is live at a stable address until it is unlinked (the pool never
        // frees chunks while the ring lives), and is accessed through shared references while
        // linked.
        unsafe { self.submission_q.push_back(task) };
        TaskHandle::new(task, id)
    }

    /// Completes a task without the backend (it never reached it): its result is `op`'s
    /// decoding of `-errno`.
    pub(crate) fn complete_locally(&mut self, task: NonNull<Task<B>>, res: i32) {
        // SAFETY: the task is `Free`/`Queued`/`Waiting` (not with the backend): the ring owns
        // its op, and holds only pointers to the task.
        unsafe { Task::store_result(task, res) };
        self.make_ready(task);
    }

    fn make_ready(&mut self, task: NonNull<Task<B>>) {
        // SAFETY: the pool's pointers are valid for the ring's life.
        unsafe { task.as_ref() }.state.set(TaskState::Ready);
        // SAFETY: as in `queue`: live, stable, shared access only while linked.
        unsafe { self.completions.push_back(task) };
    }

    /// `IORING_OP_NOP` (5.1): completes with [`OpResult::Noop`]. Useful to measure the
    /// runtime's own overhead, or to get a callback on the next `run`.
    #[inline]
    pub fn noop(&mut self, ctx: Context<B>) -> TaskHandle<B> {
        self.queue(Op::Noop, ctx)
    }

    /// `IORING_OP_TIMEOUT` (5.4): fires `after` from now, completing with
    /// `OpResult::Timer(Ok(()))`, or `Err(ECANCELED)` if cancelled. The timespec is stored in
    /// the task.
    #[inline]
    pub fn timer(&mut self, after: Timespec, ctx: Context<B>) -> TaskHandle<B> {
        self.queue(
            Op::Timer {
                ts: after.to_kernel(),
                absolute: false,
            },
            ctx,
        )
    }

    /// Like [`timer`](Self::timer), but fires at `deadline` on `CLOCK_MONOTONIC`
    /// (`IORING_TIMEOUT_ABS`, 5.5); see [`Timespec::now`].
    #[inline]
    pub fn timer_at(&mut self, deadline: Timespec, ctx: Context<B>) -> TaskHandle<B> {
        self.queue(
            Op::Timer {
                ts: deadline.to_kernel(),
                absolute: true,
            },
            ctx,
        )
    }

    /// `IORING_OP_READ` (5.6), like `pread(2)` (or `read(2)` with [`Offset::File`]): reads up
    /// to `buf.len()` bytes into `buf`, completing with `OpResult::Read(Ok(n))`. The buffer
    /// travels with the task; take it back in the callback with [`Task::take_buf`]. A
    /// registered pool buffer uses `IORING_OP_READ_FIXED`. A read-only buffer
    /// (`&'static [u8]`) completes with `EFAULT` without reaching the kernel.
    #[inline]
    pub fn read(
        &mut self,
        fd: RawFd,
        buf: impl Into<IoBuf>,
        offset: Offset,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        let buf = buf.into();
        let refuse = (!buf.is_writable()).then_some(libc::EFAULT);
        self.queue_or_fail(Op::Read { fd, buf, offset }, refuse, ctx)
    }

    /// `IORING_OP_WRITE` (5.6), like `pwrite(2)` (or `write(2)` with [`Offset::File`]):
    /// writes `buf`, completing with `OpResult::Write(Ok(n))` (`n` may be short). The buffer
    /// travels with the task and comes back through [`Task::take_buf`]. A registered pool
    /// buffer uses `IORING_OP_WRITE_FIXED`.
    #[inline]
    pub fn write(
        &mut self,
        fd: RawFd,
        buf: impl Into<IoBuf>,
        offset: Offset,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        self.queue(
            Op::Write {
                fd,
                buf: buf.into(),
                offset,
            },
            ctx,
        )
    }

    /// Like [`read`](Self::read) into memory the caller owns (see
    /// [`IoBuf::from_raw_parts_mut`]).
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes, and not accessed by anything
    /// else, until this task's callback has run or the ring has been dropped; if the ring is
    /// leaked (`mem::forget`), for the rest of the process.
    pub unsafe fn read_raw(
        &mut self,
        fd: RawFd,
        ptr: NonNull<u8>,
        len: usize,
        offset: Offset,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        // SAFETY: the caller's contract is `IoBuf::from_raw_parts_mut`'s.
        let buf = unsafe { IoBuf::from_raw_parts_mut(ptr, len) };
        self.read(fd, buf, offset, ctx)
    }

    /// Like [`write`](Self::write) from memory the caller owns, which may be read-only (see
    /// [`IoBuf::from_raw_parts`]).
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads of `len` bytes, and not written by anything, until this
    /// task's callback has run or the ring has been dropped; if the ring is leaked
    /// (`mem::forget`), for the rest of the process.
    pub unsafe fn write_raw(
        &mut self,
        fd: RawFd,
        ptr: NonNull<u8>,
        len: usize,
        offset: Offset,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        // SAFETY: the caller's contract is `IoBuf::from_raw_parts`'s (read-only memory).
        let buf = unsafe { IoBuf::from_raw_parts(ptr, len) };
        self.write(fd, buf, offset, ctx)
    }

    /// `IORING_OP_READV` (5.1), like `preadv2(2)`: reads into several buffers in order.
    /// Completes with `OpResult::Readv(Ok(n))`; take the buffers back with
    /// [`Task::take_iovecs`]. Read-only buffers complete with `EFAULT` locally.
    pub fn readv(
        &mut self,
        fd: RawFd,
        bufs: IoVecs,
        offset: Offset,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        let writable = bufs.bufs().iter().all(IoBuf::is_writable);
        let refuse = (!writable).then_some(libc::EFAULT);
        self.queue_or_fail(Op::Readv { fd, bufs, offset }, refuse, ctx)
    }

    /// `IORING_OP_WRITEV` (5.1), like `pwritev2(2)`: writes several buffers in order.
    pub fn writev(
        &mut self,
        fd: RawFd,
        bufs: IoVecs,
        offset: Offset,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        self.queue(Op::Writev { fd, bufs, offset }, ctx)
    }

    /// `IORING_OP_OPENAT` (5.6) relative to the current directory, like `open(2)`:
    /// completes with `OpResult::Open(Ok(fd))`. `O_CLOEXEC` is always added, as `std::fs`
    /// does. The path is `'static` (`c"/dev/null"`) or an owned `CString`.
    pub fn open(
        &mut self,
        path: impl Into<CPath>,
        flags: u32,
        mode: u32,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        self.queue(
            Op::Open {
                path: path.into(),
                flags,
                mode,
            },
            ctx,
        )
    }

    /// `IORING_OP_CLOSE` (5.6), like `close(2)`: completes with `OpResult::Close(Ok(()))`.
    pub fn close(&mut self, fd: RawFd, ctx: Context<B>) -> TaskHandle<B> {
        self.queue(Op::Close { fd }, ctx)
    }

    /// `IORING_OP_FSYNC` (5.1), like `fsync(2)`.
    pub fn fsync(&mut self, fd: RawFd, ctx: Context<B>) -> TaskHandle<B> {
        self.queue(
            Op::Fsync {
                fd,
                datasync: false,
            },
            ctx,
        )
    }

    /// `IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC` (5.1), like `fdatasync(2)`.
    pub fn fdatasync(&mut self, fd: RawFd, ctx: Context<B>) -> TaskHandle<B> {
        self.queue(Op::Fsync { fd, datasync: true }, ctx)
    }

    /// `IORING_OP_STATX` (5.6), like `stat(2)`: completes with `OpResult::Stat(Ok(stat))`.
    /// The kernel fills a `statx` buffer owned by the task (reused across stats).
    pub fn stat(&mut self, path: impl Into<CPath>, ctx: Context<B>) -> TaskHandle<B> {
        self.stat_op(path.into(), false, ctx)
    }

    /// Like [`stat`](Self::stat) but does not follow a final symlink
    /// (`AT_SYMLINK_NOFOLLOW`), like `lstat(2)`.
    pub fn lstat(&mut self, path: impl Into<CPath>, ctx: Context<B>) -> TaskHandle<B> {
        self.stat_op(path.into(), true, ctx)
    }

    fn stat_op(&mut self, path: CPath, nofollow: bool, ctx: Context<B>) -> TaskHandle<B> {
        let buf = self
            .statx_cache
            .pop()
            .unwrap_or_else(crate::stat::zeroed_statx);
        self.queue(
            Op::Stat {
                path,
                nofollow,
                buf,
            },
            ctx,
        )
    }

    /// `IORING_OP_SOCKET` (5.19), like `socket(2)` (`SOCK_CLOEXEC` is always added):
    /// completes with `OpResult::Socket(Ok(fd))`. Where the opcode is missing, `run` makes
    /// the socket with a direct `socket(2)` and completes the task the same way, through the
    /// callback (never inside this call).
    pub fn socket(
        &mut self,
        domain: i32,
        ty: i32,
        protocol: i32,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        self.queue_checked(
            Op::Socket {
                domain,
                ty,
                protocol,
            },
            ctx,
        )
    }

    /// `IORING_OP_CONNECT` (5.5), like `connect(2)`: the address is stored in the task.
    pub fn connect(
        &mut self,
        fd: RawFd,
        addr: std::net::SocketAddr,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        self.queue(
            Op::Connect {
                fd,
                addr: crate::SockAddrBuf::new(addr),
            },
            ctx,
        )
    }

    /// `IORING_OP_ACCEPT` (5.5), like `accept4(2)` with `SOCK_CLOEXEC`: completes with
    /// `OpResult::Accept(Ok(Accepted { fd, peer }))`; the peer address is written into the
    /// task by the kernel.
    pub fn accept(&mut self, fd: RawFd, ctx: Context<B>) -> TaskHandle<B> {
        self.queue(
            Op::Accept {
                fd,
                addr: crate::SockAddrBuf::empty(),
            },
            ctx,
        )
    }

    /// `IORING_OP_RECV` (5.6), like `recv(2)`: receives up to `buf.len()` bytes.
    pub fn recv(
        &mut self,
        fd: RawFd,
        buf: impl Into<IoBuf>,
        flags: i32,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        let buf = buf.into();
        let refuse = (!buf.is_writable()).then_some(libc::EFAULT);
        self.queue_or_fail(Op::Recv { fd, buf, flags }, refuse, ctx)
    }

    /// `IORING_OP_SEND` (5.6), like `send(2)` with `MSG_NOSIGNAL` (a closed peer is an
    /// `EPIPE` result, never a signal).
    pub fn send(
        &mut self,
        fd: RawFd,
        buf: impl Into<IoBuf>,
        flags: i32,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        self.queue(
            Op::Send {
                fd,
                buf: buf.into(),
                flags,
            },
            ctx,
        )
    }

    /// `IORING_OP_POLL_ADD` (5.1), one shot, like `poll(2)` on one fd: completes with
    /// `OpResult::Poll(Ok(revents))` when one of `events` (`POLLIN`, `POLLOUT`, ...) is ready.
    pub fn poll(&mut self, fd: RawFd, events: u32, ctx: Context<B>) -> TaskHandle<B> {
        self.queue(Op::Poll { fd, events }, ctx)
    }

    /// `IORING_OP_SPLICE` (5.7), like `splice(2)`: moves up to `len` bytes between two fds,
    /// one of which must be a pipe, without copying through user memory. `None` offsets use
    /// the file position (and are required for pipes). Completes with
    /// `OpResult::Splice(Ok(n))`, or `EOPNOTSUPP` where the kernel lacks the opcode.
    #[allow(clippy::too_many_arguments)]
    pub fn splice(
        &mut self,
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        off_out: Option<u64>,
        len: u32,
        flags: u32,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        self.queue_checked(
            Op::Splice {
                fd_in,
                off_in,
                fd_out,
                off_out,
                len,
                flags,
            },
            ctx,
        )
    }

    /// `IORING_OP_MSG_RING` (5.18): posts `message` into the ring `target` (its fd, see
    /// [`Ring::fd`]), where it is delivered to that ring's [`on_message`](Self::on_message)
    /// handler. Completes with `OpResult::MsgRing(Ok(()))` once the kernel posted it (which
    /// does not prove anyone will read it), or `EOPNOTSUPP` where the kernel lacks the opcode.
    /// `message.data` must fit in 63 bits (`EINVAL` otherwise).
    pub fn msg_ring(&mut self, target: RawFd, message: Message, ctx: Context<B>) -> TaskHandle<B> {
        let valid = message.data & NOT_A_TASK == 0;
        let handle = self.queue_checked(Op::MsgRing { target, message }, ctx);
        if !valid {
            self.fail_queued(handle, libc::EINVAL);
        }
        handle
    }

    /// Sets the handler for messages from other rings: each one runs `ctx.cb` with a task
    /// whose result is `OpResult::Message(message)`. Without a handler, messages are counted
    /// ([`RingStats::unhandled_messages`]) and dropped.
    pub fn on_message(&mut self, ctx: Context<B>) {
        self.message_ctx = Some(ctx);
    }

    /// Marks a queued task as background work (`run(UntilDone)` does not wait for it).
    pub(crate) fn set_background(&mut self, handle: TaskHandle<B>) {
        // SAFETY: the pool's pointers are valid for the ring's life.
        unsafe { handle.as_non_null().as_ref() }
            .background
            .set(true);
    }

    /// Queues `op`, or, with `refuse = Some(errno)`, completes it with that error at the next
    /// `run` without it reaching the backend (bad arguments the kernel must never see).
    #[inline]
    fn queue_or_fail(&mut self, op: Op, refuse: Option<i32>, ctx: Context<B>) -> TaskHandle<B> {
        let handle = self.queue(op, ctx);
        if let Some(errno) = refuse {
            self.fail_queued(handle, errno);
        }
        handle
    }

    /// Completes a task that was just queued with `-errno`, without the backend.
    pub(crate) fn fail_queued(&mut self, handle: TaskHandle<B>, errno: i32) {
        self.unqueue(handle.as_non_null());
        self.complete_locally(handle.as_non_null(), -errno);
    }

    // ----- cancellation -----

    /// Takes a queued task off the submission queue.
    fn unqueue(&mut self, task: NonNull<Task<B>>) {
        // SAFETY: the pool's pointers are valid for the ring's life.
        let t = unsafe { task.as_ref() };
        debug_assert_eq!(t.state.get(), TaskState::Queued);
        self.submission_q.remove(t);
    }

    /// Cancels the task `target`, completing with [`OpResult::Cancel`]:
    /// - still queued: it is taken off the queue and completes with `ECANCELED` without
    ///   reaching the kernel; the cancel completes with `Ok(())`;
    /// - in flight: a timer is removed with `IORING_OP_TIMEOUT_REMOVE`, anything else with
    ///   `IORING_OP_ASYNC_CANCEL`; the target completes with `ECANCELED` (unless it finished
    ///   first) and the cancel with the kernel's verdict;
    /// - completed, or its slot reused by another task (different generation): the cancel
    ///   completes with `ENOENT` and nothing else happens.
    pub fn cancel(&mut self, target: TaskId, ctx: Context<B>) -> TaskHandle<B> {
        let found = self.pool.lookup(target);
        // SAFETY: `lookup` returns pointers into the pool.
        let state = found.map(|t| unsafe { t.as_ref() }.state.get());
        match (found, state) {
            (Some(task), Some(TaskState::Queued)) => {
                self.unqueue(task);
                self.complete_locally(task, -libc::ECANCELED);
                let cancel = self.queue(
                    Op::Cancel {
                        target,
                        via: CancelVia::AsyncCancel,
                    },
                    ctx,
                );
                self.unqueue(cancel.as_non_null());
                self.complete_locally(cancel.as_non_null(), 0);
                cancel
            }
            (Some(task), Some(TaskState::InFlight)) => {
                // SAFETY: the pool's pointers are valid for the ring's life.
                let t = unsafe { task.as_ref() };
                // The op itself is not read: the kernel may be writing into it.
                let via = if t.class.get() == OpClass::Timer {
                    CancelVia::TimeoutRemove
                } else {
                    CancelVia::AsyncCancel
                };
                self.queue(Op::Cancel { target, via }, ctx)
            }
            _ => {
                let cancel = self.queue(
                    Op::Cancel {
                        target,
                        via: CancelVia::AsyncCancel,
                    },
                    ctx,
                );
                self.unqueue(cancel.as_non_null());
                self.complete_locally(cancel.as_non_null(), -libc::ENOENT);
                cancel
            }
        }
    }

    /// Cancels every queued and in-flight task, completing with `OpResult::CancelAll(Ok(n))`,
    /// `n` the number of tasks cancelled. Queued tasks complete with `ECANCELED` without
    /// reaching the kernel. In flight, this uses one `ASYNC_CANCEL` with `ALL | ANY` where the
    /// kernel has them (5.19), and one cancel per in-flight task otherwise.
    ///
    /// The ring's own background work (a [`Thread`](crate::Thread) mailbox's read, the wake
    /// timer of a deadline run) is neither counted nor, where the kernel allows, cancelled.
    pub fn cancel_all(&mut self, ctx: Context<B>) -> TaskHandle<B> {
        let mut local = 0;
        let mut background: List<Task<B>> = List::new();
        while let Some(task) = self.submission_q.pop_front() {
            // SAFETY: the pool's pointers are valid for the ring's life.
            if unsafe { task.as_ref() }.background.get() {
                // SAFETY: as in `queue`: live, stable, shared access only while linked.
                unsafe { background.push_back(task) };
                continue;
            }
            self.complete_locally(task, -libc::ECANCELED);
            local += 1;
        }
        while let Some(task) = background.pop_front() {
            // SAFETY: as above.
            unsafe { self.submission_q.push_back(task) };
        }
        if self.cancel_any_supported() {
            let background = self.background_in_flight;
            return self.queue(Op::CancelAny { local, background }, ctx);
        }
        let join = self.queue(
            Op::CancelAllJoin {
                outstanding: 0,
                cancelled: local,
            },
            ctx,
        );
        let join_ptr = join.as_non_null();
        self.unqueue(join_ptr);
        // SAFETY: the pool's pointers are valid for the ring's life.
        unsafe { join_ptr.as_ref() }.state.set(TaskState::Waiting);
        let targets: Vec<TaskId> = self
            .in_flight_user_tasks()
            .filter(|&id| {
                let Some(task) = self.pool.lookup(id) else {
                    return true;
                };
                // SAFETY: the pool's pointers are valid for the ring's life.
                let t = unsafe { task.as_ref() };
                !t.background.get()
            })
            .collect();
        let mut outstanding = 0;
        for target in targets {
            let ctx = Context {
                cb: on_cancel_all_part::<B>,
                msg: 0,
                userdata: Some(join_ptr.cast()),
            };
            self.cancel(target, ctx);
            outstanding += 1;
        }
        if outstanding == 0 {
            self.complete_locally(join_ptr, 0);
        } else {
            // SAFETY: the pool's pointers are valid for the ring's life.
            let join_task = unsafe { join_ptr.as_ref() };
            // SAFETY: the join task is `Waiting`: only the ring touches its op.
            if let Op::CancelAllJoin { outstanding: o, .. } = unsafe { join_task.op_mut() } {
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
            // SAFETY: the pool's pointers are valid for the ring's life.
            let t = unsafe { task.as_ref() };
            if t.state.get() != TaskState::InFlight {
                return None;
            }
            (t.class.get() != OpClass::Cancel).then(|| t.id.get())
        })
    }

    // ----- the lifecycle, driven by `run` -----

    /// Hands queued tasks to the backend while it has room.
    pub(crate) fn flush(&mut self) {
        self.flush_until(false);
    }

    /// [`flush`](Self::flush) before returning from `run` (the next `run` enters): stops at
    /// the first marked op, which is decided (a mailbox send admitted) only right before an
    /// `enter`, so a sender cannot hold an admitted send while it does something else, such
    /// as joining the thread the send is for.
    pub(crate) fn flush_unmarked(&mut self) {
        self.flush_until(true);
    }

    #[inline]
    fn flush_until(&mut self, stop_at_marked: bool) {
        let mut space = self.backend.space();
        while space > 0 {
            let Some(task) = self.submission_q.pop_front() else {
                break;
            };
            // SAFETY: the pool's pointers are valid for the ring's life.
            let t = unsafe { task.as_ref() };
            if t.fallback.get() {
                if stop_at_marked {
                    // SAFETY: as in `queue`.
                    unsafe { self.submission_q.push_front(task) };
                    break;
                }
                // SAFETY: a `Queued` task's op belongs to the ring.
                if let Some(res) = self.fallback_result(unsafe { t.op() }) {
                    self.complete_locally(task, res);
                    continue;
                }
                // Admitted: it must reach the kernel before `run` returns.
                self.admitted_unsubmitted = true;
            }
            let op = NonNull::new(t.op.get()).expect("UnsafeCell::get is never null");
            // SAFETY: the op lives in the task, which stays at its address until it is
            // recycled, and the ring does not touch it until its completion is reaped.
            if unsafe { self.backend.push(op, t.id.get().to_u64()) }.is_err() {
                // The backend's `space` was optimistic: keep the task first in line.
                // SAFETY: as in `queue`.
                unsafe { self.submission_q.push_front(task) };
                break;
            }
            t.state.set(TaskState::InFlight);
            if t.background.get() {
                self.background_in_flight += 1;
            }
            self.in_flight += 1;
            self.stats.submitted += 1;
            space -= 1;
        }
    }

    /// For an op marked at queue time, what to do at submission: `Some(res)` completes it
    /// locally with `res` (a direct `socket(2)` for `SOCKET` before 5.19, `EPIPE` for a send
    /// to a mailbox that has closed, `EOPNOTSUPP` for a missing opcode); `None` submits it.
    #[cold]
    fn fallback_result(&mut self, op: &Op) -> Option<i32> {
        Some(match op {
            Op::Socket {
                domain,
                ty,
                protocol,
            } => self.backend.socket_fallback(*domain, *ty, *protocol),
            Op::MailboxSend {
                mailbox,
                message,
                msg_ring,
                admitted,
            } => return mailbox.admit(*message, *msg_ring, admitted),
            _ => -libc::EOPNOTSUPP,
        })
    }

    /// Queues `op`, marked so that `fallback_result` decides at submission.
    pub(crate) fn queue_marked(&mut self, op: Op, ctx: Context<B>) -> TaskHandle<B> {
        let handle = self.queue(op, ctx);
        // SAFETY: the pool's pointers are valid for the ring's life.
        unsafe { handle.as_non_null().as_ref() }.fallback.set(true);
        handle
    }

    /// Queues `op`, marked for its fallback if the backend lacks its opcode. For the ops
    /// newer than the 5.6 floor (the older ones are checked once, at setup).
    fn queue_checked(&mut self, op: Op, ctx: Context<B>) -> TaskHandle<B> {
        let missing = op
            .opcode()
            .is_some_and(|code| !self.backend.features().supports(code));
        let handle = self.queue(op, ctx);
        if missing {
            // SAFETY: the pool's pointers are valid for the ring's life.
            unsafe { handle.as_non_null().as_ref() }.fallback.set(true);
        }
        handle
    }

    /// Moves every available completion to the completion list.
    pub(crate) fn reap(&mut self) {
        let pool = &mut self.pool;
        let message_ctx = self.message_ctx;
        let completions = &mut self.completions;
        let stats = &mut self.stats;
        let in_flight = &mut self.in_flight;
        let wake = &mut self.wake;
        let background_in_flight = &mut self.background_in_flight;
        self.backend.reap(|c: Completion| {
            if c.user_data & NOT_A_TASK != 0 {
                stats.messages += 1;
                let Some(ctx) = message_ctx else {
                    stats.unhandled_messages += 1;
                    return;
                };
                let message = Message {
                    data: c.user_data & !NOT_A_TASK,
                    value: c.res,
                };
                let task = pool.get();
                // SAFETY: the pool's pointers are valid for the ring's life.
                let t = unsafe { task.as_ref() };
                // SAFETY: a task fresh from the free list is `Free`: the ring owns its op.
                *unsafe { t.op_mut() } = Op::Received { message };
                t.ctx.set(ctx);
                t.state.set(TaskState::Ready);
                // SAFETY: the ring holds only pointers to the free task.
                unsafe { Task::write_result(task, Some(OpResult::Message(message))) };
                // SAFETY: as in `queue`: live, stable, shared access only while linked.
                unsafe { completions.push_back(task) };
                return;
            }
            let Some(id) = TaskId::from_u64(c.user_data) else {
                stats.foreign_completions += 1;
                return;
            };
            let Some(task) = pool.lookup(id) else {
                // An index this ring never had, or an old generation: never dereferenced.
                if pool.slot(id.index()).is_some() {
                    stats.stale_completions += 1;
                } else {
                    stats.foreign_completions += 1;
                }
                return;
            };
            // SAFETY: `lookup` returns pointers into the pool.
            let t = unsafe { task.as_ref() };
            if t.state.get() != TaskState::InFlight {
                stats.stale_completions += 1;
                return;
            }
            *in_flight -= 1;
            if wake.is_some_and(|(w, _)| w == id) {
                *wake = None;
            }
            if t.background.get() {
                *background_in_flight -= 1;
            }
            t.state.set(TaskState::Ready);
            // SAFETY: the completion for this task's id was just delivered, so the backend
            // and kernel are done with its op; the ring holds only pointers to the task (`t`
            // is not used below).
            unsafe { Task::store_result(task, c.res) };
            // SAFETY: as in `queue`: live, stable, shared access only while linked.
            unsafe { completions.push_back(task) };
        });
    }

    /// Runs the callbacks of the completed tasks, in completion order. Stops at the first
    /// callback error, leaving the rest for the next `run`.
    pub(crate) fn run_callbacks(&mut self) -> Result<u32, RingError> {
        let mut ran = 0;
        while let Some(task) = self.completions.pop_front() {
            // SAFETY: the pool's pointers are valid for the ring's life.
            let t = unsafe { task.as_ref() };
            t.state.set(TaskState::Running);
            self.current = Some(task);
            let ctx = t.ctx.get();
            let outcome = (ctx.cb)(self, t);
            self.current = None;
            self.recycle(task);
            self.stats.callbacks += 1;
            ran += 1;
            outcome?;
        }
        Ok(ran)
    }

    /// Drops what a finished op owned, keeping `statx` buffers for the next stat. Runs after
    /// the task is back in the pool, so a panicking buffer drop cannot lose the task.
    #[cold]
    fn drop_op(&mut self, op: Op) {
        if let Op::Stat { buf, .. } = op {
            self.statx_cache.push(buf);
        }
    }

    /// Returns a finished task to the pool, dropping what its op still owns.
    pub(crate) fn recycle(&mut self, task: NonNull<Task<B>>) {
        // SAFETY: the task's callback has returned (or unwound), so no reference to it
        // remains, and the backend is done with it.
        unsafe { Task::write_result(task, None) };
        // SAFETY: the pool's pointers are valid for the ring's life.
        let t = unsafe { task.as_ref() };
        // SAFETY: as above: nothing else accesses the op.
        let op = unsafe { t.op_mut() };
        // An op that owns nothing stays; the next `queue` overwrites it without a drop.
        let owned = if op.owns_resources() {
            Some(core::mem::take(op))
        } else {
            None
        };
        #[cfg(xuring_canary)]
        let stale_id = t.id.get();
        self.pool.put(task);
        // Canary (`RUSTFLAGS="--cfg xuring_canary"`, see xuring-mock's `tests/canary.rs`): a
        // deliberately broken recycle that keeps the old generation, so the slot's next task
        // reuses its predecessor's `TaskId`. The mock's invariant checks must catch it. Never
        // enable it anywhere else.
        #[cfg(xuring_canary)]
        t.id.set(stale_id);
        if let Some(op) = owned {
            self.drop_op(op);
        }
    }
}

/// The callback of each per-task cancel of a `cancel_all` on a kernel without `CANCEL_ALL`.
fn on_cancel_all_part<B: Backend>(ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    let Some(join) = task.userdata() else {
        return Ok(());
    };
    let join: NonNull<Task<B>> = join.cast();
    let hit = matches!(task.result, Some(OpResult::Cancel(Ok(()))));
    // SAFETY: the join task is `Waiting` until its last part reports here, so it is live.
    let join_task = unsafe { join.as_ref() };
    // SAFETY: a `Waiting` task's op is touched only by the ring (this code).
    let done = match unsafe { join_task.op_mut() } {
        Op::CancelAllJoin {
            outstanding,
            cancelled,
        } => {
            *cancelled += u32::from(hit);
            *outstanding -= 1;
            *outstanding == 0
        }
        _ => false,
    };
    if done {
        ring.complete_locally(join, 0);
    }
    Ok(())
}

impl<B: Backend> Drop for Ring<B> {
    fn drop(&mut self) {
        if let Some(mailbox) = &self.mailbox {
            mailbox.close();
        }
        self.teardown();
        // Unlink everything before the pool frees its chunks.
        self.submission_q.clear();
        self.completions.clear();
        self.pool.clear_free();
    }
}
