//! The subcommands through the binary, on the real kernel, with small counts: every record
//! line is there, with the fields scripts read, on each implementation; `echo-server` serves a
//! real client and exits cleanly on SIGTERM, SIGINT and `--secs`.
//!
//! These check behaviour only, never a timing.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

mod common;
use common::{bin, field, kernel, run_binary};

/// Runs the binary with `args`, checks it succeeded, returns its standard output's lines.
fn lines(args: &[&str]) -> Vec<String> {
    run_binary(args).lines().map(str::to_owned).collect()
}

fn number(line: &str, key: &str) -> f64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {line}"))
}

/// Checks one JSON record per run, alternating implementations, each with `ops` operations
/// (if given) and the keys asked for.
fn check_records(out: &[String], scenario: &str, runs: usize, ops: Option<u64>, keys: &[&str]) {
    assert_eq!(out.len(), 2 * runs, "{out:#?}");
    for (i, line) in out.iter().enumerate() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        // Even runs go xuring first, odd ones io-uring first.
        let first = if (i / 2) % 2 == 0 {
            "xuring"
        } else {
            "io-uring"
        };
        let second = if first == "xuring" {
            "io-uring"
        } else {
            "xuring"
        };
        let want = if i % 2 == 0 { first } else { second };
        assert_eq!(field(line, "impl"), Some(want), "{line}");
        assert_eq!(field(line, "scenario"), Some(scenario), "{line}");
        if let Some(ops) = ops {
            assert_eq!(number(line, "ops"), ops as f64, "{line}");
        }
        assert!(number(line, "ops_per_sec") > 0.0, "{line}");
        for key in keys {
            assert!(field(line, key).is_some(), "{key} in {line}");
        }
    }
}

#[test]
fn noop_json_records_on_both_implementations() {
    if !kernel() {
        return;
    }
    let out = lines(&[
        "noop", "--ops", "6400", "--batch", "64", "--runs", "2", "--json",
    ]);
    check_records(&out, "noop", 2, Some(6400), &["batch", "p50_us", "p99_us"]);
    for line in &out {
        assert_eq!(number(line, "allocs_per_op"), 0.0, "{line}");
    }
}

#[test]
fn timers_json_records_on_both_implementations() {
    if !kernel() {
        return;
    }
    let out = lines(&[
        "timers", "--count", "8", "--waves", "20", "--runs", "1", "--json",
    ]);
    check_records(&out, "timers", 1, Some(160), &["count", "p50_us", "p99_us"]);
}

#[test]
fn randread_json_records_on_a_file_it_makes_and_keeps() {
    if !kernel() {
        return;
    }
    let path =
        std::env::temp_dir().join(format!("xuring-randread-test-{}.dat", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = path.to_str().expect("utf-8 path");
    let args = [
        "randread",
        "--file",
        file,
        "--size-mib",
        "2",
        "--qd",
        "8",
        "--secs",
        "0.05",
        "--runs",
        "1",
        "--json",
    ];
    let out = lines(&args);
    check_records(&out, "randread", 1, None, &["qd", "size_mib"]);
    assert_eq!(
        std::fs::metadata(&path).expect("the file is kept").len(),
        2 << 20
    );
    // A second run reads the same file as it is.
    let out = lines(&args);
    check_records(&out, "randread", 1, None, &["qd"]);
    std::fs::remove_file(&path).expect("remove the file");
}

#[test]
fn msgring_and_echo_json_records() {
    if !kernel() {
        return;
    }
    let out = lines(&["msgring", "--round-trips", "500", "--runs", "1", "--json"]);
    check_records(
        &out,
        "msgring",
        1,
        Some(500),
        &["p50_us", "p99_us", "level"],
    );
    let out = lines(&[
        "msgring",
        "--round-trips",
        "200",
        "--level",
        "5.6",
        "--impl",
        "xuring",
        "--json",
    ]);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(field(&out[0], "level"), Some("5.6"));
    let out = lines(&[
        "echo", "--conns", "4", "--size", "64", "--secs", "0.05", "--runs", "1", "--json",
    ]);
    check_records(&out, "echo", 1, None, &["conns", "size", "p50_us"]);
}

#[test]
fn text_output_closes_with_the_comparison() {
    if !kernel() {
        return;
    }
    let out = lines(&["noop", "--ops", "1000", "--batch", "10", "--runs", "1"]);
    // Where xuring runs, the two records, the comparison.
    assert_eq!(out.len(), 4, "{out:#?}");
    assert!(out[0].starts_with("xuring on "), "{}", out[0]);
    assert!(out[1].starts_with("xuring on "), "{}", out[1]);
    assert!(out[3].contains(" / io-uring ="), "{}", out[3]);
}

#[test]
fn probe_json_is_one_object() {
    let out = lines(&["probe", "--json"]);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(field(&out[0], "scenario"), Some("probe"));
    assert!(
        matches!(field(&out[0], "executor"), Some("io_uring" | "epoll")),
        "{}",
        out[0]
    );
    if kernel() {
        assert_eq!(field(&out[0], "available"), Some("true"));
        assert!(out[0].contains("\"ops_supported\":[\"Noop\""), "{}", out[0]);
    }
}

#[test]
fn bad_arguments_exit_with_2() {
    let out = bin().args(["noop", "--batch", "x"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch"));
}

/// Starts `echo-server` on any free port; returns the child and its port.
fn start_server(args: &[&str]) -> (Child, u16) {
    let mut child = bin()
        .arg("echo-server")
        .args(["--port", "0", "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start echo-server");
    let stderr = child.stderr.take().expect("stderr");
    let mut line = String::new();
    BufReader::new(stderr)
        .read_line(&mut line)
        .expect("read the listening line");
    let port = line
        .trim()
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (child, port)
}

/// Sends `messages` messages of 100 bytes on each of two connections and checks the echoes.
fn talk(port: u16, messages: usize) -> u64 {
    let mut streams: Vec<TcpStream> = (0..2)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s
        })
        .collect();
    let mut bytes = 0;
    for i in 0..messages {
        for (c, stream) in streams.iter_mut().enumerate() {
            let msg: Vec<u8> = (0..100).map(|b| (b + i + c) as u8).collect();
            stream.write_all(&msg).expect("write");
            let mut back = vec![0u8; msg.len()];
            stream.read_exact(&mut back).expect("read the echo");
            assert_eq!(back, msg);
            bytes += msg.len() as u64;
        }
    }
    // One connection is closed by the client, the other left open for the stop to end.
    drop(streams.remove(0));
    std::mem::forget(streams);
    bytes
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: `kill(2)` takes no pointers; `pid` is our own child, not yet reaped.
    let ret = unsafe { libc::kill(pid, signal) };
    assert_eq!(ret, 0, "kill: {}", std::io::Error::last_os_error());
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().expect("wait for echo-server");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "echo-server: {}\n{stdout}",
        out.status
    );
    stdout.trim().to_owned()
}

#[test]
fn echo_server_stops_cleanly_on_sigterm_and_sigint() {
    if !kernel() {
        return;
    }
    for (imp, sig, name) in [
        ("xuring", libc::SIGTERM, "SIGTERM"),
        ("io-uring", libc::SIGINT, "SIGINT"),
        ("io-uring", libc::SIGTERM, "SIGTERM"),
        ("xuring", libc::SIGINT, "SIGINT"),
    ] {
        let (child, port) = start_server(&["--impl", imp]);
        let bytes = talk(port, 50);
        signal(&child, sig);
        let line = finish(child);
        assert_eq!(field(&line, "impl"), Some(imp), "{line}");
        assert_eq!(field(&line, "stopped_by"), Some(name), "{line}");
        assert_eq!(number(&line, "echoed_bytes"), bytes as f64, "{line}");
        assert_eq!(number(&line, "ops"), 100.0, "{line}");
        assert_eq!(number(&line, "accepted"), 2.0, "{line}");
        assert_eq!(
            number(&line, "closed"),
            2.0,
            "every connection closed: {line}"
        );
        assert_eq!(number(&line, "errors"), 0.0, "{line}");
    }
}

#[test]
fn echo_server_stops_after_secs_and_refuses_past_max_conns() {
    if !kernel() {
        return;
    }
    for imp in ["xuring", "io-uring"] {
        let (child, port) = start_server(&["--impl", imp, "--secs", "1", "--max-conns", "1"]);
        let mut kept = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        kept.write_all(b"ping").expect("write");
        let mut back = [0u8; 4];
        kept.read_exact(&mut back).expect("echo");
        assert_eq!(&back, b"ping");
        // The second connection gets no slot: it is accepted and closed at once.
        let mut extra = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 1];
        assert_eq!(
            extra.read(&mut buf).expect("read"),
            0,
            "closed by the server"
        );
        let line = finish(child);
        assert_eq!(field(&line, "stopped_by"), Some("time"), "{line}");
        assert_eq!(number(&line, "refused"), 1.0, "{line}");
        assert_eq!(number(&line, "closed"), 2.0, "{line}");
        drop(kept);
    }
}
