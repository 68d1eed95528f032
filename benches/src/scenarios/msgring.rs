//! `msgring`: ping-pong between two threads, one message each way per round trip.
//!
//! xuring's [`Thread`](xuring_core::Thread) runs it twice: at native level (messages posted by
//! `IORING_OP_MSG_RING` straight into the other ring's CQ) and at
//! [`KernelLevel::V5_6`] (its fallback: a queue plus an eventfd written through the sender's
//! ring and read by a read pending on the receiver's ring). The baselines are the raw
//! `io-uring` crate doing the same `MSG_RING` ping-pong (paired with the native level), two
//! blocking eventfds (paired with the fallback), and `std::sync::mpsc` for context. See
//! [`crate::pingpong`] for each side.
//!
//! The main thread (the parent ring, the pinger) stays on the CPU the tour pinned it to; the
//! second thread (the child ring, the responder) pins itself to the other CPU where there is
//! one, so a round trip crosses CPUs twice. A second case puts both threads on the main
//! thread's CPU: on a VM where waking an idle CPU is slow, that wake-up hides the sides'
//! own costs, which the one-CPU case shows.

use std::fmt::Write as _;

use xuring_core::{KernelLevel, Ring};
use xuring_sys::SetupFlags;

use crate::Config;
use crate::backend::RAW_NAME;
use crate::error::BenchError;
use crate::method::{CaseResult, Variant, calibrate, measure};
use crate::pin::{CpuPair, cpu_pair};
use crate::pingpong::{EventfdPingPong, MpscPingPong, RING_ENTRIES, RawMsgRing, XuringPingPong};
use crate::report::{cases_table, rate, ratio, summary_row};
use crate::scenarios::{Output, raw_note};
use crate::threads::{load_average, load_note};

/// xuring at native level.
pub const XURING_NATIVE: &str = "xuring Thread (MSG_RING)";
/// The raw baseline of the native level.
pub const RAW_MSG_RING: &str = "raw io-uring MSG_RING";
/// xuring at 5.6.
pub const XURING_FALLBACK: &str = "xuring Thread (5.6 eventfd)";
/// The baseline of the fallback.
pub const EVENTFD: &str = "eventfd read/write";
/// Context.
pub const MPSC: &str = "std mpsc";

/// Round trips each side completed over a case, checked against its responder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The variant.
    pub name: &'static str,
    /// Round trips that came back, in order, each with its own payload.
    pub round_trips: u64,
}

/// One placement of the two threads.
#[derive(Clone, Debug)]
pub struct PairCase {
    /// Where the two threads ran.
    pub pair: CpuPair,
    /// Whether the xuring children pinned themselves where asked (native, fallback).
    pub children_pinned: (bool, bool),
    /// The paired measurements.
    pub case: CaseResult,
    /// Every side's total of completed round trips.
    pub checked: Vec<Checked>,
}

/// What `msgring` measured.
#[derive(Clone, Debug)]
pub struct MsgRingReport {
    /// The 1-minute load average when the scenario started.
    pub load: Option<f64>,
    /// Setup flags of the native rings (the raw rings use the same).
    pub setup: SetupFlags,
    /// Setup flags of the 5.6 rings.
    pub fallback_setup: SetupFlags,
    /// The two threads on two CPUs (if the machine has two), then on one.
    pub cases: Vec<PairCase>,
}

/// The placements measured: the second thread on another CPU where there is one (the case
/// the headline is about), then on the main thread's CPU, where every hand-off is a context
/// switch and the software cost of each side shows (it is hidden behind the wake-up of an
/// idle CPU in the first).
pub fn placements() -> Vec<(String, CpuPair)> {
    let pair = cpu_pair();
    let mut out = Vec::new();
    if pair.split() {
        out.push(("two CPUs".to_owned(), pair.clone()));
    }
    match pair.main {
        Some(cpu) => out.push((
            "one CPU".to_owned(),
            CpuPair {
                main: Some(cpu),
                other: Some(cpu),
            },
        )),
        None => out.push(("unpinned".to_owned(), pair)),
    }
    out
}

/// One placement: the five sides in turn for `config.rounds` rounds, each run `ops` round
/// trips calibrated on xuring native to `config.pair_target_run`; every second thread is
/// stopped and joined at the end, and its own count of replies checked.
fn one_case(
    label: String,
    pair: CpuPair,
    setup: SetupFlags,
    config: &Config,
) -> Result<(PairCase, SetupFlags), BenchError> {
    let mut native = XuringPingPong::new(KernelLevel::Native, &pair)?;
    let mut fallback = XuringPingPong::new(KernelLevel::V5_6, &pair)?;
    let mut raw = if config.raw {
        Some(RawMsgRing::new(setup, &pair)?)
    } else {
        None
    };
    let mut eventfd = EventfdPingPong::new(&pair)?;
    let mut mpsc = MpscPingPong::new(&pair)?;
    let children_pinned = (native.child_pinned(), fallback.child_pinned());
    let fallback_setup = fallback.setup();
    let pair_config = Config {
        target_run: config.pair_target_run,
        ..config.clone()
    };
    let case = {
        let mut variants = vec![Variant::new(XURING_NATIVE, |n| native.run(n))];
        if let Some(raw) = raw.as_mut() {
            variants.push(Variant::new(RAW_MSG_RING, move |n| raw.run(n)));
        }
        // With the raw side, the fallback is at 2; without it, at 1.
        let at = variants.len();
        variants.push(Variant::new(XURING_FALLBACK, |n| fallback.run(n)));
        variants.push(Variant::new(EVENTFD, |n| eventfd.run(n)));
        variants.push(Variant::new(MPSC, |n| mpsc.run(n)));
        let mut comparisons = vec![(at, at + 1), (0, at + 2)];
        if at == 2 {
            comparisons.insert(0, (0, 1));
        }
        let ops = calibrate(&mut variants[0], &pair_config, 1)?;
        measure(label, &mut variants, &comparisons, config.rounds, ops)?
    };
    let mut checked = vec![Checked {
        name: XURING_NATIVE,
        round_trips: native.round_trips(),
    }];
    if let Some(raw) = &raw {
        checked.push(Checked {
            name: RAW_MSG_RING,
            round_trips: raw.round_trips(),
        });
    }
    checked.extend([
        Checked {
            name: XURING_FALLBACK,
            round_trips: fallback.round_trips(),
        },
        Checked {
            name: EVENTFD,
            round_trips: eventfd.round_trips(),
        },
        Checked {
            name: MPSC,
            round_trips: mpsc.round_trips(),
        },
    ]);
    native.finish()?;
    if let Some(raw) = raw {
        raw.finish()?;
    }
    fallback.finish()?;
    eventfd.finish()?;
    mpsc.finish()?;
    let case = PairCase {
        pair,
        children_pinned,
        case,
        checked,
    };
    Ok((case, fallback_setup))
}

/// Measures every placement of [`placements`].
pub fn run(config: &Config) -> Result<MsgRingReport, BenchError> {
    let load = load_average();
    // The raw rings get the setup flags of a native xuring ring of the same size.
    let setup = Ring::init(RING_ENTRIES)?.features().setup;
    let mut fallback_setup = SetupFlags::empty();
    let mut cases = Vec::new();
    for (label, pair) in placements() {
        let (case, flags) = one_case(label, pair, setup, config)?;
        fallback_setup = flags;
        cases.push(case);
    }
    Ok(MsgRingReport {
        load,
        setup,
        fallback_setup,
        cases,
    })
}

impl MsgRingReport {
    /// The case of the two threads on two CPUs, if the machine has two.
    pub fn split(&self) -> Option<&PairCase> {
        self.cases.iter().find(|c| c.pair.split())
    }

    /// The report's text and summary lines.
    pub fn output(&self) -> Output {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "== msgring: ping-pong between two threads, one message each way per round trip \
             (op = one round trip)"
        );
        let _ = writeln!(text, "  {}", load_note(self.load));
        for c in &self.cases {
            let _ = writeln!(text, "  {}: {}", c.case.label, c.pair);
            if c.pair.other.is_some() && !(c.children_pinned.0 && c.children_pinned.1) {
                let _ = writeln!(
                    text,
                    "  warning: a xuring child ring could not pin itself (native {}, 5.6 {})",
                    c.children_pinned.0, c.children_pinned.1
                );
            }
        }
        let _ = writeln!(
            text,
            "  rings of {RING_ENTRIES} entries; native and raw setup flags {:?}; 5.6 rings {:?}",
            self.setup, self.fallback_setup
        );
        let _ = writeln!(
            text,
            "  xuring: the child's handler replies via Mail::reply_to, the parent's handler \
             sends the next ping, the parent loops on run(Once); raw: push MSG_RING, one \
             submit_and_wait for its completion and the reply, both sides"
        );
        if let Some(first) = self.cases.first() {
            let _ = writeln!(
                text,
                "  {} rounds of the five variants in turn, reversed every other round; round trips per run: {}",
                first.case.rounds,
                self.cases
                    .iter()
                    .map(|c| format!("{} ({})", c.case.ops_per_run, c.case.label))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let cases: Vec<CaseResult> = self.cases.iter().map(|c| c.case.clone()).collect();
        text.push_str(&cases_table(&cases, "RT/s"));
        let mut summary = Vec::new();
        for c in &self.cases {
            let label = &c.case.label;
            if let Some(r) = c.case.ratio(XURING_NATIVE, RAW_MSG_RING) {
                let line = if c.pair.split() || self.split().is_none() {
                    format!(
                        "msgring ({label}): xuring native / raw MSG_RING = {} (above 1: xuring's \
                         Thread is faster than the bare MSG_RING loop)",
                        ratio(r.median)
                    )
                } else {
                    format!(
                        "msgring ({label}): xuring native / raw MSG_RING = {} (software cost: \
                         every hand-off is a context switch on one CPU)",
                        ratio(r.median)
                    )
                };
                let _ = writeln!(text, "  {line}");
                summary.push(line);
            }
            if let Some(r) = c.case.ratio(XURING_FALLBACK, EVENTFD) {
                let line = format!(
                    "msgring ({label}): xuring 5.6 fallback / eventfd = {} (context)",
                    ratio(r.median)
                );
                let _ = writeln!(text, "  {line}");
                summary.push(line);
            }
            if let Some(v) = c.case.variant(XURING_NATIVE) {
                summary.push(format!(
                    "msgring ({label}): xuring native {} round trips/s, {:.0} ns per round trip",
                    rate(v.ops_per_sec()),
                    v.median_ns,
                ));
            }
        }
        if let Some(note) = raw_note(self.cases.first().map(|c| &c.case), RAW_MSG_RING) {
            let _ = writeln!(text, "  {note}");
        }
        let total: u64 = self
            .cases
            .iter()
            .flat_map(|c| &c.checked)
            .map(|c| c.round_trips)
            .sum();
        let _ = writeln!(
            text,
            "  checked: {total} round trips over all sides came back in order with their own \
             payload, and every responder counted as many replies"
        );
        let mut rows = Vec::new();
        for c in &self.cases {
            let label = &c.case.label;
            rows.extend(summary_row(
                "msgring",
                format!("MSG_RING, {label}"),
                &c.case,
                XURING_NATIVE,
                RAW_MSG_RING,
                RAW_NAME,
            ));
            rows.extend(summary_row(
                "msgring",
                format!("5.6 vs eventfd, {label}"),
                &c.case,
                XURING_FALLBACK,
                EVENTFD,
                "eventfd",
            ));
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
