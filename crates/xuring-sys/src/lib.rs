//! # xuring-sys
//!
//! The kernel interface layer of xuring: the io_uring ABI (structs and constants laid out as
//! in `<linux/io_uring.h>`), the raw `io_uring_setup`/`enter`/`register` syscalls, the ring
//! mappings with typed access to their heads and tails, and the probing that tells what this
//! kernel can do.
//!
//! It owns:
//! - [`abi`]: `io_uring_sqe` (64 B), `io_uring_cqe` (16 B), `io_uring_params`, the ring offset
//!   structs, the probe structs, `io_uring_getevents_arg`; checked against the system header
//!   field by field by `tests/abi_check.rs`.
//! - One `bitflags` type per flag family ([`SqeFlags`], [`SetupFlags`], [`FeatureFlags`],
//!   [`EnterFlags`], [`TimeoutFlags`], [`CancelFlags`], [`FsyncFlags`], ...), so a flag of one
//!   family cannot be stored in another's field.
//! - [`Opcode`]: every opcode up to 6.1, declared once with its kernel version.
//! - [`RawRing`]: setup with flag fallback (refusing, with [`SetupError::UnsupportedFlags`],
//!   flags outside [`SetupFlags::DRIVEN`], which the queues cannot drive), the mappings (one
//!   with `FEAT_SINGLE_MMAP`, two without), the [`SubmissionQueue`] and [`CompletionQueue`]
//!   views with the memory orderings the kernel requires, and [`Features`] from probes.
//! - [`KernelLevel`]: a mask that clamps [`Features`] to an older kernel, selected with
//!   `XURING_KERNEL_LEVEL=5.6` (etc.), so that fallback paths run on a new kernel.
//! - [`runtime_fds`]: the process-wide set of fds the runtime owns, which user ops refuse.
//! - [`compat`]: the kernel compatibility table that `docs/kernel-compat.md` is generated from.
//!
//! It knows nothing of tasks or callbacks: that is `xuring-core`. Decisions come from probes
//! (opcode probe, feature bits, accepted setup flags), never from the kernel version string.
//!
//! ```no_run
//! use xuring_sys::{abi::io_uring_sqe, EnterFlags, KernelLevel, Opcode, RawRing, SetupOptions};
//!
//! let mut ring = RawRing::new(&SetupOptions::new(8, KernelLevel::Native))?;
//! let sqe = io_uring_sqe { opcode: Opcode::Nop as u8, user_data: 42, ..io_uring_sqe::ZEROED };
//! // SAFETY: a NOP names no memory.
//! unsafe { ring.sq().push(&sqe) }.expect("a new ring has room");
//! ring.sq().publish();
//! xuring_sys::syscall::io_uring_enter(ring.as_fd(), 1, 1, EnterFlags::GETEVENTS, None)?;
//! let mut seen = Vec::new();
//! ring.cq().reap(|cqe| seen.push(cqe.user_data));
//! assert_eq!(seen, [42]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Where io_uring is forbidden or missing, [`RawRing::new`] can hand out a ring that the
//! readiness executor (`emulated`: `epoll`, with file and filesystem operations run
//! synchronously) runs in user space behind the same queues: see [`ExecutorChoice`].
//!
//! `unsafe` is denied crate-wide except in the modules `syscall`, `mmap`, `queue`, `setup`
//! and `emulated`,
//! each of which opens with a `# Safety` preamble.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod abi;
pub mod compat;
#[allow(unsafe_code)]
mod emulated;
pub use emulated::emulation;
mod errno;
mod executor;
mod features;
mod flags;
#[allow(unsafe_code)]
mod mmap;
mod opcode;
#[allow(unsafe_code)]
mod queue;
pub mod runtime_fds;
#[allow(unsafe_code)]
mod setup;
#[allow(unsafe_code)]
mod signalfd;
pub use signalfd::SignalFd;
#[allow(unsafe_code)]
pub mod syscall;
mod version;

pub use errno::Errno;
pub use executor::{BACKEND_ENV, Executor, ExecutorChoice, InvalidExecutor};
pub use features::Features;
pub use flags::{
    AcceptFlags, CancelFlags, CqRingFlags, CqeFlags, EnterFlags, FeatureFlags, FlagInfo,
    FsyncFlags, MsgRingFlags, PollFlags, RecvSendFlags, SetupFlags, SqRingFlags, SqeFlags,
    TimeoutFlags,
};
pub use opcode::{OPCODE_COUNT, OpSet, Opcode, OpcodeInfo};
pub use queue::{CompletionQueue, SqFull, SubmissionQueue};
pub use setup::{
    FLOOR, MAX_ENTRIES, RawRing, SetupError, SetupOptions, classify_setup_errno,
    ring_bytes_estimate,
};
pub use version::{InvalidKernelLevel, KERNEL_LEVEL_ENV, KernelLevel, KernelVersion};
