//! `xuring_std::net` on the real kernel, against `std` peers on loopback (IPv4 and IPv6):
//! connect, refused connections, UDP, the accept loop (limit, cancel, IPv6), whole-buffer
//! transfers with real short sends and receives, a peer that goes away, and cancellation.
//! Every test checks that no job is left behind and (where it counts fds) that none leaked.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::RawFd;
use std::thread;
use std::time::Duration;

use xuring_core::{Context, Errno, IoBuf, Ring, RingError, RingStats, Task, Timespec};
use xuring_std::net::{self, AcceptEvent};
use xuring_std::{Done, Error, Handle, Then, Transfer};

mod common;
use common::{keep, keep_cb, kept, one, open_fds, open_fds_settled, pattern, run_bounded, serial};

const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

fn ring() -> Ring {
    Ring::init(16).expect("ring")
}

/// Whether this machine has an IPv6 loopback. Call it only while holding `serial()`: the
/// first call binds a probe socket, and an fd that comes and goes in another test's window
/// would skew that test's fd count.
fn ipv6() -> bool {
    static HAS_IPV6: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *HAS_IPV6.get_or_init(|| TcpListener::bind("[::1]:0").is_ok());
    if !ok {
        eprintln!("skipped: no IPv6 loopback on this machine");
    }
    ok
}

/// Whether a test on `bind` can run here: IPv4 always, IPv6 where the loopback has it.
/// Hold `serial()` (see `ipv6`).
fn family_available(bind: &str) -> bool {
    !bind.starts_with('[') || ipv6()
}

/// What the client chain of `connect_send_recv` saw, step by step.
#[derive(Debug, PartialEq)]
enum Seen {
    Connected,
    Sent(usize),
    Received(Vec<u8>),
}

fn on_connected(ring: &mut Ring, done: Done<Result<RawFd, Errno>>) -> Result<(), RingError> {
    let fd = done.result.map_err(RingError::callback)?;
    keep(Seen::Connected);
    net::send_all(ring, fd, b"hello", Then::new(on_sent));
    Ok(())
}

fn on_sent(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
    let t = done.result;
    t.status.map_err(RingError::callback)?;
    keep(Seen::Sent(t.len));
    net::recv_exact(ring, t.fd, vec![0u8; 6], Then::new(on_received));
    Ok(())
}

fn on_received(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
    let t = done.result;
    t.status.map_err(RingError::callback)?;
    keep(Seen::Received(t.buf.into_vec().expect("vec")));
    ring.close(t.fd, Context::default());
    Ok(())
}

fn connect_send_recv(bind: &str) {
    let _serial = serial();
    if !family_available(bind) {
        return;
    }
    let before = open_fds();
    let listener = TcpListener::bind(bind).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(TIMEOUT).expect("timeout");
        let mut got = [0u8; 5];
        s.read_exact(&mut got).expect("read");
        s.write_all(b"world!").expect("write");
        got
    });
    let mut ring = ring();
    net::tcp_connect_to_addr(&mut ring, addr, Then::new(on_connected));
    run_bounded(&mut ring);
    assert_eq!(&peer.join().expect("peer"), b"hello");
    assert_eq!(
        kept::<Seen>(),
        [
            Seen::Connected,
            Seen::Sent(5),
            Seen::Received(b"world!".to_vec())
        ]
    );
    drop(ring);
    assert_eq!(open_fds_settled(before), before, "the socket was closed");
}

#[test]
fn tcp_connect_then_send_all_and_recv_exact_over_ipv4() {
    connect_send_recv("127.0.0.1:0");
}

#[test]
fn tcp_connect_then_send_all_and_recv_exact_over_ipv6() {
    connect_send_recv("[::1]:0");
}

/// A port that was free a moment ago: bind, read the port, close.
fn closed_port(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind(format!("{ip}:0")).expect("bind");
    listener.local_addr().expect("addr")
}

#[test]
fn a_refused_connection_is_reported_and_its_socket_closed() {
    let _serial = serial();
    let mut ring = ring();
    let before = open_fds();
    let mut targets = vec![closed_port("127.0.0.1")];
    if ipv6() {
        targets.push(closed_port("[::1]"));
    }
    for addr in &targets {
        net::tcp_connect_to_addr(&mut ring, *addr, Then::new(keep_cb));
    }
    run_bounded(&mut ring);
    let results = kept::<Result<RawFd, Errno>>();
    assert_eq!(results.len(), targets.len());
    for r in results {
        assert_eq!(r, Err(Errno::ECONNREFUSED));
    }
    assert_eq!(
        open_fds(),
        before,
        "the sockets were closed before reporting"
    );
}

#[test]
fn the_callers_msg_and_userdata_come_back_untouched() {
    let _serial = serial();
    fn on_done(_ring: &mut Ring, done: Done<Result<RawFd, Errno>>) -> Result<(), RingError> {
        keep((done.msg, done.userdata.map(|p| p.as_ptr().addr())));
        keep(done.result);
        Ok(())
    }
    let mut ring = ring();
    let mut state = 0u64;
    let userdata = Some(std::ptr::NonNull::from(&mut state).cast());
    net::tcp_connect_to_addr(
        &mut ring,
        closed_port("127.0.0.1"),
        Then::new(on_done).with_msg(4242).with_userdata(userdata),
    );
    run_bounded(&mut ring);
    assert_eq!(
        kept::<(u16, Option<usize>)>(),
        [(4242, userdata.map(|p| p.as_ptr().addr()))]
    );
    assert_eq!(kept::<Result<RawFd, Errno>>(), [Err(Errno::ECONNREFUSED)]);
}

#[test]
fn cancelling_a_connect_reports_ecanceled_and_leaks_nothing() {
    let _serial = serial();
    let mut ring = ring();
    let before = open_fds();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let handle = net::tcp_connect_to_addr(
        &mut ring,
        listener.local_addr().expect("addr"),
        Then::new(keep_cb),
    );
    assert!(handle.is_active());
    assert!(handle.cancel(&mut ring));
    run_bounded(&mut ring);
    assert_eq!(kept::<Result<RawFd, Errno>>(), [Err(Errno::ECANCELED)]);
    assert!(!handle.is_active());
    assert!(
        !handle.cancel(&mut ring),
        "a finished job's handle is stale"
    );
    drop(listener);
    assert!(open_fds_settled(before) <= before, "no fd leaked");
}

/// A job's handle cancels on the job's ring only: on another ring whose task has the same id
/// (fresh rings hand out the same ids), it cancels nothing.
#[test]
fn a_job_handle_cancels_nothing_on_another_ring() {
    let _serial = serial();
    fn on_read(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        keep(task.result);
        Ok(())
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut job_ring = ring();
    let handle = net::tcp_connect_to_addr(
        &mut job_ring,
        listener.local_addr().expect("addr"),
        Then::new(keep_cb),
    );
    // The job's first op is the first task of a fresh ring; so is this read.
    let mut other = ring();
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live array of two ints for `pipe` to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let read = other.read(
        fds[0],
        vec![0u8; 8],
        xuring_core::Offset::File,
        Context {
            cb: on_read,
            ..Context::default()
        },
    );
    assert_eq!(
        read.id(),
        ring().noop(Context::default()).id(),
        "same first id"
    );
    other
        .run(xuring_core::RunCondition::NoWait)
        .expect("submit");
    assert!(handle.cancel(&mut other), "the job is live");
    // SAFETY: writing 4 bytes from a live array to our own pipe.
    let wrote = unsafe { libc::write(fds[1], b"ping".as_ptr().cast(), 4) };
    assert_eq!(wrote, 4);
    other
        .run(xuring_core::RunCondition::UntilDone)
        .expect("run");
    assert_eq!(
        kept::<Option<xuring_core::OpResult>>(),
        [Some(xuring_core::OpResult::Read(Ok(4)))],
        "the other ring's read was not cancelled"
    );
    // The job itself was marked cancelled and finishes on its own ring.
    run_bounded(&mut job_ring);
    assert!(!handle.is_active());
    let _ = kept::<Result<RawFd, Errno>>();
    for fd in fds {
        // SAFETY: our own pipe's fds, each closed once.
        unsafe { libc::close(fd) };
    }
}

fn udp_round_trip(bind: &str) {
    fn on_connected(ring: &mut Ring, done: Done<Result<RawFd, Errno>>) -> Result<(), RingError> {
        let fd = done.result.map_err(RingError::callback)?;
        net::send_all(ring, fd, b"ping", Then::new(on_sent));
        Ok(())
    }
    fn on_sent(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
        let t = done.result;
        t.status.map_err(RingError::callback)?;
        net::recv_some(ring, t.fd, vec![0u8; 64], Then::new(on_received));
        Ok(())
    }
    fn on_received(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
        let t = done.result;
        keep(t.status);
        let buf = t.buf.into_vec().expect("vec");
        keep(buf[..t.len].to_vec());
        ring.close(t.fd, Context::default());
        Ok(())
    }
    let _serial = serial();
    if !family_available(bind) {
        return;
    }
    let before = open_fds();
    let peer = UdpSocket::bind(bind).expect("bind");
    peer.set_read_timeout(TIMEOUT).expect("timeout");
    let addr = peer.local_addr().expect("addr");
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (n, from) = peer.recv_from(&mut buf).expect("recv");
        peer.send_to(b"pong", from).expect("send");
        buf[..n].to_vec()
    });
    let mut ring = ring();
    net::udp_connect_to_addr(&mut ring, addr, Then::new(on_connected));
    run_bounded(&mut ring);
    assert_eq!(echo.join().expect("peer"), b"ping");
    assert_eq!(kept::<Result<(), Error>>(), [Ok(())]);
    assert_eq!(kept::<Vec<u8>>(), [b"pong".to_vec()]);
    drop(ring);
    assert!(open_fds_settled(before) <= before, "no fd leaked");
}

#[test]
fn udp_connect_send_and_receive_over_ipv4() {
    udp_round_trip("127.0.0.1:0");
}

#[test]
fn udp_connect_send_and_receive_over_ipv6() {
    udp_round_trip("[::1]:0");
}

#[test]
fn udp_to_nobody_connects_but_the_receive_is_refused() {
    fn on_connected(ring: &mut Ring, done: Done<Result<RawFd, Errno>>) -> Result<(), RingError> {
        let fd = done.result.map_err(RingError::callback)?;
        net::send_all(ring, fd, b"anyone?", Then::new(on_sent));
        Ok(())
    }
    fn on_sent(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
        net::recv_some(ring, done.result.fd, vec![0u8; 8], Then::new(on_received));
        Ok(())
    }
    fn on_received(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
        keep(done.result.status);
        ring.close(done.result.fd, Context::default());
        Ok(())
    }
    let _serial = serial();
    let before = open_fds();
    let port = UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut ring = ring();
    net::udp_connect_to_addr(&mut ring, port, Then::new(on_connected));
    run_bounded(&mut ring);
    assert_eq!(
        kept::<Result<(), Error>>(),
        [Err(Error::Os(Errno::ECONNREFUSED))]
    );
    drop(ring);
    assert!(open_fds_settled(before) <= before, "no fd leaked");
}

// ----- accept loop -----

fn on_event(ring: &mut Ring, done: Done<AcceptEvent>) -> Result<(), RingError> {
    match done.result {
        AcceptEvent::Connected(accepted) => {
            keep(accepted.peer);
            net::send_all(ring, accepted.fd, b"welcome", Then::new(close_after));
        }
        AcceptEvent::Failed(e) => keep(Err::<(), Errno>(e)),
        AcceptEvent::Stopped { listener, result } => {
            assert!(
                listener.local_addr().is_ok(),
                "the listener comes back open"
            );
            keep(result);
        }
    }
    Ok(())
}

fn close_after(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
    ring.close(done.result.fd, Context::default());
    Ok(())
}

fn clients(addr: SocketAddr, n: usize) -> thread::JoinHandle<Vec<Vec<u8>>> {
    thread::spawn(move || {
        (0..n)
            .map(|_| {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(TIMEOUT).expect("timeout");
                let mut got = Vec::new();
                s.read_to_end(&mut got).expect("read");
                got
            })
            .collect()
    })
}

fn accept_n(bind: &str, n: u64) {
    let _serial = serial();
    if !family_available(bind) {
        return;
    }
    let before = open_fds();
    let mut ring = ring();
    let (addr, handle) = net::tcp_listen(
        &mut ring,
        bind.parse().expect("addr"),
        Some(n),
        Then::new(on_event),
    )
    .expect("listen");
    assert_ne!(addr.port(), 0);
    let clients = clients(addr, n as usize);
    run_bounded(&mut ring);
    let got = clients.join().expect("clients");
    assert_eq!(got, vec![b"welcome".to_vec(); n as usize]);
    let peers = kept::<Option<SocketAddr>>();
    assert_eq!(peers.len(), n as usize);
    for peer in peers {
        assert_eq!(peer.map(|p| p.ip()), Some(addr.ip()));
    }
    assert_eq!(
        kept::<Result<(), Errno>>(),
        [Ok(())],
        "one Stopped, at the limit"
    );
    assert!(!handle.is_active());
    drop(ring);
    assert_eq!(
        open_fds_settled(before),
        before,
        "listener and connections closed"
    );
}

#[test]
fn the_accept_loop_serves_its_limit_then_stops_over_ipv4() {
    accept_n("127.0.0.1:0", 3);
}

#[test]
fn the_accept_loop_serves_its_limit_then_stops_over_ipv6() {
    accept_n("[::1]:0", 2);
}

#[test]
fn an_accept_loop_with_a_limit_of_zero_stops_at_once() {
    let _serial = serial();
    let mut ring = ring();
    net::tcp_listen(
        &mut ring,
        "127.0.0.1:0".parse().expect("addr"),
        Some(0),
        Then::new(on_event),
    )
    .expect("listen");
    run_bounded(&mut ring);
    assert_eq!(kept::<Result<(), Errno>>(), [Ok(())]);
    assert!(kept::<Option<SocketAddr>>().is_empty());
}

thread_local! {
    static LOOP: Cell<Option<Handle>> = const { Cell::new(None) };
}

#[test]
fn cancelling_the_accept_loop_stops_it_with_ok() {
    fn on_timer(ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
        let handle = LOOP.get().expect("handle");
        keep(handle.cancel(ring));
        Ok(())
    }
    let _serial = serial();
    let before = open_fds();
    let mut ring = ring();
    let (_, handle) = net::tcp_listen(
        &mut ring,
        "127.0.0.1:0".parse().expect("addr"),
        None,
        Then::new(on_event),
    )
    .expect("listen");
    LOOP.set(Some(handle));
    ring.timer(
        Timespec {
            sec: 0,
            nsec: 20_000_000,
        },
        Context {
            cb: on_timer,
            ..Context::default()
        },
    );
    run_bounded(&mut ring);
    assert_eq!(kept::<bool>(), [true]);
    assert_eq!(kept::<Result<(), Errno>>(), [Ok(())]);
    drop(ring);
    assert!(open_fds_settled(before) <= before, "no fd leaked");
}

// ----- transfers -----

/// Stats when the transfer started and when it finished, and the transfer.
struct Measured {
    start: RingStats,
    end: RingStats,
    len: usize,
    status: Result<(), Error>,
    data: Vec<u8>,
}

thread_local! {
    static START: Cell<Option<RingStats>> = const { Cell::new(None) };
    static PAYLOAD: Cell<usize> = const { Cell::new(0) };
}

fn measure(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
    let t = done.result;
    let data = t.buf.into_vec().expect("vec");
    keep(Measured {
        start: START.get().expect("start"),
        end: ring.stats(),
        len: t.len,
        status: t.status,
        data,
    });
    ring.close(t.fd, Context::default());
    Ok(())
}

#[test]
fn send_all_finishes_real_short_sends() {
    fn on_connected(ring: &mut Ring, done: Done<Result<RawFd, Errno>>) -> Result<(), RingError> {
        let fd = done.result.map_err(RingError::callback)?;
        START.set(Some(ring.stats()));
        net::send_all(ring, fd, pattern(PAYLOAD.get()), Then::new(measure));
        Ok(())
    }
    let _serial = serial();
    let before = open_fds();
    // Far more than the peer's receive buffer holds: while the peer reads nothing, the first
    // send must come back short (how much one send takes while the peer reads is up to the
    // kernel's scheduling: a fast reader can take 16 MiB in one send).
    let len = 16 << 20;
    PAYLOAD.set(len);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    set_rcvbuf(&listener, 64 << 10);
    let addr = listener.local_addr().expect("addr");
    let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        // Bounded: if the ring never reports a short send, read anyway and let the
        // assertions below say what happened.
        let _ = wait_for_go.recv_timeout(Duration::from_secs(20));
        s.set_read_timeout(TIMEOUT).expect("timeout");
        let mut got = Vec::with_capacity(len);
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < len {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "early EOF after {}", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let mut ring = ring();
    net::tcp_connect_to_addr(&mut ring, addr, Then::new(on_connected));
    // Run until the first send came back short and `send_all` queued the rest: each turn
    // waits for a completion, and the peer reads nothing until then.
    for _ in 0..64 {
        let second_send = START
            .get()
            .is_some_and(|start| ring.stats().submitted - start.submitted >= 2);
        if second_send {
            break;
        }
        ring.run(xuring_core::RunCondition::Once).expect("run");
    }
    go.send(()).expect("the peer waits");
    run_bounded(&mut ring);
    let got = peer.join().expect("peer");
    assert!(got == pattern(len), "every byte arrived, in order");
    let m = one::<Measured>();
    assert_eq!(m.status, Ok(()));
    assert_eq!(m.len, len);
    assert!(
        m.data == pattern(len),
        "the caller's buffer comes back intact"
    );
    let sends = m.end.submitted - m.start.submitted;
    assert!(sends >= 2, "the kernel sent it in {sends} pieces");
    drop(ring);
    assert!(open_fds_settled(before) <= before, "no fd leaked");
}

/// Caps the receive buffer of the connections `listener` accepts (they inherit it), so a
/// peer that reads nothing stops a sender after a known amount.
fn set_rcvbuf(listener: &TcpListener, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local for the
    // duration of the call; the fd is the listener's, open for the call.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
}

#[test]
fn recv_exact_finishes_real_short_receives_and_reports_an_early_eof() {
    fn on_connected(ring: &mut Ring, done: Done<Result<RawFd, Errno>>) -> Result<(), RingError> {
        let fd = done.result.map_err(RingError::callback)?;
        START.set(Some(ring.stats()));
        net::recv_exact(ring, fd, vec![0u8; PAYLOAD.get()], Then::new(measure));
        Ok(())
    }
    let _serial = serial();
    for (pieces, close_early) in [(&[3usize, 5, 2][..], false), (&[3, 4][..], true)] {
        let total: usize = pieces.iter().sum();
        let want = if close_early { total + 5 } else { total };
        PAYLOAD.set(want);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let data = pattern(total);
        let sent = data.clone();
        let count = pieces.len();
        let pieces = pieces.to_vec();
        let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
        let peer = thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut at = 0;
            for piece in pieces {
                // Each piece only once the ring took the one before on its own (bounded:
                // on a timeout it writes anyway and the assertions say what happened).
                let _ = wait_for_go.recv_timeout(Duration::from_secs(20));
                s.write_all(&sent[at..at + piece]).expect("write");
                at += piece;
            }
            // Closing the stream is the EOF.
        });
        let mut ring = ring();
        START.set(None);
        net::tcp_connect_to_addr(&mut ring, addr, Then::new(on_connected));
        for k in 1..=count {
            go.send(()).expect("the peer waits");
            // Until piece `k` arrived and the ring queued what comes next (another receive,
            // or the close once the transfer ended); each turn waits for a completion.
            for _ in 0..64 {
                let taken = START
                    .get()
                    .is_some_and(|start| ring.stats().submitted - start.submitted > k as u64);
                if taken {
                    break;
                }
                ring.run(xuring_core::RunCondition::Once).expect("run");
            }
        }
        run_bounded(&mut ring);
        peer.join().expect("peer");
        let m = one::<Measured>();
        assert_eq!(&m.data[..m.len], &data[..], "bytes in order, in place");
        let receives = m.end.submitted - m.start.submitted;
        if close_early {
            assert_eq!(m.status, Err(Error::UnexpectedEof));
            assert_eq!(m.len, total);
        } else {
            assert_eq!(m.status, Ok(()));
            assert_eq!(m.len, want);
            assert!(receives >= 2, "received in {receives} pieces");
        }
    }
}

#[test]
fn sending_to_a_peer_that_left_fails_with_epipe_or_econnreset() {
    fn on_connected(ring: &mut Ring, done: Done<Result<RawFd, Errno>>) -> Result<(), RingError> {
        let fd = done.result.map_err(RingError::callback)?;
        // Wait for the peer's FIN, then send until the kernel refuses.
        net::recv_some(ring, fd, vec![0u8; 8], Then::new(on_eof));
        Ok(())
    }
    fn on_eof(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
        assert_eq!(done.result.len, 0, "EOF");
        assert_eq!(done.result.status, Ok(()));
        net::send_all(ring, done.result.fd, vec![7u8; 65536], Then::new(on_sent));
        Ok(())
    }
    fn on_sent(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
        let t = done.result;
        let attempts = PAYLOAD.get() + 1;
        PAYLOAD.set(attempts);
        match t.status {
            Ok(()) if attempts < 20 => {
                net::send_all(ring, t.fd, t.buf, Then::new(on_sent));
            }
            status => {
                keep(status);
                ring.close(t.fd, Context::default());
            }
        }
        Ok(())
    }
    let _serial = serial();
    PAYLOAD.set(0);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = thread::spawn(move || drop(listener.accept().expect("accept")));
    let mut ring = ring();
    net::tcp_connect_to_addr(&mut ring, addr, Then::new(on_connected));
    run_bounded(&mut ring);
    peer.join().expect("peer");
    let status = one::<Result<(), Error>>();
    assert!(
        matches!(status, Err(Error::Os(Errno::EPIPE | Errno::ECONNRESET))),
        "{status:?}"
    );
}

#[test]
fn cancelling_a_receive_in_flight_returns_the_buffer_with_ecanceled() {
    thread_local!(static RECV: Cell<Option<Handle>> = const { Cell::new(None) });
    fn on_connected(ring: &mut Ring, done: Done<Result<RawFd, Errno>>) -> Result<(), RingError> {
        let fd = done.result.map_err(RingError::callback)?;
        let handle = net::recv_exact(ring, fd, vec![0u8; 32], Then::new(on_received));
        RECV.set(Some(handle));
        ring.timer(
            Timespec {
                sec: 0,
                nsec: 20_000_000,
            },
            Context {
                cb: on_timer,
                ..Context::default()
            },
        );
        Ok(())
    }
    fn on_timer(ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
        keep(RECV.get().expect("handle").cancel(ring));
        Ok(())
    }
    fn on_received(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
        let t = done.result;
        keep((t.len, t.status, t.buf.len()));
        ring.close(t.fd, Context::default());
        Ok(())
    }
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The peer connects and says nothing until the client is done.
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(TIMEOUT).expect("timeout");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let mut ring = ring();
    net::tcp_connect_to_addr(&mut ring, addr, Then::new(on_connected));
    run_bounded(&mut ring);
    peer.join().expect("peer");
    assert_eq!(kept::<bool>(), [true]);
    assert_eq!(
        kept::<(usize, Result<(), Error>, usize)>(),
        [(0, Err(Error::Os(Errno::ECANCELED)), 32)]
    );
}

#[test]
fn transfers_on_a_bad_fd_report_ebadf_and_return_the_buffer() {
    let _serial = serial();
    let mut ring = ring();
    net::send_all(&mut ring, 9999, IoBuf::from(b"x"), Then::new(keep_cb));
    net::recv_exact(&mut ring, 9999, vec![0u8; 4], Then::new(keep_cb));
    net::recv_some(&mut ring, -1, vec![0u8; 4], Then::new(keep_cb));
    run_bounded(&mut ring);
    let all = kept::<Transfer>();
    assert_eq!(all.len(), 3);
    for t in all {
        assert_eq!(t.status, Err(Error::Os(Errno::EBADF)));
        assert_eq!(t.len, 0);
        assert!(!t.buf.is_empty());
    }
}

/// `writev_all` on a connected socket whose reader drains it while the ring writes: every
/// byte of every buffer arrives once, in order, however the kernel splits the writes.
#[test]
fn writev_all_delivers_every_buffer_in_order_on_a_socket() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let writer = TcpStream::connect(addr).expect("connect");
    let (reader, _) = listener.accept().expect("accept");
    let head = pattern(300_000);
    let body = pattern(200_000);
    let expected: Vec<u8> = [&head[..], b"\r\n", &body[..]].concat();
    let reading = thread::spawn(move || {
        let mut reader = reader;
        reader
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut got = Vec::new();
        reader.read_to_end(&mut got).map(|_| got)
    });
    let mut ring = ring();
    let bufs = xuring_core::IoVecs::new(vec![
        IoBuf::from(head),
        IoBuf::from(&b"\r\n"[..]),
        IoBuf::from(body),
    ]);
    xuring_std::fs::writev_all(
        &mut ring,
        std::os::fd::AsRawFd::as_raw_fd(&writer),
        bufs,
        xuring_core::Offset::File,
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    let t = one::<xuring_std::fs::VectoredTransfer>();
    assert_eq!((t.len, t.status), (expected.len(), Ok(())));
    drop(writer);
    let got = reading.join().expect("reader").expect("read");
    assert!(
        got == expected,
        "{} bytes arrived of {}",
        got.len(),
        expected.len()
    );
}

/// A connected pair of TCP sockets on loopback and a reader that collects what arrives on
/// the second until the first is closed.
fn sending_pair() -> (TcpStream, thread::JoinHandle<std::io::Result<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let writer = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (mut reader, _) = listener.accept().expect("accept");
    let reading = thread::spawn(move || {
        reader.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut got = Vec::new();
        reader.read_to_end(&mut got).map(|_| got)
    });
    (writer, reading)
}

/// `send_file` sends exactly the range asked for (spliced natively; read and sent at the
/// 5.6 level, where the kernel has no SPLICE op), and leaves the file's position alone.
#[test]
fn send_file_sends_the_range_and_leaves_the_position_alone() {
    let _serial = serial();
    let path = common::temp_path("send-file");
    let data = pattern(300_000);
    std::fs::write(&path, &data).expect("write");
    let mut file = std::fs::File::open(&path).expect("open");
    let (writer, reading) = sending_pair();
    let mut ring = ring();
    net::send_file(
        &mut ring,
        std::os::fd::AsRawFd::as_raw_fd(&file),
        1_000,
        200_000,
        std::os::fd::AsRawFd::as_raw_fd(&writer),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    assert_eq!(one::<Result<u64, Error>>(), Ok(200_000));
    drop(writer);
    let got = reading.join().expect("reader").expect("read");
    assert!(got == data[1_000..201_000], "{} bytes arrived", got.len());
    use std::io::Seek;
    assert_eq!(file.stream_position().expect("position"), 0);
    std::fs::remove_file(&path).expect("remove");
}

/// A file shorter than the range: what it has is sent, then `UnexpectedEof`.
#[test]
fn send_file_past_the_end_of_the_file_is_unexpected_eof() {
    let _serial = serial();
    let path = common::temp_path("send-file-short");
    std::fs::write(&path, b"only this").expect("write");
    let file = std::fs::File::open(&path).expect("open");
    let (writer, reading) = sending_pair();
    let mut ring = ring();
    net::send_file(
        &mut ring,
        std::os::fd::AsRawFd::as_raw_fd(&file),
        5,
        100,
        std::os::fd::AsRawFd::as_raw_fd(&writer),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    assert_eq!(one::<Result<u64, Error>>(), Err(Error::UnexpectedEof));
    drop(writer);
    assert_eq!(reading.join().expect("reader").expect("read"), b"this");
    std::fs::remove_file(&path).expect("remove");
}

/// Nothing to send: `Ok(0)` at the next run, the socket untouched.
#[test]
fn send_file_of_nothing_reports_zero() {
    let _serial = serial();
    let (writer, reading) = sending_pair();
    let mut ring = ring();
    net::send_file(
        &mut ring,
        -1,
        0,
        0,
        std::os::fd::AsRawFd::as_raw_fd(&writer),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    assert_eq!(one::<Result<u64, Error>>(), Ok(0));
    drop(writer);
    assert_eq!(reading.join().expect("reader").expect("read"), b"");
}
