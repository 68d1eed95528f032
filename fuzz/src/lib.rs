//! The logic of xuring's fuzz targets, one module per target, shared with the regular tests
//! that replay the committed seeds (`fuzz/seeds/<target>/`). Each `run` takes arbitrary bytes,
//! drives xuring with them and panics on any violated invariant.

pub mod cqe;
pub mod ops;
pub mod queue;
