//! The tool on the readiness executor: the comparisons it adds (xuring on epoll against
//! tokio's echo server, and against xuring on io_uring for random reads), the executor named
//! in every report, and a run where io_uring is blocked (under `shared/tools/noring`, where it
//! exists) that goes to the end.
//!
//! These check behaviour only (every operation completes, every echo comes back intact,
//! every server stops), never a timing. They run wherever xuring can make a ring: on epoll
//! where io_uring is blocked.

use std::path::PathBuf;

use xuring_bench::echo::{EchoClient, Kind, Server};
use xuring_bench::pin::cpu_pair;
use xuring_core::Executor;
use xuring_sys::SetupFlags;

mod common;
use common::{bin, field};

#[allow(dead_code)]
const _: fn() -> bool = common::kernel;

/// Runs the binary with `args` and `XURING_BACKEND` as given; checks it succeeded and returns
/// its standard output and standard error.
fn run(args: &[&str], backend: Option<&str>) -> (String, String) {
    let mut cmd = bin();
    cmd.args(args);
    match backend {
        Some(value) => cmd.env("XURING_BACKEND", value),
        None => cmd.env_remove("XURING_BACKEND"),
    };
    let out = cmd.output().expect("start xuring-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "xuring-bench {args:?} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

#[test]
fn tokio_and_xuring_on_epoll_echo_every_message_intact() {
    let pair = cpu_pair();
    for kind in [Kind::Xuring(Some(Executor::Epoll)), Kind::Tokio] {
        for (conns, size) in [(3, 64), (16, 4096)] {
            let server = Server::start(kind, conns, SetupFlags::empty(), &pair)
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            let mut client =
                EchoClient::connect(server.addr(), conns, size).expect("connect to the server");
            let n = u64::from(conns) * 5 + 1;
            assert_eq!(client.run(n).expect("echoes"), n);
            // Checks every count: connections accepted and closed, bytes echoed, no error.
            let check = client.finish(server).expect("the server's counts");
            assert_eq!(check.messages, n);
            assert_eq!(check.server.echoes, n, "{kind:?}: one echo per message");
        }
    }
}

#[test]
fn echo_subcommand_pairs_xuring_on_epoll_with_tokio() {
    let (out, _) = run(
        &[
            "echo",
            "--impl",
            "xuring-epoll,tokio",
            "--conns",
            "8",
            "--size",
            "64",
            "--secs",
            "0.05",
            "--runs",
            "2",
            "--json",
        ],
        None,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let order = ["xuring-epoll", "tokio", "tokio", "xuring-epoll"];
    for (line, want) in lines.iter().zip(order) {
        assert_eq!(field(line, "impl"), Some(want), "{line}");
        assert_eq!(field(line, "scenario"), Some("echo"), "{line}");
        let executor = field(line, "executor");
        assert_eq!(
            executor,
            (want == "xuring-epoll").then_some("epoll"),
            "{line}"
        );
        let ops: u64 = field(line, "ops")
            .and_then(|v| v.parse().ok())
            .expect("ops");
        assert!(ops > 0 && ops % 8 == 0, "whole waves: {line}");
    }
    // In text, the closing comparison names both sides.
    let (out, _) = run(
        &[
            "echo",
            "--impl",
            "xuring-epoll,tokio",
            "--conns",
            "2",
            "--secs",
            "0.02",
            "--runs",
            "1",
        ],
        None,
    );
    assert!(out.contains("xuring on epoll / tokio ="), "{out}");
}

#[test]
fn randread_pairs_the_two_executors_where_both_run() {
    let io_uring = xuring_bench::backend::backends().io_uring.is_ok();
    let (out, err) = run(
        &[
            "randread",
            "--impl",
            "xuring-epoll,xuring-io_uring",
            "--size-mib",
            "1",
            "--qd",
            "32",
            "--secs",
            "0.05",
            "--runs",
            "2",
            "--json",
        ],
        None,
    );
    let lines: Vec<&str> = out.lines().collect();
    if io_uring {
        assert_eq!(lines.len(), 4, "{out}");
        let executors: Vec<_> = lines.iter().map(|l| field(l, "executor")).collect();
        assert_eq!(
            executors,
            [
                Some("epoll"),
                Some("io_uring"),
                Some("io_uring"),
                Some("epoll")
            ]
        );
    } else {
        // io_uring is blocked: epoll's side runs alone, and standard error says why.
        assert_eq!(lines.len(), 2, "{out}");
        assert!(err.contains("xuring-io_uring: unavailable here"), "{err}");
    }
    for line in lines {
        let ops: u64 = field(line, "ops")
            .and_then(|v| v.parse().ok())
            .expect("ops");
        assert!(ops > 0 && ops % 32 == 0, "{line}");
    }
}

#[test]
fn the_executor_is_named_in_the_probe_and_the_table() {
    let (probe, _) = run(&["probe"], Some("epoll"));
    assert!(
        probe.contains("executor             epoll, the readiness executor"),
        "{probe}"
    );
    let (out, _) = run(&["tour", "noop", "--quick"], Some("epoll"));
    let table = out.split("== summary").nth(1).expect("a summary");
    let headline = table.lines().nth(1).expect("the table's first line");
    assert!(
        headline.starts_with("xuring on epoll (readiness executor"),
        "{headline}"
    );
    let (out, _) = run(&["tour", "noop", "--quick"], Some("auto"));
    let table = out.split("== summary").nth(1).expect("a summary");
    let headline = table.lines().nth(1).expect("the table's first line");
    let expected = match xuring_bench::backend::backends().io_uring {
        Ok(()) => "xuring on io_uring",
        Err(_) => "xuring on epoll (readiness executor; io_uring is blocked here)",
    };
    assert_eq!(headline, expected);
    assert!(
        !out.contains("target"),
        "no project targets in the output:\n{out}"
    );
}

/// `shared/tools/noring` beside the repository, where it is.
fn noring() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/noring");
    path.is_file().then_some(path)
}

#[test]
fn where_io_uring_is_blocked_the_tool_runs_to_the_end() {
    let Some(noring) = noring() else {
        eprintln!("skipped: no shared/tools/noring beside the repository");
        return;
    };
    let blocked = |args: &[&str]| {
        let out = std::process::Command::new(&noring)
            .arg(env!("CARGO_BIN_EXE_xuring-bench"))
            .args(args)
            .env_remove("XURING_BACKEND")
            .output()
            .expect("start noring");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };
    let (code, out, err) = blocked(&["tour", "noop", "--quick"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("xuring on epoll (readiness executor; io_uring is blocked here)"),
        "{out}"
    );
    assert!(out.contains("raw io_uring: unavailable here"), "{out}");
    let (code, out, err) = blocked(&["noop", "--ops", "6400"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("io-uring: unavailable here"), "{out}");
    assert!(out.contains("running xuring on epoll alone"), "{out}");
    // Asked for the raw side alone: a clear message, not a panic.
    let (code, _, err) = blocked(&["noop", "--ops", "6400", "--impl", "io-uring"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("io-uring: unavailable here"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
