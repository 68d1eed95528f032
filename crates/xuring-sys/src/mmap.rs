//! RAII mappings of the ring memory the kernel shares with us (or, for an emulated ring,
//! that user space keeps for itself).
//!
//! # Safety
//!
//! This module holds `unsafe` code for `mmap(2)`/`munmap(2)`. A [`Mmap`] owns its mapping:
//! it is unmapped exactly once, on drop, and nothing derived from it may be used afterwards;
//! the queue views in `queue` keep the owning [`Mmap`] alive next to them in `RawRing`.

use core::ptr::NonNull;
use std::os::fd::RawFd;

use crate::Errno;

/// A shared mapping of part of an io_uring file descriptor.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mmap {
    /// Maps `len` bytes of the ring `fd` at `offset` (one of the `IORING_OFF_*` values).
    pub(crate) fn map(fd: RawFd, offset: u64, len: usize) -> Result<Mmap, Errno> {
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint) overlaps no memory
        // that Rust owns; `fd` and `offset` only select which kernel pages back it.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::ENOMEM)?;
        Ok(Mmap { ptr, len })
    }

    /// `len` bytes of private anonymous memory, zeroed: the rings of a ring that user space
    /// executes itself (the `emulated` module), laid out as the kernel lays out its own.
    pub(crate) fn anonymous(len: usize) -> Result<Mmap, Errno> {
        // SAFETY: a fresh private anonymous mapping chosen by the kernel (null hint) overlaps
        // no memory that Rust owns.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::ENOMEM)?;
        Ok(Mmap { ptr, len })
    }

    /// A pointer `offset` bytes into the mapping, for a `T` that must fit there.
    ///
    /// Returns `None` if `T` at `offset` would reach past the end or is misaligned, so a
    /// kernel offset that disagrees with our ABI cannot send us outside the mapping.
    pub(crate) fn at<T>(&self, offset: u32, count: usize) -> Option<NonNull<T>> {
        let offset = offset as usize;
        let bytes = size_of::<T>().checked_mul(count)?;
        if offset.checked_add(bytes)? > self.len || offset % align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: `offset + bytes <= len`, so the result stays inside this mapping.
        let ptr = unsafe { self.ptr.add(offset) };
        Some(ptr.cast())
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value created and still owns; it is
        // unmapped once, here. Pointers derived from it are not used past this point because
        // their owners (`SubmissionQueue`, `CompletionQueue`) live beside it in `RawRing` and
        // die with it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
