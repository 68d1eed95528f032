//! The example programs where io_uring is blocked: each runs in a child process under a real
//! seccomp filter that fails `io_uring_setup`, `io_uring_enter` and `io_uring_register` with
//! `EPERM` (as Docker's default profile does), with no `XURING_*` variable set. They must run
//! on the readiness executor unasked and do their work: bytes copied, echoes intact, timers in
//! order.
#![cfg(not(miri))]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xuring::io_uring::{Executor, ExecutorChoice, Ring};

const CHILD_ENV: &str = "XURING_NORING_CHILD";

/// The filter: the three io_uring calls fail with `EPERM`, everything else is allowed.
fn filter() -> [libc::sock_filter; 6] {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump_if = |nr: libc::c_long, to_deny: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt: to_deny,
        jf: 0,
        k: nr as u32,
    };
    [
        // The syscall number.
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jump_if(libc::SYS_io_uring_setup, 3),
        jump_if(libc::SYS_io_uring_enter, 2),
        jump_if(libc::SYS_io_uring_register, 1),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA),
        ),
    ]
}

/// Installs `filter` in the calling process. Async-signal-safe (two `prctl` calls on memory
/// prepared before), so it can run between `fork` and `exec`.
fn install(filter: &[libc::sock_filter]) -> std::io::Result<()> {
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `program` and the filter it points to are live for the call; the kernel copies
    // the filter before returning.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &raw const program,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The example binary `name`, built by `cargo test` next to this test's binary (or built now,
/// when only this test target was asked for).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    // target/<profile>/deps/noring-<hash> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "xuring", "--examples"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo build --examples");
        assert!(status.success(), "building the examples failed");
    }
    path
}

/// Runs `name` with `args` under the filter, with no `XURING_*` variable.
fn run_blocked(name: &str, args: &[&str]) -> Output {
    let filter = filter();
    let mut command = Command::new(example(name));
    command
        .args(args)
        .env_remove("XURING_BACKEND")
        .env_remove("XURING_KERNEL_LEVEL");
    // SAFETY: the closure only calls `prctl` on the filter array it owns (prepared before
    // the fork): no allocation, no lock.
    unsafe { command.pre_exec(move || install(&filter)) };
    let out = command.output().expect("spawn the example");
    assert!(
        out.status.success(),
        "{name} {args:?} under the filter: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xuring-noring-{}-{name}", std::process::id()))
}

/// What the filter does to this very test binary, re-executed under it: io_uring is refused,
/// and `Ring::init` hands out a ring on the readiness executor that works.
#[test]
fn the_filter_blocks_io_uring_and_init_falls_back() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let err = Ring::builder(8)
            .executor(ExecutorChoice::IoUring)
            .build()
            .err()
            .expect("io_uring_setup is refused");
        assert!(format!("{err:?}").contains("PermissionDenied"), "{err:?}");
        let mut ring = Ring::init(8).expect("a ring on the readiness executor");
        assert_eq!(ring.executor(), Executor::Epoll);
        ring.noop(xuring::io_uring::Context::default());
        ring.run(xuring::io_uring::RunCondition::UntilDone)
            .expect("run");
        assert_eq!(ring.stats().callbacks, 1);
        return;
    }
    let filter = filter();
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--exact",
            "the_filter_blocks_io_uring_and_init_falls_back",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env_remove("XURING_BACKEND");
    // SAFETY: as in `run_blocked`.
    unsafe { command.pre_exec(move || install(&filter)) };
    let out = command.output().expect("spawn");
    assert!(
        out.status.success(),
        "child: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn cat_prints_the_files_in_order() {
    let (a, b) = (temp("cat-a"), temp("cat-b"));
    let first: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&a, &first).expect("write a");
    std::fs::write(&b, b"the second file\n").expect("write b");
    let out = run_blocked(
        "cat",
        &[a.to_str().expect("utf-8"), b.to_str().expect("utf-8")],
    );
    let mut expected = first;
    expected.extend_from_slice(b"the second file\n");
    assert!(out.stdout == expected, "cat's output is the two files");
    let _ = std::fs::remove_file(a);
    let _ = std::fs::remove_file(b);
}

#[test]
fn cp_copies_every_byte() {
    let (from, to) = (temp("cp-from"), temp("cp-to"));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(&from, &data).expect("write source");
    let out = run_blocked(
        "cp",
        &[from.to_str().expect("utf-8"), to.to_str().expect("utf-8")],
    );
    assert_eq!(stdout(&out).trim(), format!("copied {} bytes", data.len()));
    assert!(std::fs::read(&to).expect("read copy") == data, "the copy");
    let _ = std::fs::remove_file(from);
    let _ = std::fs::remove_file(to);
    // And its own demo, which checks the copy itself.
    let out = run_blocked("cp", &[]);
    assert_eq!(
        stdout(&out).trim(),
        "copied 1048576 bytes and checked the copy"
    );
}

#[test]
fn echo_server_echoes_every_byte() {
    // The self-test's client checks every echoed byte and fails the program otherwise.
    let out = run_blocked("echo_server", &[]);
    let text = stdout(&out);
    assert!(text.contains("served 3 connections, echoed "), "{text}");
}

#[test]
fn tcp_client_gets_its_message_back() {
    let out = run_blocked("tcp_client", &[]);
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l == "hello from xuring"),
        "the echo came back: {text}"
    );
}

#[test]
fn timers_fire_in_order() {
    let out = run_blocked("timers", &[]);
    let text = stdout(&out);
    let names = [
        "1h (cancelled)",
        "the cancel",
        "10ms",
        "absolute 20ms",
        "30ms",
    ];
    let at = |name: &str| {
        text.lines()
            .position(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} did not fire: {text}"))
    };
    // The cancelled timer and its cancel first; the relative timers in their order (where the
    // absolute one falls depends on the time between reading the clock and submitting).
    assert_eq!((at(names[0]), at(names[1])), (0, 1), "{text}");
    assert!(at("10ms") < at("30ms"), "{text}");
    assert!(text.contains("ECANCELED"), "{text}");
    assert_eq!(text.lines().count(), 5, "{text}");
}
