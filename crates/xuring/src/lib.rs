//! # xuring
//!
//! The facade of the xuring workspace. It will re-export the runtime with the paths
//! `xuring::io_uring::{...}` and `xuring::stda::net`; it contains no logic of its own.
//!
//! **Status:** the runtime crates below it are not yet implemented, so nothing is re-exported
//! yet. See the workspace `README.md` for what works today.
#![forbid(unsafe_code)]
