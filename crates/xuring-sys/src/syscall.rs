//! The three io_uring syscalls, as thin typed wrappers.
//!
//! # Safety
//!
//! This module is one of the three places in `xuring-sys` that contain `unsafe` code (with
//! `mmap` and `queue`). Each function here passes the kernel pointers to memory that is valid
//! for the whole call; the kernel keeps none of them after returning except in
//! [`register()`], whose contract makes that the caller's duty. `io_uring_enter` consumes SQEs
//! whose memory obligations were accepted by whoever pushed them
//! ([`SubmissionQueue::push`](crate::SubmissionQueue::push) is `unsafe` for that reason).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::abi::{
    __kernel_timespec, IO_URING_OP_SUPPORTED, io_uring_getevents_arg, io_uring_params,
    io_uring_probe, io_uring_probe_op, register,
};
use crate::{EnterFlags, Errno, OpSet, Opcode};

/// Converts a raw syscall return into a result.
fn check(ret: libc::c_long) -> Result<u32, Errno> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret as u32)
    }
}

/// `io_uring_setup(2)`: creates a ring and returns its file descriptor.
///
/// The kernel reads the input fields of `params` and fills in the output fields.
pub fn io_uring_setup(entries: u32, params: &mut io_uring_params) -> Result<OwnedFd, Errno> {
    let params: *mut io_uring_params = params;
    // SAFETY: `params` comes from a live `&mut io_uring_params`, valid for reads and writes
    // of the struct's full size for the duration of the call; the kernel keeps no reference.
    let ret = unsafe { libc::syscall(libc::SYS_io_uring_setup, entries, params) };
    let fd = check(ret)? as RawFd;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `io_uring_enter(2)`: submits `to_submit` SQEs and waits for `min_complete` completions
/// (with `EnterFlags::GETEVENTS`).
///
/// With `timeout`, the wait ends after that long even with fewer completions (`ETIME`); this
/// needs `FEAT_EXT_ARG` (5.11), and `EnterFlags::EXT_ARG` is added here. Returns the number of
/// SQEs consumed. It takes a `BorrowedFd`: entering a ring needs the ring, not a number that
/// may name another's.
pub fn io_uring_enter(
    fd: BorrowedFd<'_>,
    to_submit: u32,
    min_complete: u32,
    flags: EnterFlags,
    timeout: Option<&__kernel_timespec>,
) -> Result<u32, Errno> {
    let fd = fd.as_raw_fd();
    let ret = match timeout {
        None => {
            // SAFETY: no pointer argument: the signal mask pointer is null and its size 0.
            unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    fd,
                    to_submit,
                    min_complete,
                    flags.bits(),
                    core::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            }
        }
        Some(ts) => {
            let arg = io_uring_getevents_arg {
                sigmask: 0,
                sigmask_sz: 0,
                pad: 0,
                ts: core::ptr::from_ref(ts) as u64,
            };
            let arg_ptr: *const io_uring_getevents_arg = &arg;
            // SAFETY: `arg` and the timespec it points to are live for the whole call, and the
            // size passed is the size of `arg`; the kernel only reads them during the call.
            unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    fd,
                    to_submit,
                    min_complete,
                    (flags | EnterFlags::EXT_ARG).bits(),
                    arg_ptr,
                    size_of::<io_uring_getevents_arg>(),
                )
            }
        }
    };
    check(ret)
}

/// `io_uring_register(2)` with a raw argument.
///
/// # Safety
///
/// `arg` must point to memory laid out as `opcode` requires, `nr_args` entries long, valid for
/// the whole call. For opcodes that register memory with the kernel (`REGISTER_BUFFERS`), that
/// memory must stay valid, and must not be freed or reused for anything else, until it is
/// unregistered or every ring that registered it is closed and its requests have completed.
pub unsafe fn register(
    fd: RawFd,
    opcode: u32,
    arg: *const libc::c_void,
    nr_args: u32,
) -> Result<u32, Errno> {
    // SAFETY: the caller guarantees `arg` matches `opcode` and `nr_args` and stays valid as
    // long as the kernel may use it.
    let ret = unsafe { libc::syscall(libc::SYS_io_uring_register, fd, opcode, arg, nr_args) };
    check(ret)
}

/// The opcodes this kernel supports (`IORING_REGISTER_PROBE`, 5.6).
pub fn probe_opcodes(fd: RawFd) -> Result<OpSet, Errno> {
    const SLOTS: usize = 256;
    #[repr(C)]
    struct ProbeBuffer {
        header: io_uring_probe,
        ops: [io_uring_probe_op; SLOTS],
    }
    let mut buffer = ProbeBuffer {
        header: io_uring_probe::default(),
        ops: [io_uring_probe_op::default(); SLOTS],
    };
    let ptr: *mut ProbeBuffer = &mut buffer;
    // SAFETY: `buffer` is a zeroed probe header followed by `SLOTS` entries, as
    // `REGISTER_PROBE` requires; it is live for the call and the kernel keeps no reference.
    unsafe {
        register(
            fd,
            register::IORING_REGISTER_PROBE,
            ptr.cast(),
            SLOTS as u32,
        )?
    };
    let filled = usize::from(buffer.header.ops_len).min(SLOTS);
    let mut set = OpSet::EMPTY;
    for entry in &buffer.ops[..filled] {
        if entry.flags & IO_URING_OP_SUPPORTED != 0
            && let Some(op) = Opcode::from_u8(entry.op)
        {
            set.insert(op);
        }
    }
    Ok(set)
}

/// Registers an eventfd that the kernel signals on each completion. Both are `BorrowedFd`s:
/// safe code must hold what it aims this at.
pub fn register_eventfd(fd: BorrowedFd<'_>, eventfd: BorrowedFd<'_>) -> Result<(), Errno> {
    let fd = fd.as_raw_fd();
    let eventfd = eventfd.as_raw_fd();
    let ptr: *const RawFd = &eventfd;
    // SAFETY: `REGISTER_EVENTFD` reads one `i32` from `ptr` during the call; the kernel takes
    // its own reference to the eventfd's file, not to this memory.
    unsafe { register(fd, register::IORING_REGISTER_EVENTFD, ptr.cast(), 1)? };
    Ok(())
}

/// Creates an eventfd (`eventfd(2)` with `EFD_CLOEXEC`).
pub fn eventfd(nonblocking: bool) -> Result<OwnedFd, Errno> {
    let mut flags = libc::EFD_CLOEXEC;
    if nonblocking {
        flags |= libc::EFD_NONBLOCK;
    }
    // SAFETY: `eventfd` takes no pointers.
    let fd = unsafe { libc::eventfd(0, flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `getrlimit(2)`.
pub fn getrlimit(
    resource: libc::__rlimit_resource_t,
    limit: &mut libc::rlimit,
) -> Result<(), Errno> {
    let ptr: *mut libc::rlimit = limit;
    // SAFETY: `ptr` comes from a live `&mut rlimit`, valid for writes during the call.
    if unsafe { libc::getrlimit(resource, ptr) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// `setrlimit(2)`.
pub fn setrlimit(resource: libc::__rlimit_resource_t, limit: &libc::rlimit) -> Result<(), Errno> {
    let ptr: *const libc::rlimit = limit;
    // SAFETY: `ptr` comes from a live `&rlimit`, valid for reads during the call.
    if unsafe { libc::setrlimit(resource, ptr) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The current `CLOCK_MONOTONIC` time (the clock of absolute io_uring timeouts).
pub fn monotonic_now() -> Result<crate::abi::__kernel_timespec, Errno> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let ptr: *mut libc::timespec = &mut ts;
    // SAFETY: `ptr` comes from a live `&mut timespec`, valid for writes during the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, ptr) } != 0 {
        return Err(Errno::last());
    }
    Ok(crate::abi::__kernel_timespec {
        tv_sec: ts.tv_sec,
        tv_nsec: ts.tv_nsec,
    })
}

/// The id of the calling process (`getpid(2)`).
pub fn getpid() -> i32 {
    // SAFETY: `getpid` takes no arguments and cannot fail.
    unsafe { libc::getpid() }
}

static FORK_GENERATION: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static ATFORK: std::sync::Once = std::sync::Once::new();

extern "C" fn bump_fork_generation() {
    FORK_GENERATION.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
}

/// A counter that increases in the child after each `fork(2)` of this process.
///
/// A ring remembers the value when it is created; a different value later means it is being
/// used in a forked child, where it must not cancel or reap the parent's requests. The first
/// call installs a `pthread_atfork` child handler (which only bumps an atomic counter, an
/// async-signal-safe operation).
pub fn fork_generation() -> u64 {
    ATFORK.call_once(|| {
        // SAFETY: the handler is an `extern "C"` function that lives for the whole program and
        // only performs an atomic add; registering it has no other effect.
        unsafe { libc::pthread_atfork(None, None, Some(bump_fork_generation)) };
    });
    FORK_GENERATION.load(core::sync::atomic::Ordering::Relaxed)
}

/// Whether a `fork(2)` happened since [`fork_generation`] returned `since`: a single atomic
/// load, for hot paths. Exact only because `since` came from [`fork_generation`], which
/// installed the handler that counts forks before it returned.
#[inline]
pub fn forked_since(since: u64) -> bool {
    FORK_GENERATION.load(core::sync::atomic::Ordering::Relaxed) != since
}

/// `socket(2)`, for kernels without `IORING_OP_SOCKET`. Returns the new descriptor, which
/// the caller owns.
pub fn socket(domain: i32, ty: i32, protocol: i32) -> Result<RawFd, Errno> {
    // SAFETY: `socket` takes no pointers.
    let fd = unsafe { libc::socket(domain, ty, protocol) };
    if fd < 0 {
        return Err(Errno::last());
    }
    Ok(fd)
}

/// `close(2)`.
///
/// # Safety
///
/// The caller must own `fd` (no one else may use or close it) and must not use it afterwards:
/// its number can be reused at once.
pub unsafe fn close(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: `close` takes no pointers; ownership is the caller's contract. Not retried on
    // `EINTR`: Linux frees the descriptor even then.
    if unsafe { libc::close(fd) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Duplicates `fd` with `FD_CLOEXEC` (`fcntl(F_DUPFD_CLOEXEC)`). It takes a `BorrowedFd`, not
/// a number: a duplicate of a descriptor the caller does not own (a runtime fd, see
/// [`runtime_fds`](crate::runtime_fds)) would dodge the checks made on its number.
pub fn dup_cloexec(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: `F_DUPFD_CLOEXEC` takes an integer argument only.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `new` is a descriptor just created for us.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Adds `value` to an eventfd's counter (`write(2)` of 8 bytes), retrying `EINTR`. It takes a
/// `BorrowedFd`, like [`dup_cloexec`], so safe code cannot aim it at a descriptor it does not
/// hold.
pub fn eventfd_write(fd: BorrowedFd<'_>, value: u64) -> Result<(), Errno> {
    let bytes = value.to_ne_bytes();
    loop {
        // SAFETY: `bytes` is a live 8-byte buffer for the duration of the call.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n == 8 {
            return Ok(());
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}
