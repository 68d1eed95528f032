//! `noop`: the runtime's own cost. A NOP does nothing in the kernel, so the time per round trip
//! is the submission and completion path: xuring's full Task lifecycle (get a task, queue it,
//! flush it into the SQ, enter, reap into the completion list, run the callback, recycle)
//! against the raw `io-uring` crate (push, `submit_and_wait`, drain the CQ) and against the raw
//! loop plus a naive callback layer (a slab of function pointers looked up per completion).

use std::fmt::Write as _;

use xuring_sys::SetupFlags;

use crate::Config;
use crate::backend::RAW_NAME;
use crate::error::BenchError;
use crate::method::{CaseResult, Variant, calibrate, measure};
use crate::raw::{RawNoop, RawNoopCallbacks};
use crate::report::{cases_table, ratio, summary_row};
use crate::scenarios::{Output, raw_note};
use crate::xuring_ops::XuringBatch;

/// SQ entries of every ring in this scenario (the CQ has twice as many).
pub const RING_ENTRIES: u32 = 256;
/// The xuring variant.
pub const XURING: &str = "xuring";
/// The raw loop.
pub const RAW: &str = "raw io-uring";
/// The raw loop with emulated callbacks.
pub const RAW_CALLBACKS: &str = "raw + callbacks";
/// The batch whose ratios head the summary.
pub const HEADLINE_BATCH: u32 = 64;

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
        let (mut raw, mut emulated) = if config.raw {
            (
                Some(RawNoop::new(RING_ENTRIES, setup, batch)?),
                Some(RawNoopCallbacks::new(RING_ENTRIES, setup, batch)?),
            )
        } else {
            (None, None)
        };
        let mut variants = vec![Variant::new(XURING, |n| xuring.run(n))];
        if let (Some(raw), Some(emulated)) = (raw.as_mut(), emulated.as_mut()) {
            variants.push(Variant::new(RAW, move |n| raw.run(n)));
            variants.push(Variant::new(RAW_CALLBACKS, move |n| emulated.run(n)));
        }
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
        if let Some(case) = self.case(HEADLINE_BATCH) {
            if let Some(r) = case.ratio(XURING, RAW) {
                let line = format!(
                    "noop batch {HEADLINE_BATCH}: xuring/raw = {} (what the task lifecycle and \
                     callbacks cost over a bare loop on the same ring)",
                    ratio(r.median)
                );
                let _ = writeln!(text, "  {line}");
                summary.push(line);
            }
            if let Some(r) = case.ratio(XURING, RAW_CALLBACKS) {
                let line = format!(
                    "noop batch {HEADLINE_BATCH}: xuring/raw+callbacks = {} (against a naive \
                     callback layer over the raw loop)",
                    ratio(r.median)
                );
                let _ = writeln!(text, "  {line}");
                summary.push(line);
            }
        }
        if let Some(note) = raw_note(self.cases.first().map(|(_, c)| c), RAW) {
            let _ = writeln!(text, "  {note}");
        }
        for (batch, case) in &self.cases {
            if *batch == HEADLINE_BATCH {
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
                summary_row(
                    "noop",
                    format!("batch {batch}"),
                    case,
                    XURING,
                    RAW,
                    RAW_NAME,
                )
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
