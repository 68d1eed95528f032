//! The io_uring ABI: the structures shared with the kernel, laid out exactly as in
//! `<linux/io_uring.h>` (6.1), plus the raw constants that are not flag families.
//!
//! Unions of the C header are flattened into one field named after their most common member;
//! the field's doc lists the other members. The layout of every struct and the value of every
//! constant is compared with the system header by `tests/abi_check.rs`.

#![allow(non_camel_case_types)]

/// One submission queue entry (`struct io_uring_sqe`, 64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct io_uring_sqe {
    /// The operation (`IORING_OP_*`, see [`crate::Opcode`]).
    pub opcode: u8,
    /// `IOSQE_*` flags, see [`crate::SqeFlags`].
    pub flags: u8,
    /// I/O priority.
    pub ioprio: u16,
    /// The file descriptor the operation acts on.
    pub fd: i32,
    /// Union: `off`, `addr2`, `{ cmd_op, __pad1 }`.
    pub off: u64,
    /// Union: `addr`, `splice_off_in`.
    pub addr: u64,
    /// Buffer length or iovec count.
    pub len: u32,
    /// Union of the per-opcode flags: `rw_flags`, `fsync_flags`, `poll32_events`,
    /// `timeout_flags`, `cancel_flags`, `open_flags`, `statx_flags`, `splice_flags`,
    /// `msg_flags`, `msg_ring_flags`, ...
    pub op_flags: u32,
    /// Returned unchanged in the completion.
    pub user_data: u64,
    /// Union: `buf_index`, `buf_group`.
    pub buf_index: u16,
    /// Credentials to run the request with.
    pub personality: u16,
    /// Union: `splice_fd_in`, `file_index`, `{ addr_len, __pad3 }`.
    pub splice_fd_in: i32,
    /// Union: `{ addr3, __pad2[1] }`, `cmd[]`.
    pub addr3: u64,
    /// Padding up to 64 bytes.
    pub __pad2: [u64; 1],
}

impl io_uring_sqe {
    /// An all-zero entry: a `NOP` with no flags.
    pub const ZEROED: Self = Self {
        opcode: 0,
        flags: 0,
        ioprio: 0,
        fd: 0,
        off: 0,
        addr: 0,
        len: 0,
        op_flags: 0,
        user_data: 0,
        buf_index: 0,
        personality: 0,
        splice_fd_in: 0,
        addr3: 0,
        __pad2: [0],
    };
}

/// One completion queue entry (`struct io_uring_cqe`, 16 bytes, without `CQE32`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct io_uring_cqe {
    /// The `user_data` of the submission this completes.
    pub user_data: u64,
    /// The result: a non-negative value on success, `-errno` on failure.
    pub res: i32,
    /// `IORING_CQE_F_*` flags, see [`crate::CqeFlags`].
    pub flags: u32,
}

/// Offsets of the submission ring's fields inside its mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct io_sqring_offsets {
    /// Consumer index, written by the kernel.
    pub head: u32,
    /// Producer index, written by the application.
    pub tail: u32,
    /// `entries - 1`.
    pub ring_mask: u32,
    /// Number of entries.
    pub ring_entries: u32,
    /// `IORING_SQ_*` flags, written by the kernel.
    pub flags: u32,
    /// Number of invalid entries the kernel dropped.
    pub dropped: u32,
    /// The indirection array of SQE indices.
    pub array: u32,
    #[doc(hidden)]
    pub resv1: u32,
    #[doc(hidden)]
    pub resv2: u64,
}

/// Offsets of the completion ring's fields inside its mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct io_cqring_offsets {
    /// Consumer index, written by the application.
    pub head: u32,
    /// Producer index, written by the kernel.
    pub tail: u32,
    /// `entries - 1`.
    pub ring_mask: u32,
    /// Number of entries.
    pub ring_entries: u32,
    /// Completions lost because the ring was full (only without `FEAT_NODROP`).
    pub overflow: u32,
    /// The CQE array.
    pub cqes: u32,
    /// `IORING_CQ_*` flags, written by the application.
    pub flags: u32,
    #[doc(hidden)]
    pub resv1: u32,
    #[doc(hidden)]
    pub resv2: u64,
}

/// Parameters of `io_uring_setup(2)`, in and out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct io_uring_params {
    /// Out: SQ entries granted.
    pub sq_entries: u32,
    /// In with `SETUP_CQSIZE`, out: CQ entries granted.
    pub cq_entries: u32,
    /// In: `IORING_SETUP_*` flags.
    pub flags: u32,
    /// In with `SETUP_SQ_AFF`: the SQ poll thread's CPU.
    pub sq_thread_cpu: u32,
    /// In with `SETUP_SQPOLL`: idle time in milliseconds.
    pub sq_thread_idle: u32,
    /// Out: `IORING_FEAT_*` bits.
    pub features: u32,
    /// In with `SETUP_ATTACH_WQ`: the ring whose io-wq to share.
    pub wq_fd: u32,
    #[doc(hidden)]
    pub resv: [u32; 3],
    /// Out: where the SQ ring's fields are.
    pub sq_off: io_sqring_offsets,
    /// Out: where the CQ ring's fields are.
    pub cq_off: io_cqring_offsets,
}

/// One entry of an opcode probe.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct io_uring_probe_op {
    /// The opcode.
    pub op: u8,
    #[doc(hidden)]
    pub resv: u8,
    /// `IO_URING_OP_SUPPORTED` when the kernel implements it.
    pub flags: u16,
    #[doc(hidden)]
    pub resv2: u32,
}

/// The header of `IORING_REGISTER_PROBE`'s buffer; `ops_len` entries follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct io_uring_probe {
    /// The highest opcode the kernel knows.
    pub last_op: u8,
    /// How many entries the kernel filled.
    pub ops_len: u8,
    #[doc(hidden)]
    pub resv: u16,
    #[doc(hidden)]
    pub resv2: [u32; 3],
}

/// The extended argument of `io_uring_enter(2)` with `IORING_ENTER_EXT_ARG` (5.11).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct io_uring_getevents_arg {
    /// Pointer to a signal mask, or 0.
    pub sigmask: u64,
    /// Size of the signal mask.
    pub sigmask_sz: u32,
    #[doc(hidden)]
    pub pad: u32,
    /// Pointer to a [`__kernel_timespec`] wait timeout, or 0.
    pub ts: u64,
}

/// `struct __kernel_timespec`: the time format of timeouts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct __kernel_timespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub tv_nsec: i64,
}

/// An entry of `IORING_REGISTER_FILES_UPDATE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct io_uring_files_update {
    /// First slot to update.
    pub offset: u32,
    #[doc(hidden)]
    pub resv: u32,
    /// Pointer to an array of `i32` file descriptors.
    pub fds: u64,
}

/// `mmap(2)` offset of the SQ ring.
pub const IORING_OFF_SQ_RING: u64 = 0;
/// `mmap(2)` offset of the CQ ring.
pub const IORING_OFF_CQ_RING: u64 = 0x800_0000;
/// `mmap(2)` offset of the SQE array.
pub const IORING_OFF_SQES: u64 = 0x1000_0000;
/// Mask of the offset bits that select a mapping.
pub const IORING_OFF_MMAP_MASK: u64 = 0xf800_0000;
/// `io_uring_probe_op.flags`: the opcode is supported.
pub const IO_URING_OP_SUPPORTED: u16 = 1;
/// `file_index` value that asks the kernel to allocate a direct descriptor.
pub const IORING_FILE_INDEX_ALLOC: u32 = !0;
/// Shift of the buffer id in `cqe.flags` with `IORING_CQE_F_BUFFER`.
pub const IORING_CQE_BUFFER_SHIFT: u32 = 16;
/// `IORING_OP_MSG_RING` command: post `len` as `res` and `off` as `user_data`.
pub const IORING_MSG_DATA: u64 = 0;
/// `IORING_OP_MSG_RING` command: pass a registered file to the target ring.
pub const IORING_MSG_SEND_FD: u64 = 1;
/// Marks an entry of a files update as "leave this slot alone".
pub const IORING_REGISTER_FILES_SKIP: i32 = -2;
/// `splice_flags`: `splice_fd_in` is a registered file.
pub const SPLICE_F_FD_IN_FIXED: u32 = 1 << 31;
/// `io_uring_enter(2)` and `io_uring_register(2)` register opcodes (`IORING_REGISTER_*`).
pub mod register {
    /// Register fixed buffers.
    pub const IORING_REGISTER_BUFFERS: u32 = 0;
    /// Unregister fixed buffers.
    pub const IORING_UNREGISTER_BUFFERS: u32 = 1;
    /// Register fixed files.
    pub const IORING_REGISTER_FILES: u32 = 2;
    /// Unregister fixed files.
    pub const IORING_UNREGISTER_FILES: u32 = 3;
    /// Register an eventfd signalled on completions.
    pub const IORING_REGISTER_EVENTFD: u32 = 4;
    /// Unregister the eventfd.
    pub const IORING_UNREGISTER_EVENTFD: u32 = 5;
    /// Update fixed files.
    pub const IORING_REGISTER_FILES_UPDATE: u32 = 6;
    /// Register an eventfd signalled only for async completions.
    pub const IORING_REGISTER_EVENTFD_ASYNC: u32 = 7;
    /// Probe the supported opcodes.
    pub const IORING_REGISTER_PROBE: u32 = 8;
    /// Register the current credentials.
    pub const IORING_REGISTER_PERSONALITY: u32 = 9;
    /// Unregister credentials.
    pub const IORING_UNREGISTER_PERSONALITY: u32 = 10;
    /// Restrict what a disabled ring may do.
    pub const IORING_REGISTER_RESTRICTIONS: u32 = 11;
    /// Enable a ring created with `SETUP_R_DISABLED`.
    pub const IORING_REGISTER_ENABLE_RINGS: u32 = 12;
    /// Register files with tags.
    pub const IORING_REGISTER_FILES2: u32 = 13;
    /// Update files with tags.
    pub const IORING_REGISTER_FILES_UPDATE2: u32 = 14;
    /// Register buffers with tags.
    pub const IORING_REGISTER_BUFFERS2: u32 = 15;
    /// Update buffers with tags.
    pub const IORING_REGISTER_BUFFERS_UPDATE: u32 = 16;
    /// Set io-wq CPU affinity.
    pub const IORING_REGISTER_IOWQ_AFF: u32 = 17;
    /// Clear io-wq CPU affinity.
    pub const IORING_UNREGISTER_IOWQ_AFF: u32 = 18;
    /// Set the io-wq worker limits.
    pub const IORING_REGISTER_IOWQ_MAX_WORKERS: u32 = 19;
    /// Register ring fds for `ENTER_REGISTERED_RING`.
    pub const IORING_REGISTER_RING_FDS: u32 = 20;
    /// Unregister ring fds.
    pub const IORING_UNREGISTER_RING_FDS: u32 = 21;
    /// Register a provided-buffer ring.
    pub const IORING_REGISTER_PBUF_RING: u32 = 22;
    /// Unregister a provided-buffer ring.
    pub const IORING_UNREGISTER_PBUF_RING: u32 = 23;
    /// Synchronous cancellation.
    pub const IORING_REGISTER_SYNC_CANCEL: u32 = 24;
    /// Set the range for allocated direct descriptors.
    pub const IORING_REGISTER_FILE_ALLOC_RANGE: u32 = 25;
}

const _: () = assert!(size_of::<io_uring_sqe>() == 64);
const _: () = assert!(size_of::<io_uring_cqe>() == 16);
const _: () = assert!(size_of::<io_uring_params>() == 120);
const _: () = assert!(size_of::<io_uring_probe_op>() == 8);
const _: () = assert!(size_of::<io_uring_probe>() == 16);
const _: () = assert!(size_of::<io_uring_getevents_arg>() == 24);
const _: () = assert!(size_of::<__kernel_timespec>() == 16);
