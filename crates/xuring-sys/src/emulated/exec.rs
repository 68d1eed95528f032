//! One attempt at an SQE's work, as the kernel's io_uring would do it, with the plain system
//! calls: without blocking where the descriptor can be waited for (sockets, pipes, eventfds),
//! synchronously where it cannot (regular files, directories, the filesystem).
//!
//! # Safety
//!
//! Every address an SQE carries (buffers, iovec arrays, paths, socket addresses, timespecs,
//! `statx` and `open_how` buffers, the accepted address's length) is valid for the access its
//! opcode makes until the entry's completion is posted: that is
//! [`SubmissionQueue::push`](crate::SubmissionQueue::push)'s contract with whoever executes
//! the ring, the kernel or this module. An attempt that waits leaves the memory alone until
//! it is retried or cancelled, and never posts before it is done with it.

use std::os::fd::RawFd;

use crate::abi::io_uring_sqe;
use crate::{OpSet, Opcode};

/// The `off` (or offset address) meaning "no offset": the file position, or none.
const NO_OFFSET: u64 = u64::MAX;

/// What an attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Attempt {
    /// Finished: the completion's `res`.
    Done(i32),
    /// Would block: try again once `fd` reports one of `events` (`EPOLL*` bits).
    Wait {
        /// The descriptor to wait for.
        fd: RawFd,
        /// What to wait for.
        events: u32,
    },
    /// Would block, and readiness will not say when to try again (a Unix `connect` into a
    /// full backlog: the socket is writable all along): try again after a while.
    Later,
}

/// How the readiness executor runs `opcode`, for `docs/kernel-compat.md`; `None` where it does
/// not (the ring then takes the op's fallback, or completes it with `EOPNOTSUPP`, as on a
/// kernel without the opcode). `MSG_RING` is not run: there is no kernel ring to post into,
/// so the layers above take their eventfd route, as on kernels before 5.18.
pub const fn emulation(opcode: Opcode) -> Option<&'static str> {
    const WAIT_RW: &str = "`preadv2`/`pwritev2` with `RWF_NOWAIT`, then a wait for readiness; \
        a file epoll cannot wait for (regular file) is read or written synchronously";
    const SYNC: &str = "the system call, synchronously";
    Some(match opcode {
        Opcode::Nop => "completes at once",
        Opcode::Read | Opcode::Write | Opcode::Readv | Opcode::Writev => WAIT_RW,
        Opcode::ReadFixed | Opcode::WriteFixed => {
            "as `READ`/`WRITE` (nothing is registered: the pool's buffers are plain memory)"
        }
        Opcode::Recv | Opcode::Send => {
            "`recv`/`send` with `MSG_DONTWAIT`, then a wait for readiness (`MSG_WAITALL`: \
             until all of it moved)"
        }
        Opcode::Recvmsg | Opcode::Sendmsg => {
            "`recvmsg`/`sendmsg` with `MSG_DONTWAIT`, then a wait for readiness"
        }
        Opcode::Accept => "`accept4` on the listener made non-blocking (left so), then a wait",
        Opcode::Connect => {
            "`connect` on the socket made non-blocking (left so), then a wait for writability \
             and `SO_ERROR` (a full Unix backlog: tried again after 1 ms, doubling to 100 ms)"
        }
        Opcode::PollAdd => "`poll` with no timeout, then a wait for readiness",
        Opcode::Splice => {
            "`splice` with `SPLICE_F_NONBLOCK`, after a wait for a socket it reads from or \
             writes to (a socket written to is made non-blocking, and left so)"
        }
        Opcode::Timeout => {
            "a timer heap bounding `epoll_pwait2` (`epoll_wait`, to the millisecond, before \
             5.11); pure timers only (counted: `EINVAL`)"
        }
        Opcode::TimeoutRemove | Opcode::AsyncCancel => {
            "cancels what waits (a readiness wait or a timer); work that runs synchronously is \
             never in flight"
        }
        Opcode::Fsync
        | Opcode::Fallocate
        | Opcode::Openat
        | Opcode::Openat2
        | Opcode::Close
        | Opcode::Statx
        | Opcode::Fadvise
        | Opcode::Shutdown
        | Opcode::Renameat
        | Opcode::Unlinkat
        | Opcode::Mkdirat
        | Opcode::Symlinkat
        | Opcode::Linkat
        | Opcode::Socket => SYNC,
        _ => return None,
    })
}

/// The opcodes the readiness executor runs (those [`emulation`] describes).
pub(crate) const OPS: OpSet = {
    let mut set = OpSet::EMPTY;
    let mut i = 0;
    while i < Opcode::TABLE.len() {
        let op = Opcode::TABLE[i].opcode;
        if emulation(op).is_some() {
            set = set.with(op);
        }
        i += 1;
    }
    set
};

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A system call's return as a completion's `res`.
fn res(rc: isize) -> i32 {
    if rc < 0 {
        -errno()
    } else {
        rc.min(i32::MAX as isize) as i32
    }
}

/// Whether `fd` is ready for reading (or writing) right now; an error or hang-up counts as
/// ready, so that the call that follows reports it.
fn ready(fd: RawFd, events: i16) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one live `pollfd`, a zero timeout.
    let rc = unsafe { libc::poll(&raw mut pfd, 1, 0) };
    rc != 0
}

/// A path argument: null stays null (the kernel's `EFAULT`).
fn path(addr: u64) -> *const libc::c_char {
    addr as usize as *const libc::c_char
}

/// One attempt at `sqe`. `progress` carries what earlier attempts of the same entry did (bytes
/// moved under `MSG_WAITALL`, a connect under way); `may_block` says the descriptor cannot be
/// waited for (epoll refused it: a regular file), so the call may block and must finish.
/// Timers and cancels are not handled here.
pub(super) fn attempt(sqe: &mut io_uring_sqe, progress: &mut u32, may_block: bool) -> Attempt {
    let Some(opcode) = Opcode::from_u8(sqe.opcode) else {
        return Attempt::Done(-libc::EINVAL);
    };
    match opcode {
        Opcode::Nop => Attempt::Done(0),
        Opcode::Read | Opcode::ReadFixed => rw(sqe, false, false, may_block),
        Opcode::Write | Opcode::WriteFixed => rw(sqe, true, false, may_block),
        Opcode::Readv => rw(sqe, false, true, may_block),
        Opcode::Writev => rw(sqe, true, true, may_block),
        Opcode::Recv => transfer(sqe, progress, false),
        Opcode::Send => transfer(sqe, progress, true),
        Opcode::Recvmsg => message(sqe, false),
        Opcode::Sendmsg => message(sqe, true),
        Opcode::Accept => accept(sqe),
        Opcode::Connect => connect(sqe, progress),
        Opcode::PollAdd => poll_add(sqe),
        Opcode::Splice => splice(sqe, may_block),
        _ => Attempt::Done(sync(opcode, sqe)),
    }
}

/// Reads and writes: `preadv2`/`pwritev2` with `RWF_NOWAIT` first, the plain call where the
/// file cannot say "would block" (or may block).
fn rw(sqe: &io_uring_sqe, write: bool, vectored: bool, may_block: bool) -> Attempt {
    let single = libc::iovec {
        iov_base: sqe.addr as usize as *mut libc::c_void,
        iov_len: sqe.len as usize,
    };
    let (iov, count) = if vectored {
        (sqe.addr as usize as *const libc::iovec, sqe.len as i32)
    } else {
        (&raw const single, 1)
    };
    let mut offset: i64 = if sqe.off == NO_OFFSET {
        -1
    } else {
        sqe.off as i64
    };
    let flags = sqe.op_flags as i32;
    let events = if write { libc::EPOLLOUT } else { libc::EPOLLIN } as u32;
    let call = |offset: i64, flags: i32| -> i32 {
        let rc = if write {
            // SAFETY: `iov` points at `count` iovecs (the SQE's array, or `single`) naming
            // memory the submitter keeps valid until this entry completes (the module's
            // contract).
            unsafe { libc::pwritev2(sqe.fd, iov, count, offset, flags) }
        } else {
            // SAFETY: as above; the memory is writable (the submitter's read buffers).
            unsafe { libc::preadv2(sqe.fd, iov, count, offset, flags) }
        };
        res(rc)
    };
    loop {
        let r = if may_block {
            call(offset, flags)
        } else {
            call(offset, flags | libc::RWF_NOWAIT)
        };
        match -r {
            // The caller's own RWF_NOWAIT: "would block" is the answer.
            libc::EAGAIN if flags & libc::RWF_NOWAIT != 0 => return Attempt::Done(r),
            libc::EAGAIN if !may_block => return Attempt::Wait { fd: sqe.fd, events },
            libc::EOPNOTSUPP if !may_block => {
                // This file cannot be asked not to wait: ask it whether it would.
                let poll = if write { libc::POLLOUT } else { libc::POLLIN };
                if ready(sqe.fd, poll) {
                    return Attempt::Done(call(offset, flags));
                }
                return Attempt::Wait { fd: sqe.fd, events };
            }
            // A stream (pipe, socket) has no offset: io_uring ignores it there.
            libc::ESPIPE if offset != -1 => offset = -1,
            _ => return Attempt::Done(r),
        }
    }
}

/// `recv`/`send` with `MSG_DONTWAIT`; under `MSG_WAITALL` the rest is asked for again until
/// all of it moved, as io_uring does for stream sockets.
fn transfer(sqe: &mut io_uring_sqe, progress: &mut u32, send: bool) -> Attempt {
    let flags = sqe.op_flags as i32;
    let wait_all = flags & libc::MSG_WAITALL != 0;
    let call_flags = (flags & !libc::MSG_WAITALL) | libc::MSG_DONTWAIT;
    loop {
        let buf = sqe.addr as usize as *mut libc::c_void;
        let len = sqe.len as usize;
        let rc = if send {
            // SAFETY: `buf` names `len` bytes the submitter keeps valid until this entry
            // completes (the module's contract); they advance within it only by what moved.
            unsafe { libc::send(sqe.fd, buf, len, call_flags) }
        } else {
            // SAFETY: as above; the memory is writable (the submitter's receive buffer).
            unsafe { libc::recv(sqe.fd, buf, len, call_flags) }
        };
        let r = res(rc);
        // io_uring gathers the rest only on stream and seqpacket sockets: a datagram is whole.
        if r > 0 && wait_all && (r as u32) < sqe.len && stream_like(sqe.fd) {
            *progress += r as u32;
            sqe.addr += r as u64;
            sqe.len -= r as u32;
            continue;
        }
        return match r {
            n if n >= 0 => Attempt::Done((*progress + n as u32).min(i32::MAX as u32) as i32),
            // The caller's own MSG_DONTWAIT: "would block" is the answer, as with io_uring.
            n if -n == libc::EAGAIN && flags & libc::MSG_DONTWAIT != 0 => Attempt::Done(n),
            n if -n == libc::EAGAIN => Attempt::Wait {
                fd: sqe.fd,
                events: if send { libc::EPOLLOUT } else { libc::EPOLLIN } as u32,
            },
            _ if *progress > 0 => Attempt::Done(*progress as i32),
            n => Attempt::Done(n),
        };
    }
}

/// `sendmsg`/`recvmsg` with `MSG_DONTWAIT` on the SQE's message header (one call: a datagram
/// is whole), then a wait for readiness.
fn message(sqe: &io_uring_sqe, send: bool) -> Attempt {
    let flags = sqe.op_flags as i32;
    let hdr = sqe.addr as usize as *mut libc::msghdr;
    loop {
        let rc = if send {
            // SAFETY: `hdr` is a message header whose buffers and address the submitter keeps
            // valid until this entry completes (the module's contract).
            unsafe { libc::sendmsg(sqe.fd, hdr, flags | libc::MSG_DONTWAIT) }
        } else {
            // SAFETY: as above; the header, its buffers and its address room are writable.
            unsafe { libc::recvmsg(sqe.fd, hdr, flags | libc::MSG_DONTWAIT) }
        };
        return match res(rc) {
            n if -n == libc::EINTR => continue,
            // The caller's own MSG_DONTWAIT: "would block" is the answer, as with io_uring.
            n if -n == libc::EAGAIN && flags & libc::MSG_DONTWAIT != 0 => Attempt::Done(n),
            n if -n == libc::EAGAIN => Attempt::Wait {
                fd: sqe.fd,
                events: if send { libc::EPOLLOUT } else { libc::EPOLLIN } as u32,
            },
            n => Attempt::Done(n),
        };
    }
}

/// Runs `f` with `O_NONBLOCK` set on `fd`'s file, and leaves it set: `accept`, `connect` and
/// a splice into a socket have no per-call way not to wait, and restoring the flag afterwards
/// would race with another ring (or process) doing the same on a shared listener, leaving
/// one of them in a blocking call. The executor's callers see the file non-blocking from the
/// first such op on (documented in docs/reliability.md).
fn nonblocking(fd: RawFd, f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: `fcntl` on a caller's descriptor with no pointer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return -errno();
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        let set = unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) };
        if set < 0 {
            return -errno();
        }
    }
    f()
}

fn accept(sqe: &io_uring_sqe) -> Attempt {
    let addr = sqe.addr as usize as *mut libc::sockaddr;
    let len = sqe.off as usize as *mut libc::socklen_t;
    let flags = sqe.op_flags as i32;
    let r = nonblocking(sqe.fd, || {
        // SAFETY: `addr`/`len` are null or name the SQE's address buffer and its length,
        // valid until completion (the module's contract).
        res(unsafe { libc::accept4(sqe.fd, addr, len, flags) } as isize)
    });
    if r == -libc::EAGAIN {
        return Attempt::Wait {
            fd: sqe.fd,
            events: libc::EPOLLIN as u32,
        };
    }
    Attempt::Done(r)
}

/// `progress` 1: the connect is under way, and finishes when the socket becomes writable.
fn connect(sqe: &io_uring_sqe, progress: &mut u32) -> Attempt {
    let wait = Attempt::Wait {
        fd: sqe.fd,
        events: libc::EPOLLOUT as u32,
    };
    if *progress == 1 {
        if !ready(sqe.fd, libc::POLLOUT) {
            return wait;
        }
        let mut error: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `error`/`len` are live locals of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                sqe.fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&raw mut error).cast(),
                &raw mut len,
            )
        };
        return Attempt::Done(if rc < 0 { -errno() } else { -error });
    }
    let addr = sqe.addr as usize as *const libc::sockaddr;
    let len = sqe.off as libc::socklen_t;
    let r = nonblocking(sqe.fd, || {
        // SAFETY: `addr` names `len` bytes of socket address, valid until completion.
        res(unsafe { libc::connect(sqe.fd, addr, len) } as isize)
    });
    match -r {
        libc::EINPROGRESS => {
            *progress = 1;
            wait
        }
        // A full Unix listener's backlog: nothing announces room; try again later.
        libc::EAGAIN => Attempt::Later,
        _ => Attempt::Done(r),
    }
}

fn poll_add(sqe: &io_uring_sqe) -> Attempt {
    // `poll32_events`: the poll bits are the low 16 (POLLRDHUP included).
    let events = (sqe.op_flags & 0xffff) as i16;
    let mut pfd = libc::pollfd {
        fd: sqe.fd,
        events,
        revents: 0,
    };
    // SAFETY: one live `pollfd`, a zero timeout.
    let rc = unsafe { libc::poll(&raw mut pfd, 1, 0) };
    if rc < 0 {
        return Attempt::Done(-errno());
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        return Attempt::Done(-libc::EBADF);
    }
    if pfd.revents != 0 {
        return Attempt::Done(i32::from(pfd.revents as u16));
    }
    // The epoll bits have the poll bits' values.
    Attempt::Wait {
        fd: sqe.fd,
        events: u32::from(events as u16),
    }
}

fn splice(sqe: &io_uring_sqe, may_block: bool) -> Attempt {
    let fd_in = sqe.splice_fd_in;
    let fd_out = sqe.fd;
    // SPLICE_F_NONBLOCK keeps the pipe ends from waiting, and a socket being written to,
    // but not a blocking socket being read from: wait until that one has data.
    if !may_block && !ready(fd_in, libc::POLLIN) && is_socket(fd_in) {
        return Attempt::Wait {
            fd: fd_in,
            events: libc::EPOLLIN as u32,
        };
    }
    // A socket written to blocks on its own O_NONBLOCK flag, whatever SPLICE_F_NONBLOCK
    // says: wait until it has room, and make it non-blocking (see `nonblocking`).
    let socket_out = !may_block && is_socket(fd_out);
    if socket_out && !ready(fd_out, libc::POLLOUT) {
        return Attempt::Wait {
            fd: fd_out,
            events: libc::EPOLLOUT as u32,
        };
    }
    // io_uring reads the offsets and never writes them back: copies go to the call.
    let mut off_in = sqe.addr as i64;
    let mut off_out = sqe.off as i64;
    let p_in = if sqe.addr == NO_OFFSET {
        core::ptr::null_mut()
    } else {
        &raw mut off_in
    };
    let p_out = if sqe.off == NO_OFFSET {
        core::ptr::null_mut()
    } else {
        &raw mut off_out
    };
    let flags = sqe.op_flags | libc::SPLICE_F_NONBLOCK;
    let call = || {
        // SAFETY: the offset pointers are null or point at live locals.
        res(unsafe { libc::splice(fd_in, p_in, fd_out, p_out, sqe.len as usize, flags) })
    };
    let r = if socket_out {
        nonblocking(fd_out, call)
    } else {
        call()
    };
    if r == -libc::EAGAIN && !may_block {
        // Whichever end is not ready.
        if !ready(fd_in, libc::POLLIN) {
            return Attempt::Wait {
                fd: fd_in,
                events: libc::EPOLLIN as u32,
            };
        }
        return Attempt::Wait {
            fd: fd_out,
            events: libc::EPOLLOUT as u32,
        };
    }
    Attempt::Done(r)
}

/// An open as io_uring does it: with `O_NONBLOCK` added (then cleared from the new file)
/// unless the caller asked for it, so that an open that would wait (a FIFO without a peer)
/// does not stall the ring; creating or truncating opens, which io_uring always runs
/// blocking, and one that says "would block" anyway, run as asked.
fn open_nonblocking(flags: i32, open: impl Fn(i32) -> isize) -> i32 {
    let blocking = libc::O_CREAT | libc::O_TRUNC | libc::O_TMPFILE;
    if flags & (libc::O_NONBLOCK | blocking) != 0 {
        return res(open(flags));
    }
    let fd = res(open(flags | libc::O_NONBLOCK));
    if fd == -libc::EAGAIN {
        return res(open(flags));
    }
    if fd >= 0 {
        // SAFETY: `fcntl` on the descriptor just opened, no pointer arguments.
        let now = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if now >= 0 {
            // SAFETY: as above.
            unsafe { libc::fcntl(fd, libc::F_SETFL, now & !libc::O_NONBLOCK) };
        }
    }
    fd
}

/// Whether `fd` is a stream socket.
pub(super) fn stream_socket(fd: RawFd) -> bool {
    socket_type(fd) == Some(libc::SOCK_STREAM)
}

/// Whether `fd` is a stream or seqpacket socket.
fn stream_like(fd: RawFd) -> bool {
    matches!(
        socket_type(fd),
        Some(libc::SOCK_STREAM | libc::SOCK_SEQPACKET)
    )
}

/// `SO_TYPE`, if `fd` is a socket.
fn socket_type(fd: RawFd) -> Option<libc::c_int> {
    let mut ty: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `ty`/`len` are live locals of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&raw mut ty).cast(),
            &raw mut len,
        )
    };
    (rc == 0).then_some(ty)
}

fn is_socket(fd: RawFd) -> bool {
    // SAFETY: `st` is a live local the call fills.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::fstat(fd, &raw mut st) };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
}

/// The ops that never wait for readiness: run to the end, now. Paths, `statx` and
/// `open_how` buffers come from the SQE and are valid until completion (the module's
/// contract); every other argument is an integer.
fn sync(opcode: Opcode, sqe: &io_uring_sqe) -> i32 {
    let fd = sqe.fd;
    let (addr, addr2) = (path(sqe.addr), path(sqe.off));
    let rc: isize = match opcode {
        Opcode::Openat => {
            let (flags, mode) = (sqe.op_flags as i32, sqe.len as libc::c_uint);
            return open_nonblocking(flags, |flags| {
                // SAFETY: a path from the SQE (see above).
                (unsafe { libc::openat(fd, addr, flags, mode) }) as isize
            });
        }
        Opcode::Openat2 => {
            let how = sqe.off as usize as *const [u64; 3];
            let size = sqe.len as usize;
            if how.is_null() || size != size_of::<[u64; 3]>() {
                // SAFETY: a path and an `open_how` of `size` bytes from the SQE (the kernel
                // checks the size).
                return res(
                    unsafe { libc::syscall(libc::SYS_openat2, fd, addr, how, size) } as isize,
                );
            }
            // SAFETY: the SQE's `open_how` (flags, mode, resolve), 24 bytes, read once.
            let [flags, mode, resolve] = unsafe { how.read_unaligned() };
            return open_nonblocking(flags as i32, |flags| {
                let how = [flags as u32 as u64, mode, resolve];
                // SAFETY: a path from the SQE and a live local `open_how` of `size` bytes.
                (unsafe { libc::syscall(libc::SYS_openat2, fd, addr, &raw const how, size) })
                    as isize
            });
        }
        // SAFETY: integers only.
        Opcode::Close => (unsafe { libc::close(fd) }) as isize,
        Opcode::Fsync if sqe.op_flags & crate::FsyncFlags::DATASYNC.bits() != 0 => {
            // SAFETY: integers only.
            (unsafe { libc::fdatasync(fd) }) as isize
        }
        // SAFETY: integers only.
        Opcode::Fsync => (unsafe { libc::fsync(fd) }) as isize,
        Opcode::Fallocate => {
            let (mode, offset, len) = (sqe.len as i32, sqe.off as i64, sqe.addr as i64);
            // SAFETY: integers only.
            (unsafe { libc::fallocate(fd, mode, offset, len) }) as isize
        }
        Opcode::Fadvise => {
            let (offset, len) = (sqe.off as i64, i64::from(sqe.len));
            // SAFETY: integers only. It returns the error number itself.
            let e = unsafe { libc::posix_fadvise(fd, offset, len, sqe.op_flags as i32) };
            return -e;
        }
        Opcode::Statx => {
            let (flags, mask) = (sqe.op_flags as i32, sqe.len);
            let buf = sqe.off as usize as *mut libc::statx;
            // SAFETY: a path and a `statx` buffer from the SQE.
            (unsafe { libc::statx(fd, addr, flags, mask, buf) }) as isize
        }
        // SAFETY: a path from the SQE.
        Opcode::Unlinkat => (unsafe { libc::unlinkat(fd, addr, sqe.op_flags as i32) }) as isize,
        Opcode::Renameat => {
            let (new_dir, flags) = (sqe.len as i32, sqe.op_flags);
            // SAFETY: two paths from the SQE.
            (unsafe { libc::syscall(libc::SYS_renameat2, fd, addr, new_dir, addr2, flags) })
                as isize
        }
        Opcode::Mkdirat => {
            // SAFETY: a path from the SQE.
            (unsafe { libc::mkdirat(fd, addr, sqe.len as libc::mode_t) }) as isize
        }
        // SAFETY: two paths from the SQE.
        Opcode::Symlinkat => (unsafe { libc::symlinkat(addr, fd, addr2) }) as isize,
        Opcode::Linkat => {
            let (new_dir, flags) = (sqe.len as i32, sqe.op_flags as i32);
            // SAFETY: two paths from the SQE.
            (unsafe { libc::linkat(fd, addr, new_dir, addr2, flags) }) as isize
        }
        Opcode::Socket => {
            let (ty, protocol) = (sqe.off as i32, sqe.len as i32);
            // SAFETY: integers only.
            (unsafe { libc::socket(fd, ty, protocol) }) as isize
        }
        // SAFETY: integers only.
        Opcode::Shutdown => (unsafe { libc::shutdown(fd, sqe.len as i32) }) as isize,
        // Not executed here (see `emulation`): the kernel's answer to an opcode it lacks.
        _ => return -libc::EINVAL,
    };
    res(rc)
}
