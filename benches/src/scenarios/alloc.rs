//! `alloc`: heap allocations per operation after warm-up, which should be 0 (DESIGN §7).
//!
//! Each kind of operation runs once to warm up (the task pool grows its chunks, buffers are
//! made), then again while the counting allocator ([`crate::alloc_count`]) watches this
//! thread. Needs `CountingAlloc` as the global allocator (the `xuring-bench` binary and the
//! tests install it); without it the scenario says it could not count.

use std::fmt::Write as _;

use xuring_core::Timespec;
use xuring_sys::SetupFlags;

use crate::Config;
use crate::alloc_count;
use crate::datafile::DataFile;
use crate::error::BenchError;
use crate::raw::RawNoop;
use crate::scenarios::Output;
use crate::xuring_ops::{BufSource, IoKind, XuringBatch, XuringIo};

/// Batch size / queue depth of every kind.
pub const DEPTH: u32 = 16;

/// One kind's count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocRow {
    /// The kind of operation.
    pub name: &'static str,
    /// Operations counted.
    pub ops: u64,
    /// Allocations seen meanwhile.
    pub allocations: u64,
}

impl AllocRow {
    /// Allocations per operation.
    pub fn per_op(&self) -> f64 {
        if self.ops == 0 {
            0.0
        } else {
            self.allocations as f64 / self.ops as f64
        }
    }
}

/// What `alloc` counted; `rows` is empty if the counting allocator is not installed.
#[derive(Clone, Debug)]
pub struct AllocReport {
    /// Whether the counting allocator is the global allocator.
    pub counting: bool,
    /// One row per kind.
    pub rows: Vec<AllocRow>,
}

/// Runs `ops` once to warm up, then counts the allocations of a second run of `ops`.
fn count(
    name: &'static str,
    ops: u64,
    mut run: impl FnMut(u64) -> Result<u64, BenchError>,
) -> Result<AllocRow, BenchError> {
    run(ops)?;
    let before = alloc_count::allocations();
    let done = run(ops);
    let allocations = alloc_count::allocations() - before;
    crate::error::check_complete(name, ops, done?)?;
    Ok(AllocRow {
        name,
        ops,
        allocations,
    })
}

/// Counts each kind: xuring noop, timer, read and write (pool and `Vec` buffers), and the raw
/// `io-uring` NOP loop as a reference.
pub fn run(config: &Config) -> Result<AllocReport, BenchError> {
    if !alloc_count::installed() {
        return Ok(AllocReport {
            counting: false,
            rows: Vec::new(),
        });
    }
    let ops = config.alloc_ops.max(u64::from(DEPTH));
    let file = DataFile::create(1 << 20)?;
    let offsets = file.random_offsets(4096, 7);
    let mut rows = Vec::new();

    let mut noop = XuringBatch::noop(64, DEPTH)?;
    let setup: SetupFlags = noop.features().setup;
    rows.push(count("xuring noop", ops, |n| noop.run(n))?);

    // Short timers: 2 us, so the count measures the runtime and not the sleeping.
    let after = Timespec {
        sec: 0,
        nsec: 2_000,
    };
    let mut timer = XuringBatch::timer(64, DEPTH, after)?;
    // Timers take at least their 2 us each (batched), so count fewer of them.
    let timer_ops = (ops / 4).max(u64::from(DEPTH));
    rows.push(count("xuring timer", timer_ops, |n| timer.run(n))?);

    for (name, kind, source) in [
        ("xuring read, pool", IoKind::Read, BufSource::Pool),
        ("xuring read, Vec", IoKind::Read, BufSource::Vec),
        ("xuring write, pool", IoKind::Write, BufSource::Pool),
        ("xuring write, Vec", IoKind::Write, BufSource::Vec),
    ] {
        let mut io = XuringIo::new(file.fd(), offsets.clone(), DEPTH, kind, source)?;
        rows.push(count(name, ops, |n| io.run(n))?);
    }

    if config.raw {
        let mut raw = RawNoop::new(64, setup, DEPTH)?;
        rows.push(count("raw io-uring NOP (reference)", ops, |n| raw.run(n))?);
    }
    Ok(AllocReport {
        counting: true,
        rows,
    })
}

impl AllocReport {
    /// The rows of xuring's own operations (not the reference).
    pub fn xuring_rows(&self) -> impl Iterator<Item = &AllocRow> {
        self.rows.iter().filter(|r| r.name.starts_with("xuring"))
    }

    /// The report's text and summary lines.
    pub fn output(&self) -> Output {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "== alloc: heap allocations per operation after warm-up (counting global \
             allocator, this thread), batch/QD {DEPTH}"
        );
        if !self.counting {
            let _ = writeln!(
                text,
                "  not measured: CountingAlloc is not this binary's global allocator"
            );
            return Output {
                text,
                summary: vec!["alloc: not measured".to_owned()],
                rows: Vec::new(),
            };
        }
        let width = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(4);
        let _ = writeln!(
            text,
            "  {:<width$}  {:>8}  {:>11}  {:>9}",
            "kind", "ops", "allocations", "per op"
        );
        for r in &self.rows {
            let _ = writeln!(
                text,
                "  {:<width$}  {:>8}  {:>11}  {:>9.3}",
                r.name,
                r.ops,
                r.allocations,
                r.per_op()
            );
        }
        let worst = self.xuring_rows().map(|r| r.allocations).max().unwrap_or(0);
        let line = if worst == 0 {
            "alloc: 0 allocations per op after warm-up for every xuring kind".to_owned()
        } else {
            format!("alloc: some xuring kinds allocate after warm-up (worst run: {worst})")
        };
        let _ = writeln!(text, "  {line}");
        Output {
            text,
            summary: vec![line],
            rows: Vec::new(),
        }
    }
}

/// The table's entry.
pub fn entry(config: &Config) -> Result<Output, BenchError> {
    run(config).map(|r| r.output())
}
