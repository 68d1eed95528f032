//! The mock's world where the kernel cannot be asked the same question: descriptors that are
//! never reused, loose descriptors, what handlers are told, non-blocking sockets, a listener
//! that goes away, the socket fallback of old kernels, ops that unblock each other within one
//! step. (What the kernel and the mock must agree on is in the behaviour suite.)

use std::cell::RefCell;
use std::ffi::CString;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;

use xuring_core::{
    Context, Errno, IoBuf, IoVecs, KernelLevel, Offset, OpResult, Ring, RingBuilder, RunCondition,
    TaskHandle,
};
use xuring_mock::{
    FIRST_FD, Mock, MockBuilder, MockRingExt, OpKind, Reply, check_invariants, track,
};

/// Submits one op, runs the ring until nothing is left, and returns its result.
fn one(
    ring: &mut Ring<Mock>,
    submit: impl FnOnce(&mut Ring<Mock>, Context<Mock>) -> TaskHandle<Mock>,
) -> OpResult {
    let id = track::expect(submit(ring, track::context())).id();
    ring.run(RunCondition::UntilDone).expect("run");
    check_invariants(ring);
    track::check();
    track::result(id).expect("a result")
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[test]
fn descriptors_come_from_the_mock_range_and_are_never_reused() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().add_file("/a", b"x");
    let open = |ring: &mut Ring<Mock>| match one(ring, |r, c| r.open(c"/a", 0, 0, c)) {
        OpResult::Open(Ok(fd)) => fd,
        other => panic!("{other:?}"),
    };
    let first = open(&mut ring);
    assert!(first > FIRST_FD, "{first}");
    assert!(ring.backend().is_open(first));
    assert_eq!(
        one(&mut ring, |r, c| r.close(first, c)),
        OpResult::Close(Ok(()))
    );
    assert!(!ring.backend().is_open(first));
    let second = open(&mut ring);
    assert_ne!(second, first, "a closed number is not handed out again");
    for result in [
        one(&mut ring, |r, c| r.close(first, c)),
        one(&mut ring, |r, c| r.fsync(first, c)),
        one(&mut ring, |r, c| {
            r.read(first, vec![0u8; 1], Offset::File, c)
        }),
        one(&mut ring, |r, c| r.write(first, b"x", Offset::File, c)),
        one(&mut ring, |r, c| r.poll(first, libc::POLLIN as u32, c)),
    ] {
        assert_eq!(result.err(), Some(Errno::EBADF), "{result:?}");
    }
    assert_eq!(
        one(&mut ring, |r, c| r.close(ring_fd(r), c)),
        OpResult::Close(Err(Errno::EBADF)),
        "the ring's own fd cannot be closed"
    );
}

fn ring_fd(ring: &Ring<Mock>) -> RawFd {
    ring.backend().ring_fd()
}

#[test]
fn a_loose_descriptor_reads_eof_and_takes_writes_until_it_is_closed() {
    track::reset();
    let mut ring = Ring::init_mock();
    assert_eq!(
        one(&mut ring, |r, c| r.read(5, vec![0u8; 4], Offset::File, c)),
        OpResult::Read(Ok(0))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.write(5, b"kept", Offset::File, c)),
        OpResult::Write(Ok(4))
    );
    assert_eq!(ring.backend().written(5), b"kept");
    assert_eq!(
        one(&mut ring, |r, c| r.close(5, c)),
        OpResult::Close(Err(Errno::EBADF)),
        "nothing is open there"
    );
    ring.backend_mut().set_file(5, b"file");
    assert_eq!(
        one(&mut ring, |r, c| r.close(5, c)),
        OpResult::Close(Ok(()))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.read(5, vec![0u8; 4], Offset::File, c)),
        OpResult::Read(Err(Errno::EBADF)),
        "closed: no longer loose"
    );
}

#[test]
fn handlers_are_told_the_arguments_of_every_op() {
    track::reset();
    let mut ring = Ring::init_mock();
    let seen = Rc::new(RefCell::new(Vec::new()));
    for kind in [
        OpKind::Open,
        OpKind::Stat,
        OpKind::Connect,
        OpKind::Splice,
        OpKind::Writev,
    ] {
        let seen = Rc::clone(&seen);
        ring.backend_mut().handle(kind, move |req| {
            seen.borrow_mut().push(format!(
                "{:?} fd {:?} in {:?} path {:?} addr {:?} flags {:#x} data {:?} len {}",
                req.kind, req.fd, req.fd_in, req.path, req.addr, req.flags, req.data, req.len
            ));
            Reply::Default
        });
    }
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let bufs = IoVecs::new(vec![
        IoBuf::from(b"ab".to_vec()),
        IoBuf::from(b"c".to_vec()),
    ]);
    one(&mut ring, |r, c| {
        r.open(CString::new("/p").expect("path"), 0o101, 0o600, c)
    });
    one(&mut ring, |r, c| r.lstat(c"/p", c));
    one(&mut ring, |r, c| r.connect(3, addr, c));
    one(&mut ring, |r, c| r.splice(3, None, 4, Some(8), 16, 0, c));
    one(&mut ring, |r, c| r.writev(6, bufs, Offset::File, c));
    let no = libc::AT_SYMLINK_NOFOLLOW;
    assert_eq!(
        *seen.borrow(),
        [
            r#"Open fd None in None path Some("/p") addr None flags 0x41 data [] len 0"#.to_owned(),
            format!(
                r#"Stat fd None in None path Some("/p") addr None flags {no:#x} data [] len 0"#
            ),
            "Connect fd Some(3) in None path None addr Some(127.0.0.1:9) flags 0x0 data [] len 0"
                .to_owned(),
            "Splice fd Some(4) in Some(3) path None addr None flags 0x0 data [] len 16".to_owned(),
            "Writev fd Some(6) in None path None addr None flags 0x0 data [97, 98, 99] len 3"
                .to_owned(),
        ]
    );
    assert_eq!(ring.backend().written(6), b"abc", "the default wrote it");
    assert_eq!(
        ring.backend().file("/p"),
        Some(&b""[..]),
        "the default created it"
    );
}

#[test]
fn a_non_blocking_socket_fails_with_eagain_instead_of_waiting() {
    track::reset();
    let mut ring = Ring::init_mock();
    let listener = ring.backend_mut().listen(local());
    let addr = ring.backend().local_addr(listener).expect("listening");
    let nonblock = libc::SOCK_STREAM | libc::SOCK_NONBLOCK;
    let client = ring.backend_mut().socket(libc::AF_INET, nonblock);
    assert_eq!(
        one(&mut ring, |r, c| r.recv(client, vec![0u8; 4], 0, c)),
        OpResult::Recv(Err(Errno::ENOTCONN))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.connect(client, addr, c)),
        OpResult::Connect(Ok(()))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.connect(client, addr, c)),
        OpResult::Connect(Err(Errno::EISCONN))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.recv(client, vec![0u8; 4], 0, c)),
        OpResult::Recv(Err(Errno::EAGAIN))
    );
    // The listener goes away with the connection still queued: the client sees it closed.
    assert_eq!(
        one(&mut ring, |r, c| r.close(listener, c)),
        OpResult::Close(Ok(()))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.recv(client, vec![0u8; 4], 0, c)),
        OpResult::Recv(Ok(0))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.send(client, b"late", 0, c)),
        OpResult::Send(Err(Errno::EPIPE))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.connect(client, addr, c)),
        OpResult::Connect(Err(Errno::EISCONN))
    );
}

#[test]
fn ops_that_unblock_each_other_complete_in_the_same_step() {
    track::reset();
    let mut ring = Ring::init_mock();
    let listener = ring.backend_mut().listen(local());
    let addr = ring.backend().local_addr(listener).expect("listening");
    let client = ring.backend_mut().socket(libc::AF_INET, libc::SOCK_STREAM);
    let (r, w) = ring.backend_mut().pipe_pair();
    // Each waiting op is pushed before the one that lets it go on.
    let accept = track::expect(ring.accept(listener, track::context()));
    track::expect(ring.connect(client, addr, track::context()));
    let read = track::expect(ring.read(r, vec![0u8; 4], Offset::File, track::context()));
    track::expect(ring.write(w, b"now", Offset::File, track::context()));
    ring.run(RunCondition::NoWait).expect("run");
    check_invariants(&ring);
    track::check_complete();
    assert!(matches!(
        track::result(accept.id()),
        Some(OpResult::Accept(Ok(_)))
    ));
    assert_eq!(track::result(read.id()), Some(OpResult::Read(Ok(3))));
}

#[test]
fn sockets_work_at_kernels_without_the_socket_opcode() {
    track::reset();
    let mock = MockBuilder::new().level(KernelLevel::V5_6).build();
    let mut ring = RingBuilder::new(8)
        .kernel_level(KernelLevel::V5_6)
        .build_with(mock)
        .expect("ring");
    let fd = match one(&mut ring, |r, c| {
        r.socket(libc::AF_INET, libc::SOCK_STREAM, 0, c)
    }) {
        OpResult::Socket(Ok(fd)) => fd,
        other => panic!("{other:?}"),
    };
    assert!(
        fd > FIRST_FD && ring.backend().is_open(fd),
        "made by the fallback, in the mock"
    );
    assert_eq!(
        one(&mut ring, |r, c| r.socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            0,
            c
        )),
        OpResult::Socket(Err(Errno::from_raw(libc::EAFNOSUPPORT)))
    );
}

#[test]
fn paths_resolve_through_links_and_dot_dot() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().add_file("/srv/data/f", b"12345");
    ring.backend_mut().add_symlink("/srv/latest", "data");
    ring.backend_mut().add_symlink("/loop", "/loop");
    let size = |ring: &mut Ring<Mock>, path: &'static std::ffi::CStr| match one(ring, |r, c| {
        r.stat(path, c)
    }) {
        OpResult::Stat(Ok(stat)) => Ok(stat.size),
        OpResult::Stat(Err(e)) => Err(e),
        other => panic!("{other:?}"),
    };
    assert_eq!(size(&mut ring, c"/srv/latest/f"), Ok(5));
    assert_eq!(
        size(&mut ring, c"srv/data/../latest/./f"),
        Ok(5),
        "relative to /"
    );
    assert_eq!(size(&mut ring, c"/srv/data/f/x"), Err(Errno::ENOTDIR));
    assert_eq!(size(&mut ring, c"/loop"), Err(Errno::ELOOP));
    assert_eq!(
        one(&mut ring, |r, c| r.open(
            c"/srv/latest",
            libc::O_NOFOLLOW,
            0,
            c
        )),
        OpResult::Open(Err(Errno::ELOOP))
    );
    // A created file through a link lands where the link points.
    let how = libc::O_WRONLY | libc::O_CREAT;
    assert!(matches!(
        one(&mut ring, |r, c| r.open(c"/srv/latest/new", how, 0o644, c)),
        OpResult::Open(Ok(_))
    ));
    assert_eq!(ring.backend().file("/srv/data/new"), Some(&b""[..]));
    assert_eq!(
        one(&mut ring, |r, c| r.open(c"/nowhere/new", how, 0o644, c)),
        OpResult::Open(Err(Errno::ENOENT)),
        "the directory must exist"
    );
}

/// Punching a hole or zeroing a range zeroes its bytes; zeroing past the end grows the file
/// unless `KEEP_SIZE`; a mode the mock does not model is `EOPNOTSUPP`, as on a filesystem
/// without it. (Which modes a real filesystem supports varies, so this is the mock's alone.)
#[test]
fn fallocate_modes_zero_what_they_cover() {
    track::reset();
    let mut ring = Ring::init_mock();
    ring.backend_mut().add_file("/f", b"abcdefgh");
    let fd = match one(&mut ring, |r, c| r.open(c"/f", libc::O_RDWR, 0, c)) {
        OpResult::Open(Ok(fd)) => fd,
        other => panic!("{other:?}"),
    };
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    assert_eq!(
        one(&mut ring, |r, c| r.fallocate(fd, punch, 1, 2, c)),
        OpResult::Fallocate(Ok(()))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.fallocate(
            fd,
            libc::FALLOC_FL_ZERO_RANGE,
            6,
            4,
            c
        )),
        OpResult::Fallocate(Ok(()))
    );
    assert_eq!(
        one(&mut ring, |r, c| r.fallocate(
            fd,
            libc::FALLOC_FL_PUNCH_HOLE,
            0,
            1,
            c
        )),
        OpResult::Fallocate(Err(Errno::EOPNOTSUPP)),
        "a hole without KEEP_SIZE"
    );
    assert_eq!(
        ring.backend().file("/f"),
        Some(&b"a\0\0def\0\0\0\0"[..]),
        "bytes 1-2 punched, 6-9 zeroed (the file grew to 10)"
    );
    assert_eq!(
        one(&mut ring, |r, c| r.close(fd, c)),
        OpResult::Close(Ok(()))
    );
}
