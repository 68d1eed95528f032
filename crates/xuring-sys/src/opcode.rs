//! Every io_uring opcode up to Linux 6.1, declared once with its kernel version.
//!
//! The table is data: the probe, the feature masks, `docs/kernel-compat.md` and the ABI check
//! all read it, so an opcode's version cannot disagree between them.

use crate::version::KernelVersion;

/// What the compatibility table says about one opcode.
#[derive(Clone, Copy, Debug)]
pub struct OpcodeInfo {
    /// The opcode.
    pub opcode: Opcode,
    /// Its name in `<linux/io_uring.h>`.
    pub c_name: &'static str,
    /// The first kernel that has it.
    pub since: KernelVersion,
    /// What xuring does with it besides the ops that submit it (those are listed from
    /// `xuring-core`'s op declarations): empty, or how it is used otherwise.
    pub note: &'static str,
}

macro_rules! opcodes {
    ($(
        $(#[$meta:meta])*
        $name:ident = $value:literal, $c_name:literal, since ($maj:literal, $min:literal), $note:literal;
    )*) => {
        /// An io_uring operation (`enum io_uring_op`).
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Opcode {
            $( $(#[$meta])* $name = $value, )*
        }

        impl Opcode {
            /// Every opcode, in numeric order.
            pub const TABLE: &'static [OpcodeInfo] = &[$(
                OpcodeInfo {
                    opcode: Opcode::$name,
                    c_name: $c_name,
                    since: KernelVersion::new($maj, $min),
                    note: $note,
                },
            )*];

            /// The opcode with this number, if it is one of the table's.
            pub const fn from_u8(value: u8) -> Option<Opcode> {
                match value {
                    $( $value => Some(Opcode::$name), )*
                    _ => None,
                }
            }

            /// What the table says about this opcode.
            pub const fn info(self) -> &'static OpcodeInfo {
                &Self::TABLE[self as usize]
            }

            /// The first kernel that has this opcode.
            pub const fn since(self) -> KernelVersion {
                self.info().since
            }

            /// The opcode's name in the C header, e.g. `IORING_OP_READ`.
            pub const fn c_name(self) -> &'static str {
                self.info().c_name
            }
        }
    };
}

opcodes! {
    /// `nop`: completes with 0.
    Nop = 0, "IORING_OP_NOP", since (5, 1), "";
    /// `preadv2(2)`.
    Readv = 1, "IORING_OP_READV", since (5, 1), "";
    /// `pwritev2(2)`.
    Writev = 2, "IORING_OP_WRITEV", since (5, 1), "";
    /// `fsync(2)` / `fdatasync(2)`.
    Fsync = 3, "IORING_OP_FSYNC", since (5, 1), "";
    /// `pread(2)` into a registered buffer.
    ReadFixed = 4, "IORING_OP_READ_FIXED", since (5, 1), "into a registered pool buffer (plain READ when buffers are not registered)";
    /// `pwrite(2)` from a registered buffer.
    WriteFixed = 5, "IORING_OP_WRITE_FIXED", since (5, 1), "from a registered pool buffer (plain WRITE when buffers are not registered)";
    /// `poll(2)` for one fd, one shot.
    PollAdd = 6, "IORING_OP_POLL_ADD", since (5, 1), "";
    /// Remove a pending poll.
    PollRemove = 7, "IORING_OP_POLL_REMOVE", since (5, 1), "not used: ASYNC_CANCEL covers polls";
    /// `sync_file_range(2)`.
    SyncFileRange = 8, "IORING_OP_SYNC_FILE_RANGE", since (5, 2), "";
    /// `sendmsg(2)`.
    Sendmsg = 9, "IORING_OP_SENDMSG", since (5, 3), "";
    /// `recvmsg(2)`.
    Recvmsg = 10, "IORING_OP_RECVMSG", since (5, 3), "";
    /// A timeout.
    Timeout = 11, "IORING_OP_TIMEOUT", since (5, 4), "";
    /// Remove or update a timeout.
    TimeoutRemove = 12, "IORING_OP_TIMEOUT_REMOVE", since (5, 5), "to cancel a timer";
    /// `accept4(2)`.
    Accept = 13, "IORING_OP_ACCEPT", since (5, 5), "";
    /// Cancel a pending request.
    AsyncCancel = 14, "IORING_OP_ASYNC_CANCEL", since (5, 5), "";
    /// A timeout linked to the previous SQE.
    LinkTimeout = 15, "IORING_OP_LINK_TIMEOUT", since (5, 5), "";
    /// `connect(2)`.
    Connect = 16, "IORING_OP_CONNECT", since (5, 5), "";
    /// `fallocate(2)`.
    Fallocate = 17, "IORING_OP_FALLOCATE", since (5, 6), "";
    /// `openat(2)`.
    Openat = 18, "IORING_OP_OPENAT", since (5, 6), "";
    /// `close(2)`.
    Close = 19, "IORING_OP_CLOSE", since (5, 6), "";
    /// Update registered files.
    FilesUpdate = 20, "IORING_OP_FILES_UPDATE", since (5, 6), "";
    /// `statx(2)`.
    Statx = 21, "IORING_OP_STATX", since (5, 6), "";
    /// `pread(2)`.
    Read = 22, "IORING_OP_READ", since (5, 6), "";
    /// `pwrite(2)`.
    Write = 23, "IORING_OP_WRITE", since (5, 6), "";
    /// `posix_fadvise(2)`.
    Fadvise = 24, "IORING_OP_FADVISE", since (5, 6), "";
    /// `madvise(2)`.
    Madvise = 25, "IORING_OP_MADVISE", since (5, 6), "";
    /// `send(2)`.
    Send = 26, "IORING_OP_SEND", since (5, 6), "";
    /// `recv(2)`.
    Recv = 27, "IORING_OP_RECV", since (5, 6), "";
    /// `openat2(2)`.
    Openat2 = 28, "IORING_OP_OPENAT2", since (5, 6), "";
    /// `epoll_ctl(2)`.
    EpollCtl = 29, "IORING_OP_EPOLL_CTL", since (5, 6), "";
    /// `splice(2)`.
    Splice = 30, "IORING_OP_SPLICE", since (5, 7), "";
    /// Provide buffers for buffer selection.
    ProvideBuffers = 31, "IORING_OP_PROVIDE_BUFFERS", since (5, 7), "";
    /// Remove provided buffers.
    RemoveBuffers = 32, "IORING_OP_REMOVE_BUFFERS", since (5, 7), "";
    /// `tee(2)`.
    Tee = 33, "IORING_OP_TEE", since (5, 8), "";
    /// `shutdown(2)`.
    Shutdown = 34, "IORING_OP_SHUTDOWN", since (5, 11), "";
    /// `renameat2(2)`.
    Renameat = 35, "IORING_OP_RENAMEAT", since (5, 11), "";
    /// `unlinkat(2)`.
    Unlinkat = 36, "IORING_OP_UNLINKAT", since (5, 11), "";
    /// `mkdirat(2)`.
    Mkdirat = 37, "IORING_OP_MKDIRAT", since (5, 15), "";
    /// `symlinkat(2)`.
    Symlinkat = 38, "IORING_OP_SYMLINKAT", since (5, 15), "";
    /// `linkat(2)`.
    Linkat = 39, "IORING_OP_LINKAT", since (5, 15), "";
    /// Post a completion into another ring.
    MsgRing = 40, "IORING_OP_MSG_RING", since (5, 18), "";
    /// `fsetxattr(2)`.
    Fsetxattr = 41, "IORING_OP_FSETXATTR", since (5, 19), "";
    /// `setxattr(2)`.
    Setxattr = 42, "IORING_OP_SETXATTR", since (5, 19), "";
    /// `fgetxattr(2)`.
    Fgetxattr = 43, "IORING_OP_FGETXATTR", since (5, 19), "";
    /// `getxattr(2)`.
    Getxattr = 44, "IORING_OP_GETXATTR", since (5, 19), "";
    /// `socket(2)`.
    Socket = 45, "IORING_OP_SOCKET", since (5, 19), "";
    /// A driver-specific command.
    UringCmd = 46, "IORING_OP_URING_CMD", since (5, 19), "";
    /// Zero-copy `send(2)`.
    SendZc = 47, "IORING_OP_SEND_ZC", since (6, 0), "";
    /// Zero-copy `sendmsg(2)`.
    SendmsgZc = 48, "IORING_OP_SENDMSG_ZC", since (6, 1), "";
}

/// One past the highest opcode in the table (`IORING_OP_LAST` of the 6.1 header).
pub const OPCODE_COUNT: usize = Opcode::TABLE.len();

const _: () = {
    // The table is in numeric order without gaps, so `info()` can index it.
    let mut i = 0;
    while i < Opcode::TABLE.len() {
        assert!(Opcode::TABLE[i].opcode as usize == i);
        i += 1;
    }
};

/// A set of opcodes, one bit each.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OpSet(u64);

const _: () = assert!(OPCODE_COUNT <= 64);

impl OpSet {
    /// No opcode.
    pub const EMPTY: OpSet = OpSet(0);

    /// Every opcode of the table.
    pub const fn all() -> OpSet {
        OpSet((1u64 << OPCODE_COUNT) - 1)
    }

    /// Whether `op` is in the set.
    pub const fn contains(self, op: Opcode) -> bool {
        self.0 & (1 << op as u8) != 0
    }

    /// This set with `op` added (for building sets in constants).
    pub const fn with(self, op: Opcode) -> OpSet {
        OpSet(self.0 | 1 << op as u8)
    }

    /// Adds `op`.
    pub fn insert(&mut self, op: Opcode) {
        self.0 |= 1 << op as u8;
    }

    /// Removes `op`.
    pub fn remove(&mut self, op: Opcode) {
        self.0 &= !(1 << op as u8);
    }

    /// The opcodes in the set, in numeric order.
    pub fn iter(self) -> impl Iterator<Item = Opcode> {
        Opcode::TABLE
            .iter()
            .map(|info| info.opcode)
            .filter(move |op| self.contains(*op))
    }

    /// The number of opcodes in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The opcodes of `self` that exist at `level`.
    pub fn clamp(self, level: crate::KernelLevel) -> OpSet {
        let mut kept = OpSet::EMPTY;
        for op in self.iter() {
            if level.allows(op.since()) {
                kept.insert(op);
            }
        }
        kept
    }
}

impl core::fmt::Debug for OpSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KernelLevel;

    #[test]
    fn from_u8_inverts_the_discriminant() {
        for info in Opcode::TABLE {
            assert_eq!(Opcode::from_u8(info.opcode as u8), Some(info.opcode));
        }
        assert_eq!(Opcode::from_u8(OPCODE_COUNT as u8), None);
    }

    #[test]
    fn opset_clamp_keeps_only_older_ops() {
        let at_5_6 = OpSet::all().clamp(KernelLevel::V5_6);
        assert!(at_5_6.contains(Opcode::Read));
        assert!(at_5_6.contains(Opcode::Statx));
        assert!(!at_5_6.contains(Opcode::Splice));
        assert!(!at_5_6.contains(Opcode::MsgRing));
        let at_5_18 = OpSet::all().clamp(KernelLevel::V5_18);
        assert!(at_5_18.contains(Opcode::MsgRing));
        assert!(!at_5_18.contains(Opcode::Socket));
        assert_eq!(OpSet::all().clamp(KernelLevel::V6_1), OpSet::all());
    }
}
