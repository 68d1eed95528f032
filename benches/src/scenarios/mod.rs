//! The scenarios of the tour, one module each, listed in [`SCENARIOS`].
//!
//! A scenario is a function from a [`Config`] to its [`Output`] (the text of its report and a
//! line or two for the closing summary). To add one: write its module with a typed `run`
//! (which the tests call) and an `entry` adapter, and put the adapter in its row of the table.

use crate::Config;
use crate::error::BenchError;
use crate::report::SummaryRow;

pub mod alloc;
pub mod echo;
pub mod msgring;
pub mod noop;
pub mod read4k;
pub mod timers;

/// What a scenario prints.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Its report: heading, table, notes.
    pub text: String,
    /// Its headline numbers for the closing summary.
    pub summary: Vec<String>,
    /// Its rows of the closing table (xuring next to io-uring).
    pub rows: Vec<SummaryRow>,
}

/// A scenario's entry point.
pub type Entry = fn(&Config) -> Result<Output, BenchError>;

/// One row of the tour.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it measures.
    pub about: &'static str,
    /// What runs it.
    pub entry: Entry,
}

/// Every scenario, in the order `all` runs them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "noop",
        about: "NOP round trip through the full Task lifecycle, batch 1/16/64/256, vs raw io-uring and raw + callbacks emulation",
        entry: noop::entry,
    },
    Scenario {
        name: "read4k",
        about: "4 KiB random reads from a page-cached file, QD 32/128, pool (READ_FIXED) and Vec buffers, vs raw io-uring (and fio if installed)",
        entry: read4k::entry,
    },
    Scenario {
        name: "alloc",
        about: "heap allocations per operation after warm-up: noop, timer, read, write",
        entry: alloc::entry,
    },
    Scenario {
        name: "echo",
        about: "TCP echo on loopback, one server thread, 1/16/128 connections, 64 B and 4 KiB, vs a raw io-uring server (tokio, monoio: not run, not allowed as dependencies)",
        entry: echo::entry,
    },
    Scenario {
        name: "msgring",
        about: "ping-pong between two rings on two threads: xuring Thread with MSG_RING and its 5.6 eventfd fallback, vs raw msg_ring, eventfd, mpsc",
        entry: msgring::entry,
    },
    Scenario {
        name: "timers",
        about: "waves of concurrent timers (1 and 256 at a time) armed and fired, vs raw IORING_OP_TIMEOUT",
        entry: timers::entry,
    },
];

/// The line that says `raw` did not run in `case` (io_uring is blocked here), if it did not.
pub fn raw_note(case: Option<&crate::method::CaseResult>, raw: &str) -> Option<String> {
    let case = case?;
    if case.variant(raw).is_some() {
        return None;
    }
    let why = crate::backend::backends()
        .raw
        .as_ref()
        .err()
        .cloned()
        .unwrap_or_else(|| "not run".to_owned());
    Some(format!(
        "{raw}: unavailable here ({why}); xuring's side ran alone"
    ))
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}
