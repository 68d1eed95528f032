//! `noop`: the runtime's own cost. A NOP does nothing in the kernel, so the time per round trip
//! is the submission and completion path: xuring's full Task lifecycle (get a task, queue it,
//! flush it into the SQ, enter, reap into the completion list, run the callback, recycle)
//! against the raw `io-uring` crate (push, `submit_and_wait`, drain the CQ) and against the raw
//! loop plus a naive callback layer (a slab of function pointers looked up per completion).

use std::fmt::Write as _;

use xuring_sys::SetupFlags;

use crate::Config;
use crate::error::BenchError;
use crate::method::{CaseResult, Variant, calibrate, measure};
use crate::raw::{RawNoop, RawNoopCallbacks};
use crate::report::{cases_table, ratio, summary_row};
use crate::scenarios::Output;
use crate::xuring_ops::XuringBatch;

/// SQ entries of every ring in this scenario (the CQ has twice as many).
pub const RING_ENTRIES: u32 = 256;
/// The xuring variant.
pub const XURING: &str = "xuring";
/// The raw loop.
pub const RAW: &str = "raw io-uring";
/// The raw loop with emulated callbacks.
pub const RAW_CALLBACKS: &str = "raw + callbacks";
/// The batch of the target.
pub const TARGET_BATCH: u32 = 64;
/// The target ratio to raw at [`TARGET_BATCH`] (DESIGN §7).
pub const TARGET_VS_RAW: f64 = 0.95;

/// What `noop` measured.
#[derive(Clone, Debug)]
pub struct NoopReport {
    /// The setup flags of xuring's rings, which the raw rings were created with too.
    pub setup: SetupFlags,
    /// Per batch size.
    pub cases: Vec<(u32, CaseResult)>,
}

impl NoopReport {
    /// The case of batch `batch`.
    pub fn case(&self, batch: u32) -> Option<&CaseResult> {
        self.cases.iter().find(|(b, _)| *b == batch).map(|(_, c)| c)
    }
}

/// One xuring ring per batch size and a raw ring for each baseline; the operation count per
/// run is calibrated on xuring and the same for all three.
pub fn run(config: &Config) -> Result<NoopReport, BenchError> {
    let mut cases = Vec::new();
    let mut setup = SetupFlags::empty();
    for &batch in &config.noop_batches {
        let batch = batch.clamp(1, RING_ENTRIES);
        let mut xuring = XuringBatch::noop(RING_ENTRIES, batch)?;
        setup = xuring.features().setup;
        let mut raw = RawNoop::new(RING_ENTRIES, setup, batch)?;
        let mut emulated = RawNoopCallbacks::new(RING_ENTRIES, setup, batch)?;
        let mut variants = vec![
            Variant::new(XURING, |n| xuring.run(n)),
            Variant::new(RAW, |n| raw.run(n)),
            Variant::new(RAW_CALLBACKS, |n| emulated.run(n)),
        ];
        let ops = calibrate(&mut variants[0], config, u64::from(batch))?;
        let case = measure(
            format!("batch={batch}"),
            &mut variants,
            &[(0, 1), (0, 2)],
            config.rounds,
            ops,
        )?;
        cases.push((batch, case));
    }
    Ok(NoopReport { setup, cases })
}

impl NoopReport {
    /// The report's text and summary lines.
    pub fn output(&self) -> Output {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "== noop: NOP round trips; xuring: queue `batch` noops with a callback, \
             run(UntilDone); raw: push `batch` NOPs, submit_and_wait(batch), drain the CQ"
        );
        let _ = writeln!(
            text,
            "  rings of {RING_ENTRIES} entries, setup flags {:?} on both sides",
            self.setup
        );
        let cases: Vec<CaseResult> = self.cases.iter().map(|(_, c)| c.clone()).collect();
        if let Some((_, first)) = self.cases.first() {
            let _ = writeln!(
                text,
                "  {} rounds of (xuring, raw, raw + callbacks), reversed every other round; ops per run: {}",
                first.rounds,
                self.cases
                    .iter()
                    .map(|(b, c)| format!("{}@{b}", c.ops_per_run))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        text.push_str(&cases_table(&cases, "ops/s"));
        let mut summary = Vec::new();
        if let Some(case) = self.case(TARGET_BATCH) {
            if let Some(r) = case.ratio(XURING, RAW) {
                let verdict = if r.median >= TARGET_VS_RAW {
                    "met"
                } else {
                    "NOT met"
                };
                let line = format!(
                    "noop batch {TARGET_BATCH}: xuring/raw = {} (target >= {TARGET_VS_RAW}x: {verdict})",
                    ratio(r.median)
                );
                let _ = writeln!(text, "  {line}");
                summary.push(line);
            }
            if let Some(r) = case.ratio(XURING, RAW_CALLBACKS) {
                let verdict = if r.median > 1.0 { "met" } else { "NOT met" };
                let line = format!(
                    "noop batch {TARGET_BATCH}: xuring/raw+callbacks = {} (target > 1x: {verdict})",
                    ratio(r.median)
                );
                let _ = writeln!(text, "  {line}");
                summary.push(line);
            }
        }
        for (batch, case) in &self.cases {
            if *batch == TARGET_BATCH {
                continue;
            }
            if let Some(r) = case.ratio(XURING, RAW) {
                summary.push(format!(
                    "noop batch {batch}: xuring/raw = {}",
                    ratio(r.median)
                ));
            }
        }
        let rows = self
            .cases
            .iter()
            .filter_map(|(batch, case)| {
                summary_row("noop", format!("batch {batch}"), case, XURING, RAW)
            })
            .collect();
        Output {
            text,
            summary,
            rows,
        }
    }
}

/// The table's entry.
pub fn entry(config: &Config) -> Result<Output, BenchError> {
    run(config).map(|r| r.output())
}
