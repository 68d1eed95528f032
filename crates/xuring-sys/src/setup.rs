//! Creating a ring: setup-flag trial with fallback, the mappings, the probe, and errors that
//! say what to do.
//!
//! # Safety
//!
//! The `unsafe` operations here push the cancel-flags probe SQE, which names no memory, and
//! write the size words of an emulated ring's fresh private mappings.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::abi::{
    __kernel_timespec, IORING_OFF_CQ_RING, IORING_OFF_SQ_RING, IORING_OFF_SQES, io_uring_params,
    io_uring_sqe,
};
use crate::emulated::Emulator;
use crate::executor::{Executor, ExecutorChoice};
use crate::mmap::Mmap;
use crate::queue::{CompletionQueue, RingLayout, SubmissionQueue};
use crate::{
    CancelFlags, EnterFlags, Errno, FeatureFlags, Features, KernelLevel, KernelVersion, OpSet,
    Opcode, SetupFlags, syscall,
};

/// The most SQ entries a kernel accepts (`IORING_MAX_ENTRIES`).
pub const MAX_ENTRIES: u32 = 32768;

/// How to create a ring.
#[derive(Clone, Copy, Debug)]
pub struct SetupOptions {
    /// SQ entries (rounded up to a power of two by the kernel), `1..=32768`.
    pub entries: u32,
    /// CQ entries; the kernel's default is twice the SQ entries.
    pub cq_entries: Option<u32>,
    /// Flags to use where the kernel accepts them: on `EINVAL` the newest is dropped and
    /// setup retried.
    ///
    /// `wanted | required` must lie within [`SetupFlags::DRIVEN`], or setup fails with
    /// [`SetupError::UnsupportedFlags`]. `CLAMP` is always set; `CQSIZE` and `ATTACH_WQ` are
    /// set from [`cq_entries`](Self::cq_entries) and [`attach_wq`](Self::attach_wq) and
    /// ignored here (without a CQ size or a ring to share with they mean nothing).
    pub wanted: SetupFlags,
    /// Flags setup must not go without; the same rules as [`wanted`](Self::wanted).
    pub required: SetupFlags,
    /// Opcodes the ring's user submits without checking each time: setup fails with
    /// [`SetupError::KernelTooOld`] where the probe lacks one (the runtime passes the
    /// opcodes of its ops at or below [`FLOOR`]).
    pub required_ops: OpSet,
    /// Share the io-wq of this ring (`SETUP_ATTACH_WQ`); dropped when the kernel refuses it:
    /// the fd is not open (`ENXIO`, or `EBADF` on older kernels) or not an io_uring (`EINVAL`).
    pub attach_wq: Option<RawFd>,
    /// Clamp the result to this kernel level.
    pub level: KernelLevel,
    /// Map the SQ and CQ rings separately even where `FEAT_SINGLE_MMAP` allows one mapping,
    /// as kernels before 5.4 require. Only useful to test that path.
    pub split_mmap: bool,
    /// Which executor may run the ring: io_uring, the readiness executor, or io_uring with
    /// the readiness executor where io_uring is forbidden or missing (the default).
    pub executor: ExecutorChoice,
}

impl SetupOptions {
    /// The setup flags xuring asks for by default: the ones that make a single-threaded
    /// callback loop cheaper (5.18 to 6.1).
    pub const DEFAULT_WANTED: SetupFlags = SetupFlags::SUBMIT_ALL
        .union(SetupFlags::COOP_TASKRUN)
        .union(SetupFlags::SINGLE_ISSUER)
        .union(SetupFlags::DEFER_TASKRUN);

    /// `entries` SQ entries with the default wanted flags at `level`.
    pub fn new(entries: u32, level: KernelLevel) -> SetupOptions {
        SetupOptions {
            entries,
            cq_entries: None,
            wanted: Self::DEFAULT_WANTED,
            required: SetupFlags::empty(),
            required_ops: OpSet::EMPTY,
            attach_wq: None,
            level,
            split_mmap: false,
            executor: ExecutorChoice::Auto,
        }
    }
}

/// Why a ring could not be created. Each variant's message names the likely cause and what to
/// do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupError {
    /// `ENOSYS`: the kernel has no io_uring, or a seccomp filter hides it.
    NotSupported,
    /// `EPERM`: io_uring is forbidden for this process.
    PermissionDenied {
        /// The value of `kernel.io_uring_disabled`, where the sysctl exists.
        io_uring_disabled: Option<u32>,
    },
    /// `ENOMEM` with the memlock limit too low, even after raising the soft limit.
    MemlockLimit {
        /// `RLIMIT_MEMLOCK` soft limit, in bytes.
        soft_bytes: u64,
        /// `RLIMIT_MEMLOCK` hard limit, in bytes.
        hard_bytes: u64,
        /// About how much the ring needs, in bytes.
        needed_bytes: u64,
    },
    /// The kernel refused the parameters even without optional flags.
    InvalidArgument {
        /// SQ entries asked for.
        entries: u32,
        /// The flags of the last attempt.
        flags: SetupFlags,
    },
    /// The options ask for setup flags outside [`SetupFlags::DRIVEN`]: flags that change what
    /// the queues must do (SQE or CQE size, SQ polling, completion polling, enabling the ring
    /// later, the ring layout) in ways xuring does not implement. Refused before
    /// `io_uring_setup` is called.
    UnsupportedFlags {
        /// The flags refused (unknown bits included).
        flags: SetupFlags,
    },
    /// The kernel lacks something xuring cannot do without (it is older than 5.6).
    KernelTooOld {
        /// What is missing.
        missing: &'static str,
    },
    /// The kernel's ring layout does not match the ABI xuring was built for.
    BadLayout {
        /// The field that is out of place.
        field: &'static str,
    },
    /// Any other failure of a syscall during setup.
    Os {
        /// The call that failed.
        call: &'static str,
        /// Its error.
        errno: Errno,
    },
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported => f.write_str(
                "io_uring_setup failed with ENOSYS: this kernel was built without io_uring, or a \
                 seccomp filter (e.g. a container runtime's default profile) blocks it; run on \
                 Linux 5.6 or newer with CONFIG_IO_URING, or allow io_uring_setup, \
                 io_uring_enter and io_uring_register in the seccomp profile",
            ),
            Self::PermissionDenied {
                io_uring_disabled: Some(2),
            } => f.write_str(
                "io_uring_setup failed with EPERM: kernel.io_uring_disabled is 2, so io_uring \
                 is disabled for every process; set `sysctl kernel.io_uring_disabled=0`",
            ),
            Self::PermissionDenied {
                io_uring_disabled: Some(1),
            } => f.write_str(
                "io_uring_setup failed with EPERM: kernel.io_uring_disabled is 1, so only \
                 processes with CAP_SYS_ADMIN or in the group kernel.io_uring_group may create \
                 rings; add this user to that group or set `sysctl kernel.io_uring_disabled=0`",
            ),
            Self::PermissionDenied { .. } => f.write_str(
                "io_uring_setup failed with EPERM: a seccomp filter or security module forbids \
                 io_uring for this process; allow io_uring_setup, io_uring_enter and \
                 io_uring_register in its policy",
            ),
            Self::MemlockLimit {
                soft_bytes,
                hard_bytes,
                needed_bytes,
            } => write!(
                f,
                "io_uring_setup failed with ENOMEM: RLIMIT_MEMLOCK (soft {soft_bytes} B, hard \
                 {hard_bytes} B) is too low for a ring needing about {needed_bytes} B; raise it \
                 (`ulimit -l`, LimitMEMLOCK= in systemd, memlock in limits.conf) or use fewer \
                 entries"
            ),
            Self::InvalidArgument { entries, flags } => write!(
                f,
                "io_uring_setup rejected {entries} entries with flags {flags:?} (EINVAL); use \
                 1..={MAX_ENTRIES} entries"
            ),
            Self::UnsupportedFlags { flags } => write!(
                f,
                "xuring does not drive the setup flags {}: its queues use 64-byte SQEs and \
                 16-byte CQEs, read the standard ring layout, and never wake an SQ poll \
                 thread, poll for completions or enable a disabled ring; use only {}",
                setup_flag_names(*flags),
                setup_flag_names(SetupFlags::DRIVEN)
            ),
            Self::KernelTooOld { missing } => write!(
                f,
                "this kernel's io_uring lacks {missing}; xuring needs Linux 5.6 or newer"
            ),
            Self::BadLayout { field } => write!(
                f,
                "the kernel placed the ring's {field} outside its mapping; this kernel's \
                 io_uring ABI differs from the one xuring was built for"
            ),
            Self::Os { call, errno } => write!(f, "{call} failed during ring setup: {errno}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// Maps the errno of `io_uring_setup` to the error that explains it.
pub fn classify_setup_errno(errno: Errno) -> SetupError {
    match errno {
        Errno::ENOSYS => SetupError::NotSupported,
        Errno::EPERM => SetupError::PermissionDenied {
            io_uring_disabled: read_io_uring_disabled(),
        },
        errno => SetupError::Os {
            call: "io_uring_setup",
            errno,
        },
    }
}

/// `kernel.io_uring_disabled` (6.6+), if the sysctl exists.
fn read_io_uring_disabled() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The ring mappings: one for both rings with `FEAT_SINGLE_MMAP`, two without.
#[derive(Debug)]
enum RingMaps {
    Single(Mmap),
    Split { sq: Mmap, cq: Mmap },
}

/// A live io_uring instance: its fd, mappings, queue views and probed features.
///
/// This is the sys layer's whole view of a ring: it knows nothing of tasks or callbacks.
/// Dropping it unmaps the rings and closes the fd, but **does not stop requests in flight**:
/// the kernel keeps running them and writing into their buffers. Whoever submitted them must
/// cancel and reap them first (`xuring-core` does).
#[derive(Debug)]
pub struct RawRing {
    sq: SubmissionQueue,
    cq: CompletionQueue,
    features: Features,
    params: io_uring_params,
    /// The readiness executor, for a ring that user space runs itself; `None` for the
    /// kernel's.
    emulator: Option<Box<Emulator>>,
    // The views above point into these mappings; fields drop in declaration order, so the
    // views are gone before the memory is unmapped.
    _sqes: Mmap,
    _maps: RingMaps,
    fd: OwnedFd,
}

impl RawRing {
    /// Creates a ring: tries the wanted setup flags, dropping the newest on `EINVAL`; on
    /// `ENOMEM` raises the `RLIMIT_MEMLOCK` soft limit to the hard limit and retries once.
    /// An `attach_wq` fd the kernel refuses is dropped, and costs no flag.
    ///
    /// Flags outside [`SetupFlags::DRIVEN`] in `wanted` or `required` fail with
    /// [`SetupError::UnsupportedFlags`] before anything is created.
    ///
    /// With [`ExecutorChoice::Auto`], a kernel that forbids io_uring ([`SetupError::PermissionDenied`])
    /// or lacks it ([`SetupError::NotSupported`]) gets a ring run by the readiness executor
    /// instead ([`RawRing::executor`] tells which).
    pub fn new(options: &SetupOptions) -> Result<RawRing, SetupError> {
        match options.executor {
            ExecutorChoice::Epoll => RawRing::emulated(options),
            ExecutorChoice::IoUring => RawRing::kernel(options),
            ExecutorChoice::Auto => match RawRing::kernel(options) {
                Err(SetupError::NotSupported | SetupError::PermissionDenied { .. }) => {
                    RawRing::emulated(options)
                }
                other => other,
            },
        }
    }

    /// A ring that the readiness executor runs: the kernel's layout in private memory, the
    /// opcodes the executor implements, `NODROP` and `EXT_ARG` semantics, every cancel flag.
    pub fn emulated(options: &SetupOptions) -> Result<RawRing, SetupError> {
        // The executor ignores setup flags, but a caller asking for one the queues cannot
        // drive gets the same refusal on either executor.
        refuse_undriven(options)?;
        let os = |call| move |errno| SetupError::Os { call, errno };
        let entries = options.entries.clamp(1, MAX_ENTRIES).next_power_of_two();
        let cq_entries = options
            .cq_entries
            .unwrap_or(entries * 2)
            .clamp(entries, MAX_ENTRIES * 2)
            .next_power_of_two();
        let (emulator, fd) = Emulator::new(entries).map_err(os("epoll_create1"))?;
        let mut params = io_uring_params {
            sq_entries: entries,
            cq_entries,
            ..io_uring_params::default()
        };
        // The kernel's field order, each ring's entries from byte 64.
        params.sq_off.head = 0;
        params.sq_off.tail = 4;
        params.sq_off.ring_mask = 8;
        params.sq_off.ring_entries = 12;
        params.sq_off.flags = 16;
        params.sq_off.dropped = 20;
        params.sq_off.array = 64;
        params.cq_off.head = 0;
        params.cq_off.tail = 4;
        params.cq_off.ring_mask = 8;
        params.cq_off.ring_entries = 12;
        params.cq_off.overflow = 16;
        params.cq_off.flags = 20;
        params.cq_off.cqes = 64;
        let sq_map = Mmap::anonymous(64 + entries as usize * 4).map_err(os("mmap sq ring"))?;
        let cq_len = 64 + cq_entries as usize * size_of::<crate::abi::io_uring_cqe>();
        let cq_map = Mmap::anonymous(cq_len).map_err(os("mmap cq ring"))?;
        let sqes_len = entries as usize * size_of::<crate::abi::io_uring_sqe>();
        let sqes = Mmap::anonymous(sqes_len).map_err(os("mmap sqes"))?;
        let words = [
            (&sq_map, 8, entries - 1),
            (&sq_map, 12, entries),
            (&cq_map, 8, cq_entries - 1),
            (&cq_map, 12, cq_entries),
        ];
        for (map, offset, value) in words {
            let word = map
                .at::<core::sync::atomic::AtomicU32>(offset, 1)
                .ok_or(SetupError::BadLayout { field: "ring size" })?;
            // SAFETY: `at` checked the word lies inside the fresh mapping, which nothing else
            // uses yet.
            unsafe { word.as_ref() }.store(value, core::sync::atomic::Ordering::Relaxed);
        }
        let maps = RingMaps::Split {
            sq: sq_map,
            cq: cq_map,
        };
        let (sq, cq) = views(&maps, &sqes, &params)?;
        let ops = crate::emulated::OPS;
        if let Some(missing) = options.required_ops.iter().find(|op| !ops.contains(*op)) {
            return Err(SetupError::KernelTooOld {
                missing: missing.c_name(),
            });
        }
        let flags = FeatureFlags::NODROP
            | FeatureFlags::SUBMIT_STABLE
            | FeatureFlags::RW_CUR_POS
            | FeatureFlags::EXT_ARG;
        let cancel = CancelFlags::ALL | CancelFlags::ANY | CancelFlags::FD;
        Ok(RawRing {
            sq,
            cq,
            features: Features::from_probe(flags, ops, SetupFlags::empty(), cancel, options.level),
            params,
            emulator: Some(Box::new(emulator)),
            _sqes: sqes,
            _maps: maps,
            fd,
        })
    }

    /// A ring on the kernel's io_uring (see [`new`](Self::new)).
    pub fn kernel(options: &SetupOptions) -> Result<RawRing, SetupError> {
        // The queues below hard-code the SQE and CQE sizes and the standard layout, and the
        // layers above never wake an SQ poll thread, poll or enable a ring: a flag that needs
        // any of that would give a ring that misreads its queues or never completes.
        // On the raw bits, so that bits no flag names (newer kernels' flags) count too.
        refuse_undriven(options)?;
        // CQSIZE and ATTACH_WQ come from their options only: without a size or an fd the
        // kernel would read a CQ size of 0 or the fd 0.
        let from_options = SetupFlags::CQSIZE | SetupFlags::ATTACH_WQ;
        let mut required = (options.required - from_options) | SetupFlags::CLAMP;
        if options.cq_entries.is_some() {
            required |= SetupFlags::CQSIZE;
        }
        let mut optional = options.wanted.clamp(options.level) - required - from_options;
        let mut attach = options
            .attach_wq
            .filter(|_| SetupFlags::ATTACH_WQ.clamp(options.level) == SetupFlags::ATTACH_WQ);
        // The attach set aside to learn whether an `EINVAL` is the fd's or a flag's.
        let mut set_aside = None;
        let mut raised_memlock = false;
        loop {
            let mut flags = required | optional;
            let mut params = io_uring_params::default();
            if let Some(cq) = options.cq_entries {
                params.cq_entries = cq;
            }
            if let Some(wq) = attach {
                flags |= SetupFlags::ATTACH_WQ;
                params.wq_fd = wq as u32;
            }
            params.flags = flags.bits();
            match syscall::io_uring_setup(options.entries, &mut params) {
                Ok(fd) => return Self::from_fd(fd, params, options),
                Err(Errno::EINVAL) if attach.is_some() => {
                    // An fd that is open but not an io_uring (the other ring exited and its
                    // fd number was reused) and a refused flag both give EINVAL. Try without
                    // sharing first, so that a bad fd does not cost the flags.
                    set_aside = attach.take();
                }
                Err(Errno::EINVAL) if !optional.is_empty() => {
                    optional.remove(newest(optional));
                    // A flag was refused even without sharing: share again with the rest.
                    attach = set_aside.take();
                }
                Err(Errno::ENXIO | Errno::EBADF) if attach.is_some() => {
                    // The fd is not open (the other ring exited and closed it): the kernel
                    // says ENXIO (EBADF on older kernels). Nothing else in the parameters
                    // names an fd, so go without sharing rather than fail.
                    attach = None;
                    set_aside = None;
                }
                Err(Errno::EINVAL) => {
                    return Err(SetupError::InvalidArgument {
                        entries: options.entries,
                        flags,
                    });
                }
                Err(Errno::ENOMEM) if !raised_memlock => {
                    raised_memlock = true;
                    if !raise_memlock_soft_limit() {
                        return Err(memlock_error(options));
                    }
                }
                Err(Errno::ENOMEM) => return Err(memlock_error(options)),
                Err(errno) => return Err(classify_setup_errno(errno)),
            }
        }
    }

    fn from_fd(
        fd: OwnedFd,
        params: io_uring_params,
        options: &SetupOptions,
    ) -> Result<RawRing, SetupError> {
        let level = options.level;
        let raw = fd.as_raw_fd();
        let kernel_features = FeatureFlags::from_bits_retain(params.features);
        let sq_len = params.sq_off.array as usize + params.sq_entries as usize * 4;
        let cq_len = params.cq_off.cqes as usize
            + params.cq_entries as usize * size_of::<crate::abi::io_uring_cqe>();
        let os = |call| move |errno| SetupError::Os { call, errno };
        let maps = if kernel_features.contains(FeatureFlags::SINGLE_MMAP) && !options.split_mmap {
            RingMaps::Single(
                Mmap::map(raw, IORING_OFF_SQ_RING, sq_len.max(cq_len)).map_err(os("mmap rings"))?,
            )
        } else {
            RingMaps::Split {
                sq: Mmap::map(raw, IORING_OFF_SQ_RING, sq_len).map_err(os("mmap sq ring"))?,
                cq: Mmap::map(raw, IORING_OFF_CQ_RING, cq_len).map_err(os("mmap cq ring"))?,
            }
        };
        let sqes_len = params.sq_entries as usize * size_of::<crate::abi::io_uring_sqe>();
        let sqes = Mmap::map(raw, IORING_OFF_SQES, sqes_len).map_err(os("mmap sqes"))?;
        let (sq, cq) = views(&maps, &sqes, &params)?;
        let ops = match syscall::probe_opcodes(raw) {
            Ok(ops) => ops,
            Err(Errno::EINVAL) => {
                return Err(SetupError::KernelTooOld {
                    missing: "IORING_REGISTER_PROBE (5.6)",
                });
            }
            Err(errno) => {
                return Err(SetupError::Os {
                    call: "io_uring_register(PROBE)",
                    errno,
                });
            }
        };
        if let Some(missing) = options.required_ops.iter().find(|op| !ops.contains(*op)) {
            return Err(SetupError::KernelTooOld {
                missing: missing.c_name(),
            });
        }
        let setup = SetupFlags::from_bits_retain(params.flags);
        let mut ring = RawRing {
            sq,
            cq,
            features: Features::from_probe(
                kernel_features,
                ops,
                setup,
                CancelFlags::empty(),
                level,
            ),
            params,
            emulator: None,
            _sqes: sqes,
            _maps: maps,
            fd,
        };
        let cancel = ring.probe_cancel_flags()?;
        ring.features = Features::from_probe(kernel_features, ops, setup, cancel, level);
        Ok(ring)
    }

    /// Which `ASYNC_CANCEL` flags the kernel accepts. The opcode probe cannot tell, so this
    /// submits one cancel with `ALL | ANY` on the new, empty ring: kernels without the flags
    /// (before 5.19) fail it with `EINVAL`; others report 0 or `ENOENT` (nothing to cancel).
    fn probe_cancel_flags(&mut self) -> Result<CancelFlags, SetupError> {
        let sqe = io_uring_sqe {
            opcode: Opcode::AsyncCancel as u8,
            op_flags: (CancelFlags::ALL | CancelFlags::ANY).bits(),
            user_data: u64::MAX,
            ..io_uring_sqe::ZEROED
        };
        // SAFETY: a cancel names no memory (`addr` is unused with ANY).
        if unsafe { self.sq.push(&sqe) }.is_err() {
            return Ok(CancelFlags::empty());
        }
        self.sq.publish();
        let os = |errno| SetupError::Os {
            call: "io_uring_enter(cancel probe)",
            errno,
        };
        loop {
            match syscall::io_uring_enter(self.as_fd(), 1, 1, EnterFlags::GETEVENTS, None) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(os(e)),
            }
        }
        let mut res = None;
        self.cq.reap(|cqe| {
            if cqe.user_data == u64::MAX {
                res = Some(cqe.res);
            }
        });
        Ok(match res {
            Some(r) if r == -libc::EINVAL => CancelFlags::empty(),
            Some(_) => CancelFlags::ALL | CancelFlags::ANY | CancelFlags::FD,
            None => CancelFlags::empty(),
        })
    }

    /// What executes this ring.
    #[inline]
    pub fn executor(&self) -> Executor {
        if self.emulator.is_some() {
            Executor::Epoll
        } else {
            Executor::IoUring
        }
    }

    /// `io_uring_enter(2)` on this ring (see [`syscall::io_uring_enter`]), or its readiness
    /// executor's equivalent: submits `to_submit` published SQEs and waits for `min_complete`
    /// completions (with `EnterFlags::GETEVENTS`), at most `timeout` (relative; `ETIME`).
    /// Returns the number of SQEs consumed.
    pub fn enter(
        &mut self,
        to_submit: u32,
        min_complete: u32,
        flags: EnterFlags,
        timeout: Option<&__kernel_timespec>,
    ) -> Result<u32, Errno> {
        match &mut self.emulator {
            None => syscall::io_uring_enter(self.as_fd(), to_submit, min_complete, flags, timeout),
            Some(emulator) => emulator.enter(
                &mut self.sq,
                &mut self.cq,
                to_submit,
                min_complete,
                flags,
                timeout,
            ),
        }
    }

    /// The ring's file descriptor (for a ring the readiness executor runs, a descriptor of
    /// its epoll instance: it names the ring, but `io_uring_*` calls on it fail).
    #[inline]
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The ring's file descriptor, borrowed.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    /// What this ring can do, clamped to the level it was created at.
    #[inline]
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Whether the SQ and CQ rings share one mapping.
    pub fn single_mmap(&self) -> bool {
        matches!(self._maps, RingMaps::Single(_))
    }

    /// The parameters the kernel returned.
    pub fn params(&self) -> &io_uring_params {
        &self.params
    }

    /// The submission ring.
    #[inline]
    pub fn sq(&mut self) -> &mut SubmissionQueue {
        &mut self.sq
    }

    /// The submission ring, for reading its state.
    #[inline]
    pub fn sq_ref(&self) -> &SubmissionQueue {
        &self.sq
    }

    /// The completion ring.
    #[inline]
    pub fn cq(&mut self) -> &mut CompletionQueue {
        &mut self.cq
    }

    /// Both rings at once.
    #[inline]
    pub fn queues(&mut self) -> (&mut SubmissionQueue, &mut CompletionQueue) {
        (&mut self.sq, &mut self.cq)
    }
}

/// The typed views of a ring's queues, with the fields where `params` places them (checked
/// against the mappings).
fn views(
    maps: &RingMaps,
    sqes: &Mmap,
    params: &io_uring_params,
) -> Result<(SubmissionQueue, CompletionQueue), SetupError> {
    let (sq_ring, cq_ring) = match maps {
        RingMaps::Single(m) => (m, m),
        RingMaps::Split { sq, cq } => (sq, cq),
    };
    let layout = RingLayout {
        sq_ring,
        cq_ring,
        sqes,
        params,
    };
    let bad = |e: crate::queue::BadOffset| SetupError::BadLayout { field: e.0 };
    let sq = SubmissionQueue::new(&layout).map_err(bad)?;
    let cq = CompletionQueue::new(&layout).map_err(bad)?;
    Ok((sq, cq))
}

/// [`SetupError::UnsupportedFlags`] for flags outside [`SetupFlags::DRIVEN`].
fn refuse_undriven(options: &SetupOptions) -> Result<(), SetupError> {
    // On the raw bits, so that bits no flag names (newer kernels' flags) count too.
    let asked = options.wanted.bits() | options.required.bits();
    let refused = SetupFlags::from_bits_retain(asked & !SetupFlags::DRIVEN.bits());
    if refused.is_empty() {
        Ok(())
    } else {
        Err(SetupError::UnsupportedFlags { flags: refused })
    }
}

/// The oldest kernel xuring runs on: the opcodes xuring submits that are this old are checked
/// once, at setup ([`SetupOptions::required_ops`]); newer ones each time they are used.
pub const FLOOR: KernelVersion = KernelVersion::new(5, 6);

/// `flags` by their C names, ` | `-separated; bits no table row names as `bit N`.
pub(crate) fn setup_flag_names(flags: SetupFlags) -> String {
    let mut names: Vec<String> = SetupFlags::TABLE
        .iter()
        .filter(|info| flags.contains(info.flag))
        .map(|info| info.c_name.to_owned())
        .collect();
    let unknown = flags.bits() & !SetupFlags::all().bits();
    names.extend(
        (0..u32::BITS)
            .filter(|bit| unknown & (1 << bit) != 0)
            .map(|bit| format!("bit {bit}")),
    );
    if names.is_empty() {
        return "none".to_owned();
    }
    names.join(" | ")
}

/// The newest flag in `flags` (highest kernel version, then highest bit).
fn newest(flags: SetupFlags) -> SetupFlags {
    SetupFlags::TABLE
        .iter()
        .filter(|info| flags.contains(info.flag))
        .max_by_key(|info| (info.since, info.flag.bits()))
        .map_or(SetupFlags::empty(), |info| info.flag)
}

fn memlock_limits() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // `getrlimit` only fails for an invalid resource; on failure the zeros report "unknown".
    let _ = syscall::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit);
    (limit.rlim_cur, limit.rlim_max)
}

/// Raises the soft memlock limit to the hard limit; false if it already was there.
fn raise_memlock_soft_limit() -> bool {
    let (soft, hard) = memlock_limits();
    if soft >= hard {
        return false;
    }
    let limit = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    syscall::setrlimit(libc::RLIMIT_MEMLOCK, &limit).is_ok()
}

fn memlock_error(options: &SetupOptions) -> SetupError {
    let (soft_bytes, hard_bytes) = memlock_limits();
    SetupError::MemlockLimit {
        soft_bytes,
        hard_bytes,
        needed_bytes: ring_bytes_estimate(options.entries, options.cq_entries),
    }
}

/// About how many bytes of locked memory a ring of this size takes: the SQE array, the SQ
/// index array, the CQE array and a page of ring headers each, rounded up to pages.
pub fn ring_bytes_estimate(entries: u32, cq_entries: Option<u32>) -> u64 {
    let sq = u64::from(entries.clamp(1, MAX_ENTRIES).next_power_of_two());
    let cq = u64::from(cq_entries.unwrap_or(0)).max(sq * 2);
    let page = 4096;
    let round = |bytes: u64| bytes.div_ceil(page) * page;
    round(sq * 64) + round(page + sq * 4) + round(page + cq * 16)
}
