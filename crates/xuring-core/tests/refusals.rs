//! Every op's refusals, per-op opcode checks and cancel routing, through the public
//! API, on the real kernel (at the native level and at 5.6).
#![cfg(not(miri))]

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use xuring_core::{
    Context, Errno, IoVecs, KernelLevel, Message, Offset, OpResult, Ring, RingError, RunCondition,
    Task, Thread, Timespec,
};

static RESULTS: Mutex<Vec<(u16, OpResult)>> = Mutex::new(Vec::new());
static SERIAL: Mutex<()> = Mutex::new(());

fn record(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let r = task.result.expect("a result");
    if let Some(fd) = r.created_fd() {
        // SAFETY: the op created `fd` and its result was delivered to us only: we own it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    RESULTS.lock().unwrap().push((task.msg(), r));
    Ok(())
}

fn ctx(msg: u16) -> Context {
    Context {
        cb: record,
        msg,
        userdata: None,
    }
}

fn take() -> Vec<(u16, OpResult)> {
    let mut v = std::mem::take(&mut *RESULTS.lock().unwrap());
    v.sort_by_key(|(m, _)| *m);
    v
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ring_at(level: KernelLevel) -> Ring {
    Ring::builder(64).kernel_level(level).build().expect("ring")
}

fn claimed_fds() -> Vec<RawFd> {
    (0..4096)
        .filter(|&fd| xuring_sys::runtime_fds::is_claimed(fd))
        .collect()
}

/// Submits every op that takes a descriptor, on `fd`; returns how many.
fn every_fd_op(ring: &mut Ring, fd: RawFd) -> u16 {
    let mut m = 0;
    let mut next = || {
        m += 1;
        ctx(m)
    };
    ring.read(fd, vec![0u8; 8], Offset::File, next());
    ring.write(fd, 1u64.to_ne_bytes().to_vec(), Offset::File, next());
    ring.readv(
        fd,
        IoVecs::new(vec![vec![0u8; 8].into()]),
        Offset::File,
        next(),
    );
    ring.writev(
        fd,
        IoVecs::new(vec![1u64.to_ne_bytes().to_vec().into()]),
        Offset::File,
        next(),
    );
    ring.close(fd, next());
    ring.shutdown(fd, libc::SHUT_RDWR, next());
    ring.fsync(fd, next());
    ring.fdatasync(fd, next());
    ring.connect(fd, "127.0.0.1:1".parse().unwrap(), next());
    ring.accept(fd, next());
    ring.recv(fd, vec![0u8; 8], 0, next());
    ring.send(fd, 1u64.to_ne_bytes().to_vec(), 0, next());
    ring.poll(fd, libc::POLLIN as u32, next());
    ring.splice(fd, None, 1, None, 8, 0, next());
    ring.splice(0, None, fd, None, 8, 0, next());
    ring.msg_ring(fd, Message { data: 1, value: 1 }, next());
    m
}

fn refuses_runtime_fds(level: KernelLevel) {
    let _s = serial();
    take();
    let mut ring = ring_at(level);
    let thread = Thread::spawn(&mut ring, 16).expect("spawn");
    let fds = claimed_fds();
    assert!(
        fds.len() >= 4,
        "two mailboxes: eventfd and ring fd each, got {fds:?}"
    );
    for &fd in &fds {
        let n = every_fd_op(&mut ring, fd);
        ring.run(RunCondition::UntilDone).expect("run");
        let got = take();
        assert_eq!(got.len(), n as usize);
        let not_refused: Vec<_> = got
            .iter()
            .filter(|(_, r)| r.err() != Some(Errno::EPERM))
            .collect();
        assert!(
            not_refused.is_empty(),
            "{level:?}: runtime fd {fd} reached the kernel: {not_refused:?}"
        );
    }
    thread.join().expect("join");
}

#[test]
fn every_fd_op_refuses_runtime_fds_native() {
    refuses_runtime_fds(KernelLevel::Native);
}

#[test]
fn every_fd_op_refuses_runtime_fds_5_6() {
    refuses_runtime_fds(KernelLevel::V5_6);
}

fn refuses_bad_arguments(level: KernelLevel) {
    let _s = serial();
    take();
    let mut ring = ring_at(level);
    let file = std::fs::File::open("/dev/zero").expect("/dev/zero");
    let fd = file.as_raw_fd();
    let ro: &'static [u8] = b"12345678";
    let big = Offset::At(i64::MAX as u64 + 1);
    ring.read(fd, ro, Offset::File, ctx(1));
    ring.readv(
        fd,
        IoVecs::new(vec![vec![0u8; 4].into(), ro.into()]),
        Offset::File,
        ctx(2),
    );
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
    ring.recv(a.as_raw_fd(), ro, 0, ctx(3));
    ring.read(fd, vec![0u8; 4], big, ctx(4));
    ring.write(fd, vec![0u8; 4], big, ctx(5));
    ring.readv(fd, IoVecs::new(vec![vec![0u8; 4].into()]), big, ctx(6));
    ring.writev(
        fd,
        IoVecs::new(vec![vec![0u8; 4].into()]),
        Offset::At(u64::MAX),
        ctx(7),
    );
    ring.msg_ring(
        ring.fd(),
        Message {
            data: 1 << 63,
            value: 0,
        },
        ctx(8),
    );
    ring.msg_ring(
        ring.fd(),
        Message {
            data: 1 << 62,
            value: 0,
        },
        ctx(9),
    );
    ring.run(RunCondition::UntilDone).expect("run");
    let got = take();
    let want = vec![
        (1, OpResult::Read(Err(Errno::EFAULT))),
        (2, OpResult::Readv(Err(Errno::EFAULT))),
        (3, OpResult::Recv(Err(Errno::EFAULT))),
        (4, OpResult::Read(Err(Errno::EINVAL))),
        (5, OpResult::Write(Err(Errno::EINVAL))),
        (6, OpResult::Readv(Err(Errno::EINVAL))),
        (7, OpResult::Writev(Err(Errno::EINVAL))),
        (8, OpResult::MsgRing(Err(Errno::EINVAL))),
        (9, OpResult::MsgRing(Err(Errno::EINVAL))),
    ];
    assert_eq!(got, want, "{level:?}");
    drop(b);
}

#[test]
fn bad_arguments_are_refused_native() {
    refuses_bad_arguments(KernelLevel::Native);
}

#[test]
fn bad_arguments_are_refused_5_6() {
    refuses_bad_arguments(KernelLevel::V5_6);
}

#[test]
fn ops_newer_than_5_6_are_not_submitted_at_5_6() {
    let _s = serial();
    take();
    let mut ring = ring_at(KernelLevel::V5_6);
    let (r, w) = common::pipe();
    let other = ring_at(KernelLevel::Native);
    ring.splice(r.raw(), None, w.raw(), None, 8, 0, ctx(1));
    ring.msg_ring(other.fd(), Message { data: 5, value: 1 }, ctx(2));
    ring.socket(libc::AF_INET, libc::SOCK_STREAM, 0, ctx(3));
    ring.run(RunCondition::UntilDone).expect("run");
    let got = take();
    assert_eq!(got[0], (1, OpResult::Splice(Err(Errno::EOPNOTSUPP))));
    // (`EPERM` where the other ring runs on the readiness executor: its fd is an epoll fd
    // the runtime owns, refused first.)
    let refused = if xuring_sys::runtime_fds::is_claimed(other.fd()) {
        Errno::EPERM
    } else {
        Errno::EOPNOTSUPP
    };
    assert_eq!(got[1], (2, OpResult::MsgRing(Err(refused))));
    assert!(
        matches!(got[2], (3, OpResult::Socket(Ok(_)))),
        "{:?}",
        got[2]
    );
    assert_eq!(other.stats().messages, 0);
}

fn cancel_routing(level: KernelLevel) {
    let _s = serial();
    take();
    let mut ring = ring_at(level);
    let t = ring.timer(
        Timespec::from_duration(std::time::Duration::from_secs(30)),
        ctx(1),
    );
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 1);
    t.cancel(&mut ring, ctx(2));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(
        take(),
        vec![
            (1, OpResult::Timer(Err(Errno::ECANCELED))),
            (2, OpResult::Cancel(Ok(())))
        ],
        "{level:?}"
    );
}

#[test]
fn cancel_of_a_timer_native() {
    cancel_routing(KernelLevel::Native);
}

#[test]
fn cancel_of_a_timer_5_6() {
    cancel_routing(KernelLevel::V5_6);
}

fn cancel_all_counts(level: KernelLevel, with_thread: bool) {
    let _s = serial();
    take();
    let mut ring = ring_at(level);
    let thread = with_thread.then(|| Thread::spawn(&mut ring, 16).expect("spawn"));
    let long = Timespec::from_duration(std::time::Duration::from_secs(30));
    let (r, _w) = common::pipe();
    for i in 0..3 {
        ring.timer(long, ctx(10 + i));
    }
    ring.poll(r.raw(), libc::POLLIN as u32, ctx(13));
    ring.read(r.raw(), vec![0u8; 4], Offset::File, ctx(14));
    ring.run(RunCondition::NoWait).expect("submit");
    ring.noop(ctx(20));
    ring.noop(ctx(21));
    ring.cancel_all(ctx(1));
    ring.run(RunCondition::UntilDone).expect("run");
    let got = take();
    assert_eq!(
        got[0],
        (1, OpResult::CancelAll(Ok(7))),
        "{level:?} thread {with_thread}: {got:?}"
    );
    assert!(
        got[1..]
            .iter()
            .all(|(_, r)| r.err() == Some(Errno::ECANCELED)),
        "{got:?}"
    );
    if let Some(t) = thread {
        t.join().expect("join");
    }
}

#[test]
fn cancel_all_counts_native() {
    cancel_all_counts(KernelLevel::Native, false);
    cancel_all_counts(KernelLevel::Native, true);
}

#[test]
fn cancel_all_counts_5_6() {
    cancel_all_counts(KernelLevel::V5_6, false);
    cancel_all_counts(KernelLevel::V5_6, true);
}
