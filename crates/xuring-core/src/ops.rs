//! Every operation, declared once.
//!
//! Each entry below is the whole of an op: its argument struct (the memory the kernel uses,
//! owned by the task), its result type, opcode, refused arguments, SQE preparation, result
//! decoding, fallback and the [`Ring`](crate::Ring) methods that submit it. `declare_ops!`
//! turns the list into [`Op`], [`OpKind`] and [`OpResult`] and everything that dispatches on
//! them; see [`op`](crate::op) for the grammar and `docs/architecture.md` ("Adding an op")
//! for a worked example.
//!
//! Whether an op needs a per-op check of its opcode follows from the opcode's kernel version:
//! the opcodes of the ops at or below the 5.6 floor ([`FLOOR_OPCODES`]) are checked once,
//! when the ring is set up; newer ones each time the op is queued.

use std::os::fd::RawFd;

use xuring_sys::abi::{__kernel_timespec, IORING_MSG_DATA, io_uring_sqe};
use xuring_sys::{CancelFlags, Errno, FsyncFlags, OpSet, Opcode, TimeoutFlags};

use crate::msghdr::MsgSpace;
use crate::op::{
    CPath, CancelVia, Message, Offset, OpenHow, PrepEnv, bad_offset, prep_rw, read_only,
    runtime_fd, sqe_len,
};
use crate::task::{NOT_A_TASK, THREAD_MAIL};
use crate::{Accepted, IoBuf, IoVecs, Received, SockAddrBuf, TaskId, Timespec};

/// A byte count.
#[inline(always)]
fn count(r: Result<u32, Errno>) -> Result<usize, Errno> {
    r.map(|n| n as usize)
}

/// Success without a value.
#[inline(always)]
fn unit(r: Result<u32, Errno>) -> Result<(), Errno> {
    r.map(|_| ())
}

/// A new descriptor.
#[inline(always)]
fn new_fd(r: Result<u32, Errno>) -> Result<RawFd, Errno> {
    r.map(|n| n as RawFd)
}

declare_ops! {
    /// `IORING_OP_NOP`: does nothing.
    Noop -> () {}
    opcode: Nop;
    refuse(_op) { None }
    prep(_op, sqe, _env) { sqe.opcode = Opcode::Nop as u8; }
    decode(_op, res) { unit(res) }
    example { Noop {} }
    methods {
        /// `IORING_OP_NOP` (5.1): completes with `OpResult::Noop(Ok(()))`. Useful to measure
        /// the runtime's own overhead, or to get a callback on the next `run`.
        fn noop() { Noop {} }
    }

    /// `IORING_OP_TIMEOUT` with no completion count: fires after a time, or at one.
    Timer -> () {
        /// The time the kernel reads.
        time: __kernel_timespec,
        /// An absolute `CLOCK_MONOTONIC` time instead of a relative one.
        pub absolute: bool,
        /// The ring's own timer that bounds a deadline wait on kernels without `EXT_ARG`.
        wake: bool,
    }
    opcode: Timeout;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        // off = 0: no completion count, a pure timer.
        prep_rw(sqe, Opcode::Timeout, -1, core::ptr::from_mut(&mut op.time) as u64, 1, 0);
        if op.absolute {
            sqe.op_flags = TimeoutFlags::ABS.bits();
        }
    }
    // A timer without a count completes with -ETIME when it expires.
    decode(_op, res) {
        match res {
            Err(Errno::ETIME) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }
    example { Timer { time: Timespec::from_duration(core::time::Duration::from_millis(5)).to_kernel(), absolute: false, wake: false } }
    methods {
        /// `IORING_OP_TIMEOUT` (5.4): fires `after` from now, completing with
        /// `OpResult::Timer(Ok(()))`, or `Err(ECANCELED)` if cancelled. The timespec is
        /// stored in the task.
        fn timer(after: Timespec) {
            Timer { time: after.to_kernel(), absolute: false, wake: false }
        }
        /// Like [`timer`](Self::timer), but fires at `deadline` on `CLOCK_MONOTONIC`
        /// (`IORING_TIMEOUT_ABS`, 5.5); see [`Timespec::now`].
        fn timer_at(deadline: Timespec) {
            Timer { time: deadline.to_kernel(), absolute: true, wake: false }
        }
    }

    /// `IORING_OP_READ`, or `READ_FIXED` with a registered pool buffer.
    Read -> usize {
        /// The file to read.
        pub fd: RawFd,
        /// Where the bytes go.
        pub buf: IoBuf,
        /// Where in the file.
        pub offset: Offset,
    }
    opcode: Read;
    also: ReadFixed;
    buffer: output buf;
    refuse(op) {
        read_only(op.buf.is_writable()).or(runtime_fd(op.fd)).or(bad_offset(op.offset))
    }
    prep(op, sqe, env) {
        let index = env.fixed.and_then(|pool| op.buf.pool_index(pool));
        let opcode = if index.is_some() { Opcode::ReadFixed } else { Opcode::Read };
        let len = sqe_len(op.buf.len());
        // A read-only buffer is refused before it gets here.
        let addr = op.buf.as_mut_ptr().unwrap_or(core::ptr::null_mut()) as u64;
        prep_rw(sqe, opcode, op.fd, addr, len, op.offset.to_raw());
        sqe.buf_index = index.unwrap_or(0);
    }
    decode(_op, res) { count(res) }
    example { Read { fd: 0, buf: vec![0u8; 4].into(), offset: Offset::File } }
    methods {
        /// `IORING_OP_READ` (5.6), like `pread(2)` (or `read(2)` with [`Offset::File`]):
        /// reads up to `buf.len()` bytes into `buf`, completing with `OpResult::Read(Ok(n))`.
        /// The buffer travels with the task; take it back in the callback with
        /// [`Task::take_buf`](crate::Task::take_buf). A registered pool buffer uses
        /// `IORING_OP_READ_FIXED`. A read-only buffer (`&'static [u8]`) completes with
        /// `EFAULT` without reaching the kernel.
        fn read(fd: RawFd, buf: impl Into<IoBuf>, offset: Offset) {
            Read { fd, buf: buf.into(), offset }
        }
    }

    /// `IORING_OP_WRITE`, or `WRITE_FIXED` with a registered pool buffer.
    Write -> usize {
        /// The file to write.
        pub fd: RawFd,
        /// The bytes.
        pub buf: IoBuf,
        /// Where in the file.
        pub offset: Offset,
    }
    opcode: Write;
    also: WriteFixed;
    buffer: input buf;
    refuse(op) { runtime_fd(op.fd).or(bad_offset(op.offset)) }
    prep(op, sqe, env) {
        let index = env.fixed.and_then(|pool| op.buf.pool_index(pool));
        let opcode = if index.is_some() { Opcode::WriteFixed } else { Opcode::Write };
        let len = sqe_len(op.buf.len());
        prep_rw(sqe, opcode, op.fd, op.buf.as_ptr() as u64, len, op.offset.to_raw());
        sqe.buf_index = index.unwrap_or(0);
    }
    decode(_op, res) { count(res) }
    example { Write { fd: 1, buf: b"abcd".into(), offset: Offset::At(3) } }
    methods {
        /// `IORING_OP_WRITE` (5.6), like `pwrite(2)` (or `write(2)` with [`Offset::File`]):
        /// writes `buf`, completing with `OpResult::Write(Ok(n))` (`n` may be short). The
        /// buffer travels with the task and comes back through
        /// [`Task::take_buf`](crate::Task::take_buf). A registered pool buffer uses
        /// `IORING_OP_WRITE_FIXED`.
        fn write(fd: RawFd, buf: impl Into<IoBuf>, offset: Offset) {
            Write { fd, buf: buf.into(), offset }
        }
    }

    /// `IORING_OP_READV`: reads into several buffers in order.
    Readv -> usize {
        /// The file to read.
        pub fd: RawFd,
        /// The buffers and their iovec array.
        pub bufs: IoVecs,
        /// Where in the file.
        pub offset: Offset,
    }
    opcode: Readv;
    iovecs: output bufs;
    refuse(op) {
        read_only(op.bufs.bufs().iter().all(IoBuf::is_writable))
            .or(runtime_fd(op.fd))
            .or(bad_offset(op.offset))
    }
    prep(op, sqe, _env) {
        // Read-only buffers are refused before a readv gets here.
        let (addr, len) = match op.bufs.prepare(true) {
            Some(iovecs) => (iovecs.as_ptr() as u64, iovecs.len() as u32),
            None => (0, 0),
        };
        prep_rw(sqe, Opcode::Readv, op.fd, addr, len, op.offset.to_raw());
    }
    decode(_op, res) { count(res) }
    example { Readv { fd: 0, bufs: IoVecs::new(vec![vec![0u8; 2].into()]), offset: Offset::File } }
    methods {
        /// `IORING_OP_READV` (5.1), like `preadv2(2)`: reads into several buffers in order.
        /// Completes with `OpResult::Readv(Ok(n))`; take the buffers back with
        /// [`Task::take_iovecs`](crate::Task::take_iovecs). Read-only buffers complete with
        /// `EFAULT` locally.
        fn readv(fd: RawFd, bufs: IoVecs, offset: Offset) {
            Readv { fd, bufs, offset }
        }
    }

    /// `IORING_OP_WRITEV`: writes several buffers in order.
    Writev -> usize {
        /// The file to write.
        pub fd: RawFd,
        /// The buffers and their iovec array.
        pub bufs: IoVecs,
        /// Where in the file.
        pub offset: Offset,
    }
    opcode: Writev;
    iovecs: input bufs;
    refuse(op) { runtime_fd(op.fd).or(bad_offset(op.offset)) }
    prep(op, sqe, _env) {
        let (addr, len) = match op.bufs.prepare(false) {
            Some(iovecs) => (iovecs.as_ptr() as u64, iovecs.len() as u32),
            None => (0, 0),
        };
        prep_rw(sqe, Opcode::Writev, op.fd, addr, len, op.offset.to_raw());
    }
    decode(_op, res) { count(res) }
    example { Writev { fd: 1, bufs: IoVecs::new(vec![b"xy".into()]), offset: Offset::File } }
    methods {
        /// `IORING_OP_WRITEV` (5.1), like `pwritev2(2)`: writes several buffers in order.
        fn writev(fd: RawFd, bufs: IoVecs, offset: Offset) {
            Writev { fd, bufs, offset }
        }
    }

    /// `IORING_OP_OPENAT` relative to the current directory.
    Open -> RawFd {
        /// The path.
        pub path: CPath,
        /// `O_*` flags (`O_CLOEXEC` is always added).
        pub flags: i32,
        /// Permission bits for a created file.
        pub mode: u32,
    }
    opcode: Openat;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        let path = op.path.as_c_str().as_ptr() as u64;
        prep_rw(sqe, Opcode::Openat, libc::AT_FDCWD, path, op.mode, 0);
        sqe.op_flags = (op.flags | libc::O_CLOEXEC) as u32;
    }
    decode(_op, res) { new_fd(res) }
    created(fd) { fd }
    example { Open { path: c"/".into(), flags: 0, mode: 0 } }
    methods {
        /// `IORING_OP_OPENAT` (5.6) relative to the current directory, like `open(2)`:
        /// completes with `OpResult::Open(Ok(fd))`. `O_CLOEXEC` is always added, as `std::fs`
        /// does. The path is `'static` (`c"/dev/null"`) or an owned `CString`.
        fn open(path: impl Into<CPath>, flags: i32, mode: u32) {
            Open { path: path.into(), flags, mode }
        }
    }

    /// `IORING_OP_OPENAT2` (5.6): `openat` relative to a directory, with `RESOLVE_*` rules.
    Openat2 -> RawFd {
        /// The directory `path` is relative to (`libc::AT_FDCWD`: the current directory).
        pub dir: RawFd,
        /// The path.
        pub path: CPath,
        /// What the kernel reads: `O_*` flags (`O_CLOEXEC` added), mode, `RESOLVE_*`.
        how: OpenHow,
    }
    opcode: Openat2;
    refuse(op) {
        if op.dir == libc::AT_FDCWD { None } else { runtime_fd(op.dir) }
    }
    prep(op, sqe, _env) {
        let path = op.path.as_c_str().as_ptr() as u64;
        let how = core::ptr::from_ref::<OpenHow>(&op.how) as u64;
        let size = core::mem::size_of::<OpenHow>() as u32;
        prep_rw(sqe, Opcode::Openat2, op.dir, path, size, how);
    }
    decode(_op, res) { new_fd(res) }
    created(fd) { fd }
    example { Openat2::new(libc::AT_FDCWD, c"/".into(), 0, 0, libc::RESOLVE_BENEATH) }
    methods {
        /// `IORING_OP_OPENAT2` (5.6), like `openat2(2)`: opens `path` relative to the
        /// directory `dir` (`libc::AT_FDCWD` for the current one) with `O_*` `flags`, `mode`
        /// for a created file, and `RESOLVE_*` rules, e.g. `RESOLVE_BENEATH` to keep the
        /// lookup inside `dir` (an absolute path, a `..` above it or a symlink out of it is
        /// `EXDEV`). Completes with `OpResult::Openat2(Ok(fd))`. `O_CLOEXEC` is always added.
        /// Unlike `open`, unknown flags and a `mode` without `O_CREAT` are `EINVAL`.
        fn openat2(dir: RawFd, path: impl Into<CPath>, flags: i32, mode: u32, resolve: u64) {
            Openat2::new(dir, path.into(), flags, mode, resolve)
        }
    }

    /// `IORING_OP_CLOSE`.
    Close -> () {
        /// The descriptor to close.
        pub fd: RawFd,
    }
    opcode: Close;
    refuse(op) { runtime_fd(op.fd) }
    prep(op, sqe, _env) { prep_rw(sqe, Opcode::Close, op.fd, 0, 0, 0); }
    decode(_op, res) { unit(res) }
    example { Close { fd: 9 } }
    methods {
        /// `IORING_OP_CLOSE` (5.6), like `close(2)`: completes with `OpResult::Close(Ok(()))`.
        fn close(fd: RawFd) { Close { fd } }
    }

    /// `IORING_OP_FSYNC`.
    Fsync -> () {
        /// The file to sync.
        pub fd: RawFd,
        /// Data only (`IORING_FSYNC_DATASYNC`, like `fdatasync(2)`).
        pub datasync: bool,
    }
    opcode: Fsync;
    refuse(op) { runtime_fd(op.fd) }
    prep(op, sqe, _env) {
        prep_rw(sqe, Opcode::Fsync, op.fd, 0, 0, 0);
        if op.datasync {
            sqe.op_flags = FsyncFlags::DATASYNC.bits();
        }
    }
    decode(_op, res) { unit(res) }
    example { Fsync { fd: 9, datasync: true } }
    methods {
        /// `IORING_OP_FSYNC` (5.1), like `fsync(2)`.
        fn fsync(fd: RawFd) { Fsync { fd, datasync: false } }
        /// `IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC` (5.1), like `fdatasync(2)`.
        fn fdatasync(fd: RawFd) { Fsync { fd, datasync: true } }
    }

    /// `IORING_OP_FALLOCATE` (5.6): allocates (or, with `mode`, punches or zeroes) a range.
    Fallocate -> () {
        /// The file (opened for writing).
        pub fd: RawFd,
        /// `FALLOC_FL_*` (0: allocate, growing the file if the range ends past it).
        pub mode: i32,
        /// Where the range starts.
        pub offset: u64,
        /// The range's length.
        pub len: u64,
    }
    opcode: Fallocate;
    refuse(op) {
        runtime_fd(op.fd)
            .or(bad_offset(Offset::At(op.offset)))
            .or(bad_offset(Offset::At(op.len)))
    }
    prep(op, sqe, _env) {
        prep_rw(sqe, Opcode::Fallocate, op.fd, op.len, op.mode as u32, op.offset);
    }
    decode(_op, res) { unit(res) }
    example { Fallocate { fd: 9, mode: 0, offset: 0, len: 4096 } }
    methods {
        /// `IORING_OP_FALLOCATE` (5.6), like `fallocate(2)`: completes with
        /// `OpResult::Fallocate(Ok(()))`. An offset or length above `i64::MAX` is `EINVAL`.
        fn fallocate(fd: RawFd, mode: i32, offset: u64, len: u64) {
            Fallocate { fd, mode, offset, len }
        }
    }

    /// `IORING_OP_FADVISE` (5.6): tells the kernel how a range will be read.
    Fadvise -> () {
        /// The file.
        pub fd: RawFd,
        /// Where the range starts.
        pub offset: u64,
        /// The range's length (0: to the end of the file).
        pub len: u32,
        /// `POSIX_FADV_*`.
        pub advice: i32,
    }
    opcode: Fadvise;
    refuse(op) { runtime_fd(op.fd).or(bad_offset(Offset::At(op.offset))) }
    prep(op, sqe, _env) {
        prep_rw(sqe, Opcode::Fadvise, op.fd, 0, op.len, op.offset);
        sqe.op_flags = op.advice as u32;
    }
    decode(_op, res) { unit(res) }
    example { Fadvise { fd: 9, offset: 0, len: 0, advice: libc::POSIX_FADV_SEQUENTIAL } }
    methods {
        /// `IORING_OP_FADVISE` (5.6), like `posix_fadvise(2)`: completes with
        /// `OpResult::Fadvise(Ok(()))`; `ESPIPE` on a pipe.
        fn fadvise(fd: RawFd, offset: u64, len: u32, advice: i32) {
            Fadvise { fd, offset, len, advice }
        }
    }

    /// `IORING_OP_STATX`. (The op is `ops::Stat`; what it produces is [`crate::Stat`].)
    Stat -> crate::stat::Stat {
        /// The directory a relative `path` starts from (`libc::AT_FDCWD`: the current one);
        /// with an empty `path`, the file to stat itself (`AT_EMPTY_PATH`).
        pub dir: RawFd,
        /// The path (empty: `dir` itself).
        pub path: CPath,
        /// Do not follow a final symlink (`AT_SYMLINK_NOFOLLOW`, for `lstat`).
        pub nofollow: bool,
        /// The buffer the kernel fills (boxed: it moves with the task while the kernel
        /// writes it; reused across stats).
        buf: Box<libc::statx>,
    }
    opcode: Statx;
    refuse(op) {
        if op.dir == libc::AT_FDCWD { None } else { runtime_fd(op.dir) }
    }
    prep(op, sqe, _env) {
        let path = op.path.as_c_str().as_ptr() as u64;
        let buf = core::ptr::from_mut::<libc::statx>(&mut op.buf) as u64;
        prep_rw(sqe, Opcode::Statx, op.dir, path, crate::stat::STATX_MASK, buf);
        let nofollow = if op.nofollow { libc::AT_SYMLINK_NOFOLLOW } else { 0 };
        let empty = if op.path.as_c_str().is_empty() { libc::AT_EMPTY_PATH } else { 0 };
        sqe.op_flags = (nofollow | empty) as u32;
    }
    decode(op, res) { res.map(|_| crate::stat::Stat::from_statx(&op.buf)) }
    example {
        Stat {
            dir: libc::AT_FDCWD,
            path: c"/".into(),
            nofollow: false,
            buf: crate::stat::zeroed_statx(),
        }
    }
    methods {
        /// `IORING_OP_STATX` (5.6), like `stat(2)`: completes with
        /// `OpResult::Stat(Ok(stat))`. The kernel fills a `statx` buffer owned by the task
        /// (reused across stats).
        fn stat(path: impl Into<CPath>) with engine {
            Stat { dir: libc::AT_FDCWD, path: path.into(), nofollow: false, buf: engine.statx_buf() }
        }
        /// Like [`stat`](Self::stat) but does not follow a final symlink
        /// (`AT_SYMLINK_NOFOLLOW`), like `lstat(2)`.
        fn lstat(path: impl Into<CPath>) with engine {
            Stat { dir: libc::AT_FDCWD, path: path.into(), nofollow: true, buf: engine.statx_buf() }
        }
        /// `IORING_OP_STATX` of an open descriptor (`AT_EMPTY_PATH`), like `fstat(2)`:
        /// completes with `OpResult::Stat(Ok(stat))`.
        fn fstat(fd: RawFd) with engine {
            Stat { dir: fd, path: c"".into(), nofollow: false, buf: engine.statx_buf() }
        }
    }

    /// `IORING_OP_UNLINKAT` (5.11): removes a name, or an empty directory.
    Unlink -> () {
        /// The path, relative to the current directory.
        pub path: CPath,
        /// `AT_REMOVEDIR` to remove a directory, else 0.
        pub flags: i32,
    }
    opcode: Unlinkat;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        let path = op.path.as_c_str().as_ptr() as u64;
        prep_rw(sqe, Opcode::Unlinkat, libc::AT_FDCWD, path, 0, 0);
        sqe.op_flags = op.flags as u32;
    }
    decode(_op, res) { unit(res) }
    example { Unlink { path: c"/nonexistent".into(), flags: 0 } }
    methods {
        /// `IORING_OP_UNLINKAT` (5.11), like `unlink(2)`: completes with
        /// `OpResult::Unlink(Ok(()))`, or `EOPNOTSUPP` where the kernel lacks the opcode.
        fn unlink(path: impl Into<CPath>) { Unlink { path: path.into(), flags: 0 } }
        /// Like [`unlink`](Self::unlink) for an empty directory (`AT_REMOVEDIR`), like
        /// `rmdir(2)`.
        fn rmdir(path: impl Into<CPath>) {
            Unlink { path: path.into(), flags: libc::AT_REMOVEDIR }
        }
    }

    /// `IORING_OP_RENAMEAT` (5.11): renames a file or directory.
    Rename -> () {
        /// The existing path, relative to the current directory.
        pub from: CPath,
        /// The new path, relative to the current directory.
        pub to: CPath,
        /// `RENAME_*` flags of `renameat2(2)` (`RENAME_NOREPLACE`, ...), or 0.
        pub flags: u32,
    }
    opcode: Renameat;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        let from = op.from.as_c_str().as_ptr() as u64;
        let to = op.to.as_c_str().as_ptr() as u64;
        prep_rw(sqe, Opcode::Renameat, libc::AT_FDCWD, from, libc::AT_FDCWD as u32, to);
        sqe.op_flags = op.flags;
    }
    decode(_op, res) { unit(res) }
    example { Rename { from: c"/a".into(), to: c"/b".into(), flags: 0 } }
    methods {
        /// `IORING_OP_RENAMEAT` (5.11), like `rename(2)` (`renameat2(2)` with `flags`):
        /// completes with `OpResult::Rename(Ok(()))`, or `EOPNOTSUPP` where the kernel lacks
        /// the opcode.
        fn rename(from: impl Into<CPath>, to: impl Into<CPath>, flags: u32) {
            Rename { from: from.into(), to: to.into(), flags }
        }
    }

    /// `IORING_OP_MKDIRAT` (5.15): creates a directory.
    Mkdir -> () {
        /// The path, relative to the current directory.
        pub path: CPath,
        /// Permission bits (the umask applies).
        pub mode: u32,
    }
    opcode: Mkdirat;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        let path = op.path.as_c_str().as_ptr() as u64;
        prep_rw(sqe, Opcode::Mkdirat, libc::AT_FDCWD, path, op.mode, 0);
    }
    decode(_op, res) { unit(res) }
    example { Mkdir { path: c"/d".into(), mode: 0o755 } }
    methods {
        /// `IORING_OP_MKDIRAT` (5.15), like `mkdir(2)`: completes with
        /// `OpResult::Mkdir(Ok(()))`, or `EOPNOTSUPP` where the kernel lacks the opcode.
        fn mkdir(path: impl Into<CPath>, mode: u32) { Mkdir { path: path.into(), mode } }
    }

    /// `IORING_OP_SYMLINKAT` (5.15): creates a symbolic link.
    Symlink -> () {
        /// What the link points to (not checked: it may dangle).
        pub target: CPath,
        /// The link's path, relative to the current directory.
        pub link: CPath,
    }
    opcode: Symlinkat;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        let target = op.target.as_c_str().as_ptr() as u64;
        let link = op.link.as_c_str().as_ptr() as u64;
        prep_rw(sqe, Opcode::Symlinkat, libc::AT_FDCWD, target, 0, link);
    }
    decode(_op, res) { unit(res) }
    example { Symlink { target: c"/a".into(), link: c"/b".into() } }
    methods {
        /// `IORING_OP_SYMLINKAT` (5.15), like `symlink(2)`: completes with
        /// `OpResult::Symlink(Ok(()))`, or `EOPNOTSUPP` where the kernel lacks the opcode.
        fn symlink(target: impl Into<CPath>, link: impl Into<CPath>) {
            Symlink { target: target.into(), link: link.into() }
        }
    }

    /// `IORING_OP_LINKAT` (5.15): gives an existing file another name.
    Link -> () {
        /// The existing path, relative to the current directory.
        pub from: CPath,
        /// The new name, relative to the current directory.
        pub to: CPath,
    }
    opcode: Linkat;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        let from = op.from.as_c_str().as_ptr() as u64;
        let to = op.to.as_c_str().as_ptr() as u64;
        prep_rw(sqe, Opcode::Linkat, libc::AT_FDCWD, from, libc::AT_FDCWD as u32, to);
    }
    decode(_op, res) { unit(res) }
    example { Link { from: c"/a".into(), to: c"/b".into() } }
    methods {
        /// `IORING_OP_LINKAT` (5.15), like `link(2)` (a final symlink in `from` is not
        /// followed): completes with `OpResult::Link(Ok(()))`, or `EOPNOTSUPP` where the
        /// kernel lacks the opcode.
        fn link(from: impl Into<CPath>, to: impl Into<CPath>) {
            Link { from: from.into(), to: to.into() }
        }
    }

    /// `IORING_OP_SOCKET` (5.19), or a direct `socket(2)` where it is missing.
    Socket -> RawFd {
        /// `AF_*`.
        pub domain: i32,
        /// `SOCK_*` (`SOCK_CLOEXEC` is always added).
        pub ty: i32,
        /// Protocol, usually 0.
        pub protocol: i32,
    }
    opcode: Socket;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        let ty = (op.ty | libc::SOCK_CLOEXEC) as u32 as u64;
        prep_rw(sqe, Opcode::Socket, op.domain, 0, op.protocol as u32, ty);
    }
    decode(_op, res) { new_fd(res) }
    created(fd) { fd }
    missing(op, backend) "a direct `socket(2)`, completed through the run loop" {
        Some(backend.socket_fallback(op.domain, op.ty, op.protocol))
    }
    example { Socket { domain: libc::AF_INET, ty: libc::SOCK_STREAM, protocol: 0 } }
    methods {
        /// `IORING_OP_SOCKET` (5.19), like `socket(2)` (`SOCK_CLOEXEC` is always added):
        /// completes with `OpResult::Socket(Ok(fd))`. Where the opcode is missing, `run`
        /// makes the socket with a direct `socket(2)` and completes the task the same way,
        /// through the callback (never inside this call).
        fn socket(domain: i32, ty: i32, protocol: i32) { Socket { domain, ty, protocol } }
    }

    /// `IORING_OP_CONNECT`.
    Connect -> () {
        /// The socket.
        pub fd: RawFd,
        /// The peer address the kernel reads.
        pub addr: SockAddrBuf,
    }
    opcode: Connect;
    refuse(op) { runtime_fd(op.fd) }
    prep(op, sqe, _env) {
        // For CONNECT, `off` holds the address length itself.
        let len = u64::from(op.addr.len());
        prep_rw(sqe, Opcode::Connect, op.fd, op.addr.as_ptr() as u64, 0, len);
    }
    decode(_op, res) { unit(res) }
    example { Connect { fd: 9, addr: SockAddrBuf::new(std::net::SocketAddr::from(([127, 0, 0, 1], 80))) } }
    methods {
        /// `IORING_OP_CONNECT` (5.5), like `connect(2)`: the address is stored in the task.
        fn connect(fd: RawFd, addr: std::net::SocketAddr) {
            Connect { fd, addr: SockAddrBuf::new(addr) }
        }
    }

    /// `IORING_OP_ACCEPT`.
    Accept -> Accepted {
        /// The listening socket.
        pub fd: RawFd,
        /// The peer address the kernel writes.
        pub addr: SockAddrBuf,
    }
    opcode: Accept;
    refuse(op) { runtime_fd(op.fd) }
    prep(op, sqe, _env) {
        // For ACCEPT, `off` (addr2) points at the address length, updated by the kernel.
        let len = op.addr.len_mut() as u64;
        prep_rw(sqe, Opcode::Accept, op.fd, op.addr.as_mut_ptr() as u64, 0, len);
        sqe.op_flags = libc::SOCK_CLOEXEC as u32;
    }
    decode(op, res) {
        res.map(|n| Accepted { fd: n as RawFd, peer: op.addr.to_socket_addr() })
    }
    created(accepted) { accepted.fd }
    example { Accept { fd: 9, addr: SockAddrBuf::empty() } }
    methods {
        /// `IORING_OP_ACCEPT` (5.5), like `accept4(2)` with `SOCK_CLOEXEC`: completes with
        /// `OpResult::Accept(Ok(Accepted { fd, peer }))`; the peer address is written into
        /// the task by the kernel.
        fn accept(fd: RawFd) { Accept { fd, addr: SockAddrBuf::empty() } }
    }

    /// `IORING_OP_RECV`.
    Recv -> usize {
        /// The socket.
        pub fd: RawFd,
        /// Where the bytes go.
        pub buf: IoBuf,
        /// `MSG_*` flags.
        pub flags: i32,
    }
    opcode: Recv;
    buffer: output buf;
    refuse(op) { read_only(op.buf.is_writable()).or(runtime_fd(op.fd)) }
    prep(op, sqe, _env) {
        let addr = op.buf.as_mut_ptr().unwrap_or(core::ptr::null_mut()) as u64;
        prep_rw(sqe, Opcode::Recv, op.fd, addr, sqe_len(op.buf.len()), 0);
        sqe.op_flags = op.flags as u32;
    }
    decode(_op, res) { count(res) }
    example { Recv { fd: 9, buf: vec![0u8; 4].into(), flags: 0 } }
    methods {
        /// `IORING_OP_RECV` (5.6), like `recv(2)`: receives up to `buf.len()` bytes.
        fn recv(fd: RawFd, buf: impl Into<IoBuf>, flags: i32) {
            Recv { fd, buf: buf.into(), flags }
        }
    }

    /// `IORING_OP_SEND`.
    Send -> usize {
        /// The socket.
        pub fd: RawFd,
        /// The bytes.
        pub buf: IoBuf,
        /// `MSG_*` flags (`MSG_NOSIGNAL` is always added).
        pub flags: i32,
    }
    opcode: Send;
    buffer: input buf;
    refuse(op) { runtime_fd(op.fd) }
    prep(op, sqe, _env) {
        prep_rw(sqe, Opcode::Send, op.fd, op.buf.as_ptr() as u64, sqe_len(op.buf.len()), 0);
        sqe.op_flags = (op.flags | libc::MSG_NOSIGNAL) as u32;
    }
    decode(_op, res) { count(res) }
    example { Send { fd: 9, buf: b"abcd".into(), flags: 0 } }
    methods {
        /// `IORING_OP_SEND` (5.6), like `send(2)` with `MSG_NOSIGNAL` (a closed peer is an
        /// `EPIPE` result, never a signal).
        fn send(fd: RawFd, buf: impl Into<IoBuf>, flags: i32) {
            Send { fd, buf: buf.into(), flags }
        }
    }

    /// `IORING_OP_SENDMSG` with one buffer and a destination: `sendto(2)`.
    SendTo -> usize {
        /// The socket.
        pub fd: RawFd,
        /// The bytes.
        pub buf: IoBuf,
        /// `MSG_*` flags (`MSG_NOSIGNAL` is always added).
        pub flags: i32,
        /// The destination, and the header the kernel reads, pointing at `buf` and at it.
        space: Box<MsgSpace>,
    }
    opcode: Sendmsg;
    buffer: input buf;
    refuse(op) { runtime_fd(op.fd) }
    prep(op, sqe, _env) {
        let (base, len) = (op.buf.as_ptr().cast_mut(), op.buf.len());
        let MsgSpace { hdr, addr } = &mut *op.space;
        let hdr = hdr.point(base, len, addr.as_mut_ptr(), addr.len());
        prep_rw(sqe, Opcode::Sendmsg, op.fd, hdr, 1, 0);
        sqe.op_flags = (op.flags | libc::MSG_NOSIGNAL) as u32;
    }
    decode(_op, res) { count(res) }
    example {
        SendTo::new(9, b"abcd".into(), std::net::SocketAddr::from(([127, 0, 0, 1], 9)), 0)
    }
    methods {
        /// `IORING_OP_SENDMSG` (5.3), like `sendto(2)` with `MSG_NOSIGNAL`: sends `buf` to
        /// `addr` (a datagram, on a UDP socket). Completes with `OpResult::SendTo(Ok(n))`.
        fn send_to(fd: RawFd, buf: impl Into<IoBuf>, addr: std::net::SocketAddr, flags: i32) with engine {
            SendTo::with_space(fd, buf.into(), addr, flags, engine.msg_space())
        }
    }

    /// `IORING_OP_RECVMSG` with one buffer and room for the sender: `recvfrom(2)`.
    RecvFrom -> Received {
        /// The socket.
        pub fd: RawFd,
        /// Where the bytes go.
        pub buf: IoBuf,
        /// `MSG_*` flags.
        pub flags: i32,
        /// Where the kernel writes the sender, and the header it reads and fills in, pointing
        /// at `buf` and at that.
        space: Box<MsgSpace>,
    }
    opcode: Recvmsg;
    buffer: output buf;
    refuse(op) { read_only(op.buf.is_writable()).or(runtime_fd(op.fd)) }
    prep(op, sqe, _env) {
        let base = op.buf.as_mut_ptr().unwrap_or(core::ptr::null_mut());
        let len = op.buf.len();
        let MsgSpace { hdr, addr } = &mut *op.space;
        *addr = SockAddrBuf::empty();
        let hdr = hdr.point(base, len, addr.as_mut_ptr(), addr.len());
        prep_rw(sqe, Opcode::Recvmsg, op.fd, hdr, 1, 0);
        sqe.op_flags = op.flags as u32;
    }
    decode(op, res) { res.map(|n| Received { len: n as usize, peer: op.peer() }) }
    example { RecvFrom::new(9, vec![0u8; 4].into(), 0) }
    methods {
        /// `IORING_OP_RECVMSG` (5.3), like `recvfrom(2)`: receives up to `buf.len()` bytes
        /// (one datagram, on a UDP socket) and the sender's address. Completes with
        /// `OpResult::RecvFrom(Ok(Received { len, peer }))`.
        fn recv_from(fd: RawFd, buf: impl Into<IoBuf>, flags: i32) with engine {
            RecvFrom::with_space(fd, buf.into(), flags, engine.msg_space())
        }
    }

    /// `IORING_OP_SHUTDOWN` (5.11).
    Shutdown -> () {
        /// The socket.
        pub fd: RawFd,
        /// `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
        pub how: i32,
    }
    opcode: Shutdown;
    refuse(op) { runtime_fd(op.fd) }
    prep(op, sqe, _env) { prep_rw(sqe, Opcode::Shutdown, op.fd, 0, op.how as u32, 0); }
    decode(_op, res) { unit(res) }
    example { Shutdown { fd: 9, how: libc::SHUT_WR } }
    methods {
        /// `IORING_OP_SHUTDOWN` (5.11), like `shutdown(2)`: ends the sending side
        /// (`SHUT_WR`: the peer reads end of file once it has read what was sent), the
        /// receiving side (`SHUT_RD`) or both of a connection, without closing the socket.
        /// Completes with `OpResult::Shutdown(Ok(()))`, or `EOPNOTSUPP` where the kernel
        /// lacks the opcode.
        fn shutdown(fd: RawFd, how: i32) { Shutdown { fd, how } }
    }

    /// `IORING_OP_POLL_ADD`, one shot.
    Poll -> u32 {
        /// The file to watch.
        pub fd: RawFd,
        /// `POLL*` events to wait for.
        pub events: u32,
    }
    opcode: PollAdd;
    refuse(op) { runtime_fd(op.fd) }
    prep(op, sqe, _env) {
        prep_rw(sqe, Opcode::PollAdd, op.fd, 0, 0, 0);
        // `poll32_events`: a 32-bit mask, in the kernel's word order on this host.
        sqe.op_flags = op.events;
    }
    decode(_op, res) { res }
    example { Poll { fd: 9, events: libc::POLLIN as u32 } }
    methods {
        /// `IORING_OP_POLL_ADD` (5.1), one shot, like `poll(2)` on one fd: completes with
        /// `OpResult::Poll(Ok(revents))` when one of `events` (`POLLIN`, `POLLOUT`, ...) is
        /// ready.
        fn poll(fd: RawFd, events: u32) { Poll { fd, events } }
    }

    /// `IORING_OP_SPLICE` (5.7).
    Splice -> usize {
        /// Source.
        pub fd_in: RawFd,
        /// Source offset; `None` for a pipe or the file position.
        pub off_in: Option<u64>,
        /// Destination.
        pub fd_out: RawFd,
        /// Destination offset; `None` for a pipe or the file position.
        pub off_out: Option<u64>,
        /// Bytes to move at most.
        pub len: u32,
        /// `SPLICE_F_*` flags.
        pub flags: u32,
    }
    opcode: Splice;
    refuse(op) { runtime_fd(op.fd_in).or(runtime_fd(op.fd_out)) }
    prep(op, sqe, _env) {
        let off_in = op.off_in.unwrap_or(u64::MAX);
        let off_out = op.off_out.unwrap_or(u64::MAX);
        prep_rw(sqe, Opcode::Splice, op.fd_out, off_in, op.len, off_out);
        sqe.splice_fd_in = op.fd_in;
        sqe.op_flags = op.flags;
    }
    decode(_op, res) { count(res) }
    example { Splice { fd_in: 1, off_in: None, fd_out: 2, off_out: Some(7), len: 8, flags: 0 } }
    methods {
        /// `IORING_OP_SPLICE` (5.7), like `splice(2)`: moves up to `len` bytes between two
        /// fds, one of which must be a pipe, without copying through user memory. `None`
        /// offsets use the file position (and are required for pipes). Completes with
        /// `OpResult::Splice(Ok(n))`, or `EOPNOTSUPP` where the kernel lacks the opcode.
        fn splice(
            fd_in: RawFd,
            off_in: Option<u64>,
            fd_out: RawFd,
            off_out: Option<u64>,
            len: u32,
            flags: u32,
        ) {
            Splice { fd_in, off_in, fd_out, off_out, len, flags }
        }
    }

    /// `IORING_OP_MSG_RING` (5.18): posts a completion into another ring.
    MsgRing -> () {
        /// The target ring's fd.
        pub target: RawFd,
        /// What the target receives.
        pub message: Message,
        /// A message of the caller's, or one to a [`Peer`](crate::Peer)'s mailbox.
        route: Route,
    }
    opcode: MsgRing;
    also: Write;
    refuse(op) {
        match op.route {
            // The top two bits of a message's `user_data` are the runtime's.
            Route::Ring if op.message.data & (NOT_A_TASK | THREAD_MAIL) != 0 => Some(libc::EINVAL),
            Route::Ring => runtime_fd(op.target),
            Route::Mailbox { .. } => None,
        }
    }
    prep(op, sqe, _env) {
        match &op.route {
            Route::Mailbox { mailbox, msg_ring: false, .. } => {
                // The message waits in the mailbox's queue; the eventfd wakes the receiver.
                let one: &'static [u8; 8] = &crate::thread::EVENTFD_ONE;
                let fd = mailbox.eventfd();
                prep_rw(sqe, Opcode::Write, fd, one.as_ptr() as u64, 8, u64::MAX);
            }
            Route::Ring | Route::Mailbox { .. } => {
                let data = op.message.data | NOT_A_TASK;
                let value = op.message.value as u32;
                prep_rw(sqe, Opcode::MsgRing, op.target, IORING_MSG_DATA, value, data);
            }
        }
    }
    decode(op, res) {
        if let Route::Mailbox { mailbox, admitted, .. } = &op.route
            && res.is_err()
            && admitted.get()
        {
            // It will never arrive: stop counting it as on its way.
            mailbox.settle();
        }
        unit(res)
    }
    missing(op, _backend) "a `Peer`'s mailbox takes its messages through an eventfd and a queue; `Ring::msg_ring` completes with `EOPNOTSUPP`" {
        match &op.route {
            // Decided at submission: whether the mailbox still takes messages.
            Route::Mailbox { mailbox, msg_ring, admitted } => {
                mailbox.admit(op.message, *msg_ring, admitted)
            }
            Route::Ring => Some(-libc::EOPNOTSUPP),
        }
    }
    example { MsgRing::to_ring(9, Message { data: 1, value: 2 }) }
    methods {
        /// `IORING_OP_MSG_RING` (5.18): posts `message` into the ring `target` (its fd, see
        /// [`Ring::fd`](crate::Ring::fd)), where it is delivered to that ring's
        /// [`on_message`](Self::on_message) handler. Completes with `OpResult::MsgRing(Ok(()))`
        /// once the kernel posted it (which does not prove anyone will read it), or
        /// `EOPNOTSUPP` where the kernel lacks the opcode. `message.data` must fit in 62 bits
        /// (`EINVAL` otherwise: the top two bits of a message's `user_data` are the
        /// runtime's).
        fn msg_ring(target: RawFd, message: Message) {
            MsgRing { target, message, route: Route::Ring }
        }
    }

    /// Cancels one task in flight.
    Cancel -> () {
        /// The target's `user_data`.
        pub target: TaskId,
        /// Which opcode cancels it.
        via: CancelVia,
    }
    opcode: AsyncCancel;
    also: TimeoutRemove;
    note: "`IORING_OP_TIMEOUT_REMOVE` for a timer";
    custom: cancel;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        let opcode = match op.via {
            CancelVia::TimeoutRemove => Opcode::TimeoutRemove,
            CancelVia::AsyncCancel => Opcode::AsyncCancel,
        };
        prep_rw(sqe, opcode, -1, op.target.to_u64(), 0, 0);
    }
    decode(_op, res) { unit(res) }
    example { Cancel { target: TaskId::new(0, 1), via: CancelVia::AsyncCancel } }
    methods {}

    /// Cancels everything in flight.
    CancelAll -> u32 {
        /// How: one `ASYNC_CANCEL` with `ALL | ANY`, or a join of per-task cancels.
        mode: CancelAllMode,
    }
    opcode: AsyncCancel;
    note: "one `ASYNC_CANCEL` with `ALL` and `ANY` from 5.19; before, one cancel per task in flight";
    custom: cancel_all;
    refuse(_op) { None }
    prep(op, sqe, _env) {
        debug_assert!(matches!(op.mode, CancelAllMode::Any { .. }), "a join is never submitted");
        prep_rw(sqe, Opcode::AsyncCancel, -1, 0, 0, 0);
        sqe.op_flags = (CancelFlags::ALL | CancelFlags::ANY).bits();
    }
    decode(op, res) {
        match (op.mode, res) {
            (CancelAllMode::Any { local, background }, Ok(n)) => {
                Ok(n.saturating_sub(background) + local)
            }
            // Nothing in flight to cancel in the kernel.
            (CancelAllMode::Any { local, .. }, Err(Errno::ENOENT)) => Ok(local),
            (CancelAllMode::Join { cancelled, .. }, Ok(_)) => Ok(cancelled),
            (_, Err(e)) => Err(e),
        }
    }
    example { CancelAll::any(0, 0) }
    methods {}
}

/// How a [`MsgRing`] reaches its receiver.
#[derive(Debug)]
pub(crate) enum Route {
    /// A `msg_ring` of the caller's to the ring behind `target`.
    Ring,
    /// A message to a [`Peer`](crate::Peer)'s mailbox. The op holds the mailbox, so its ring
    /// fd and eventfd stay open until the message has left: a send can never reach a closed
    /// (or reused) fd. Whether the peer still takes messages is checked when the op is
    /// submitted (the task is queued marked).
    Mailbox {
        /// The receiver.
        mailbox: std::sync::Arc<crate::Mailbox>,
        /// Through `msg_ring` to the mailbox's ring fd; else the message is queued in the
        /// mailbox and the op is an 8-byte `write` of 1 to its eventfd.
        msg_ring: bool,
        /// Set when the mailbox admitted it for `msg_ring` (see `Mailbox::admit`): from then
        /// on it counts as on its way until it arrives or its send fails.
        admitted: core::cell::Cell<bool>,
    },
}

/// How a [`CancelAll`] works on this kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CancelAllMode {
    /// `IORING_OP_ASYNC_CANCEL` with `ALL | ANY` (5.19).
    Any {
        /// Tasks already cancelled locally (still queued) by the same `cancel_all`.
        local: u32,
        /// The ring's own background tasks in flight when it was queued (a mailbox read, a
        /// wake timer): the kernel cancels them too, but they are not the user's, so they are
        /// not counted.
        background: u32,
    },
    /// Waiting for its per-task cancels (kernels without `CANCEL_ALL`); never submitted.
    Join {
        /// Cancels still outstanding.
        outstanding: u32,
        /// Targets cancelled so far.
        cancelled: u32,
    },
}

impl Timer {
    /// The ring's own timer bounding a deadline wait (kernels without `EXT_ARG`).
    pub(crate) fn wake(deadline: Timespec) -> Timer {
        Timer {
            time: deadline.to_kernel(),
            absolute: true,
            wake: true,
        }
    }

    /// The duration (relative) or deadline (absolute) the kernel reads.
    pub fn time(&self) -> Timespec {
        Timespec::from_kernel(&self.time)
    }

    /// Whether this is the ring's own timer that bounds a deadline wait (on kernels without
    /// `EXT_ARG`), not one of the caller's.
    pub fn is_wake(&self) -> bool {
        self.wake
    }
}

impl OpKind {
    /// Whether the op's opcode is on the 5.6 floor (checked once, when the ring is set up,
    /// see [`FLOOR_OPCODES`]) rather than checked each time the op is queued.
    #[inline(always)]
    pub const fn on_floor(self) -> bool {
        self.opcode().since().at_most(xuring_sys::FLOOR)
    }

    /// Whether the op is a cancel: never the target of another cancel.
    #[inline]
    pub(crate) fn is_cancel(self) -> bool {
        matches!(self, OpKind::Cancel | OpKind::CancelAll)
    }

    /// Whether an `ECANCELED` nobody asked for is the kernel's own cancel of work that never
    /// ran (io-wq failing to create a worker, before about 6.2), which the ring submits again.
    /// Not for ops whose `ECANCELED` can be the op's own answer (a read of a `timerfd` with
    /// `TFD_TIMER_CANCEL_ON_SET` after the clock was set), nor for those that never go to
    /// io-wq or that act when admitted (a mailbox send).
    pub(crate) const fn retries_kernel_cancel(self) -> bool {
        match self {
            OpKind::Write
            | OpKind::Writev
            | OpKind::Send
            | OpKind::SendTo
            | OpKind::Splice
            | OpKind::Open
            | OpKind::Openat2
            | OpKind::Close
            | OpKind::Fsync
            | OpKind::Fallocate
            | OpKind::Fadvise
            | OpKind::Stat
            | OpKind::Unlink
            | OpKind::Rename
            | OpKind::Mkdir
            | OpKind::Symlink
            | OpKind::Link
            | OpKind::Socket
            | OpKind::Connect
            | OpKind::Shutdown => true,
            OpKind::Noop
            | OpKind::Timer
            | OpKind::Read
            | OpKind::Readv
            | OpKind::Recv
            | OpKind::RecvFrom
            | OpKind::Accept
            | OpKind::Poll
            | OpKind::MsgRing
            | OpKind::Cancel
            | OpKind::CancelAll => false,
        }
    }
}

/// Every opcode an op may submit whose kernel version is at or below [`xuring_sys::FLOOR`]:
/// a ring is refused at setup on a kernel missing one of them, and those ops are then
/// submitted without a check each time. Derived from the declarations above.
pub const FLOOR_OPCODES: OpSet = {
    let mut set = OpSet::EMPTY;
    let mut k = 0;
    while k < OpKind::ALL.len() {
        let opcodes = OpKind::ALL[k].opcodes();
        let mut i = 0;
        while i < opcodes.len() {
            if opcodes[i].since().at_most(xuring_sys::FLOOR) {
                set = set.with(opcodes[i]);
            }
            i += 1;
        }
        k += 1;
    }
    set
};

impl Stat {
    /// Gives the `statx` buffer back for the next stat.
    pub(crate) fn into_buf(self) -> Box<libc::statx> {
        self.buf
    }

    /// The `statx` buffer the kernel fills (a backend that emulates the op fills it here).
    pub fn statx_mut(&mut self) -> &mut libc::statx {
        &mut self.buf
    }
}

impl MsgRing {
    /// A message to `mailbox`, through `msg_ring` where the kernel has it.
    pub(crate) fn to_mailbox(
        mailbox: std::sync::Arc<crate::Mailbox>,
        message: Message,
        msg_ring: bool,
    ) -> MsgRing {
        MsgRing {
            target: mailbox.ring_fd(),
            message,
            route: Route::Mailbox {
                mailbox,
                msg_ring,
                admitted: core::cell::Cell::new(false),
            },
        }
    }

    /// A send that never reaches a backend (it is failed before submission).
    pub(crate) fn unsent() -> MsgRing {
        MsgRing::to_ring(-1, Message { data: 0, value: 0 })
    }

    /// A `msg_ring` to `target` without the checks of [`Ring::msg_ring`](crate::Ring::msg_ring).
    pub(crate) fn to_ring(target: RawFd, message: Message) -> MsgRing {
        MsgRing {
            target,
            message,
            route: Route::Ring,
        }
    }

    /// Whether this is a message to a [`Peer`](crate::Peer)'s mailbox (sent by
    /// [`Peer::send`](crate::Peer::send)) rather than a caller's `msg_ring`.
    pub fn is_mailbox_send(&self) -> bool {
        matches!(self.route, Route::Mailbox { .. })
    }
}

impl Cancel {
    pub(crate) fn new(target: TaskId, via: CancelVia) -> Cancel {
        Cancel { target, via }
    }

    /// Whether this cancel can only find a timer (`IORING_OP_TIMEOUT_REMOVE`); otherwise it
    /// is an `IORING_OP_ASYNC_CANCEL`, which finds any request.
    pub fn timer_only(&self) -> bool {
        self.via == CancelVia::TimeoutRemove
    }
}

impl CancelAll {
    pub(crate) fn any(local: u32, background: u32) -> CancelAll {
        CancelAll {
            mode: CancelAllMode::Any { local, background },
        }
    }

    pub(crate) fn join(cancelled: u32) -> CancelAll {
        CancelAll {
            mode: CancelAllMode::Join {
                outstanding: 0,
                cancelled,
            },
        }
    }

    /// A join's counters, for the engine that completes it.
    pub(crate) fn join_counts(&mut self) -> Option<(&mut u32, &mut u32)> {
        match &mut self.mode {
            CancelAllMode::Join {
                outstanding,
                cancelled,
            } => Some((outstanding, cancelled)),
            CancelAllMode::Any { .. } => None,
        }
    }
}

impl Openat2 {
    /// The op for `openat2(dir, path, how)`, with `O_CLOEXEC` added to `flags`.
    fn new(dir: RawFd, path: CPath, flags: i32, mode: u32, resolve: u64) -> Openat2 {
        let how = OpenHow {
            // The kernel reads the flags as an unsigned 64-bit value: the bits, not the sign.
            flags: u64::from((flags | libc::O_CLOEXEC) as u32),
            mode: u64::from(mode),
            resolve,
        };
        Openat2 { dir, path, how }
    }

    /// The `struct open_how` the kernel reads.
    pub fn how(&self) -> &OpenHow {
        &self.how
    }
}

impl SendTo {
    /// A send of `buf` to `addr`.
    pub fn new(fd: RawFd, buf: IoBuf, addr: std::net::SocketAddr, flags: i32) -> SendTo {
        SendTo::with_space(fd, buf, addr, flags, MsgSpace::boxed())
    }

    pub(crate) fn with_space(
        fd: RawFd,
        buf: IoBuf,
        addr: std::net::SocketAddr,
        flags: i32,
        mut space: Box<MsgSpace>,
    ) -> SendTo {
        space.addr = SockAddrBuf::new(addr);
        SendTo {
            fd,
            buf,
            flags,
            space,
        }
    }

    /// The destination.
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.space.addr.to_socket_addr()
    }

    /// Gives the header's space back for the next op.
    pub(crate) fn into_space(self) -> Box<MsgSpace> {
        self.space
    }
}

impl RecvFrom {
    /// A receive into `buf`.
    pub fn new(fd: RawFd, buf: IoBuf, flags: i32) -> RecvFrom {
        RecvFrom::with_space(fd, buf, flags, MsgSpace::boxed())
    }

    pub(crate) fn with_space(
        fd: RawFd,
        buf: IoBuf,
        flags: i32,
        mut space: Box<MsgSpace>,
    ) -> RecvFrom {
        // No sender until one is written (a reused space holds the last op's).
        space.addr = SockAddrBuf::empty();
        space.hdr.set_name_len(0);
        RecvFrom {
            fd,
            buf,
            flags,
            space,
        }
    }

    /// The sender, once the op completed.
    fn peer(&self) -> Option<std::net::SocketAddr> {
        match self.space.hdr.name_len() {
            0 => None,
            len => self.space.addr.with_len(len).to_socket_addr(),
        }
    }

    /// Records the sender as the kernel does, for a backend that completes the op itself (the
    /// mock reports none, as a connection has none): `None` for none.
    pub fn set_peer(&mut self, peer: Option<std::net::SocketAddr>) {
        let space = &mut *self.space;
        match peer {
            Some(addr) => {
                space.addr = SockAddrBuf::new(addr);
                space.hdr.set_name_len(space.addr.len());
            }
            None => space.hdr.set_name_len(0),
        }
    }

    /// Gives the header's space back for the next op.
    pub(crate) fn into_space(self) -> Box<MsgSpace> {
        self.space
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpKind;

    #[test]
    fn the_setup_floor_is_what_the_ops_submit_at_or_below_5_6() {
        for op in FLOOR_OPCODES.iter() {
            assert!(op.since().at_most(xuring_sys::FLOOR), "{op:?} is newer");
            assert!(
                OpKind::ALL.iter().any(|k| k.opcodes().contains(&op)),
                "{op:?} is required at setup but no op submits it"
            );
        }
        for kind in OpKind::ALL {
            for op in kind.opcodes() {
                assert_eq!(
                    FLOOR_OPCODES.contains(*op),
                    op.since().at_most(xuring_sys::FLOOR),
                    "{kind:?} submits {op:?}"
                );
            }
        }
        // An opcode no op submits never keeps a ring from being set up (a kernel built
        // without epoll reports no EPOLL_CTL).
        assert!(!FLOOR_OPCODES.contains(Opcode::EpollCtl));
        assert!(FLOOR_OPCODES.contains(Opcode::ReadFixed));
    }

    #[test]
    fn every_kind_has_a_name_an_opcode_and_an_example_of_its_kind() {
        for (i, &kind) in OpKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
            assert_eq!(kind.example().kind(), kind);
            assert_eq!(kind.opcodes()[0], kind.opcode());
            assert!(!kind.name().is_empty());
            // Every declared op except the cancels has a method of its own.
            assert!(!kind.methods().is_empty(), "{kind:?}");
        }
    }
}
