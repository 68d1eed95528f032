//! # xuring-core
//!
//! The runtime layer of xuring: `Ring`, `Task`, completion callbacks, the task pool, the
//! submission queue, the run loop, the `Backend` trait and the real io_uring backend.
//!
//! **Status:** not yet implemented. This crate is a placeholder in the workspace so that the
//! layering (`xuring-sys` and `xuring-queue` below, `xuring-mock` and `xuring-std` above) is
//! fixed from the start. It exports nothing yet.
//!
//! This layer must not call a syscall except through `xuring-sys`.
#![forbid(unsafe_code)]
