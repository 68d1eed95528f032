//! # xuring-mock
//!
//! A deterministic, kernel-free [`Backend`] for `xuring-core`: everything above the kernel
//! (task lifecycle, callbacks, cancellation, the run loop, teardown) runs without a syscall,
//! under Miri, and with the kernel's awkward behaviour on demand.
//!
//! ## Where it sits
//!
//! A [`Ring`] hands its backend a pointer to each task's [`Op`](xuring_core::Op) and gets back
//! one [`Completion`](xuring_core::Completion) per op. [`Uring`](xuring_core::Uring) turns ops
//! into SQEs for the kernel; [`Mock`] interprets them directly: it copies bytes into and out of
//! the tasks' buffers, keeps timers on a virtual clock, finds cancel targets among its own
//! in-flight ops, and posts completions in an order and with the faults its seed dictates. It
//! calls no FFI and has no `unsafe` code beyond `Backend::push` and the one dereference of the
//! op pointer that `push`'s contract makes valid.
//!
//! ```
//! use xuring_core::{Context, Ring, RunCondition};
//! use xuring_mock::MockRingExt;
//!
//! let mut ring = Ring::init_mock();
//! ring.noop(Context::default());
//! ring.run(RunCondition::Once)?;
//! assert_eq!(ring.stats().callbacks, 1);
//! # Ok::<(), xuring_core::RingError>(())
//! ```
//!
//! [`MockBuilder`] sets the SQ size (to reach the ring's SQ-full paths), the CQ size (to
//! overflow it), the features or kernel level (to take the fallbacks of older kernels), the
//! completion [`Order`], the [`Faults`] and the seed.
//!
//! ## The world
//!
//! By default every op does what it does on Linux, to a small in-memory world that the test
//! sets up through [`MockControl`]: files, directories and links by path
//! ([`add_file`](MockControl::add_file)), pipes ([`pipe_pair`](MockControl::pipe_pair)),
//! stream sockets listening at an address ([`listen`](MockControl::listen)) and the mock's
//! own ring, the target of a `msg_ring` to itself ([`Mock::ring_fd`]). An open of a missing
//! path is `ENOENT`, a read of an empty pipe waits for a write, an accept waits for a
//! connect, a recv returns 0 once the peer closed, a send to it is `EPIPE`, a close of an
//! unknown fd is `EBADF`; [`Mock`]'s docs have the table of every op, and where the mock
//! deviates from Linux. The behaviour suite (`xuring-core/tests/behaviour`) runs the same
//! assertions on the mock and on the kernel to keep them alike.
//!
//! ```
//! use xuring_core::{Context, Offset, OpResult, Ring, RingError, RunCondition, Task};
//! use xuring_mock::{Mock, MockRingExt};
//!
//! fn opened(ring: &mut Ring<Mock>, task: &Task<Mock>) -> Result<(), RingError> {
//!     if let Some(OpResult::Open(Ok(fd))) = task.result {
//!         ring.read(fd, vec![0; 16], Offset::File, Context::default());
//!     }
//!     Ok(())
//! }
//!
//! let mut ring = Ring::init_mock();
//! ring.backend_mut().add_file("/data/greeting", b"hello");
//! let ctx = Context { cb: opened, ..Context::default() };
//! ring.open(c"/data/greeting", libc::O_RDONLY, 0, ctx);
//! ring.run(RunCondition::UntilDone)?;
//! # Ok::<(), RingError>(())
//! ```
//!
//! A descriptor the test numbers itself can be a [file](MockControl::set_file) or a
//! [pipe](MockControl::pipe) the test [feeds](MockControl::feed); one nobody set up reads as
//! EOF and takes every write (recorded, see [`Mock::written`]).
//!
//! ## Handlers
//!
//! A handler replaces the default for one [`OpKind`]: it gets a [`Request`] (the op itself,
//! and for convenience its fd, length, offset, the bytes of a write, the path of an open, the
//! address of a connect, a cancel's target, the virtual time, ...) and answers a [`Reply`]:
//!
//! ```
//! use xuring_core::{Context, Errno, Offset, OpResult, Ring, RingError, RunCondition, Task};
//! use xuring_mock::{Mock, MockRingExt, OpKind, Reply};
//!
//! fn on_read(_ring: &mut Ring<Mock>, task: &Task<Mock>) -> Result<(), RingError> {
//!     assert_eq!(task.result, Some(OpResult::Read(Ok(2))));
//!     Ok(())
//! }
//!
//! let mut ring = Ring::init_mock();
//! ring.backend_mut().handle(OpKind::Read, |req| {
//!     if req.offset == Some(Offset::At(0)) {
//!         Reply::Bytes(b"hi".to_vec()) // copied into the task's buffer
//!     } else {
//!         Reply::Err(Errno::EIO)
//!     }
//! });
//! ring.read(7, vec![0; 8], Offset::At(0), Context { cb: on_read, ..Context::default() });
//! ring.run(RunCondition::UntilDone)?;
//! # Ok::<(), RingError>(())
//! ```
//!
//! `backend_mut` hands out a [`MockControl`], which steers the mock but cannot replace it or
//! drive it: the mock belongs to its ring for the ring's whole life.
//!
//! ```compile_fail
//! # use xuring_core::Ring;
//! # use xuring_mock::{Mock, MockRingExt};
//! let mut ring = Ring::init_mock();
//! *ring.backend_mut() = Mock::new(); // no `&mut Mock` to be had
//! ```
//!
//! ```compile_fail
//! # use xuring_core::{Backend, Ring};
//! # use xuring_mock::MockRingExt;
//! let mut ring = Ring::init_mock();
//! ring.backend_mut().reap(|_| {}); // completions are the ring's to reap
//! ```
//!
//! [`Reply::Pending`] keeps the op in flight (the handler is asked again at the next
//! `enter`); [`MockControl::block_fd`], an empty [pipe](MockControl::pipe) and [`MockControl::hold`] stage the
//! in-flight states that cancel races need.
//!
//! ## Time
//!
//! The mock's clock is virtual ([`Backend::now`]). Nothing sleeps: when the ring waits and
//! only timers can complete, the clock jumps to the earliest one; a wait with a timeout that
//! nothing satisfies jumps to the timeout. A wait that nothing at all can satisfy fails with
//! [`DEADLOCK`] instead of hanging.
//!
//! ## Seeds and replay
//!
//! Every random choice comes from one [`SplitMix64`] seeded by [`MockBuilder::seed`], so the
//! same seed and the same ring calls give the same completions, in the same order, with the
//! same results. [`run_seeded`] runs a test body with a seed (or the one in
//! `XURING_MOCK_SEED`, to replay) and, if the body panics, prints `XURING_MOCK_SEED=<seed>`
//! before passing the panic on:
//!
//! ```
//! use xuring_core::{Context, RunCondition};
//! use xuring_mock::{Faults, MockBuilder, run_seeded};
//!
//! run_seeded(0x5eed, |seed| {
//!     let mut ring = MockBuilder::new().seed(seed).faults(Faults::chaos()).build_ring();
//!     for _ in 0..10 {
//!         ring.noop(Context::default());
//!     }
//!     ring.run(RunCondition::UntilDone).expect("run");
//!     xuring_mock::check_invariants(&ring);
//! });
//! ```
//!
//! ## Invariants
//!
//! [`check_invariants`] checks what must hold between any two ring calls: every task slot is
//! in exactly one state and each list holds exactly the tasks in its state, the ring and the
//! mock agree on what is in flight, no task identity is ever reused, injected duplicate and
//! foreign completions were all counted and dropped, and buffers lent out cover the ops in
//! flight. [`track`] checks that each op gets exactly one callback.
//!
//! The checks have a canary: built with `--cfg xuring_canary`, core's `Ring::recycle` keeps a
//! slot's old generation, and `tests/canary.rs` passes only if the checks catch that:
//!
//! ```text
//! RUSTFLAGS="--cfg xuring_canary" CARGO_TARGET_DIR=target/canary \
//!     cargo test -p xuring-mock --test canary
//! ```
//!
//! ## Miri
//!
//! The whole crate, its tests and the behaviour suite run under Miri (test sizes shrink under
//! `cfg(miri)`): `MIRIFLAGS=-Zmiri-strict-provenance cargo +nightly miri test -p xuring-mock`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod fs;
mod invariants;
mod mock;
mod net;
mod pipe;
mod rng;
pub mod track;
mod world;

pub use invariants::check_invariants;
pub use mock::{
    DEADLOCK, Faults, Mock, MockBuilder, MockControl, MockStats, Order, Reply, Request,
    RequestHandler,
};
pub use rng::SplitMix64;
pub use world::FIRST_FD;
/// Handlers are chosen by the op kind of `xuring-core` (re-exported here for convenience).
pub use xuring_core::OpKind;

use xuring_core::{Backend, Ring};

/// The environment variable that replays a seed in [`run_seeded`] and [`seed_from_env`].
pub const SEED_ENV: &str = "XURING_MOCK_SEED";

/// `Ring::init_mock()`: a ring on a default [`Mock`].
pub trait MockRingExt {
    /// A ring on a mock with default options ([`MockBuilder::new`]).
    fn init_mock() -> Self;
}

impl MockRingExt for Ring<Mock> {
    fn init_mock() -> Ring<Mock> {
        MockBuilder::new().build_ring()
    }
}

/// The seed in `XURING_MOCK_SEED` (decimal, or hex with `0x`), if it is set and parses.
pub fn seed_from_env() -> Option<u64> {
    let value = std::env::var(SEED_ENV).ok()?;
    let value = value.trim();
    match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// Runs `body` with `seed`, or with `XURING_MOCK_SEED` when that is set (to replay a failure).
/// If `body` panics, prints `XURING_MOCK_SEED=<seed>` to stderr and resumes the panic.
pub fn run_seeded<R>(seed: u64, body: impl FnOnce(u64) -> R) -> R {
    let seed = seed_from_env().unwrap_or(seed);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(seed))) {
        Ok(r) => r,
        Err(panic) => {
            eprintln!("{SEED_ENV}={seed} (set it to replay this run)");
            std::panic::resume_unwind(panic)
        }
    }
}

/// Runs `body` once for each of `count` seeds derived from `base` (or only for the seed in
/// `XURING_MOCK_SEED`, when that is set), printing the failing seed like [`run_seeded`].
pub fn run_seeds(base: u64, count: u32, mut body: impl FnMut(u64)) {
    if let Some(seed) = seed_from_env() {
        return run_seeded(seed, body);
    }
    let mut seeds = SplitMix64::new(base);
    for _ in 0..count {
        let seed = seeds.next_u64();
        run_seeded(seed, &mut body);
    }
}

// The backend must stay usable behind the ring's generic code.
const _: fn() = || {
    fn is_backend<B: Backend>() {}
    is_backend::<Mock>();
};
