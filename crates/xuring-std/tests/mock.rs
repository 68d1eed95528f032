//! The helpers on `xuring-mock`: short transfers, errors and cancellation injected exactly
//! where a test wants them (handlers), or at random from a seed (faults), checked byte by
//! byte against what the mock recorded. No kernel: apart from the accept loop's (which needs a
//! `std` listener for its fd), these tests make no syscall and can run under Miri.

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;
use std::rc::Rc;

use xuring_core::{Errno, IoBuf, IoVecs, Offset, Ring, RingBuilder};
use xuring_mock::{Faults, Mock, MockBuilder, MockRingExt, OpKind, Reply, run_seeded};
use xuring_std::net::{self, AcceptEvent};
use xuring_std::{Done, Error, Then, Transfer, fs, jobs_in_flight};

mod common;
use common::{keep, keep_cb, kept, one, pattern, run_bounded};

type MockRing = Ring<Mock>;

const FD: RawFd = 5;

/// What the writes took, in order, and where each write's bytes started in memory.
type Recorded = (Rc<RefCell<Vec<u8>>>, Rc<RefCell<Vec<usize>>>);

fn write_addresses(ring: &mut MockRing, max: usize) -> Recorded {
    let sink = Rc::new(RefCell::new(Vec::new()));
    let addresses = Rc::new(RefCell::new(Vec::new()));
    let (record, at) = (Rc::clone(&sink), Rc::clone(&addresses));
    ring.backend_mut().handle(OpKind::Write, move |req| {
        let n = req.data.len().min(max);
        record.borrow_mut().extend_from_slice(&req.data[..n]);
        at.borrow_mut().push(req.data.as_ptr().addr());
        Reply::Complete(n as i32)
    });
    (sink, addresses)
}

#[test]
fn write_all_finishes_short_writes_in_place() {
    let mut ring = MockRing::init_mock();
    let (sink, addresses) = write_addresses(&mut ring, 7);
    let data = pattern(1000);
    let sent = data.clone();
    let base = sent.as_ptr().addr();
    fs::write_all(&mut ring, FD, sent, Offset::File, Then::new(keep_cb));
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!((t.fd, t.len, t.status), (FD, 1000, Ok(())));
    assert_eq!(*sink.borrow(), data, "every byte once, in order");
    assert_eq!(
        t.buf.into_vec().expect("vec"),
        data,
        "the buffer comes back as it was"
    );
    // 1000 bytes, 7 at a time, each write from the caller's buffer past what went before.
    assert_eq!(ring.stats().submitted, 1000_u64.div_ceil(7));
    let expected: Vec<usize> = (0..1000).step_by(7).map(|skip| base + skip).collect();
    assert_eq!(
        *addresses.borrow(),
        expected,
        "no copy: the rest of the same buffer"
    );
    xuring_mock::check_invariants(&ring);
}

#[test]
fn short_writes_leave_the_pool_alone() {
    let mut ring = MockBuilder::new()
        .build_ring_with(RingBuilder::new(16).buffer_pool(2, 64))
        .expect("ring");
    let (sink, addresses) = write_addresses(&mut ring, 50);
    let data = pattern(300);
    let sent = data.clone();
    let base = sent.as_ptr().addr();
    fs::write_all(
        &mut ring,
        FD,
        IoBuf::from(sent),
        Offset::At(0),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!((t.len, t.status), (300, Ok(())));
    assert_eq!(*sink.borrow(), data);
    assert!(
        addresses
            .borrow()
            .iter()
            .all(|&a| a >= base && a < base + 300),
        "every write from the caller's buffer"
    );
    assert_eq!(ring.buffers().expect("pool").available(), 2);
}

#[test]
fn a_short_write_then_an_error_reports_both() {
    let mut ring = MockRing::init_mock();
    let mut calls = 0;
    ring.backend_mut().handle(OpKind::Write, move |_req| {
        calls += 1;
        if calls == 1 {
            Reply::Complete(3)
        } else {
            Reply::Err(Errno::EIO)
        }
    });
    fs::write_all(&mut ring, FD, b"hello", Offset::File, Then::new(keep_cb));
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!((t.len, t.status), (3, Err(Error::Os(Errno::EIO))));
    assert_eq!(t.buf.as_slice(), b"hello");
}

#[test]
fn a_write_that_moves_nothing_is_write_zero_not_a_loop() {
    let mut ring = MockRing::init_mock();
    ring.backend_mut()
        .handle(OpKind::Write, |_req| Reply::Complete(0));
    fs::write_all(&mut ring, FD, b"stuck", Offset::File, Then::new(keep_cb));
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!((t.len, t.status), (0, Err(Error::WriteZero)));
    assert_eq!(ring.stats().submitted, 1);
}

#[test]
fn read_exact_finishes_short_reads_at_offsets_and_at_the_file_position() {
    for offset in [Offset::At(0), Offset::File] {
        let mut ring = MockBuilder::new()
            .seed(7)
            .faults(Faults {
                short_io: 0.8,
                ..Faults::none()
            })
            .build_ring();
        let data = pattern(5000);
        ring.backend_mut().set_file(FD, data.clone());
        fs::read_exact(&mut ring, FD, vec![0u8; 5000], offset, Then::new(keep_cb));
        run_bounded(&mut ring);
        let t = one::<Transfer>();
        assert_eq!((t.len, t.status), (5000, Ok(())), "{offset:?}");
        assert!(t.buf.into_vec().expect("vec") == data, "{offset:?}");
        assert!(ring.backend().stats().short_io > 0, "short reads happened");
    }
}

#[test]
fn read_exact_reports_the_end_of_the_file() {
    let mut ring = MockRing::init_mock();
    ring.backend_mut().set_file(FD, b"only this".to_vec());
    fs::read_exact(
        &mut ring,
        FD,
        vec![0u8; 20],
        Offset::At(0),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!((t.len, t.status), (9, Err(Error::UnexpectedEof)));
    assert_eq!(&t.buf.as_slice()[..9], b"only this");
}

#[test]
fn any_seed_of_chaos_gives_a_consistent_transfer() {
    for base in 0..64u64 {
        run_seeded(0xc4a0_5000 + base, |seed| {
            let mut ring = MockBuilder::new()
                .seed(seed)
                .faults(Faults::chaos())
                .build_ring();
            let data = pattern(777);
            fs::write_all(
                &mut ring,
                FD,
                data.clone(),
                Offset::File,
                Then::new(keep_cb),
            );
            run_bounded(&mut ring);
            let t = one::<Transfer>();
            let written = ring.backend().written(FD);
            assert_eq!(
                written,
                &data[..t.len],
                "what was reported is what was written"
            );
            match t.status {
                Ok(()) => assert_eq!(t.len, data.len()),
                Err(Error::Os(_)) => assert!(t.len <= data.len()),
                Err(other) => panic!("{other:?}"),
            }
            xuring_mock::check_invariants(&ring);
        });
    }
}

#[test]
fn cancelling_a_blocked_transfer_reports_ecanceled() {
    let mut ring = MockRing::init_mock();
    ring.backend_mut().block_fd(FD);
    let handle = fs::write_all(&mut ring, FD, b"blocked", Offset::File, Then::new(keep_cb));
    ring.run(xuring_core::RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 1);
    assert!(handle.cancel(&mut ring));
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!((t.len, t.status), (0, Err(Error::Os(Errno::ECANCELED))));
    assert!(!handle.is_active());
    xuring_mock::check_invariants(&ring);
}

/// Answers the socket, file and connection ops (socket, connect, accept, close, ...) with
/// `replies`, in order, and counts them.
fn script(ring: &mut MockRing, replies: Vec<Reply>) -> Rc<RefCell<usize>> {
    let count = Rc::new(RefCell::new(0));
    let seen = Rc::clone(&count);
    let replies = replies.into_iter();
    let replies = Rc::new(RefCell::new(replies));
    for kind in [
        OpKind::Socket,
        OpKind::Connect,
        OpKind::Accept,
        OpKind::Close,
        OpKind::Open,
        OpKind::Stat,
        OpKind::Fsync,
        OpKind::Recv,
        OpKind::Send,
        OpKind::Poll,
    ] {
        let seen = Rc::clone(&seen);
        let replies = Rc::clone(&replies);
        ring.backend_mut().handle(kind, move |_req| {
            *seen.borrow_mut() += 1;
            replies
                .borrow_mut()
                .next()
                .unwrap_or(Reply::Err(Errno::EINVAL))
        });
    }
    count
}

#[test]
fn connect_closes_the_socket_before_reporting_a_refusal() {
    let mut ring = MockRing::init_mock();
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    // socket -> fd 50; connect -> refused; close -> ok.
    let ops = script(
        &mut ring,
        vec![
            Reply::Complete(50),
            Reply::Err(Errno::ECONNREFUSED),
            Reply::Complete(0),
        ],
    );
    net::tcp_connect_to_addr(&mut ring, addr, Then::new(keep_cb));
    run_bounded(&mut ring);
    assert_eq!(one::<Result<RawFd, Errno>>(), Err(Errno::ECONNREFUSED));
    assert_eq!(*ops.borrow(), 3, "socket, connect, close");
    // Success: socket -> fd 51, connect -> ok; nothing is closed.
    let ops = script(&mut ring, vec![Reply::Complete(51), Reply::Complete(0)]);
    net::udp_connect_to_addr(&mut ring, addr, Then::new(keep_cb));
    run_bounded(&mut ring);
    assert_eq!(one::<Result<RawFd, Errno>>(), Ok(51));
    assert_eq!(*ops.borrow(), 2);
    // A failed socket has nothing to close.
    let ops = script(&mut ring, vec![Reply::Err(Errno::EMFILE)]);
    net::tcp_connect_to_addr(&mut ring, addr, Then::new(keep_cb));
    run_bounded(&mut ring);
    assert_eq!(one::<Result<RawFd, Errno>>(), Err(Errno::EMFILE));
    assert_eq!(*ops.borrow(), 1);
}

#[derive(Debug, PartialEq)]
enum Event {
    Connected(RawFd),
    Failed(Errno),
    Stopped(Result<(), Errno>),
}

fn record_event(
    _ring: &mut MockRing,
    done: Done<AcceptEvent>,
) -> Result<(), xuring_core::RingError> {
    keep(match done.result {
        AcceptEvent::Connected(a) => Event::Connected(a.fd),
        AcceptEvent::Failed(e) => Event::Failed(e),
        AcceptEvent::Stopped { result, .. } => Event::Stopped(result),
    });
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore = "binds a std listener")]
fn the_accept_loop_retries_per_connection_errors_and_stops_on_fatal_ones() {
    let mut ring = MockRing::init_mock();
    script(
        &mut ring,
        vec![
            Reply::Err(Errno::ECONNABORTED),
            Reply::Complete(100),
            Reply::Err(Errno::from_raw(libc::EPROTO)),
            Reply::Complete(101),
            Reply::Err(Errno::EMFILE),
        ],
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    net::accept_loop(&mut ring, listener, None, Then::new(record_event));
    run_bounded(&mut ring);
    assert_eq!(
        kept::<Event>(),
        [
            Event::Failed(Errno::ECONNABORTED),
            Event::Connected(100),
            Event::Failed(Errno::from_raw(libc::EPROTO)),
            Event::Connected(101),
            Event::Stopped(Err(Errno::EMFILE)),
        ]
    );
    // With a limit, the loop stops by itself after the last connection.
    script(&mut ring, vec![Reply::Complete(102), Reply::Complete(103)]);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    net::accept_loop(&mut ring, listener, Some(2), Then::new(record_event));
    run_bounded(&mut ring);
    assert_eq!(
        kept::<Event>(),
        [
            Event::Connected(102),
            Event::Connected(103),
            Event::Stopped(Ok(()))
        ]
    );
    assert_eq!(jobs_in_flight(), 0);
}

#[test]
fn writev_all_finishes_short_writes_across_buffers_in_place() {
    let mut ring = MockRing::init_mock();
    let sink = Rc::new(RefCell::new(Vec::new()));
    let record = Rc::clone(&sink);
    ring.backend_mut().handle(OpKind::Writev, move |req| {
        // 5 bytes at a time: a short write ends inside a buffer or on its edge.
        let n = req.data.len().min(5);
        record.borrow_mut().extend_from_slice(&req.data[..n]);
        Reply::Complete(n as i32)
    });
    let mut skipped = IoBuf::from(b"XXhead".to_vec());
    skipped.advance(2); // handed over at an offset: only "head" goes out
    let bufs = IoVecs::new(vec![
        skipped,
        IoBuf::from(b"er: 1\r\n".to_vec()),
        IoBuf::from(&b""[..]),
        IoBuf::from(&b"body"[..]),
    ]);
    fs::writev_all(&mut ring, FD, bufs, Offset::File, Then::new(keep_cb));
    run_bounded(&mut ring);
    let t = one::<fs::VectoredTransfer>();
    assert_eq!((t.fd, t.len, t.status), (FD, 15, Ok(())));
    assert_eq!(&*sink.borrow(), b"header: 1\r\nbody");
    assert_eq!(ring.stats().submitted, 3, "15 bytes, 5 at a time");
    let back: Vec<(usize, &[u8])> = t
        .bufs
        .bufs()
        .iter()
        .map(|b| (b.offset(), b.as_slice()))
        .collect();
    assert_eq!(
        back,
        vec![(2, &b"head"[..]), (0, b"er: 1\r\n"), (0, b""), (0, b"body")],
        "every buffer back at the offset it came with"
    );
}

#[test]
fn writev_all_reports_an_error_after_a_short_write() {
    let mut ring = MockRing::init_mock();
    let mut calls = 0;
    ring.backend_mut().handle(OpKind::Writev, move |_| {
        calls += 1;
        if calls == 1 {
            Reply::Complete(3)
        } else {
            Reply::Err(Errno::EPIPE)
        }
    });
    let bufs = IoVecs::new(vec![IoBuf::from(&b"ab"[..]), IoBuf::from(&b"cd"[..])]);
    fs::writev_all(&mut ring, FD, bufs, Offset::File, Then::new(keep_cb));
    run_bounded(&mut ring);
    let t = one::<fs::VectoredTransfer>();
    assert_eq!((t.len, t.status), (3, Err(Error::Os(Errno::EPIPE))));
    assert_eq!(t.bufs.total_len(), 4, "rewound");
}

/// A backend that reports more than it read cannot make `send_file` send bytes it never read
/// (with a pool buffer, stale ones): the count is clamped to the read's room.
#[test]
fn send_file_never_sends_more_than_was_read() {
    let mut ring = MockRing::init_mock();
    ring.backend_mut()
        .handle(OpKind::Splice, |_| Reply::Err(Errno::EOPNOTSUPP));
    let mut reads = 0;
    ring.backend_mut().handle(OpKind::Read, move |req| {
        reads += 1;
        assert_eq!(req.len, 10, "asked for the range's 10 bytes");
        if reads == 1 {
            Reply::Complete(100)
        } else {
            Reply::Complete(0)
        }
    });
    let sink = Rc::new(RefCell::new(Vec::new()));
    let record = Rc::clone(&sink);
    ring.backend_mut().handle(OpKind::Send, move |req| {
        record.borrow_mut().extend_from_slice(req.data);
        Reply::Complete(req.data.len() as i32)
    });
    net::send_file(&mut ring, 7, 0, 10, FD, Then::new(keep_cb));
    run_bounded(&mut ring);
    assert_eq!(one::<Result<u64, Error>>(), Ok(10));
    assert_eq!(sink.borrow().len(), 10, "only the range");
}

/// Nor can it make `read_file` slice past its buffer (a panic in a callback).
#[test]
fn read_file_survives_a_read_that_reports_too_much() {
    let mut ring = MockRing::init_mock();
    ring.backend_mut().add_file("/f", pattern(0));
    let mut reads = 0;
    ring.backend_mut().handle(OpKind::Read, move |_| {
        reads += 1;
        if reads == 1 {
            Reply::Complete(70_000)
        } else {
            Reply::Complete(0)
        }
    });
    fs::read_file(&mut ring, c"/f", Then::new(keep_cb));
    run_bounded(&mut ring);
    assert_eq!(
        kept::<Result<Vec<u8>, Error>>().len(),
        1,
        "one result, no panic"
    );
}
