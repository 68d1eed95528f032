//! # xuring-core
//!
//! The runtime layer of xuring: a single-threaded, callback-driven event loop over io_uring.
//!
//! It owns [`Ring`], [`Task`], [`Context`], [`OpResult`], [`RunCondition`], [`RingError`],
//! the task pool, the submission queue, the run loop, the [`Backend`] trait and the real
//! io_uring backend [`Uring`]. It calls no syscall except through `xuring-sys`, and keeps every
//! task on `xuring-queue`'s intrusive lists.
//!
//! ## The task lifecycle
//!
//! ```text
//! free list -> get task -> reinit -> submission queue -> backend (kernel SQ) -> CQ
//!           -> completion list -> callback -> free list
//! ```
//!
//! Tasks are allocated in chunks that never move and are recycled, so after warm-up no
//! operation allocates. The submission queue is unbounded: queue 100,000 tasks on a 16-entry
//! ring and `run` feeds them to the kernel as room appears. Completions are moved off the CQ
//! to a local list before any callback runs, because callbacks get `&mut Ring` and submit
//! follow-up work, which the same `run` picks up.
//!
//! ## Memory the kernel touches
//!
//! A safe call can never let the kernel use memory the caller can free: buffers are owned
//! ([`IoBuf`]: a `Vec<u8>`, a `Box<[u8]>`, a [`PoolBuf`] from the ring's pre-allocated pool, or
//! `&'static` data for writes), travel with the task, and come back through
//! [`Task::take_buf`]; timespecs live inside the task. Raw-pointer variants are `unsafe fn`
//! with the contract written down. Dropping a ring cancels and reaps everything in flight
//! before any of that memory is released.
//!
//! ## Identity
//!
//! A submission's `user_data` is a [`TaskId`], a slot index plus a generation, never a
//! pointer: a completion or cancel for a task that has since been recycled misses, and a
//! foreign completion is counted and dropped without being dereferenced.
//!
//! ```no_run
//! use xuring_core::{Context, OpResult, Ring, RingError, RunCondition, Task};
//!
//! fn on_noop(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
//!     assert!(matches!(task.result, Some(OpResult::Noop(Ok(())))));
//!     Ok(())
//! }
//!
//! let mut ring = Ring::init(16)?;
//! ring.noop(Context { cb: on_noop, ..Context::default() });
//! ring.run(RunCondition::UntilDone)?;
//! # Ok::<(), RingError>(())
//! ```
//!
//! `unsafe` is denied except in the modules `backend` (the `unsafe trait`, its `unsafe fn
//! push` and `backend::uring`), `buf`, `cancel`, `engine`, `pool`, `ring`, `run`, `stat`,
//! `task`, `teardown` and `thread`, each of which opens with a `# Safety` preamble.
//!
//! ## Where things are
//!
//! - `ops.rs`: every operation, declared once (see [`op`] for the declaration's grammar).
//! - `builder.rs` ([`RingBuilder`]), `ring.rs` (the [`Ring`] handle and its accessors).
//! - `engine.rs` (queue, submit, reap, recycle) and `run.rs` (the run loop and callbacks).
//! - `cancel.rs` ([`Ring::cancel`], [`Ring::cancel_all`]), `teardown.rs` (dropping a ring).
//! - `task.rs`, `pool.rs`: tasks and their slots; `thread.rs`: [`Thread`], [`Peer`].

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[allow(unsafe_code)]
pub mod backend;
#[allow(unsafe_code)]
mod buf;
mod builder;
#[allow(unsafe_code)]
mod cancel;
pub mod compat;
#[allow(unsafe_code)]
mod engine;
mod error;
#[macro_use]
pub mod op;
#[allow(unsafe_code)]
mod msghdr;
pub mod ops;
#[allow(unsafe_code)]
mod pool;
mod ready;
#[allow(unsafe_code)]
mod ring;
#[allow(unsafe_code)]
mod run;
mod sockaddr;
#[allow(unsafe_code)]
mod stat;
mod state;
#[allow(unsafe_code)]
mod task;
#[allow(unsafe_code)]
mod teardown;
#[allow(unsafe_code)]
mod thread;
mod time;

pub use backend::{Backend, Completion, Uring};
pub use buf::{BufferPool, IoBuf, IoVecs, PoolBuf};
pub use builder::RingBuilder;
pub use error::RingError;
pub use op::{Accepted, CPath, Message, Offset, OpenHow, Outcome, Received};
pub use ops::{Op, OpKind, OpResult};
pub use ring::{Ring, RingStats, leaked_tasks};
pub use run::RunCondition;
pub use sockaddr::SockAddrBuf;
pub use stat::Stat;
pub use state::{Key, Slab};
pub use task::{Callback, Context, Task, TaskHandle, TaskId, TaskState};
pub use thread::{Handler, Mail, Mailbox, Peer, Thread};
pub use time::Timespec;
pub use xuring_sys::{Errno, Executor, ExecutorChoice, Features, KernelLevel, SignalFd};

/// The most a task may weigh, inline payload included.
pub const MAX_TASK_SIZE: usize = 256;

const _: () = assert!(size_of::<Task<Uring>>() <= MAX_TASK_SIZE);
