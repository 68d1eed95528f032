//! The two-thread scenarios, `msgring` and `echo`, on the real kernel: with tiny counts through
//! the library, and with `--quick` through the binary.
//!
//! These check behaviour only: every round trip completes, every message comes back intact,
//! every helper thread and server stops by itself. They never assert a timing.

use xuring_bench::Config;
use xuring_bench::method::CaseResult;
use xuring_bench::scenarios::{echo, msgring};

mod common;
use common::{kernel, run_binary};

/// Operations a variant of `case` did: the calibration run (the first variant only), a
/// warm-up run of a quarter, then one run per round.
fn ops_done(case: &CaseResult, first: bool) -> u64 {
    let ops = case.ops_per_run;
    u64::from(first) * ops + (ops / 4).max(1) + u64::from(case.rounds) * ops
}

fn check_shape(case: &CaseResult, variants: usize, ratios: usize, rounds: u32) {
    assert_eq!(case.variants.len(), variants, "{}", case.label);
    assert_eq!(case.ratios.len(), ratios, "{}", case.label);
    assert_eq!(case.rounds, rounds);
    for v in &case.variants {
        assert_eq!(v.ns_per_op.len(), rounds as usize, "{}", v.name);
    }
    for r in &case.ratios {
        assert_eq!(r.per_round.len(), rounds as usize);
        assert!(r.min <= r.median && r.median <= r.max, "{} / {}", r.a, r.b);
    }
}

#[test]
fn msgring_completes_every_round_trip_on_every_side() {
    if !kernel() {
        return;
    }
    let config = Config::tiny();
    let report = msgring::run(&config).expect("msgring");
    assert!(!report.cases.is_empty());
    for c in &report.cases {
        check_shape(&c.case, 5, 3, config.rounds);
        assert_eq!(c.case.ops_per_run, config.fixed_ops.expect("tiny is fixed"));
        assert!(
            c.case
                .ratio(msgring::XURING_NATIVE, msgring::RAW_MSG_RING)
                .is_some()
        );
        assert!(
            c.case
                .ratio(msgring::XURING_FALLBACK, msgring::EVENTFD)
                .is_some()
        );
        let names: Vec<&str> = c.checked.iter().map(|k| k.name).collect();
        assert_eq!(
            names,
            [
                msgring::XURING_NATIVE,
                msgring::RAW_MSG_RING,
                msgring::XURING_FALLBACK,
                msgring::EVENTFD,
                msgring::MPSC
            ]
        );
        for (i, checked) in c.checked.iter().enumerate() {
            assert_eq!(
                checked.round_trips,
                ops_done(&c.case, i == 0),
                "{} ({}): every round trip came back",
                checked.name,
                c.case.label
            );
        }
        if c.pair.other.is_some() {
            assert_eq!(c.children_pinned, (true, true), "{}", c.case.label);
        }
    }
    let text = report.output().text;
    assert!(text.starts_with("== msgring"));
    assert!(text.contains("xuring Thread (MSG_RING) / raw io-uring MSG_RING"));
}

#[test]
fn echo_gets_every_message_back_intact_and_the_servers_stop() {
    if !kernel() {
        return;
    }
    let config = Config::tiny();
    let report = echo::run(&config).expect("echo");
    assert_eq!(
        report.cases.len(),
        config.echo_conns.len() * config.echo_sizes.len()
    );
    for c in &report.cases {
        check_shape(&c.case, 3, 2, config.rounds);
        assert_eq!(c.case.ops_per_run % u64::from(c.conns), 0, "whole waves");
        let raw = c.raw.as_ref().expect("the raw server ran");
        let tokio = c.tokio.as_ref().expect("the tokio server ran");
        for (check, first) in [(&c.xuring, true), (raw, false), (tokio, false)] {
            assert_eq!((check.conns, check.size), (c.conns, c.size));
            assert_eq!(check.messages, ops_done(&c.case, first), "{}", c.case.label);
            assert_eq!(check.server.accepted, u64::from(c.conns));
            assert_eq!(check.server.closed, u64::from(c.conns));
            assert_eq!(check.server.errors, 0);
            assert_eq!(check.server.echoed, check.messages * check.size as u64);
        }
    }
    let output = report.output();
    assert!(output.text.starts_with("== echo"));
    assert!(output.text.contains("tokio current_thread"));
    // One row against the raw server and one against tokio, per case.
    assert_eq!(output.rows.len(), 2 * report.cases.len());
}

#[test]
fn msgring_quick_runs_through_the_binary() {
    if !kernel() {
        return;
    }
    let out = run_binary(&["tour", "msgring", "--quick"]);
    assert!(out.contains("== msgring"), "{out}");
    assert!(out.contains("checked:") && !out.contains("FAILED"), "{out}");
    assert!(out.contains("xuring native / raw MSG_RING"), "{out}");
}

#[test]
fn echo_quick_runs_through_the_binary() {
    if !kernel() {
        return;
    }
    let out = run_binary(&["tour", "echo", "--quick"]);
    assert!(out.contains("== echo"), "{out}");
    assert!(
        out.contains("messages echoed back intact") && !out.contains("FAILED"),
        "{out}"
    );
    for case in ["1 conn x 64 B", "16 conn x 4096 B", "128 conn x 4096 B"] {
        assert!(out.contains(case), "{case} in:\n{out}");
    }
}
