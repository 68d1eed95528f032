//! Typed views of the submission and completion rings.
//!
//! # Safety
//!
//! This module dereferences pointers into the ring mappings. They were bounds-checked against
//! their [`Mmap`](crate::mmap::Mmap) when the view was built, and the view never outlives the
//! mapping (both are owned by [`RawRing`](crate::RawRing), which drops the views' users first).
//!
//! Memory ordering follows the kernel's contract (`io_uring.h`, `io_uring/io_uring.c`):
//! - the index the kernel writes (SQ head, CQ tail) is read with `Acquire`, so the entries it
//!   covers (consumed SQEs, posted CQEs) are visible once the index is;
//! - the index we write (SQ tail, CQ head) is stored with `Release`, so our SQE writes happen
//!   before the kernel sees the new tail, and our CQE reads happen before it may reuse slots.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::abi::{io_uring_cqe, io_uring_sqe};
use crate::mmap::Mmap;
use crate::{CqRingFlags, SqRingFlags};

/// The ring is full: no SQE slot is free until the kernel consumes some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqFull;

impl core::fmt::Display for SqFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("submission queue is full")
    }
}

impl std::error::Error for SqFull {}

/// The submission ring: where SQEs go before `io_uring_enter`.
#[derive(Debug)]
pub struct SubmissionQueue {
    head: NonNull<AtomicU32>,
    tail: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    dropped: NonNull<AtomicU32>,
    sqes: NonNull<io_uring_sqe>,
    mask: u32,
    entries: u32,
    /// Our copy of the tail, ahead of the shared one until [`publish`](Self::publish).
    local_tail: u32,
    /// The kernel's head as last read; refreshed only when the ring looks full.
    cached_head: u32,
}

/// The completion ring: where the kernel posts CQEs.
#[derive(Debug)]
pub struct CompletionQueue {
    head: NonNull<AtomicU32>,
    tail: NonNull<AtomicU32>,
    overflow: NonNull<AtomicU32>,
    flags: Option<NonNull<AtomicU32>>,
    cqes: NonNull<io_uring_cqe>,
    mask: u32,
    entries: u32,
}

/// Where each field of a ring sits, read from `io_uring_params`.
pub(crate) struct RingLayout<'a> {
    pub(crate) sq_ring: &'a Mmap,
    pub(crate) cq_ring: &'a Mmap,
    pub(crate) sqes: &'a Mmap,
    pub(crate) params: &'a crate::abi::io_uring_params,
}

/// A field of a ring that the params place outside its mapping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BadOffset(pub(crate) &'static str);

impl SubmissionQueue {
    /// Builds the view and fills the index array with the identity mapping, so that ring
    /// slot `i` always submits SQE `i` and the array never needs touching again.
    pub(crate) fn new(layout: &RingLayout<'_>) -> Result<SubmissionQueue, BadOffset> {
        let off = &layout.params.sq_off;
        let map = layout.sq_ring;
        let field = |offset: u32, name| map.at::<AtomicU32>(offset, 1).ok_or(BadOffset(name));
        let head = field(off.head, "sq head")?;
        let tail = field(off.tail, "sq tail")?;
        let mask_ptr = field(off.ring_mask, "sq mask")?;
        let entries_ptr = field(off.ring_entries, "sq entries")?;
        let flags = field(off.flags, "sq flags")?;
        let dropped = field(off.dropped, "sq dropped")?;
        // SAFETY: `mask_ptr` and `entries_ptr` point inside the live SQ mapping (checked by
        // `at`) at fields the kernel initialised before `io_uring_setup` returned.
        let mask = unsafe { mask_ptr.as_ref() }.load(Ordering::Relaxed);
        // SAFETY: as above.
        let entries = unsafe { entries_ptr.as_ref() }.load(Ordering::Relaxed);
        if entries == 0 || !entries.is_power_of_two() || mask != entries - 1 {
            return Err(BadOffset("sq entries/mask"));
        }
        let array = map
            .at::<AtomicU32>(off.array, entries as usize)
            .ok_or(BadOffset("sq array"))?;
        let sqes = layout
            .sqes
            .at::<io_uring_sqe>(0, entries as usize)
            .ok_or(BadOffset("sqes"))?;
        for i in 0..entries {
            // SAFETY: `array` holds `entries` u32 slots inside the mapping (checked above).
            let slot = unsafe { array.add(i as usize) };
            // SAFETY: the slot is live and aligned; it is accessed atomically, and the kernel
            // reads it only for published entries, of which there are none yet.
            let slot = unsafe { slot.as_ref() };
            slot.store(i, Ordering::Relaxed);
        }
        // SAFETY: `tail` points at the live SQ tail; only we write it.
        let local_tail = unsafe { tail.as_ref() }.load(Ordering::Relaxed);
        Ok(SubmissionQueue {
            head,
            tail,
            flags,
            dropped,
            sqes,
            mask,
            entries,
            local_tail,
            cached_head: local_tail,
        })
    }

    /// The number of SQE slots.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.entries
    }

    #[inline]
    fn head(&self) -> u32 {
        // SAFETY: `head` points into the live SQ mapping; the kernel writes it, so it is read
        // atomically, with Acquire to pair with the kernel's release after consuming SQEs.
        unsafe { self.head.as_ref() }.load(Ordering::Acquire)
    }

    /// SQEs pushed but not yet consumed by the kernel (published or not).
    #[inline]
    pub fn pending(&self) -> u32 {
        self.local_tail.wrapping_sub(self.head())
    }

    /// Free slots.
    #[inline]
    pub fn space(&self) -> u32 {
        self.entries - self.pending()
    }

    /// Copies `sqe` into the next free slot. It reaches the kernel after
    /// [`publish`](Self::publish) and `io_uring_enter`.
    ///
    /// # Safety
    ///
    /// Every address in `sqe` (buffers, iovecs, timespecs, socket addresses, paths, ...) must
    /// stay valid for the access the opcode makes, and must not be freed, moved or reused,
    /// until the completion carrying `sqe.user_data` has been reaped from this ring (or the
    /// ring is gone and all its requests finished). The kernel may read or write it at any time
    /// in between, from another thread.
    #[inline]
    pub unsafe fn push(&mut self, sqe: &io_uring_sqe) -> Result<(), SqFull> {
        if self.local_tail.wrapping_sub(self.cached_head) >= self.entries {
            // Looks full: see how far the kernel has got.
            self.cached_head = self.head();
            if self.local_tail.wrapping_sub(self.cached_head) >= self.entries {
                return Err(SqFull);
            }
        }
        let index = (self.local_tail & self.mask) as usize;
        // SAFETY: `index < entries`, so the slot is inside the SQE array.
        let slot = unsafe { self.sqes.add(index) };
        // SAFETY: the slot is free: it lies beyond the head the kernel has consumed up to and
        // is not yet published, so the kernel does not read it concurrently.
        unsafe { slot.write(*sqe) };
        self.local_tail = self.local_tail.wrapping_add(1);
        Ok(())
    }

    /// Like [`push`](Self::push), but fills the entry in place: `fill` gets the free slot,
    /// zeroed, and writes the fields it needs. Saves building the SQE elsewhere and copying it.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push), for every address `fill` writes into the entry.
    #[inline(always)]
    pub unsafe fn push_with(&mut self, fill: impl FnOnce(&mut io_uring_sqe)) -> Result<(), SqFull> {
        let Some(mut slot) = self.next_free() else {
            return Err(SqFull);
        };
        // SAFETY: `next_free` hands out a slot the kernel does not read and nothing else
        // refers to, until `commit_next` publishes it locally.
        fill(unsafe { slot.as_mut() });
        // SAFETY: the slot came from `next_free` just now, and the caller vouches for the
        // addresses `fill` wrote.
        unsafe { self.commit_next() };
        Ok(())
    }

    /// The next free slot, zeroed, or `None` if the ring is full. It becomes part of the
    /// queue only with [`commit_next`](Self::commit_next); until then the next call hands out
    /// the same slot again.
    ///
    /// The slot lies beyond the kernel's head and is not published: the kernel does not read
    /// it, and it stays valid (and unaliased by this queue) until `commit_next` or the queue
    /// is dropped. Writing addresses into it is what [`push`](Self::push)'s `# Safety` is about.
    #[inline(always)]
    pub fn next_free(&mut self) -> Option<NonNull<io_uring_sqe>> {
        if self.local_tail.wrapping_sub(self.cached_head) >= self.entries {
            self.cached_head = self.head();
            if self.local_tail.wrapping_sub(self.cached_head) >= self.entries {
                return None;
            }
        }
        let index = (self.local_tail & self.mask) as usize;
        // SAFETY: `index < entries`, so the slot is inside the SQE array.
        let slot = unsafe { self.sqes.add(index) };
        // SAFETY: the slot is free (beyond the consumed head, not yet published), so the kernel
        // does not read it while we write, and nothing else holds a reference to it.
        unsafe { slot.write(io_uring_sqe::ZEROED) };
        Some(slot)
    }

    /// Adds the slot [`next_free`](Self::next_free) handed out to the queue (unpublished).
    ///
    /// # Safety
    ///
    /// `next_free` must have returned a slot since the last `commit_next` or `push`, and every
    /// address written into it must satisfy [`push`](Self::push)'s contract.
    #[inline(always)]
    pub unsafe fn commit_next(&mut self) {
        debug_assert!(self.local_tail.wrapping_sub(self.cached_head) < self.entries);
        self.local_tail = self.local_tail.wrapping_add(1);
    }

    /// SQEs pushed but not yet [published](Self::publish): the kernel has never seen them.
    #[inline]
    pub fn unpublished(&self) -> u32 {
        self.local_tail.wrapping_sub(self.published_tail())
    }

    #[inline]
    fn published_tail(&self) -> u32 {
        // SAFETY: `tail` points into the live SQ mapping and only we write it.
        unsafe { self.tail.as_ref() }.load(Ordering::Relaxed)
    }

    /// Takes back the unpublished SQEs for which `retract` returns true, keeping the others
    /// in their order (later entries move down to close the gaps). Returns how many were
    /// taken back. The kernel never sees a retracted entry: it reads only published ones, so
    /// whatever memory it names is free again for its owner.
    pub fn retract_unpublished(&mut self, mut retract: impl FnMut(&io_uring_sqe) -> bool) -> u32 {
        let start = self.published_tail();
        let end = self.local_tail;
        let mut kept = start;
        let mut at = start;
        while at != end {
            // SAFETY: `at & mask < entries`, so the slot is inside the SQE array.
            let from = unsafe { self.sqes.add((at & self.mask) as usize) };
            // SAFETY: the slot lies between the published tail and our local tail: the kernel
            // does not read it, and nothing else holds a reference to it.
            let sqe = unsafe { from.read() };
            if !retract(&sqe) {
                if kept != at {
                    // SAFETY: `kept` is also unpublished (`start <= kept < at`), in the array.
                    let to = unsafe { self.sqes.add((kept & self.mask) as usize) };
                    // SAFETY: as above: an unpublished slot nobody else accesses.
                    unsafe { to.write(sqe) };
                }
                kept = kept.wrapping_add(1);
            }
            at = at.wrapping_add(1);
        }
        self.local_tail = kept;
        end.wrapping_sub(kept)
    }

    /// Makes the pushed SQEs visible to the kernel.
    #[inline]
    pub fn publish(&mut self) {
        // SAFETY: `tail` points into the live SQ mapping and only we write it. Release orders
        // the SQE writes before the kernel's Acquire load of the tail.
        unsafe { self.tail.as_ref() }.store(self.local_tail, Ordering::Release);
    }

    /// The executor's side, for a ring that user space executes (the `emulated` module):
    /// hands every published SQE, at most `max`, to `f` in order and moves the head past
    /// them, as the kernel does when it consumes entries. Returns how many.
    pub(crate) fn consume(&mut self, max: u32, mut f: impl FnMut(io_uring_sqe)) -> u32 {
        // SAFETY: `head` points into the live SQ mapping; the executor is its only writer.
        let head_ref = unsafe { self.head.as_ref() };
        let mut head = head_ref.load(Ordering::Relaxed);
        // Acquire pairs with `publish`'s Release: the entries below the tail are written.
        // SAFETY: `tail` points into the live SQ mapping.
        let tail = unsafe { self.tail.as_ref() }.load(Ordering::Acquire);
        let mut taken = 0;
        while head != tail && taken < max {
            // SAFETY: `head & mask < entries`, inside the SQE array.
            let slot = unsafe { self.sqes.add((head & self.mask) as usize) };
            // SAFETY: the entry is published (below the tail) and not yet consumed, so the
            // submitter no longer writes it.
            let sqe = unsafe { slot.read() };
            head = head.wrapping_add(1);
            // Release: the entry was read before its slot may be reused.
            head_ref.store(head, Ordering::Release);
            taken += 1;
            f(sqe);
        }
        taken
    }

    /// The executor's side: sets or clears SQ ring flags (`CQ_OVERFLOW`), as the kernel does.
    pub(crate) fn set_flag(&self, flag: SqRingFlags, on: bool) {
        // SAFETY: `flags` points into the live SQ mapping; it is accessed atomically.
        let word = unsafe { self.flags.as_ref() };
        if on {
            word.fetch_or(flag.bits(), Ordering::Release);
        } else {
            word.fetch_and(!flag.bits(), Ordering::Release);
        }
    }

    /// The kernel's SQ ring flags.
    #[inline]
    pub fn flags(&self) -> SqRingFlags {
        // SAFETY: `flags` points into the live SQ mapping; the kernel writes it atomically.
        SqRingFlags::from_bits_retain(unsafe { self.flags.as_ref() }.load(Ordering::Acquire))
    }

    /// Invalid SQEs the kernel skipped.
    pub fn dropped(&self) -> u32 {
        // SAFETY: `dropped` points into the live SQ mapping; the kernel writes it atomically.
        unsafe { self.dropped.as_ref() }.load(Ordering::Relaxed)
    }
}

impl CompletionQueue {
    pub(crate) fn new(layout: &RingLayout<'_>) -> Result<CompletionQueue, BadOffset> {
        let off = &layout.params.cq_off;
        let map = layout.cq_ring;
        let field = |offset: u32, name| map.at::<AtomicU32>(offset, 1).ok_or(BadOffset(name));
        let head = field(off.head, "cq head")?;
        let tail = field(off.tail, "cq tail")?;
        let mask_ptr = field(off.ring_mask, "cq mask")?;
        let entries_ptr = field(off.ring_entries, "cq entries")?;
        let overflow = field(off.overflow, "cq overflow")?;
        // `flags` is 0 on kernels before 5.8, which have no CQ flags word.
        let flags = if off.flags == 0 {
            None
        } else {
            Some(field(off.flags, "cq flags")?)
        };
        // SAFETY: the pointers are inside the live CQ mapping (checked by `at`) at fields the
        // kernel initialised before `io_uring_setup` returned.
        let mask = unsafe { mask_ptr.as_ref() }.load(Ordering::Relaxed);
        // SAFETY: as above.
        let entries = unsafe { entries_ptr.as_ref() }.load(Ordering::Relaxed);
        if entries == 0 || !entries.is_power_of_two() || mask != entries - 1 {
            return Err(BadOffset("cq entries/mask"));
        }
        let cqes = map
            .at::<io_uring_cqe>(off.cqes, entries as usize)
            .ok_or(BadOffset("cqes"))?;
        Ok(CompletionQueue {
            head,
            tail,
            overflow,
            flags,
            cqes,
            mask,
            entries,
        })
    }

    /// The number of CQE slots.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.entries
    }

    /// Completions waiting to be reaped.
    #[inline]
    pub fn ready(&self) -> u32 {
        // SAFETY: `tail` (kernel-written, Acquire) and `head` (ours) point into the live
        // CQ mapping.
        let tail = unsafe { self.tail.as_ref() }.load(Ordering::Acquire);
        // SAFETY: as above.
        let head = unsafe { self.head.as_ref() }.load(Ordering::Relaxed);
        tail.wrapping_sub(head)
    }

    /// Copies out every ready completion, oldest first, then frees their slots.
    ///
    /// Returns how many were reaped. The tail is read once, so completions posted while `f`
    /// runs are left for the next call.
    #[inline]
    pub fn reap(&mut self, mut f: impl FnMut(io_uring_cqe)) -> u32 {
        // SAFETY: `tail` points into the live CQ mapping; Acquire pairs with the kernel's
        // release store after it wrote the CQEs below the tail.
        let tail = unsafe { self.tail.as_ref() }.load(Ordering::Acquire);
        // SAFETY: `head` points into the live CQ mapping and only we write it.
        let mut head = unsafe { self.head.as_ref() }.load(Ordering::Relaxed);
        let count = tail.wrapping_sub(head);
        debug_assert!(
            count <= self.entries,
            "CQ tail ran ahead of head by more than its size"
        );
        if head == tail {
            return 0;
        }
        // Publishes the new head once, when the loop ends or `f` panics: either way every
        // CQE read so far has been handed to `f`, so a panicking `f` loses nothing it was not
        // already given, and no CQE is handed out twice.
        struct Publish<'a> {
            at: &'a AtomicU32,
            head: u32,
        }
        impl Drop for Publish<'_> {
            #[inline]
            fn drop(&mut self) {
                // Release orders the CQE reads before the kernel may reuse their slots.
                self.at.store(self.head, Ordering::Release);
            }
        }
        let mut publish = Publish {
            // SAFETY: `head` points into the live CQ mapping and only we write it; the
            // mapping outlives this call.
            at: unsafe { self.head.as_ref() },
            head,
        };
        while head != tail {
            let index = (head & self.mask) as usize;
            // SAFETY: `index < entries`, inside the CQE array.
            let slot = unsafe { self.cqes.add(index) };
            // SAFETY: the slot lies below the tail just acquired and at or above our head, so
            // the kernel has finished writing it and will not reuse it until we publish a head
            // past it.
            let cqe = unsafe { slot.read() };
            head = head.wrapping_add(1);
            publish.head = head;
            f(cqe);
        }
        drop(publish);
        count
    }

    /// The executor's side, for a ring that user space executes: posts `cqe` at the tail;
    /// false (nothing written) if the ring is full.
    pub(crate) fn post(&mut self, cqe: io_uring_cqe) -> bool {
        // SAFETY: `head` (the consumer's, Acquire: it read the entries below it) and `tail`
        // (ours) point into the live CQ mapping.
        let head = unsafe { self.head.as_ref() }.load(Ordering::Acquire);
        // SAFETY: as above.
        let tail_ref = unsafe { self.tail.as_ref() };
        let tail = tail_ref.load(Ordering::Relaxed);
        if tail.wrapping_sub(head) >= self.entries {
            return false;
        }
        // SAFETY: `tail & mask < entries`, inside the CQE array.
        let slot = unsafe { self.cqes.add((tail & self.mask) as usize) };
        // SAFETY: the slot is at or past the tail, so the consumer does not read it until the
        // store below.
        unsafe { slot.write(cqe) };
        // Release: the entry is written before the consumer sees the new tail.
        tail_ref.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Completions the kernel dropped because the ring was full (only without
    /// `FEAT_NODROP`).
    pub fn overflow(&self) -> u32 {
        // SAFETY: `overflow` points into the live CQ mapping; the kernel writes it atomically.
        unsafe { self.overflow.as_ref() }.load(Ordering::Relaxed)
    }

    /// The CQ ring flags (empty on kernels without them).
    pub fn flags(&self) -> CqRingFlags {
        let Some(ptr) = self.flags else {
            return CqRingFlags::empty();
        };
        // SAFETY: `flags` points into the live CQ mapping.
        let word = unsafe { ptr.as_ref() };
        CqRingFlags::from_bits_retain(word.load(Ordering::Relaxed))
    }
}
