//! `timers`: waves of concurrent timers, armed together and all fired before the next wave,
//! through xuring's `Ring::timer` (a task, a callback per timer) against raw
//! `IORING_OP_TIMEOUT`s on the `io-uring` crate. The timeout is zero, so a timer expires as
//! soon as it is armed and the time is that of arming and firing, not of sleeping.

use std::fmt::Write as _;
use std::time::Duration;

use xuring_core::{Ring, Timespec};
use xuring_sys::SetupFlags;

use crate::Config;
use crate::backend::RAW_NAME;
use crate::error::BenchError;
use crate::method::{CaseResult, Variant, calibrate, measure};
use crate::raw::RawTimers;
use crate::report::{cases_table, ratio, summary_row};
use crate::scenarios::{Output, raw_note};
use crate::xuring_ops::XuringBatch;

/// The xuring variant.
pub const XURING: &str = "xuring timer";
/// The raw variant.
pub const RAW: &str = "raw TIMEOUT";
/// SQ entries of every ring here.
pub const RING_ENTRIES: u32 = 256;

/// What `timers` measured.
#[derive(Clone, Debug)]
pub struct TimersReport {
    /// The setup flags both sides' rings got.
    pub setup: SetupFlags,
    /// Per wave size.
    pub cases: Vec<(u32, CaseResult)>,
}

/// One case per wave size of `config.timer_counts`.
pub fn run(config: &Config) -> Result<TimersReport, BenchError> {
    let setup = Ring::init(RING_ENTRIES)?.features().setup;
    let mut cases = Vec::new();
    for &count in &config.timer_counts {
        let count = count.max(1);
        let mut xuring = XuringBatch::timer(RING_ENTRIES, count, Timespec::from(Duration::ZERO))?;
        let mut raw = if config.raw {
            Some(RawTimers::new(RING_ENTRIES, setup, count, Duration::ZERO)?)
        } else {
            None
        };
        let mut variants = vec![Variant::new(XURING, |n| xuring.run(n))];
        if let Some(raw) = raw.as_mut() {
            variants.push(Variant::new(RAW, move |n| raw.run(n)));
        }
        let ops = calibrate(&mut variants[0], config, u64::from(count))?;
        let case = measure(
            format!("count={count}"),
            &mut variants,
            &[(0, 1)],
            config.rounds,
            ops,
        )?;
        cases.push((count, case));
    }
    Ok(TimersReport { setup, cases })
}

impl TimersReport {
    /// The report's text, summary lines and table rows.
    pub fn output(&self) -> Output {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "== timers: waves of `count` zero-length relative timers armed together, all fired \
             before the next wave; op = one timer armed and fired"
        );
        let _ = writeln!(
            text,
            "  rings of {RING_ENTRIES} entries, setup flags {:?} on both sides",
            self.setup
        );
        let cases: Vec<CaseResult> = self.cases.iter().map(|(_, c)| c.clone()).collect();
        text.push_str(&cases_table(&cases, "timers/s"));
        let mut summary = Vec::new();
        let mut rows = Vec::new();
        for (count, case) in &self.cases {
            if let Some(r) = case.ratio(XURING, RAW) {
                summary.push(format!(
                    "timers {count} at a time: xuring/raw = {}",
                    ratio(r.median)
                ));
            }
            rows.extend(summary_row(
                "timers",
                format!("{count} at a time"),
                case,
                XURING,
                RAW,
                RAW_NAME,
            ));
        }
        if let Some(note) = raw_note(self.cases.first().map(|(_, c)| c), RAW) {
            let _ = writeln!(text, "  {note}");
        }
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
