//! The same raw SQEs on both executors, the kernel's io_uring and the readiness executor
//! (`RawRing::emulated`), with the same expectations: waits on one descriptor for different
//! events, cancels by `user_data`, by fd and of everything, timers in deadline order and a
//! timer removed, `enter`'s deadline, `MSG_WAITALL`, the caller's `MSG_DONTWAIT`, a CQ
//! overflow without losing a completion, connect/accept on blocking sockets, and descriptor
//! numbers closed and reused behind the executor's back. The tests run one at a time: one
//! counts on getting the lowest free descriptor number.
#![cfg(not(miri))]

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use xuring_sys::abi::{__kernel_timespec, io_uring_sqe};
use xuring_sys::{
    CancelFlags, EnterFlags, Errno, Executor, KernelLevel, Opcode, RawRing, SetupOptions,
    TimeoutFlags,
};

mod common;

/// A ring of each executor (only the readiness executor's where io_uring is unavailable).
fn rings(entries: u32) -> Vec<RawRing> {
    let options = SetupOptions::new(entries, KernelLevel::Native);
    let emulated = RawRing::emulated(&options).expect("epoll works everywhere");
    assert_eq!(emulated.executor(), Executor::Epoll);
    if !common::kernel_io_uring() {
        return vec![emulated];
    }
    let kernel = RawRing::kernel(&options).expect("io_uring works here");
    vec![kernel, emulated]
}

fn sqe(opcode: Opcode, fd: i32, user_data: u64) -> io_uring_sqe {
    io_uring_sqe {
        opcode: opcode as u8,
        fd,
        user_data,
        ..io_uring_sqe::ZEROED
    }
}

/// Pushes and submits `sqes`, without waiting.
///
/// # Safety
///
/// Every address in `sqes` must stay valid until its completion is reaped.
unsafe fn submit(ring: &mut RawRing, sqes: &[io_uring_sqe]) {
    for s in sqes {
        // SAFETY: the caller's contract.
        unsafe { ring.sq().push(s) }.expect("room");
    }
    ring.sq().publish();
    let n = sqes.len() as u32;
    assert_eq!(ring.enter(n, 0, EnterFlags::GETEVENTS, None), Ok(n));
}

/// Waits until `count` completions arrived (bounded: 10 s), and returns them in order.
fn wait(ring: &mut RawRing, count: usize) -> Vec<(u64, i32)> {
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < count {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "got only {got:?}"
        );
        let ts = __kernel_timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        match ring.enter(0, 1, EnterFlags::GETEVENTS, Some(&ts)) {
            Ok(_) | Err(Errno::ETIME | Errno::EINTR) => {}
            Err(e) => panic!("enter: {e}"),
        }
        ring.cq().reap(|cqe| got.push((cqe.user_data, cqe.res)));
    }
    got
}

/// Nothing more arrives on a quick look.
fn nothing_more(ring: &mut RawRing) {
    let _ = ring.enter(0, 0, EnterFlags::GETEVENTS, None);
    let mut got = Vec::new();
    ring.cq().reap(|cqe| got.push(cqe.user_data));
    assert!(got.is_empty(), "unexpected completions {got:?}");
}

/// A `RECV` of `buf.len()` bytes into `buf` on `fd`.
fn recv_into(fd: i32, user_data: u64, buf: &mut [u8]) -> io_uring_sqe {
    let mut r = sqe(Opcode::Recv, fd, user_data);
    r.addr = buf.as_mut_ptr() as u64;
    r.len = buf.len() as u32;
    r
}

fn pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().expect("socketpair")
}

fn sorted(mut v: Vec<(u64, i32)>) -> Vec<(u64, i32)> {
    v.sort_unstable();
    v
}

#[test]
fn two_waits_on_one_socket_both_complete_when_it_becomes_readable() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let (a, mut b) = pair();
        // The receive takes 2 of the 5 bytes: the socket stays readable for the poll, whichever
        // the kernel wakes first.
        let mut buf = [0u8; 2];
        let recv = recv_into(a.as_raw_fd(), 1, &mut buf);
        let mut poll = sqe(Opcode::PollAdd, a.as_raw_fd(), 2);
        poll.op_flags = libc::POLLIN as u32;
        // A poll for writability on the same socket completes at once.
        let mut poll_out = sqe(Opcode::PollAdd, a.as_raw_fd(), 3);
        poll_out.op_flags = libc::POLLOUT as u32;
        // SAFETY: `buf` outlives the wait below.
        unsafe { submit(&mut ring, &[recv, poll, poll_out]) };
        assert_eq!(wait(&mut ring, 1), [(3, libc::POLLOUT as i32)]);
        nothing_more(&mut ring);
        b.write_all(b"hello").expect("write");
        let got = sorted(wait(&mut ring, 2));
        assert_eq!(
            got,
            [(1, 2), (2, libc::POLLIN as i32)],
            "{:?}",
            ring.executor()
        );
        assert_eq!(&buf, b"he");
    }
}

#[test]
fn cancels_by_user_data_by_fd_and_of_everything() {
    let _serial = common::serial();
    for mut ring in rings(16) {
        let (a, _a_peer) = pair();
        let (c, _c_peer) = pair();
        let mut bufs = [[0u8; 8]; 4];
        let mut recvs = Vec::new();
        for (i, buf) in bufs.iter_mut().enumerate() {
            let fd = if i < 3 { a.as_raw_fd() } else { c.as_raw_fd() };
            recvs.push(recv_into(fd, 10 + i as u64, buf));
        }
        // SAFETY: `bufs` outlives every completion waited for below.
        unsafe { submit(&mut ring, &recvs) };
        nothing_more(&mut ring);
        // One by user_data.
        let mut one = sqe(Opcode::AsyncCancel, -1, 100);
        one.addr = 10;
        // SAFETY: a cancel names no memory.
        unsafe { submit(&mut ring, &[one]) };
        let got = sorted(wait(&mut ring, 2));
        assert_eq!(got, [(10, -libc::ECANCELED), (100, 0)]);
        if !ring
            .features()
            .cancel
            .contains(CancelFlags::FD | CancelFlags::ALL)
        {
            // Before 5.19: no cancel by fd or of everything on this kernel.
            let mut rest = Vec::new();
            for (i, id) in (11..14).enumerate() {
                let mut one = sqe(Opcode::AsyncCancel, -1, 200 + i as u64);
                one.addr = id;
                rest.push(one);
            }
            // SAFETY: cancels name no memory.
            unsafe { submit(&mut ring, &rest) };
            assert_eq!(wait(&mut ring, 6).len(), 6);
            continue;
        }
        // Both others on `a`, by fd.
        let mut by_fd = sqe(Opcode::AsyncCancel, a.as_raw_fd(), 101);
        by_fd.op_flags = (CancelFlags::FD | CancelFlags::ALL).bits();
        // SAFETY: as above.
        unsafe { submit(&mut ring, &[by_fd]) };
        let got = sorted(wait(&mut ring, 3));
        assert_eq!(
            got,
            [(11, -libc::ECANCELED), (12, -libc::ECANCELED), (101, 2)]
        );
        // A miss.
        let mut miss = sqe(Opcode::AsyncCancel, -1, 102);
        miss.addr = 10;
        // SAFETY: as above.
        unsafe { submit(&mut ring, &[miss]) };
        assert_eq!(wait(&mut ring, 1), [(102, -libc::ENOENT)]);
        // Everything.
        let mut all = sqe(Opcode::AsyncCancel, -1, 103);
        all.op_flags = (CancelFlags::ANY | CancelFlags::ALL).bits();
        // SAFETY: as above.
        unsafe { submit(&mut ring, &[all]) };
        let got = sorted(wait(&mut ring, 2));
        assert_eq!(got, [(13, -libc::ECANCELED), (103, 1)]);
        nothing_more(&mut ring);
    }
}

#[test]
fn timers_fire_in_deadline_order_never_early_and_one_is_removed() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let ms = |n: i64| __kernel_timespec {
            tv_sec: 0,
            tv_nsec: n * 1_000_000,
        };
        let now = xuring_sys::syscall::monotonic_now().expect("clock");
        let absolute = __kernel_timespec {
            tv_sec: now.tv_sec + 1,
            tv_nsec: now.tv_nsec,
        };
        let times = [ms(30), ms(10), absolute, ms(20)];
        let mut sqes = Vec::new();
        for (i, t) in times.iter().enumerate() {
            let mut s = sqe(Opcode::Timeout, -1, i as u64);
            s.addr = core::ptr::from_ref(t) as u64;
            s.len = 1;
            if i == 2 {
                s.op_flags = TimeoutFlags::ABS.bits();
            }
            sqes.push(s);
        }
        let start = Instant::now();
        // SAFETY: `times` outlives every completion waited for below.
        unsafe { submit(&mut ring, &sqes) };
        let mut remove = sqe(Opcode::TimeoutRemove, -1, 9);
        remove.addr = 2;
        // SAFETY: a timeout removal names no memory.
        unsafe { submit(&mut ring, &[remove]) };
        let first = wait(&mut ring, 2);
        assert_eq!(sorted(first), [(2, -libc::ECANCELED), (9, 0)]);
        let mut fired = Vec::new();
        while fired.len() < 3 {
            for (id, res) in wait(&mut ring, 1) {
                assert_eq!(res, -libc::ETIME);
                let due = [30, 10, 0, 20][id as usize];
                assert!(
                    start.elapsed() >= Duration::from_millis(due),
                    "timer {id} early on {:?}",
                    ring.executor()
                );
                fired.push(id);
            }
        }
        assert_eq!(fired, [1, 3, 0]);
    }
}

#[test]
fn an_enter_deadline_passes_with_etime() {
    let _serial = common::serial();
    for mut ring in rings(4) {
        let ts = __kernel_timespec {
            tv_sec: 0,
            tv_nsec: 20_000_000,
        };
        let start = Instant::now();
        // EINTR is the caller's to retry (io_uring's task work interrupts a wait too).
        let got = loop {
            match ring.enter(0, 1, EnterFlags::GETEVENTS, Some(&ts)) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        };
        assert_eq!(got, Err(Errno::ETIME), "{:?}", ring.executor());
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}

#[test]
fn waitall_gathers_every_byte_and_dontwait_does_not_wait() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let (a, mut b) = pair();
        let mut buf = [0u8; 10];
        let mut recv = recv_into(a.as_raw_fd(), 1, &mut buf);
        recv.op_flags = libc::MSG_WAITALL as u32;
        // SAFETY: `buf` outlives the wait below.
        unsafe { submit(&mut ring, &[recv]) };
        b.write_all(b"0123").expect("write");
        // io_uring retries a short MSG_WAITALL receive from 5.18 on (MSG_RING, the same
        // release, is the probe's nearest mark); before, the kernel's answer depends on
        // whether the receive ran inline or in a worker.
        let retries =
            ring.executor() == Executor::Epoll || ring.features().supports(Opcode::MsgRing);
        if retries {
            nothing_more(&mut ring);
        }
        b.write_all(b"456789").expect("write");
        let got = wait(&mut ring, 1);
        if retries {
            assert_eq!(got, [(1, 10)]);
            assert_eq!(&buf, b"0123456789");
        }
        let mut dontwait = recv_into(a.as_raw_fd(), 2, &mut buf);
        dontwait.op_flags = libc::MSG_DONTWAIT as u32;
        // SAFETY: as above.
        unsafe { submit(&mut ring, &[dontwait]) };
        assert_eq!(wait(&mut ring, 1), [(2, -libc::EAGAIN)]);
    }
}

#[test]
fn a_full_cq_loses_no_completion() {
    let _serial = common::serial();
    for mut ring in rings(4) {
        let cq = ring.cq().capacity() as u64;
        let total = cq * 3;
        let mut next = 0;
        while next < total {
            let batch: Vec<io_uring_sqe> = (next..(next + 4).min(total))
                .map(|i| sqe(Opcode::Nop, -1, i))
                .collect();
            next += batch.len() as u64;
            // SAFETY: NOPs name no memory.
            unsafe { submit(&mut ring, &batch) };
        }
        let got = wait(&mut ring, total as usize);
        let ids: Vec<u64> = got.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, (0..total).collect::<Vec<_>>(), "{:?}", ring.executor());
        nothing_more(&mut ring);
    }
}

#[test]
fn connect_and_accept_on_blocking_sockets() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = match listener.local_addr().expect("addr") {
            std::net::SocketAddr::V4(v4) => v4,
            std::net::SocketAddr::V6(_) => unreachable!("bound to IPv4"),
        };
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: `fd` is a new descriptor nothing else owns.
        let client: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let mut peer: libc::sockaddr_storage = unsafe_zeroed();
        let mut peer_len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let mut accept = sqe(Opcode::Accept, listener.as_raw_fd(), 1);
        accept.addr = (&raw mut peer) as u64;
        accept.off = (&raw mut peer_len) as u64;
        accept.op_flags = libc::SOCK_CLOEXEC as u32;
        let mut connect = sqe(Opcode::Connect, client.as_raw_fd(), 2);
        connect.addr = (&raw const sin) as u64;
        connect.off = size_of::<libc::sockaddr_in>() as u64;
        // SAFETY: `peer`, `peer_len` and `sin` outlive the wait below.
        unsafe { submit(&mut ring, &[accept, connect]) };
        let got = sorted(wait(&mut ring, 2));
        assert_eq!(got[1], (2, 0), "connected");
        assert_eq!(got[0].0, 1);
        assert!(got[0].1 >= 0, "accepted: {}", got[0].1);
        assert_eq!(i32::from(peer.ss_family), libc::AF_INET);
        // SAFETY: the accepted descriptor is ours.
        drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(got[0].1) });
        // io_uring leaves the sockets as they were; the readiness executor makes them
        // non-blocking for good (restoring the flag would race with another ring sharing the
        // listener).
        let nonblocking = ring.executor() == Executor::Epoll;
        for fd in [listener.as_raw_fd(), client.as_raw_fd()] {
            // SAFETY: F_GETFL on a live descriptor.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            assert_eq!(
                flags & libc::O_NONBLOCK != 0,
                nonblocking,
                "{:?}",
                ring.executor()
            );
        }
    }
}

/// An all-zero `T` for the plain C structs above.
fn unsafe_zeroed<T: Copy>() -> T {
    // SAFETY: only used for `sockaddr_storage`, for which all-zero bytes are valid.
    unsafe { core::mem::zeroed() }
}

#[test]
fn a_receive_after_a_short_one_gets_what_arrived_in_between() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let (a, mut b) = pair();
        let mut buf = [0u8; 8];
        let recv = |user_data, buf: &mut [u8; 8]| recv_into(a.as_raw_fd(), user_data, buf);
        b.write_all(b"abc").expect("write");
        // SAFETY: `buf` outlives the wait below.
        unsafe { submit(&mut ring, &[recv(1, &mut buf)]) };
        assert_eq!(wait(&mut ring, 1), [(1, 3)], "short: the socket is empty");
        // Data arrives while no receive waits; the next one must see it at once.
        b.write_all(b"defgh").expect("write");
        // SAFETY: as above.
        unsafe { submit(&mut ring, &[recv(2, &mut buf)]) };
        assert_eq!(wait(&mut ring, 1), [(2, 5)], "{:?}", ring.executor());
        assert_eq!(&buf[..5], b"defgh");
    }
}

#[test]
fn a_descriptor_number_closed_and_reused_elsewhere_still_gets_its_events() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let (a, _a_peer) = pair();
        let number = a.as_raw_fd();
        let mut buf = [0u8; 8];
        let recv = recv_into(number, 1, &mut buf);
        // SAFETY: `buf` outlives every wait below.
        unsafe { submit(&mut ring, &[recv]) };
        let mut cancel = sqe(Opcode::AsyncCancel, -1, 2);
        cancel.addr = 1;
        // SAFETY: a cancel names no memory.
        unsafe { submit(&mut ring, &[cancel]) };
        assert_eq!(sorted(wait(&mut ring, 2)), [(1, -libc::ECANCELED), (2, 0)]);
        // Closed outside the ring; a new socket takes the same number.
        drop(a);
        let (c, mut c_peer) = pair();
        assert_eq!(c.as_raw_fd(), number, "the lowest free number is reused");
        let recv = recv_into(number, 3, &mut buf);
        // SAFETY: as above.
        unsafe { submit(&mut ring, &[recv]) };
        c_peer.write_all(b"again").expect("write");
        assert_eq!(wait(&mut ring, 1), [(3, 5)], "{:?}", ring.executor());
        assert_eq!(&buf[..5], b"again");
    }
}

#[test]
fn closing_a_descriptor_under_a_waiting_op_ends_the_wait_on_epoll() {
    let _serial = common::serial();
    // io_uring keeps the file open for the op (it waits on); the readiness executor cannot,
    // and completes the op with the descriptor's error instead of waiting forever.
    let options = SetupOptions::new(8, KernelLevel::Native);
    let mut ring = RawRing::emulated(&options).expect("epoll");
    let (a, _a_peer) = pair();
    let mut buf = [0u8; 8];
    let recv = recv_into(a.as_raw_fd(), 1, &mut buf);
    // SAFETY: `buf` outlives the wait below.
    unsafe { submit(&mut ring, &[recv]) };
    nothing_more(&mut ring);
    drop(a);
    assert_eq!(wait(&mut ring, 1), [(1, -libc::EBADF)]);
}

#[test]
fn work_that_completes_at_once_does_not_starve_a_waiting_socket() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let (a, mut b) = pair();
        let mut buf = [0u8; 8];
        let recv = recv_into(a.as_raw_fd(), 1, &mut buf);
        // SAFETY: `buf` outlives the loop below.
        unsafe { submit(&mut ring, &[recv]) };
        nothing_more(&mut ring);
        b.write_all(b"x").expect("write");
        // A chain of NOPs, one per enter, each enough for the enter to return at once.
        let mut seen_recv = false;
        for i in 0..1000u64 {
            // SAFETY: a NOP names no memory.
            unsafe { ring.sq().push(&sqe(Opcode::Nop, -1, 100 + i)) }.expect("room");
            ring.sq().publish();
            let _ = ring.enter(1, 1, EnterFlags::GETEVENTS, None);
            ring.cq().reap(|cqe| seen_recv |= cqe.user_data == 1);
            if seen_recv {
                break;
            }
        }
        assert!(
            seen_recv,
            "the receive completed while NOPs kept completing"
        );
    }
}

#[test]
fn waitall_on_datagrams_takes_one_datagram() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().expect("pair");
        b.send(b"abc").expect("send");
        b.send(b"def").expect("send");
        let mut buf = [0u8; 6];
        let mut recv = recv_into(a.as_raw_fd(), 1, &mut buf);
        recv.op_flags = libc::MSG_WAITALL as u32;
        // SAFETY: `buf` outlives the wait below.
        unsafe { submit(&mut ring, &[recv]) };
        assert_eq!(wait(&mut ring, 1), [(1, 3)], "{:?}", ring.executor());
        assert_eq!(&buf[..3], b"abc");
    }
}

#[test]
fn timers_due_together_all_fire_in_submission_order_on_epoll() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let now = xuring_sys::syscall::monotonic_now().expect("clock");
        let at = __kernel_timespec {
            tv_sec: now.tv_sec,
            tv_nsec: now.tv_nsec,
        };
        let timers: Vec<io_uring_sqe> = (1..=4)
            .map(|id| {
                let mut s = sqe(Opcode::Timeout, -1, id);
                s.addr = core::ptr::from_ref(&at) as u64;
                s.len = 1;
                s.op_flags = TimeoutFlags::ABS.bits();
                s
            })
            .collect();
        // SAFETY: `at` outlives the wait below.
        unsafe { submit(&mut ring, &timers) };
        let mut got: Vec<u64> = wait(&mut ring, 4).iter().map(|&(id, _)| id).collect();
        if ring.executor() == Executor::IoUring {
            // The kernel promises no order among timers due together (6.1 fires an expired
            // batch last first): all of them, once.
            got.sort_unstable();
        }
        assert_eq!(got, [1, 2, 3, 4], "{:?}", ring.executor());
    }
}

#[test]
fn an_op_waiting_on_a_number_the_ring_closes_ends_with_ebadf_on_epoll() {
    // io_uring keeps the op on its file; the readiness executor waits on numbers, and ends it
    // rather than ever handing it the data of a file that reuses the number.
    let _serial = common::serial();
    let options = SetupOptions::new(8, KernelLevel::Native);
    let mut ring = RawRing::emulated(&options).expect("epoll");
    let (a, _a_peer) = pair();
    let number = std::os::fd::IntoRawFd::into_raw_fd(a);
    let mut buf = [0u8; 8];
    let recv = recv_into(number, 1, &mut buf);
    let close = sqe(Opcode::Close, number, 2);
    // SAFETY: `buf` outlives the wait below; the close takes over `number`.
    unsafe { submit(&mut ring, &[recv, close]) };
    assert_eq!(sorted(wait(&mut ring, 2)), [(1, -libc::EBADF), (2, 0)]);
}

#[test]
fn polls_for_the_normal_data_bits_complete() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let (a, mut b) = pair();
        let mut rdnorm = sqe(Opcode::PollAdd, a.as_raw_fd(), 1);
        rdnorm.op_flags = libc::POLLRDNORM as u32;
        // SAFETY: polls name no memory.
        unsafe { submit(&mut ring, &[rdnorm]) };
        nothing_more(&mut ring);
        b.write_all(b"x").expect("write");
        let got = wait(&mut ring, 1);
        assert_eq!(got[0].0, 1);
        assert_ne!(
            got[0].1 & libc::POLLRDNORM as i32,
            0,
            "{:?}",
            ring.executor()
        );
    }
}

#[test]
fn datagrams_received_one_by_one_all_arrive() {
    let _serial = common::serial();
    for mut ring in rings(8) {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().expect("pair");
        let mut buf = [0u8; 16];
        // A first receive waits, so the socket is registered before the burst.
        let recv = |id: u64, buf: &mut [u8; 16]| recv_into(a.as_raw_fd(), id, buf);
        // SAFETY: `buf` outlives every wait below.
        unsafe { submit(&mut ring, &[recv(0, &mut buf)]) };
        for i in 0..20u8 {
            b.send(&[i; 3]).expect("send");
        }
        assert_eq!(wait(&mut ring, 1), [(0, 3)]);
        for id in 1..20 {
            // SAFETY: as above.
            unsafe { submit(&mut ring, &[recv(id, &mut buf)]) };
            assert_eq!(wait(&mut ring, 1), [(id, 3)], "{:?}", ring.executor());
            assert_eq!(buf[..3], [id as u8; 3]);
        }
    }
}
