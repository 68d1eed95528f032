#![doc = include_str!("../../../README.md")]
//!
//! ## This crate
//!
//! The facade of the workspace: it re-exports the runtime under the seed's paths and contains
//! no logic of its own.
//!
//! - [`io_uring`]: the ring, tasks, contexts, results, buffers and errors of `xuring-core`,
//!   and the mock's [`MockRingExt`](io_uring::MockRingExt), so that `use xuring::io_uring::*;`
//!   is enough for every example above, `Ring::init_mock()` included;
//! - [`stda`]: the helpers of `xuring-std` ([`stda::net`], [`stda::fs`]);
//! - [`mock`]: the whole of `xuring-mock` (handlers, faults, seeds, invariant checks).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The runtime, under the seed's paths: `use xuring::io_uring::*;`.
pub mod io_uring {
    // What a program on xuring names: the ring and its tasks, results and errors, buffers,
    // threads, per-task state (`Slab`, `Key`), and `Backend`/`Uring` for code generic over the backend (the mock in tests).
    // What only a backend implementation needs (`Op`, `Completion`) stays in `xuring_core`;
    // `ops` is here for its argument structs' names, which `Task::output` takes.
    pub use xuring_core::{
        Accepted, Backend, BufferPool, CPath, Callback, Context, Errno, Executor, ExecutorChoice,
        Features, Handler, IoBuf, IoVecs, KernelLevel, Key, Mail, Message, Offset, OpKind,
        OpResult, Outcome, Peer, PoolBuf, Ring, RingBuilder, RingError, RingStats, RunCondition,
        Slab, Stat, Task, TaskHandle, TaskId, TaskState, Thread, Timespec, Uring, leaked_tasks,
        ops,
    };
    pub use xuring_mock::{Mock, MockRingExt};
}

/// Helpers built from the public ops: `xuring::stda::net` and `xuring::stda::fs`.
///
/// See the [`xuring_std`] crate documentation for how helpers report ([`stda::Then`],
/// [`stda::Done`]) and where their state lives.
pub mod stda {
    pub use xuring_std::{
        Done, DoneFn, Error, Handle, Then, Transfer, fs, jobs_in_flight, net, signal,
    };
}

/// The kernel-free backend for tests: handlers per operation, faults, seeds and replay,
/// invariant checks.
pub use xuring_mock as mock;
