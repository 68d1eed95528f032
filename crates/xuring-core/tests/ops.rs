//! Every operation on the real kernel, checked by its effect (bytes in the file, fields
//! against `std::fs::metadata`, data across loopback TCP, events on a pipe), plus bad input,
//! fd leaks, completion order, and the seed's multi-step socket pattern.
//!
//! Runs at whatever `XURING_KERNEL_LEVEL` selects; ops the level lacks must report
//! `EOPNOTSUPP` (or use their fallback: `socket`).

use std::cell::RefCell;
use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use xuring_core::{
    Context, Errno, IoBuf, IoVecs, Message, Offset, OpResult, Ring, RingError, RunCondition, Task,
};
use xuring_sys::Opcode;

mod common;
use common::{pipe, write_all};

/// What a callback saw: its `msg`, the result, and the buffers it took back.
type Seen = (u16, OpResult, Option<IoBuf>, Option<IoVecs>);

thread_local! {
    static LAST: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
}

fn record(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let entry = (
        task.msg(),
        task.result.expect("result"),
        task.take_buf(),
        task.take_iovecs(),
    );
    LAST.with(|l| l.borrow_mut().push(entry));
    Ok(())
}

fn ctx(msg: u16) -> Context {
    Context {
        cb: record,
        msg,
        userdata: None,
    }
}

/// Submits one op with `submit`, runs the ring dry, and returns the op's result and buffer.
fn one(ring: &mut Ring, submit: impl FnOnce(&mut Ring, Context)) -> (OpResult, Option<IoBuf>) {
    LAST.with(|l| l.borrow_mut().clear());
    submit(ring, ctx(0));
    ring.run(RunCondition::UntilDone).expect("run");
    let mut all = LAST.with(|l| std::mem::take(&mut *l.borrow_mut()));
    assert_eq!(all.len(), 1, "exactly one callback");
    let (_, result, buf, _) = all.pop().expect("one");
    (result, buf)
}

/// The tests of this file count open fds, so they run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ring() -> Ring {
    Ring::init(16).expect("ring")
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("xuring-ops-{}-{name}", std::process::id()))
}

fn c_path(path: &std::path::Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

fn supported(ring: &Ring, op: Opcode) -> bool {
    ring.features().supports(op)
}

#[test]
fn write_and_read_at_offsets_and_at_the_file_position() {
    let _serial = serial();
    let mut ring = ring();
    let path = temp_path("rw");
    let file = std::fs::File::create(&path).expect("create");
    let fd = file.as_raw_fd();
    let (r, _) = one(&mut ring, |ring, c| {
        ring.write(fd, b"hello, world", Offset::At(0), c);
    });
    assert_eq!(r, OpResult::Write(Ok(12)));
    let (r, _) = one(&mut ring, |ring, c| {
        ring.write(fd, b"XY", Offset::At(7), c);
    });
    assert_eq!(r, OpResult::Write(Ok(2)));
    assert_eq!(std::fs::read(&path).expect("read back"), b"hello, XYrld");
    // Offset::File appends at the file position (12 after the first write? no: pwrite does
    // not move it, so the position is still 0).
    let (r, _) = one(&mut ring, |ring, c| {
        ring.write(fd, b"H", Offset::File, c);
    });
    assert_eq!(r, OpResult::Write(Ok(1)));
    assert_eq!(std::fs::read(&path).expect("read back"), b"Hello, XYrld");
    drop(file);

    let file = std::fs::File::open(&path).expect("open");
    let fd = file.as_raw_fd();
    let (r, buf) = one(&mut ring, |ring, c| {
        ring.read(fd, vec![0u8; 5], Offset::At(7), c);
    });
    assert_eq!(r, OpResult::Read(Ok(5)));
    assert_eq!(&buf.expect("buf").into_vec().expect("vec")[..], b"XYrld");
    // Past the end: 0 bytes, not an error.
    let (r, _) = one(&mut ring, |ring, c| {
        ring.read(fd, vec![0u8; 5], Offset::At(1 << 30), c);
    });
    assert_eq!(r, OpResult::Read(Ok(0)));
    // Two reads at the file position continue where the first stopped.
    let (_, a) = one(&mut ring, |ring, c| {
        ring.read(fd, vec![0u8; 6], Offset::File, c);
    });
    let (_, b) = one(&mut ring, |ring, c| {
        ring.read(fd, vec![0u8; 6], Offset::File, c);
    });
    assert_eq!(&a.and_then(IoBuf::into_vec).expect("a")[..], b"Hello,");
    assert_eq!(&b.and_then(IoBuf::into_vec).expect("b")[..], b" XYrld");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn readv_and_writev_scatter_and_gather() {
    let _serial = serial();
    let mut ring = ring();
    let path = temp_path("vec");
    let file = std::fs::File::create(&path).expect("create");
    let fd = file.as_raw_fd();
    let bufs = IoVecs::new(vec![
        IoBuf::from(b"abc"),
        IoBuf::from(vec![b'd'; 4]),
        IoBuf::from(b"".as_slice()),
        IoBuf::from(b"efg"),
    ]);
    let (r, _) = one(&mut ring, |ring, c| {
        ring.writev(fd, bufs, Offset::At(0), c);
    });
    assert_eq!(r, OpResult::Writev(Ok(10)));
    assert_eq!(std::fs::read(&path).expect("read"), b"abcddddefg");
    drop(file);
    let file = std::fs::File::open(&path).expect("open");
    let fd = file.as_raw_fd();
    LAST.with(|l| l.borrow_mut().clear());
    ring.readv(
        fd,
        IoVecs::new(vec![
            vec![0u8; 2].into(),
            vec![0u8; 5].into(),
            vec![0u8; 8].into(),
        ]),
        Offset::At(1),
        ctx(0),
    );
    ring.run(RunCondition::UntilDone).expect("run");
    let (_, r, _, vecs) = LAST.with(|l| l.borrow_mut().pop()).expect("one");
    assert_eq!(r, OpResult::Readv(Ok(9)));
    let bufs: Vec<Vec<u8>> = vecs
        .expect("iovecs back")
        .into_bufs()
        .into_iter()
        .map(|b| b.into_vec().expect("vec"))
        .collect();
    assert_eq!(bufs[0], b"bc");
    assert_eq!(bufs[1], b"dddde");
    assert_eq!(&bufs[2][..2], b"fg");
    // A read-only buffer in a readv is refused locally.
    let (r, _) = one(&mut ring, |ring, c| {
        ring.readv(fd, IoVecs::new(vec![IoBuf::from(b"ro")]), Offset::At(0), c);
    });
    assert_eq!(r, OpResult::Readv(Err(Errno::EFAULT)));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn open_then_close_in_the_callback() {
    let _serial = serial();
    thread_local!(static STEPS: RefCell<Vec<OpResult>> = const { RefCell::new(Vec::new()) });
    fn on_close(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        STEPS.with(|s| s.borrow_mut().push(task.result.expect("result")));
        Ok(())
    }
    fn on_open(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        STEPS.with(|s| s.borrow_mut().push(task.result.expect("result")));
        if let Some(OpResult::Open(Ok(fd))) = task.result {
            ring.close(
                fd,
                Context {
                    cb: on_close,
                    ..Context::default()
                },
            );
        }
        Ok(())
    }
    let before = open_fds();
    let mut ring = ring();
    let with_ring = open_fds();
    ring.open(
        c"/dev/null",
        libc::O_RDONLY,
        0,
        Context {
            cb: on_open,
            ..Context::default()
        },
    );
    ring.run(RunCondition::UntilDone).expect("run");
    let steps = STEPS.with(|s| s.borrow().clone());
    assert!(
        matches!(steps[0], OpResult::Open(Ok(fd)) if fd >= 0),
        "{steps:?}"
    );
    assert_eq!(steps[1], OpResult::Close(Ok(())));
    assert_eq!(open_fds(), with_ring, "the fd was closed");
    drop(ring);
    assert_eq!(open_fds(), before, "the ring's fd too");
}

#[test]
fn open_creates_with_mode_and_owned_path() {
    let _serial = serial();
    let mut ring = ring();
    let path = temp_path("created");
    let _ = std::fs::remove_file(&path);
    let (r, _) = one(&mut ring, |ring, c| {
        ring.open(
            c_path(&path),
            libc::O_CREAT | libc::O_WRONLY | libc::O_EXCL,
            0o640,
            c,
        );
    });
    let OpResult::Open(Ok(fd)) = r else {
        panic!("{r:?}")
    };
    // SAFETY: the open just returned this descriptor, owned by nobody else.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata().expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode & 0o640, 0o640 & !umask_bits(), "mode {mode:o}");
    // O_CLOEXEC is always added.
    // SAFETY: F_GETFD takes no pointer.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
    drop(file);
    // O_EXCL on an existing file, and a missing directory: errors in the result.
    let (r, _) = one(&mut ring, |ring, c| {
        ring.open(c_path(&path), libc::O_CREAT | libc::O_EXCL, 0o600, c);
    });
    assert_eq!(r, OpResult::Open(Err(Errno::EEXIST)));
    let _ = std::fs::remove_file(&path);
}

fn umask_bits() -> u32 {
    // SAFETY: umask takes no pointers; it is restored immediately.
    let old = unsafe { libc::umask(0o022) };
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    old
}

#[test]
fn fsync_and_fdatasync() {
    let _serial = serial();
    let mut ring = ring();
    let path = temp_path("sync");
    let file = std::fs::File::create(&path).expect("create");
    let fd = file.as_raw_fd();
    one(&mut ring, |ring, c| {
        ring.write(fd, b"durable", Offset::At(0), c);
    });
    let (r, _) = one(&mut ring, |ring, c| {
        ring.fsync(fd, c);
    });
    assert_eq!(r, OpResult::Fsync(Ok(())));
    let (r, _) = one(&mut ring, |ring, c| {
        ring.fdatasync(fd, c);
    });
    assert_eq!(r, OpResult::Fsync(Ok(())));
    assert_eq!(std::fs::read(&path).expect("read"), b"durable");
    let (r, _) = one(&mut ring, |ring, c| {
        ring.fsync(-1, c);
    });
    assert_eq!(r, OpResult::Fsync(Err(Errno::EBADF)));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn stat_and_lstat_match_std_metadata() {
    let _serial = serial();
    use std::os::unix::fs::MetadataExt;
    let mut ring = ring();
    let path = temp_path("stat");
    std::fs::write(&path, vec![7u8; 12345]).expect("write");
    let link = temp_path("stat-link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    let (r, _) = one(&mut ring, |ring, c| {
        ring.stat(c_path(&link), c);
    });
    let OpResult::Stat(Ok(st)) = r else {
        panic!("{r:?}")
    };
    let meta = std::fs::metadata(&path).expect("metadata");
    assert_eq!(st.size, 12345);
    assert_eq!(st.size, meta.size());
    assert_eq!(st.mode, meta.mode());
    assert_eq!(st.ino, meta.ino());
    assert_eq!(st.dev, meta.dev());
    assert_eq!(u64::from(st.nlink), meta.nlink());
    assert_eq!(st.uid, meta.uid());
    assert_eq!(st.gid, meta.gid());
    assert_eq!(st.blocks, meta.blocks());
    assert_eq!(st.mtime.sec, meta.mtime());
    assert_eq!(i64::from(st.mtime.nsec), meta.mtime_nsec());
    assert_eq!(st.ctime.sec, meta.ctime());
    assert!(st.is_file());
    let (r, _) = one(&mut ring, |ring, c| {
        ring.lstat(c_path(&link), c);
    });
    let OpResult::Stat(Ok(lst)) = r else {
        panic!("{r:?}")
    };
    let lmeta = std::fs::symlink_metadata(&link).expect("symlink metadata");
    assert!(lst.is_symlink());
    assert_eq!(lst.ino, lmeta.ino());
    assert_ne!(lst.ino, st.ino);
    let (r, _) = one(&mut ring, |ring, c| {
        ring.stat(c"/nonexistent/xuring", c);
    });
    assert_eq!(r, OpResult::Stat(Err(Errno::ENOENT)));
    let (r, _) = one(&mut ring, |ring, c| {
        ring.stat(c"/", c);
    });
    assert!(matches!(r, OpResult::Stat(Ok(s)) if s.is_dir()));
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_file(&path);
}

fn take_fd(r: OpResult) -> OwnedFd {
    match r {
        // SAFETY: the op just returned this descriptor, owned by nobody else.
        OpResult::Socket(Ok(fd)) | OpResult::Open(Ok(fd)) => unsafe { OwnedFd::from_raw_fd(fd) },
        // SAFETY: as above.
        OpResult::Accept(Ok(a)) => unsafe { OwnedFd::from_raw_fd(a.fd) },
        other => panic!("no fd in {other:?}"),
    }
}

fn tcp_round_trip(listen_on: &str) {
    let mut ring = ring();
    let listener = TcpListener::bind(listen_on).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // socket (the kernel's op, or the direct-syscall fallback before 5.19)
    let (r, _) = one(&mut ring, |ring, c| {
        ring.socket(domain, libc::SOCK_STREAM, 0, c);
    });
    let client = take_fd(r);
    let (r, _) = one(&mut ring, |ring, c| {
        ring.connect(client.as_raw_fd(), addr, c);
    });
    assert_eq!(r, OpResult::Connect(Ok(())));
    let (mut server_side, peer) = listener.accept().expect("accept");
    assert_eq!(peer.port(), local_port(client.as_raw_fd()));
    // send -> std reads
    let (r, _) = one(&mut ring, |ring, c| {
        ring.send(client.as_raw_fd(), b"ping over tcp", 0, c);
    });
    assert_eq!(r, OpResult::Send(Ok(13)));
    let mut got = [0u8; 13];
    server_side.read_exact(&mut got).expect("read");
    assert_eq!(&got, b"ping over tcp");
    // std writes -> recv
    server_side.write_all(b"pong").expect("write");
    let (r, buf) = one(&mut ring, |ring, c| {
        ring.recv(client.as_raw_fd(), vec![0u8; 64], 0, c);
    });
    assert_eq!(r, OpResult::Recv(Ok(4)));
    assert_eq!(&buf.and_then(IoBuf::into_vec).expect("buf")[..4], b"pong");
    // accept on the ring, from a std client
    let (r, _) = one(&mut ring, |ring, c| {
        let stream = TcpStream::connect(addr).expect("connect");
        std::mem::forget(stream.try_clone().expect("clone"));
        ring.accept(listener.as_raw_fd(), c);
        drop(stream);
    });
    let OpResult::Accept(Ok(accepted)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(accepted.peer.map(|p| p.is_ipv4()), Some(addr.is_ipv4()));
    assert_eq!(accepted.peer.map(|p| p.ip()), Some(addr.ip()));
    drop(take_fd(r));
    // the peer closed: recv returns 0
    drop(server_side);
    let (r, _) = one(&mut ring, |ring, c| {
        ring.recv(client.as_raw_fd(), vec![0u8; 8], 0, c);
    });
    assert_eq!(r, OpResult::Recv(Ok(0)));
}

fn local_port(fd: RawFd) -> u16 {
    // SAFETY: zeroed sockaddr_storage is valid; `len` is its size.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let ptr: *mut libc::sockaddr_storage = &mut storage;
    // SAFETY: `ptr` and `len` describe the live `storage`.
    let ret = unsafe { libc::getsockname(fd, ptr.cast(), &mut len) };
    assert_eq!(ret, 0);
    // Both sockaddr_in and sockaddr_in6 keep the port right after the family.
    let bytes: &[u8] = {
        let p: *const u8 = ptr.cast();
        // SAFETY: `storage` is live and at least 4 bytes long.
        unsafe { std::slice::from_raw_parts(p, 4) }
    };
    u16::from_be_bytes([bytes[2], bytes[3]])
}

#[test]
fn tcp_over_ipv4_loopback() {
    let _serial = serial();
    tcp_round_trip("127.0.0.1:0");
}

#[test]
fn tcp_over_ipv6_loopback() {
    let _serial = serial();
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    tcp_round_trip("[::1]:0");
}

#[test]
fn refused_connection_is_a_result_and_leaks_nothing() {
    let _serial = serial();
    let mut ring = ring();
    let before = open_fds();
    // A port that was just free: bind, read the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let (r, _) = one(&mut ring, |ring, c| {
        ring.socket(libc::AF_INET, libc::SOCK_STREAM, 0, c);
    });
    let sock = take_fd(r);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let (r, _) = one(&mut ring, |ring, c| {
        ring.connect(sock.as_raw_fd(), addr, c);
    });
    assert_eq!(r, OpResult::Connect(Err(Errno::ECONNREFUSED)));
    drop(sock);
    // Bad fds everywhere.
    for (name, r) in [
        (
            "read",
            one(&mut ring, |ring, c| {
                ring.read(-1, vec![0u8; 4], Offset::File, c);
            }),
        ),
        (
            "write",
            one(&mut ring, |ring, c| {
                ring.write(9999, b"x", Offset::File, c);
            }),
        ),
        (
            "close",
            one(&mut ring, |ring, c| {
                ring.close(9999, c);
            }),
        ),
        (
            "recv",
            one(&mut ring, |ring, c| {
                ring.recv(9999, vec![0u8; 4], 0, c);
            }),
        ),
        (
            "accept",
            one(&mut ring, |ring, c| {
                ring.accept(9999, c);
            }),
        ),
    ] {
        let errno = match r.0 {
            OpResult::Read(Err(e))
            | OpResult::Write(Err(e))
            | OpResult::Close(Err(e))
            | OpResult::Recv(Err(e)) => e,
            OpResult::Accept(Err(e)) => e,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(errno, Errno::EBADF, "{name}");
    }
    let (r, _) = one(&mut ring, |ring, c| {
        ring.open(c"/nonexistent/xuring", libc::O_RDONLY, 0, c);
    });
    assert_eq!(r, OpResult::Open(Err(Errno::ENOENT)));
    assert_eq!(open_fds(), before, "no fd leaked by any error case");
}

#[test]
fn zero_length_and_large_buffers() {
    let _serial = serial();
    let mut ring = ring();
    let zero = common::open(c"/dev/zero", libc::O_RDONLY);
    let null = common::open(c"/dev/null", libc::O_WRONLY);
    let (r, _) = one(&mut ring, |ring, c| {
        ring.read(zero.raw(), Vec::new(), Offset::File, c);
    });
    assert_eq!(r, OpResult::Read(Ok(0)));
    let (r, _) = one(&mut ring, |ring, c| {
        ring.write(null.raw(), Vec::new(), Offset::File, c);
    });
    assert_eq!(r, OpResult::Write(Ok(0)));
    let big = 32 << 20;
    let mut data = vec![1u8; big];
    data[big - 1] = 9;
    let (r, buf) = one(&mut ring, |ring, c| {
        ring.read(zero.raw(), data, Offset::File, c);
    });
    // Large transfers may be short; whatever was reported is really in the buffer.
    let OpResult::Read(Ok(n)) = r else {
        panic!("{r:?}")
    };
    assert!(n > 0 && n <= big, "{n}");
    let buf = buf.and_then(IoBuf::into_vec).expect("buf");
    assert!(
        buf[..n].iter().all(|&b| b == 0),
        "the kernel wrote the first {n} bytes"
    );
    if n < big {
        assert_eq!(buf[big - 1], 9, "and nothing past them");
    }
    let (r, _) = one(&mut ring, |ring, c| {
        ring.write(null.raw(), buf, Offset::File, c);
    });
    assert_eq!(r, OpResult::Write(Ok(big)));
}

#[test]
fn poll_reports_pipe_events() {
    let _serial = serial();
    let mut ring = ring();
    let (r, w) = pipe();
    // Writable at once.
    let (res, _) = one(&mut ring, |ring, c| {
        ring.poll(w.raw(), libc::POLLOUT as u32, c);
    });
    assert!(
        matches!(res, OpResult::Poll(Ok(ev)) if ev & libc::POLLOUT as u32 != 0),
        "{res:?}"
    );
    // Readable only after a write: submit first, check it is pending, then write.
    LAST.with(|l| l.borrow_mut().clear());
    ring.poll(r.raw(), libc::POLLIN as u32, ctx(1));
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 1, "nothing to read yet");
    write_all(w.raw(), b"!");
    ring.run(RunCondition::UntilDone).expect("run");
    let (_, res, _, _) = LAST.with(|l| l.borrow_mut().pop()).expect("poll done");
    assert!(
        matches!(res, OpResult::Poll(Ok(ev)) if ev & libc::POLLIN as u32 != 0),
        "{res:?}"
    );
    // Hang-up is reported too.
    drop(w);
    let (res, _) = one(&mut ring, |ring, c| {
        ring.poll(r.raw(), libc::POLLIN as u32, c);
    });
    assert!(
        matches!(res, OpResult::Poll(Ok(ev)) if ev & libc::POLLHUP as u32 != 0),
        "{res:?}"
    );
}

#[test]
fn splice_moves_bytes_through_a_pipe() {
    let _serial = serial();
    let mut ring = ring();
    let src = temp_path("splice-src");
    let dst = temp_path("splice-dst");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).expect("write src");
    let input = std::fs::File::open(&src).expect("open src");
    let output = std::fs::File::create(&dst).expect("create dst");
    let (pr, pw) = pipe();
    if !supported(&ring, Opcode::Splice) {
        let (r, _) = one(&mut ring, |ring, c| {
            ring.splice(input.as_raw_fd(), Some(0), pw.raw(), None, 4096, 0, c);
        });
        assert_eq!(r, OpResult::Splice(Err(Errno::EOPNOTSUPP)));
        return;
    }
    let mut moved = 0u64;
    while moved < data.len() as u64 {
        let (r, _) = one(&mut ring, |ring, c| {
            ring.splice(input.as_raw_fd(), Some(moved), pw.raw(), None, 16384, 0, c);
        });
        let OpResult::Splice(Ok(n)) = r else {
            panic!("{r:?}")
        };
        assert!(n > 0);
        let mut left = n;
        while left > 0 {
            let (r, _) = one(&mut ring, |ring, c| {
                ring.splice(
                    pr.raw(),
                    None,
                    output.as_raw_fd(),
                    Some(moved),
                    left as u32,
                    0,
                    c,
                );
            });
            let OpResult::Splice(Ok(m)) = r else {
                panic!("{r:?}")
            };
            left -= m;
            moved += m as u64;
        }
    }
    assert_eq!(std::fs::read(&dst).expect("read dst"), data);
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
}

#[test]
fn msg_ring_delivers_to_the_other_rings_handler() {
    let _serial = serial();
    thread_local!(static GOT: RefCell<Vec<Message>> = const { RefCell::new(Vec::new()) });
    fn on_message(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        let Some(OpResult::Message(m)) = task.result else {
            panic!("{:?}", task.result)
        };
        GOT.with(|g| g.borrow_mut().push(m));
        Ok(())
    }
    let mut sender = ring();
    let mut receiver = ring();
    receiver.on_message(Context {
        cb: on_message,
        ..Context::default()
    });
    let message = Message {
        data: 0x1234_5678_9abc,
        value: -7,
    };
    let (r, _) = one(&mut sender, |ring, c| {
        ring.msg_ring(receiver.fd(), message, c);
    });
    if !supported(&sender, Opcode::MsgRing) {
        // On the readiness executor the receiver's fd is an epoll fd the runtime owns, which
        // user ops are refused first.
        let expected = if xuring_sys::runtime_fds::is_claimed(receiver.fd()) {
            Errno::EPERM
        } else {
            Errno::EOPNOTSUPP
        };
        assert_eq!(r, OpResult::MsgRing(Err(expected)));
        return;
    }
    assert_eq!(r, OpResult::MsgRing(Ok(())));
    // The receiver has nothing of its own in flight; a short deadline run picks it up.
    receiver
        .run(RunCondition::For(std::time::Duration::from_millis(50)))
        .expect("run");
    assert_eq!(GOT.with(|g| g.borrow().clone()), [message]);
    assert_eq!(receiver.stats().messages, 1);
    // Too large a payload is refused locally.
    let (r, _) = one(&mut sender, |ring, c| {
        ring.msg_ring(
            receiver.fd(),
            Message {
                data: u64::MAX,
                value: 0,
            },
            c,
        );
    });
    assert_eq!(r, OpResult::MsgRing(Err(Errno::EINVAL)));
}

#[test]
fn mixed_ops_complete_in_any_order_with_their_own_results() {
    let _serial = serial();
    let mut ring = Ring::init(8).expect("ring");
    let zero = common::open(c"/dev/zero", libc::O_RDONLY);
    let null = common::open(c"/dev/null", libc::O_WRONLY);
    LAST.with(|l| l.borrow_mut().clear());
    let mut expected = std::collections::HashMap::new();
    for i in 0..600u16 {
        match i % 6 {
            0 => {
                ring.read(
                    zero.raw(),
                    vec![1u8; usize::from(i % 50)],
                    Offset::File,
                    ctx(i),
                );
            }
            1 => {
                ring.write(null.raw(), vec![0u8; usize::from(i)], Offset::File, ctx(i));
            }
            2 => {
                ring.timer(
                    xuring_core::Timespec {
                        sec: 0,
                        nsec: u32::from(i) * 1000,
                    },
                    ctx(i),
                );
            }
            3 => {
                ring.noop(ctx(i));
            }
            4 => {
                ring.stat(c"/dev/null", ctx(i));
            }
            _ => {
                ring.close(-1, ctx(i));
            }
        }
        expected.insert(i, i % 6);
    }
    ring.run(RunCondition::UntilDone).expect("run");
    let all = LAST.with(|l| std::mem::take(&mut *l.borrow_mut()));
    assert_eq!(all.len(), 600);
    for (msg, result, buf, _) in all {
        let kind = expected.remove(&msg).expect("each msg once");
        match (kind, result) {
            (0, OpResult::Read(Ok(n))) => {
                assert_eq!(n, usize::from(msg % 50));
                let buf = buf.and_then(IoBuf::into_vec).expect("buf");
                assert!(buf.iter().all(|&b| b == 0), "read filled its own buffer");
            }
            (1, OpResult::Write(Ok(n))) => assert_eq!(n, usize::from(msg)),
            (2, OpResult::Timer(Ok(()))) | (3, OpResult::Noop(Ok(()))) => {}
            (4, OpResult::Stat(Ok(s))) => assert_eq!(s.mode & libc::S_IFMT, libc::S_IFCHR),
            (5, OpResult::Close(Err(Errno::EBADF))) => {}
            other => panic!("msg {msg}: {other:?}"),
        }
    }
    assert!(expected.is_empty());
}

/// The seed's multi-step pattern: socket -> connect -> write -> read, the step in `msg`.
#[test]
fn multi_step_socket_connect_write_read() {
    let _serial = serial();
    struct Conn {
        addr: SocketAddr,
        fd: RawFd,
        reply: Vec<u8>,
        error: Option<String>,
    }
    const SOCKET: u16 = 0;
    const CONNECT: u16 = 1;
    const WRITE: u16 = 2;
    const READ: u16 = 3;
    fn step(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        let conn_ptr = task.userdata().expect("state").cast::<Conn>();
        // SAFETY: the test keeps `Conn` alive until `run` returns; only this callback
        // touches it, one step at a time.
        let conn = unsafe { &mut *conn_ptr.as_ptr() };
        let next = |msg| Context {
            cb: step,
            msg,
            userdata: task.userdata(),
        };
        match (task.msg(), task.result.expect("result")) {
            (SOCKET, OpResult::Socket(Ok(fd))) => {
                conn.fd = fd;
                ring.connect(fd, conn.addr, next(CONNECT));
            }
            (CONNECT, OpResult::Connect(Ok(()))) => {
                ring.write(conn.fd, b"hello server", Offset::File, next(WRITE));
            }
            (WRITE, OpResult::Write(Ok(12))) => {
                ring.read(conn.fd, vec![0u8; 64], Offset::File, next(READ));
            }
            (READ, OpResult::Read(Ok(n))) => {
                let buf = task.take_buf().and_then(IoBuf::into_vec).expect("buf");
                conn.reply = buf[..n].to_vec();
                ring.close(conn.fd, Context::default());
            }
            (msg, other) => conn.error = Some(format!("step {msg}: {other:?}")),
        }
        Ok(())
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = [0u8; 12];
        s.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"hello server");
        s.write_all(b"hello client").expect("write");
    });
    let mut conn = Conn {
        addr,
        fd: -1,
        reply: Vec::new(),
        error: None,
    };
    let mut ring = ring();
    ring.socket(
        libc::AF_INET,
        libc::SOCK_STREAM,
        0,
        Context {
            cb: step,
            msg: SOCKET,
            userdata: Some(std::ptr::NonNull::from(&mut conn).cast()),
        },
    );
    ring.run(RunCondition::UntilDone).expect("run");
    server.join().expect("server");
    assert_eq!(conn.error, None);
    assert_eq!(conn.reply, b"hello client");
}

/// Windows of pool buffers: a fixed write of the rest of a buffer, and a fixed read into the
/// room after bytes already there (the address the kernel checks against the registered
/// buffer is inside it, past the skipped bytes).
#[test]
fn pool_buffer_windows_use_fixed_ops_in_place() {
    let _serial = serial();
    let mut ring = Ring::builder(8).buffer_pool(2, 64).build().expect("ring");
    let (r, w) = pipe();
    let pool = ring.buffers().expect("pool").clone();
    let mut out = pool.get().expect("a buffer");
    out.set_len(11);
    out.copy_from_slice(b"hello world");
    let mut out = IoBuf::from(out);
    out.advance(6);
    let (result, _) = one(&mut ring, |ring, c| {
        ring.write(w.raw(), out, Offset::File, c);
    });
    assert_eq!(result, OpResult::Write(Ok(5)));
    let mut room = pool.get().expect("a buffer");
    room.set_len(8);
    room[..3].copy_from_slice(b"abc");
    let mut room = IoBuf::from(room);
    room.advance(3);
    let (result, buf) = one(&mut ring, |ring, c| {
        ring.read(r.raw(), room, Offset::File, c);
    });
    assert_eq!(result, OpResult::Read(Ok(5)));
    let buf = buf.expect("the buffer back");
    assert_eq!((buf.offset(), buf.whole_slice()), (3, &b"abcworld"[..]));
    assert!(buf.pool_index(&pool).is_some());
}

/// Datagrams with addresses: `send_to` reaches the address, `recv_from` names the sender, a
/// datagram longer than the buffer is cut to it, and the header space is reused across ops
/// (a second exchange the other way round gets the other sender).
#[test]
fn udp_send_to_and_recv_from_carry_the_addresses() {
    let _serial = serial();
    let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a");
    let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind b");
    let (a_addr, b_addr) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
    let mut ring = ring();
    let (sent, _) = one(&mut ring, |ring, c| {
        ring.send_to(a.as_raw_fd(), b"0123456789", b_addr, 0, c);
    });
    assert_eq!(sent, OpResult::SendTo(Ok(10)));
    let (got, buf) = one(&mut ring, |ring, c| {
        ring.recv_from(b.as_raw_fd(), vec![0u8; 4], 0, c);
    });
    assert_eq!(
        got,
        OpResult::RecvFrom(Ok(xuring_core::Received {
            len: 4,
            peer: Some(a_addr)
        }))
    );
    assert_eq!(
        buf.expect("buffer").as_slice(),
        b"0123",
        "cut to the buffer"
    );
    let (sent, _) = one(&mut ring, |ring, c| {
        ring.send_to(b.as_raw_fd(), b"back", a_addr, 0, c);
    });
    assert_eq!(sent, OpResult::SendTo(Ok(4)));
    let (got, buf) = one(&mut ring, |ring, c| {
        ring.recv_from(a.as_raw_fd(), vec![0u8; 16], 0, c);
    });
    assert_eq!(
        got,
        OpResult::RecvFrom(Ok(xuring_core::Received {
            len: 4,
            peer: Some(b_addr)
        }))
    );
    assert_eq!(&buf.expect("buffer").as_slice()[..4], b"back");
}
