//! # xuring-mock
//!
//! A deterministic, kernel-free `Backend` for `xuring-core`, so that everything above the
//! kernel runs under Miri.
//!
//! **Status:** not yet implemented; it waits for the `Backend` trait in `xuring-core`. It
//! exports nothing yet. This crate must never call FFI.
#![forbid(unsafe_code)]
