//! # xuring-std
//!
//! Networking (`net`) and filesystem (`fs`) helpers built only from `xuring-core`'s public
//! operations: multi-step callback state machines done right.
//!
//! **Status:** not yet implemented; it waits for the operations in `xuring-core`. It exports
//! nothing yet.
#![forbid(unsafe_code)]
