//! # xuring-bench
//!
//! The kernel probe and benchmark tour of xuring, run as `cargo run --release -p xuring-bench`.
//!
//! It prints what the running kernel's io_uring can do ([`probe`]), then runs each scenario of
//! [`scenarios::SCENARIOS`] next to the raw `io-uring` crate doing the same work (and, for
//! `echo`, next to tokio). Where io_uring is blocked, xuring runs on its readiness executor
//! (`epoll`) and the raw baselines cannot run: the tool says so ([`backend`]) and runs
//! xuring's side alone. The method
//! ([`method`]) is built for a small, noisy machine: the process is pinned to one CPU, the
//! variants of a case run alternately (A, B, A, B, ...) for a number of rounds, and the report
//! gives the median of each side and the median of the per-round paired ratios, so a drift of
//! the whole machine between rounds cancels out of the ratio.
//!
//! Nothing here asserts a timing: the tests (`cargo test -p xuring-bench`) run every scenario
//! with tiny counts and check only behaviour (all operations complete, no allocation after
//! warm-up).
//!
//! The two-thread scenarios (`msgring`, `echo`) put their second thread on the other CPU of
//! the machine ([`pin::cpu_pair`]) and stop it on their own at the end of each case
//! ([`threads`]).
//!
//! Besides the tour, subcommands ([`commands`]) run one scenario with the parameters given,
//! on one implementation or both, and print one record per run (`--json`: one JSON object per
//! line), for scripts and for comparisons with other tools.
//!
//! `unsafe` is denied except in the modules that talk to the kernel or to raw memory
//! ([`alloc_count`], [`commands`] (its `echo-server` signal handling), [`echo`], [`pin`],
//! [`pingpong`], [`probe`], [`raw`] and [`xuring_ops`]),
//! each of which opens with a `# Safety` preamble.

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[allow(unsafe_code)]
pub mod alloc_count;
pub mod backend;
pub mod cli;
#[allow(unsafe_code)]
pub mod commands;
pub mod config;
pub mod datafile;
#[allow(unsafe_code)]
pub mod echo;
pub mod error;
pub mod json;
pub mod latency;
pub mod method;
#[allow(unsafe_code)]
pub mod pin;
#[allow(unsafe_code)]
pub mod pingpong;
#[allow(unsafe_code)]
pub mod probe;
#[allow(unsafe_code)]
pub mod raw;
pub mod report;
pub mod scenarios;
pub mod threads;
#[allow(unsafe_code)]
pub mod xuring_ops;

pub use config::Config;
pub use error::BenchError;
