//! One `bitflags` type per flag family of the io_uring ABI, each flag with its C name and the
//! kernel version that introduced it.
//!
//! Keeping the families apart means a flag can never be stored in another family's field:
//! `FsyncFlags::DATASYNC` and `SqeFlags::FIXED_FILE` are both bit 0, but only one of them fits
//! in `io_uring_sqe.flags`.

use crate::version::KernelVersion;

/// One flag of a family, as data: the value, its name in `<linux/io_uring.h>`, the kernel that
/// added it, and what xuring does where it is missing.
#[derive(Clone, Copy, Debug)]
pub struct FlagInfo<F: 'static> {
    /// The flag itself.
    pub flag: F,
    /// The name of the constant in the C header.
    pub c_name: &'static str,
    /// The first kernel with this flag.
    pub since: KernelVersion,
    /// How xuring uses the flag and what it does on a kernel without it.
    pub fallback: &'static str,
}

macro_rules! flag_families {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident: $repr:ty {
            $(
                $(#[doc = $fdoc:literal])*
                const $flag:ident = $value:expr, $c_name:literal, since ($maj:literal, $min:literal), $fallback:literal;
            )*
        }
    )*) => {$(
        bitflags::bitflags! {
            $(#[$meta])*
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
            pub struct $name: $repr {
                $( $(#[doc = $fdoc])* const $flag = $value; )*
            }
        }

        impl $name {
            /// Every flag of this family with its C name and kernel version.
            pub const TABLE: &'static [FlagInfo<$name>] = &[$(
                FlagInfo {
                    flag: $name::$flag,
                    c_name: $c_name,
                    since: KernelVersion::new($maj, $min),
                    fallback: $fallback,
                },
            )*];

            /// The flags of `self` that exist at `level` (clears the newer ones).
            pub fn clamp(self, level: crate::KernelLevel) -> Self {
                let mut kept = Self::empty();
                for info in Self::TABLE {
                    if level.allows(info.since) {
                        kept |= info.flag;
                    }
                }
                self & kept
            }
        }
    )*};
}

flag_families! {
    /// `io_uring_sqe.flags` (`IOSQE_*`).
    pub struct SqeFlags: u8 {
        /// `fd` is an index into the registered file table.
        const FIXED_FILE = 1 << 0, "IOSQE_FIXED_FILE", since (5, 1), "not used";
        /// Start only after all earlier submissions completed.
        const IO_DRAIN = 1 << 1, "IOSQE_IO_DRAIN", since (5, 2), "not used";
        /// The next SQE starts only after this one succeeds.
        const IO_LINK = 1 << 2, "IOSQE_IO_LINK", since (5, 3), "not used";
        /// Like `IO_LINK`, but the chain survives failure.
        const IO_HARDLINK = 1 << 3, "IOSQE_IO_HARDLINK", since (5, 5), "not used";
        /// Always punt to io-wq.
        const ASYNC = 1 << 4, "IOSQE_ASYNC", since (5, 6), "not used";
        /// Pick a buffer from `buf_group`.
        const BUFFER_SELECT = 1 << 5, "IOSQE_BUFFER_SELECT", since (5, 7), "not used";
        /// Post no CQE on success.
        const CQE_SKIP_SUCCESS = 1 << 6, "IOSQE_CQE_SKIP_SUCCESS", since (5, 17), "not used: every task gets exactly one completion";
    }

    /// `io_uring_params.flags` (`IORING_SETUP_*`).
    pub struct SetupFlags: u32 {
        /// Busy-poll for completions (O_DIRECT on polled block devices only).
        const IOPOLL = 1 << 0, "IORING_SETUP_IOPOLL", since (5, 1), "refused (SetupError::UnsupportedFlags): the run loop never polls for completions";
        /// A kernel thread polls the SQ.
        const SQPOLL = 1 << 1, "IORING_SETUP_SQPOLL", since (5, 1), "refused (SetupError::UnsupportedFlags): the run loop never wakes a sleeping SQ poll thread";
        /// Pin the SQ poll thread to `sq_thread_cpu`.
        const SQ_AFF = 1 << 2, "IORING_SETUP_SQ_AFF", since (5, 1), "refused (SetupError::UnsupportedFlags), like SQPOLL";
        /// `cq_entries` is set by the application.
        const CQSIZE = 1 << 3, "IORING_SETUP_CQSIZE", since (5, 5), "set when a CQ size is asked for (cq_entries), and only then";
        /// Clamp oversized ring sizes instead of failing.
        const CLAMP = 1 << 4, "IORING_SETUP_CLAMP", since (5, 6), "always set";
        /// Share the io-wq of the ring `wq_fd`.
        const ATTACH_WQ = 1 << 5, "IORING_SETUP_ATTACH_WQ", since (5, 6), "set when a ring to share with is given (attach_wq), and only then: Thread child rings; a private io-wq without it or when the kernel refuses the fd";
        /// Create the ring disabled.
        const R_DISABLED = 1 << 6, "IORING_SETUP_R_DISABLED", since (5, 10), "refused (SetupError::UnsupportedFlags): rings are never enabled later";
        /// Keep submitting after an SQE fails inline.
        const SUBMIT_ALL = 1 << 7, "IORING_SETUP_SUBMIT_ALL", since (5, 18), "tried first; without it the run loop resubmits the rest of a batch";
        /// Run task work cooperatively, on the next kernel transition.
        const COOP_TASKRUN = 1 << 8, "IORING_SETUP_COOP_TASKRUN", since (5, 19), "tried first; without it the kernel interrupts the task to run task work";
        /// Set `IORING_SQ_TASKRUN` when task work is pending.
        const TASKRUN_FLAG = 1 << 9, "IORING_SETUP_TASKRUN_FLAG", since (5, 19), "accepted, not asked for by default: every enter passes GETEVENTS, which runs pending task work, so the hint is not needed";
        /// 128-byte SQEs.
        const SQE128 = 1 << 10, "IORING_SETUP_SQE128", since (5, 19), "refused (SetupError::UnsupportedFlags): the SQ is laid out for 64-byte SQEs";
        /// 32-byte CQEs.
        const CQE32 = 1 << 11, "IORING_SETUP_CQE32", since (5, 19), "refused (SetupError::UnsupportedFlags): the CQ is read as 16-byte CQEs";
        /// Only one task submits.
        const SINGLE_ISSUER = 1 << 12, "IORING_SETUP_SINGLE_ISSUER", since (6, 0), "tried first; rings are not Send, so one thread is the only issuer either way";
        /// Run task work only when the application waits for completions.
        const DEFER_TASKRUN = 1 << 13, "IORING_SETUP_DEFER_TASKRUN", since (6, 1), "tried first; the run loop then always enters with GETEVENTS to reap";
    }

    /// `io_uring_params.features` (`IORING_FEAT_*`): what the kernel reports it can do.
    pub struct FeatureFlags: u32 {
        /// SQ and CQ rings share one mapping.
        const SINGLE_MMAP = 1 << 0, "IORING_FEAT_SINGLE_MMAP", since (5, 4), "two mappings";
        /// Completions are never dropped when the CQ is full.
        const NODROP = 1 << 1, "IORING_FEAT_NODROP", since (5, 5), "a small in-flight cap keeps the CQ from overflowing";
        /// Data for an SQE is copied at submission time.
        const SUBMIT_STABLE = 1 << 2, "IORING_FEAT_SUBMIT_STABLE", since (5, 5), "assumed (5.6 is the floor)";
        /// `off == -1` means the file's current position.
        const RW_CUR_POS = 1 << 3, "IORING_FEAT_RW_CUR_POS", since (5, 6), "Offset::File is unsupported without it";
        /// Requests run with the submitter's credentials.
        const CUR_PERSONALITY = 1 << 4, "IORING_FEAT_CUR_PERSONALITY", since (5, 6), "not relied on";
        /// Internal poll for pollable files instead of io-wq threads.
        const FAST_POLL = 1 << 5, "IORING_FEAT_FAST_POLL", since (5, 7), "transparent to xuring";
        /// 32-bit poll masks.
        const POLL_32BITS = 1 << 6, "IORING_FEAT_POLL_32BITS", since (5, 9), "poll masks above 16 bits are refused";
        /// SQPOLL works without fixed files.
        const SQPOLL_NONFIXED = 1 << 7, "IORING_FEAT_SQPOLL_NONFIXED", since (5, 11), "not used (no SQPOLL)";
        /// `IORING_ENTER_EXT_ARG`: wait with a timeout.
        const EXT_ARG = 1 << 8, "IORING_FEAT_EXT_ARG", since (5, 11), "deadline waits use an internal timeout SQE";
        /// io-wq workers are native threads.
        const NATIVE_WORKERS = 1 << 9, "IORING_FEAT_NATIVE_WORKERS", since (5, 12), "transparent to xuring";
        /// Registered resources can carry tags.
        const RSRC_TAGS = 1 << 10, "IORING_FEAT_RSRC_TAGS", since (5, 13), "not used";
        /// `IOSQE_CQE_SKIP_SUCCESS` is supported.
        const CQE_SKIP = 1 << 11, "IORING_FEAT_CQE_SKIP", since (5, 17), "not used";
        /// Linked requests resolve files at issue time.
        const LINKED_FILE = 1 << 12, "IORING_FEAT_LINKED_FILE", since (5, 17), "not used";
    }

    /// `io_uring_enter(2)` flags (`IORING_ENTER_*`).
    pub struct EnterFlags: u32 {
        /// Wait for `min_complete` completions.
        const GETEVENTS = 1 << 0, "IORING_ENTER_GETEVENTS", since (5, 1), "required";
        /// Wake the SQ poll thread.
        const SQ_WAKEUP = 1 << 1, "IORING_ENTER_SQ_WAKEUP", since (5, 1), "not used (no SQPOLL)";
        /// Wait for SQ space with SQPOLL.
        const SQ_WAIT = 1 << 2, "IORING_ENTER_SQ_WAIT", since (5, 10), "not used (no SQPOLL)";
        /// The argument is an `io_uring_getevents_arg`.
        const EXT_ARG = 1 << 3, "IORING_ENTER_EXT_ARG", since (5, 11), "see FEAT_EXT_ARG";
        /// `fd` is an index of a registered ring fd.
        const REGISTERED_RING = 1 << 4, "IORING_ENTER_REGISTERED_RING", since (5, 18), "not used";
    }

    /// The SQ ring's `flags` word, written by the kernel (`IORING_SQ_*`).
    pub struct SqRingFlags: u32 {
        /// The SQ poll thread sleeps and needs `ENTER_SQ_WAKEUP`.
        const NEED_WAKEUP = 1 << 0, "IORING_SQ_NEED_WAKEUP", since (5, 1), "not used (no SQPOLL)";
        /// Completions are waiting in the kernel's overflow list.
        const CQ_OVERFLOW = 1 << 1, "IORING_SQ_CQ_OVERFLOW", since (5, 8), "the run loop also enters when it sees EBUSY";
        /// Task work is pending (with `SETUP_TASKRUN_FLAG`).
        const TASKRUN = 1 << 2, "IORING_SQ_TASKRUN", since (5, 19), "not used";
    }

    /// The CQ ring's `flags` word, written by the application (`IORING_CQ_*`).
    pub struct CqRingFlags: u32 {
        /// Do not signal the registered eventfd.
        const EVENTFD_DISABLED = 1 << 0, "IORING_CQ_EVENTFD_DISABLED", since (5, 8), "not used";
    }

    /// `io_uring_cqe.flags` (`IORING_CQE_F_*`).
    pub struct CqeFlags: u32 {
        /// The upper 16 bits hold a selected buffer id.
        const BUFFER = 1 << 0, "IORING_CQE_F_BUFFER", since (5, 7), "not used";
        /// More completions follow for this request (multishot).
        const MORE = 1 << 1, "IORING_CQE_F_MORE", since (5, 13), "not used: ops are one-shot";
        /// The socket has more data to read.
        const SOCK_NONEMPTY = 1 << 2, "IORING_CQE_F_SOCK_NONEMPTY", since (5, 19), "not used";
        /// A zero-copy send notification.
        const NOTIF = 1 << 3, "IORING_CQE_F_NOTIF", since (6, 0), "not used";
    }

    /// `timeout_flags` of `IORING_OP_TIMEOUT` and `TIMEOUT_REMOVE` (`IORING_TIMEOUT_*`).
    pub struct TimeoutFlags: u32 {
        /// The timespec is an absolute time.
        const ABS = 1 << 0, "IORING_TIMEOUT_ABS", since (5, 5), "required for absolute timers";
        /// Update an existing timeout.
        const UPDATE = 1 << 1, "IORING_TIMEOUT_UPDATE", since (5, 11), "not used";
        /// Measure against `CLOCK_BOOTTIME`.
        const BOOTTIME = 1 << 2, "IORING_TIMEOUT_BOOTTIME", since (5, 15), "not used";
        /// Measure against `CLOCK_REALTIME`.
        const REALTIME = 1 << 3, "IORING_TIMEOUT_REALTIME", since (5, 15), "not used";
        /// Update a linked timeout.
        const LINK_TIMEOUT_UPDATE = 1 << 4, "IORING_LINK_TIMEOUT_UPDATE", since (5, 15), "not used";
        /// Expiry completes with 0 instead of `-ETIME`.
        const ETIME_SUCCESS = 1 << 5, "IORING_TIMEOUT_ETIME_SUCCESS", since (5, 16), "not used: -ETIME is decoded as success";
    }

    /// `cancel_flags` of `IORING_OP_ASYNC_CANCEL` (`IORING_ASYNC_CANCEL_*`).
    pub struct CancelFlags: u32 {
        /// Cancel every match, not only the first.
        const ALL = 1 << 0, "IORING_ASYNC_CANCEL_ALL", since (5, 19), "one cancel SQE per in-flight task";
        /// Match on `fd` instead of `user_data`.
        const FD = 1 << 1, "IORING_ASYNC_CANCEL_FD", since (5, 19), "not used";
        /// Match any request.
        const ANY = 1 << 2, "IORING_ASYNC_CANCEL_ANY", since (5, 19), "with ALL for cancel-all; else one cancel per task";
        /// `fd` is a registered file.
        const FD_FIXED = 1 << 3, "IORING_ASYNC_CANCEL_FD_FIXED", since (6, 0), "not used";
        /// Match on `user_data` (the default, explicit).
        const USERDATA = 1 << 4, "IORING_ASYNC_CANCEL_USERDATA", since (6, 6), "not used";
        /// Match on opcode.
        const OP = 1 << 5, "IORING_ASYNC_CANCEL_OP", since (6, 6), "not used";
    }

    /// `fsync_flags` of `IORING_OP_FSYNC`.
    pub struct FsyncFlags: u32 {
        /// Sync data only, like `fdatasync(2)`.
        const DATASYNC = 1 << 0, "IORING_FSYNC_DATASYNC", since (5, 1), "required";
    }

    /// `len` flags of `IORING_OP_POLL_ADD`/`POLL_REMOVE` (`IORING_POLL_*`).
    pub struct PollFlags: u32 {
        /// Multishot poll.
        const ADD_MULTI = 1 << 0, "IORING_POLL_ADD_MULTI", since (5, 13), "not used: polls are one-shot";
        /// Update the events of an existing poll.
        const UPDATE_EVENTS = 1 << 1, "IORING_POLL_UPDATE_EVENTS", since (5, 13), "not used";
        /// Update the user data of an existing poll.
        const UPDATE_USER_DATA = 1 << 2, "IORING_POLL_UPDATE_USER_DATA", since (5, 13), "not used";
        /// Level-triggered poll.
        const ADD_LEVEL = 1 << 3, "IORING_POLL_ADD_LEVEL", since (5, 19), "not used";
    }

    /// `msg_ring_flags` of `IORING_OP_MSG_RING`.
    pub struct MsgRingFlags: u32 {
        /// Post no CQE in the sender's ring.
        const CQE_SKIP = 1 << 0, "IORING_MSG_RING_CQE_SKIP", since (6, 0), "not used";
    }

    /// `ioprio` flags of send/recv (`IORING_RECVSEND_*`).
    pub struct RecvSendFlags: u16 {
        /// Poll before attempting the transfer.
        const POLL_FIRST = 1 << 0, "IORING_RECVSEND_POLL_FIRST", since (5, 19), "not used";
        /// Multishot receive.
        const RECV_MULTISHOT = 1 << 1, "IORING_RECV_MULTISHOT", since (6, 0), "not used";
        /// Use a registered buffer (zero-copy send).
        const FIXED_BUF = 1 << 2, "IORING_RECVSEND_FIXED_BUF", since (6, 0), "not used";
    }

    /// `ioprio` flags of accept (`IORING_ACCEPT_*`).
    pub struct AcceptFlags: u16 {
        /// Multishot accept.
        const MULTISHOT = 1 << 0, "IORING_ACCEPT_MULTISHOT", since (5, 19), "not used: accepts are one-shot";
    }
}

impl SetupFlags {
    /// The setup flags xuring drives; `RawRing::new` refuses any other bit, known or not,
    /// before calling `io_uring_setup`.
    ///
    /// The rest change what the queues must do: `SQE128`/`CQE32` change the SQE and CQE sizes
    /// (the queues use 64 and 16 bytes), `SQPOLL` (and `SQ_AFF` with it) needs the SQ poll
    /// thread woken, `IOPOLL` needs completions polled for, `R_DISABLED` needs the ring enabled
    /// later, and newer flags such as `NO_SQARRAY` (6.6) change the ring layout itself.
    pub const DRIVEN: SetupFlags = SetupFlags::CQSIZE
        .union(SetupFlags::CLAMP)
        .union(SetupFlags::ATTACH_WQ)
        .union(SetupFlags::SUBMIT_ALL)
        .union(SetupFlags::COOP_TASKRUN)
        .union(SetupFlags::TASKRUN_FLAG)
        .union(SetupFlags::SINGLE_ISSUER)
        .union(SetupFlags::DEFER_TASKRUN);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KernelLevel;

    #[test]
    fn tables_list_every_flag_once() {
        fn check<F: bitflags::Flags + Copy>(table: &[FlagInfo<F>], bits: impl Fn(F) -> u64) {
            assert_eq!(table.len(), F::FLAGS.len());
            for (i, a) in table.iter().enumerate() {
                assert_eq!(bits(a.flag).count_ones(), 1, "{} is one bit", a.c_name);
                for b in &table[i + 1..] {
                    assert_ne!(bits(a.flag), bits(b.flag), "{} vs {}", a.c_name, b.c_name);
                }
            }
        }
        check(SqeFlags::TABLE, |f| u64::from(f.bits()));
        check(SetupFlags::TABLE, |f| u64::from(f.bits()));
        check(FeatureFlags::TABLE, |f| u64::from(f.bits()));
        check(EnterFlags::TABLE, |f| u64::from(f.bits()));
        check(TimeoutFlags::TABLE, |f| u64::from(f.bits()));
        check(CancelFlags::TABLE, |f| u64::from(f.bits()));
        check(PollFlags::TABLE, |f| u64::from(f.bits()));
        check(RecvSendFlags::TABLE, |f| u64::from(f.bits()));
    }

    #[test]
    fn clamp_drops_exactly_the_newer_flags() {
        let wanted = SetupFlags::SUBMIT_ALL
            | SetupFlags::COOP_TASKRUN
            | SetupFlags::SINGLE_ISSUER
            | SetupFlags::DEFER_TASKRUN
            | SetupFlags::CLAMP;
        assert_eq!(wanted.clamp(KernelLevel::V5_6), SetupFlags::CLAMP);
        assert_eq!(
            wanted.clamp(KernelLevel::V5_18),
            SetupFlags::CLAMP | SetupFlags::SUBMIT_ALL
        );
        assert_eq!(
            wanted.clamp(KernelLevel::V6_0),
            wanted - SetupFlags::DEFER_TASKRUN
        );
        assert_eq!(wanted.clamp(KernelLevel::V6_1), wanted);
        assert_eq!(wanted.clamp(KernelLevel::Native), wanted);
    }
}
