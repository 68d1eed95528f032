//! `Stat`: the fields of a `statx(2)` result that users need, copied out of the task's
//! kernel-written buffer.
//!
//! # Safety
//!
//! One `unsafe` operation: zero-initialising a `statx` buffer, a C struct of integers.

use crate::Timespec;

/// File metadata from `stat`/`lstat` (`IORING_OP_STATX`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Hard links.
    pub nlink: u32,
    /// Inode number.
    pub ino: u64,
    /// The device holding the file (`makedev(major, minor)`).
    pub dev: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Last access.
    pub atime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Last status change.
    pub ctime: Timespec,
}

/// The `statx` fields requested: everything `Stat` holds.
pub(crate) const STATX_MASK: u32 = libc::STATX_BASIC_STATS;

impl Stat {
    pub(crate) fn from_statx(s: &libc::statx) -> Stat {
        let time = |t: libc::statx_timestamp| Timespec {
            sec: t.tv_sec,
            nsec: t.tv_nsec,
        };
        Stat {
            size: s.stx_size,
            mode: u32::from(s.stx_mode),
            nlink: s.stx_nlink,
            ino: s.stx_ino,
            dev: libc::makedev(s.stx_dev_major, s.stx_dev_minor),
            uid: s.stx_uid,
            gid: s.stx_gid,
            blocks: s.stx_blocks,
            atime: time(s.stx_atime),
            mtime: time(s.stx_mtime),
            ctime: time(s.stx_ctime),
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    /// Whether this is a symbolic link (only `lstat` reports links).
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
}

/// A zeroed `statx` buffer, for the kernel to fill.
pub(crate) fn zeroed_statx() -> Box<libc::statx> {
    // SAFETY: `libc::statx` is a plain C struct of integers and integer arrays, for which
    // all-zero bytes are a valid value.
    Box::new(unsafe { core::mem::zeroed::<libc::statx>() })
}
