//! The quick path of every scenario, with tiny counts, on the real kernel.
//!
//! These check behaviour only: every operation completes and succeeds, every result has the
//! shape the report needs, and nothing allocates after warm-up. They never assert a timing.

use xuring_bench::alloc_count::{self, CountingAlloc};
use xuring_bench::scenarios::{self, SCENARIOS, alloc, noop, read4k};
use xuring_bench::{BenchError, Config};

mod common;
use common::kernel;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn check_case(
    case: &xuring_bench::method::CaseResult,
    variants: usize,
    ratios: usize,
    rounds: u32,
) {
    assert_eq!(case.variants.len(), variants, "{}", case.label);
    assert_eq!(case.ratios.len(), ratios, "{}", case.label);
    assert_eq!(case.rounds, rounds);
    for v in &case.variants {
        assert_eq!(v.ns_per_op.len(), rounds as usize, "{}", v.name);
        assert!(v.median_ns.is_finite() && v.median_ns >= 0.0, "{}", v.name);
    }
    for r in &case.ratios {
        assert_eq!(r.per_round.len(), rounds as usize);
        assert!(r.min <= r.median && r.median <= r.max, "{} / {}", r.a, r.b);
    }
}

#[test]
fn noop_runs_every_batch_on_every_side() {
    if !kernel() {
        return;
    }
    let config = Config::tiny();
    let report = noop::run(&config).expect("noop");
    assert_eq!(report.cases.len(), config.noop_batches.len());
    for (batch, case) in &report.cases {
        check_case(case, 3, 2, config.rounds);
        assert_eq!(case.ops_per_run % u64::from(*batch), 0, "whole batches");
        assert!(case.ratio(noop::XURING, noop::RAW).is_some());
        assert!(case.ratio(noop::XURING, noop::RAW_CALLBACKS).is_some());
    }
    let text = report.output().text;
    assert!(text.contains("batch=64") && text.contains("raw + callbacks"));
}

#[test]
fn read4k_reads_every_block_at_every_depth() {
    if !kernel() {
        return;
    }
    let config = Config::tiny();
    let report = read4k::run(&config).expect("read4k");
    assert_eq!(report.depths.len(), config.read_depths.len());
    // Where both executors run, the pool variant runs on the other one too, compared with
    // the default.
    let both = read4k::other_executor().is_some();
    for depth in &report.depths {
        check_case(
            &depth.case,
            4 + usize::from(both),
            2 + usize::from(both),
            config.rounds,
        );
        assert_eq!(depth.executors.is_some(), both);
        assert!(
            matches!(depth.fio, read4k::Fio::Skipped(_)),
            "no fio in tiny mode"
        );
    }
    assert!(report.output().text.contains("fio qd=32: skipped"));
}

#[test]
fn alloc_counts_zero_allocations_after_warm_up() {
    if !kernel() {
        return;
    }
    assert!(
        alloc_count::installed(),
        "the counting allocator is installed"
    );
    let report = alloc::run(&Config::tiny()).expect("alloc");
    assert!(report.counting);
    let kinds: Vec<&str> = report.rows.iter().map(|r| r.name).collect();
    for kind in ["noop", "timer", "read", "write"] {
        assert!(
            kinds.iter().any(|k| k.contains(kind)),
            "{kind} is counted: {kinds:?}"
        );
    }
    for row in &report.rows {
        assert!(row.ops > 0);
        assert_eq!(row.allocations, 0, "{} allocates after warm-up", row.name);
    }
}

#[test]
fn the_counter_sees_allocations() {
    let before = alloc_count::allocations();
    let v = std::hint::black_box(vec![1u8; 100]);
    assert!(alloc_count::allocations() > before);
    drop(v);
}

#[test]
fn the_table_runs_every_scenario() {
    let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        ["noop", "read4k", "alloc", "echo", "msgring", "timers"]
    );
    for scenario in SCENARIOS {
        assert!(scenarios::find(scenario.name).is_some());
    }
    if !kernel() {
        return;
    }
    for scenario in SCENARIOS {
        let output: Result<_, BenchError> = (scenario.entry)(&Config::tiny());
        let output = output.unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        assert!(output.text.starts_with(&format!("== {}", scenario.name)));
        assert!(
            !output.summary.is_empty(),
            "{} has a summary",
            scenario.name
        );
        // Every scenario but `alloc` compares xuring with the io-uring crate in the table.
        if scenario.name != "alloc" {
            assert!(!output.rows.is_empty(), "{} has table rows", scenario.name);
            for row in &output.rows {
                assert!(
                    row.xuring > 0.0
                        && row.base.is_some_and(|b| b > 0.0)
                        && row.ratio.is_some_and(|r| r > 0.0),
                    "{row:?}"
                );
            }
        }
    }
}

#[test]
fn the_probe_reports_what_it_must() {
    let report = xuring_bench::probe::ProbeReport::collect(None);
    let text = report.to_string();
    assert!(report.task_size <= xuring_core::MAX_TASK_SIZE);
    for line in [
        "kernel release",
        "executor",
        "memory per Task",
        "RLIMIT_MEMLOCK",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    if report.available() {
        for line in [
            "feature bits",
            "opcodes",
            "MSG_RING",
            "SEND_ZC",
            "DEFER_TASKRUN",
            "cancel flags",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    } else {
        assert!(text.contains("UNAVAILABLE"));
    }
}
