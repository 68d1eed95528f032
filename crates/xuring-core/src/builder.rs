//! `RingBuilder`: the options of a new ring, and the constructors that use them.

use std::os::fd::RawFd;

use xuring_sys::{ExecutorChoice, KernelLevel, SetupOptions};

use crate::engine::Engine;
use crate::pool::TaskPool;
use crate::{Backend, BufferPool, Ring, RingError, Uring};

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
    executor: Option<ExecutorChoice>,
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
            executor: None,
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
    /// gives up and leaks their memory (default 5 s). Operations on caller-owned memory
    /// (`read_raw`, `IoBuf::from_raw_parts`) are waited for without this limit: their
    /// memory is not the ring's to leak.
    pub fn teardown_timeout(mut self, timeout: core::time::Duration) -> Self {
        self.teardown_timeout = timeout;
        self
    }

    /// Which executor runs the ring (default: `XURING_BACKEND`, else
    /// [`ExecutorChoice::Auto`]: io_uring, or the readiness executor over `epoll` where a
    /// seccomp filter or `kernel.io_uring_disabled` forbids io_uring or the kernel lacks it).
    /// [`ExecutorChoice::IoUring`] makes setup fail there instead, for programs that need
    /// io_uring's latency; [`Ring::executor`] tells which one a ring got.
    ///
    /// ```no_run
    /// use xuring_core::{ExecutorChoice, Ring};
    ///
    /// let ring = Ring::builder(64).executor(ExecutorChoice::IoUring).build()?;
    /// assert_eq!(ring.executor(), xuring_core::Executor::IoUring);
    /// # Ok::<(), xuring_core::RingError>(())
    /// ```
    pub fn executor(mut self, choice: ExecutorChoice) -> Self {
        self.executor = Some(choice);
        self
    }

    /// The executor choice these options select.
    pub fn executor_choice(&self) -> Result<ExecutorChoice, RingError> {
        match self.executor {
            Some(choice) => Ok(choice),
            None => Ok(ExecutorChoice::from_env()?.unwrap_or_default()),
        }
    }

    /// The kernel level these options select.
    pub fn level(&self) -> Result<KernelLevel, RingError> {
        match self.level {
            Some(level) => Ok(level),
            None => Ok(KernelLevel::from_env()?),
        }
    }

    /// Creates the ring on the real kernel (or, where the executor choice allows, on the
    /// readiness executor: see [`executor`](Self::executor)).
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
        options.required_ops = crate::ops::FLOOR_OPCODES;
        options.executor = self.executor_choice()?;
        let backend = Uring::new(&options)?;
        self.build_with(backend)
    }

    /// Creates a ring on `backend`, with these options' pool and buffer settings.
    pub fn build_with<B: Backend>(self, backend: B) -> Result<Ring<B>, RingError> {
        let mut engine = Engine::new(
            backend,
            TaskPool::new(self.chunk_size, self.initial_tasks),
            self.teardown_timeout,
        );
        if let Some((count, size)) = self.buffers {
            let pool = BufferPool::new(count, size)
                .ok_or(RingError::InvalidOptions("buffer pool size"))?;
            // Registration is an optimisation: without it (RLIMIT_MEMLOCK too low on an old
            // kernel, a buffer over the kernel's 1 GiB limit: `EFAULT`, ...) the same buffers
            // work with plain READ/WRITE; `BufferPool::is_registered` tells which it is.
            let _ = engine.backend.register_buffers(&pool);
            engine.buffers = Some(pool);
        }
        Ok(Ring::from_engine(engine))
    }
}

impl Ring<Uring> {
    /// A ring of `entries` SQ entries on the real kernel, with default options (the kernel
    /// level from `XURING_KERNEL_LEVEL`, the executor from `XURING_BACKEND`, if set). Where
    /// io_uring is forbidden (a seccomp filter, as in Docker's default profile;
    /// `kernel.io_uring_disabled`) or missing, the ring runs on the readiness executor
    /// (`epoll`) with the same API; [`Ring::executor`] tells which.
    pub fn init(entries: u32) -> Result<Ring<Uring>, RingError> {
        RingBuilder::new(entries).build()
    }

    /// Options for a ring of `entries` SQ entries.
    pub fn builder(entries: u32) -> RingBuilder {
        RingBuilder::new(entries)
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
}
